// npm run bench:warmer-cpu — what the warmer function's memory does to the cost of its pings. Lambda gives a
// function CPU in proportion to its memory (1,769 MB is one vCPU); the warmer's CPU sets how fast it sends
// N pings, and every ping holds until the last one has arrived. Ours with the warmer at 1,769 MB, against
// 256 MB (its memory before) and 128 MB (serverless-plugin-warmup's default), this process held to that
// share of one core by a CFS quota (needs root and a cgroup cpu controller). The pool is not confined.
// Writes bench/results/warmer-cpu.json.
import * as fs from 'fs';
import * as path from 'path';
import { measure, median, MIN_WARMUP_RUNS, pythonTarget, startPool, steadyRuns, timed, writeResults } from './harness';

const SIZES = (process.env.BENCH_SIZES ?? '50,200,500').split(',').map(Number);
const MEMORY_MB = [1769, 256, 128];
const ONE_VCPU_MB = 1769;
// Lambda does not publish its quota period; 100 ms is the kernel's default.
const PERIOD_US = Number(process.env.BENCH_CFS_PERIOD_MS ?? 100) * 1000;
const HOLD_MS = 250;
const MEASURED_RUNS = 10;

/** A cgroup for this process whose CPU quota can be set to a share of one core (cgroup v2, else v1). */
function cpuQuotaGroup() {
  const v2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
  const root = v2 ? '/sys/fs/cgroup' : '/sys/fs/cgroup/cpu';
  const dir = path.join(root, 'warm-web-bench');
  try {
    if (v2) fs.writeFileSync(path.join(root, 'cgroup.subtree_control'), '+cpu');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(process.pid));
  } catch (err) {
    throw new Error(`bench:warmer-cpu holds the warmer to a CPU share with a cgroup quota and needs root: cannot use ${dir}: ${(err as Error).message}`);
  }
  return {
    share(share: number) {
      const quota = Math.round(PERIOD_US * share);
      if (v2) {
        fs.writeFileSync(path.join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
      } else {
        fs.writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), '-1');
        fs.writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
        fs.writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(quota));
      }
    },
    release() {
      fs.writeFileSync(path.join(root, 'cgroup.procs'), String(process.pid));
      fs.rmdirSync(dir);
    },
  };
}

async function main() {
  const local = await startPool(SIZES.flatMap((n) => MEMORY_MB.map((mb) => pythonTarget(`ours-${mb}-${n}`, 'plugin_warmup'))));
  const group = cpuQuotaGroup();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const warmer: typeof import('../../handlers/warmer') = require('../../handlers/warmer');
  const quiet = process.stdout.write.bind(process.stdout);
  const results: Array<Record<string, unknown>> = [];
  try {
    for (const n of SIZES) {
      for (const memoryMb of MEMORY_MB) {
        const share = Math.min(1, memoryMb / ONE_VCPU_MB);
        group.share(share);
        const name = `ours-${memoryMb}-${n}`;
        const arn = await local.aliasArn(name);
        process.stdout.write = (() => true) as typeof process.stdout.write; // the warmer's EMF lines
        const { measured, warmupRuns } = await steadyRuns(MEASURED_RUNS, async () => {
          await new Promise((r) => setTimeout(r, 300));
          await local.takeInvocations(name);
          const durationMs = await timed(() => warmer.warmAll([{ functionArn: arn, concurrency: n, holdMs: HOLD_MS }]));
          return measure(durationMs, await local.takeInvocations(name), n, [], true);
        });
        process.stdout.write = quiet;
        await local.reclaim(name);
        const sum = (values: number[]) => values.reduce((total, v) => total + v, 0);
        const held = sum(measured.map((m) => m.holdMsTotal));
        const result = {
          memoryMb,
          cpuShare: +share.toFixed(3),
          n,
          minDistinct: Math.min(...measured.map((m) => m.distinct)),
          runs: measured.length,
          topUpRuns: measured.filter((m) => m.rounds > 1).length,
          holdMsPerRun: Math.round(held / measured.length),
          requiredHoldMsPerRun: Math.round(sum(measured.map((m) => m.requiredHoldMs)) / measured.length),
          dispatchSpreadMs: median(measured.map((m) => m.dispatchSpreadMs)),
          warmerMs: median(measured.map((m) => m.durationMs)),
          // What the pings cost the 1 GB targets, and what the warmer itself costs, per run.
          targetsGbSeconds: +(held / measured.length / 1000).toFixed(2),
          warmerGbSeconds: +(sum(measured.map((m) => m.durationMs)) / measured.length / 1000 * memoryMb / 1024).toFixed(3),
          runsInOrder: measured.map((m) => [m.distinct, m.rounds, m.holdMsTotal, m.requiredHoldMs]),
          warmupRuns,
        };
        results.push(result);
        console.error(`warmer ${String(memoryMb).padStart(4)} MB (${result.cpuShare} vCPU) N=${String(n).padEnd(4)} distinct min ${result.minDistinct}, hold ${result.holdMsPerRun} ms per run, needed ${result.requiredHoldMsPerRun} ms at this spread, spread ${result.dispatchSpreadMs} ms, top-ups ${result.topUpRuns}/${measured.length}, warmer ${result.warmerMs} ms`);
      }
    }
  } finally {
    group.release();
    await local.stop();
  }

  // Per N: each memory's ping cost against the 1,769 MB warmer's, and against what the 1,769 MB spread needs.
  const table = SIZES.map((n) => {
    const row = results.filter((r) => r.n === n);
    const full = row.find((r) => r.memoryMb === ONE_VCPU_MB)!;
    return {
      n,
      ...Object.fromEntries(row.map((r) => [`${r.memoryMb}MB`, {
        holdMsPerRun: r.holdMsPerRun,
        toFullVcpu: +((r.holdMsPerRun as number) / (full.holdMsPerRun as number)).toFixed(2),
        toFullVcpuNeed: +((r.holdMsPerRun as number) / (full.requiredHoldMsPerRun as number)).toFixed(2),
      }])),
    };
  });
  writeResults('warmer-cpu', 'npm run bench:warmer-cpu', {
    cfsPeriodMs: PERIOD_US / 1000,
    note: `Our warmer, its process held to memoryMb / ${ONE_VCPU_MB} of one core (Lambda's CPU share) by a CFS quota per ${PERIOD_US / 1000} ms; the pool and its environments unconfined. After warm-up runs (at least ${MIN_WARMUP_RUNS}, until a run starts no environment), ${MEASURED_RUNS} measured runs per row. holdMsPerRun = summed handler durations in the environments (what Lambda bills the 1 GB targets), mean per run, top-up rounds included; requiredHoldMsPerRun = summed wait each ping needed for all of its round to overlap (last arrival minus own), mean per run; warmerGbSeconds = the warmer's own run time at its memory; runsInOrder = [distinct, rounds, holdMsTotal, requiredHoldMs]. Table: toFullVcpu = holdMsPerRun over the 1,769 MB warmer's; toFullVcpuNeed = over what the 1,769 MB warmer's spread needed.`,
    results,
    table,
  });
  console.log(JSON.stringify(table, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
