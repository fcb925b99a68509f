"""bench:slim — loading ~250 MB of slim code from S3 into /tmp: ours vs Zappa's way vs the native limit.

One run against a local S3 server (moto, on loopback):
  * ours     runtime/python/warm_web/slim.py materialise(), on the archive lib/private/slim-pack.ts makes;
  * zappa    Zappa's slim_handler load (zappa/handler.py load_remote_project_archive): the S3 body streamed
             into tarfile.open(mode="r|gz").extractall(), on a single-stream tar.gz of the same tree;
  * limit    the same compressed bytes as ours over loopback, the same files written by native tools:
             curl | tar -xz (one stream, one core);
  * limitParallel  the same, split at shard boundaries into one curl | tar -xz per core.
Each run unpacks into a new directory after `sync` (so the previous run's writeback is not billed to
it); outputs are deleted only after all measurements (deleting a large tree slows file creation on this
kind of machine for ~30 s: docs/SLIM_FORMAT.md). Medians of ROUNDS runs after one warm-up each.

Writes bench/results/slim.json. Env: SLIM_BENCH_ROUNDS (default 3), SLIM_SHARD_BYTES, SLIM_WORKERS,
SLIM_LEVEL, SLIM_KEEP_WORK=1 keeps the generated tree and archives for the next run.
"""
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(ROOT, "bench", "results", "slim-work.tmp")
RESULT = os.path.join(ROOT, "bench", "results", "slim.json")
BUCKET = "warm-web-slim-bench"
PACKAGES = ["django", "fastapi", "uvicorn", "starlette", "pydantic", "psycopg2-binary", "redis", "boto3",
            "numpy", "pandas", "flask", "sqlalchemy", "requests", "jinja2"]
ROUNDS = int(os.environ.get("SLIM_BENCH_ROUNDS", "3"))

OURS = r"""
import json, os, sys, time
started = time.perf_counter()
def peak_rss_mb():
    # VmHWM, not ru_maxrss: after fork+exec ru_maxrss starts from the parent's (the bench's) peak.
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
sys.path.insert(0, sys.argv[1])
from warm_web import slim
workers = int(os.environ["SLIM_WORKERS"]) if os.environ.get("SLIM_WORKERS") else None
path = slim.materialise(os.environ, workers=workers, emit=False)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "rssMB": peak_rss_mb(), "path": path}))
"""

ZAPPA = r"""
import json, os, sys, tarfile, time
t0 = time.perf_counter()
def peak_rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
import boto3
t1 = time.perf_counter()
# zappa/handler.py, LambdaHandler.load_remote_project_archive (slim_handler):
boto_session = boto3.Session()
s3 = boto_session.resource("s3")
archive_on_s3 = s3.Object(sys.argv[1], sys.argv[2]).get()
with tarfile.open(fileobj=archive_on_s3["Body"], mode="r|gz") as t:
    t.extractall(sys.argv[3])
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t1, "boto3ImportSeconds": t1 - t0,
                  "rssMB": peak_rss_mb()}))
"""


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_stats(path):
    files = dirs = size = 0
    for _, dirnames, filenames in os.walk(path):
        dirs += len(dirnames)
        for name in filenames:
            files += 1
    size = int(subprocess.check_output(["bash", "-c", f"find '{path}' -type f -printf '%s\\n' | "
                                        "awk '{s+=$1} END {print s+0}'"]).strip())
    return {"files": files, "dirs": dirs, "bytes": size}


def build_tree(site):
    if os.path.isdir(site) and os.path.exists(os.path.join(site, ".complete")):
        return
    shutil.rmtree(site, ignore_errors=True)
    log(f"building the package tree (pip install --target, {len(PACKAGES)} packages from the local mirror)")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-warn-conflicts", "--retries", "0", "--timeout", "5", "--target", site, *PACKAGES],
                   check=True, stdout=subprocess.DEVNULL)
    open(os.path.join(site, ".complete"), "w").close()


def pack(site):
    ours = os.path.join(WORK, "ours.tgz")
    args = ["npx", "ts-node", "--transpile-only", "test/runtime/python/slim/pack_cli.ts", site, ours,
            os.environ.get("SLIM_SHARD_BYTES", ""), os.environ.get("SLIM_LEVEL", ""), ".complete"]
    packed = json.loads(subprocess.check_output(args, cwd=ROOT, stderr=subprocess.DEVNULL))
    zappa = os.path.join(WORK, "zappa.tar.gz")
    started = time.perf_counter()
    subprocess.run(["tar", "--sort=name", "--exclude=.complete", "-czf", zappa, "-C", site, "."], check=True)
    return ours, packed, zappa, time.perf_counter() - started


class Moto:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Objects in memory: by default moto spools them to a temporary file and re-reads the whole object
        # for every GET, ranged or not (~55 ms per GET of 90 MB here), a cost real S3 does not have.
        env = dict(os.environ, MOTO_S3_DEFAULT_KEY_BUFFER_SIZE=str(1 << 30))
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def read_shard_ranges(archive, parts):
    """Byte ranges of `parts` consecutive runs of shards of about equal size, for limitParallel."""
    with open(archive, "rb") as f:
        head = f.read(65536 + 26)
    length = 16 + int.from_bytes(head[14:16], "little") + 10
    shards = json.loads(head[16:length - 10])["shards"]
    total = sum(s[1] for s in shards)
    ranges, start, acc, offset = [], 0, 0, length
    for s in shards:
        offset += s[0]
        acc += s[1]
        if acc >= total * (len(ranges) + 1) / parts and len(ranges) < parts - 1:
            ranges.append((start, offset - 1))
            start = offset
    ranges.append((start, offset - 1))
    return ranges


def settle():
    subprocess.run(["sync"], check=True)
    time.sleep(0.5)


def main():
    os.makedirs(WORK, exist_ok=True)
    site = os.path.join(WORK, "site")
    build_tree(site)
    tree = tree_stats(site)
    tree["files"] -= 1  # .complete
    log(f"tree: {tree['files']} files, {tree['dirs']} dirs, {tree['bytes'] / 1e6:.1f} MB")
    ours_archive, packed, zappa_archive, zappa_pack_s = pack(site)
    log(f"ours: {packed['size'] / 1e6:.1f} MB in {packed['shards']} shards (packed in {packed['packSeconds']} s); "
        f"zappa: {os.path.getsize(zappa_archive) / 1e6:.1f} MB")

    moto = Moto()
    # A new directory each run, deleted only after the measurements: deleting a previous run's trees
    # first would slow file creation for the next ~30 s (docs/SLIM_FORMAT.md).
    out_root = os.path.join(WORK, f"out-{os.getpid()}")
    os.makedirs(out_root)
    env = dict(os.environ, AWS_ENDPOINT_URL=moto.url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_SESSION_TOKEN", None)
    try:
        import boto3
        s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        s3.create_bucket(Bucket=BUCKET)
        ours_key = f"slim/{packed['sha256']}.tgz"
        s3.upload_file(ours_archive, BUCKET, ours_key)
        s3.upload_file(zappa_archive, BUCKET, "zappa/project.tar.gz")
        ours_env = dict(env, WARM_WEB_SLIM_BUCKET=BUCKET, WARM_WEB_SLIM_KEY=ours_key,
                        WARM_WEB_SLIM_SHA256=packed["sha256"], WARM_WEB_SLIM_SIZE=str(packed["size"]),
                        WARM_WEB_SLIM_UNPACKED=str(packed["unpackedBytes"]))
        cores = len(os.sched_getaffinity(0))
        parallel_ranges = read_shard_ranges(ours_archive, cores)
        counter = [0]

        def new_dir(tag):
            counter[0] += 1
            path = os.path.join(out_root, f"{tag}-{counter[0]}")
            os.makedirs(path)
            return path

        def run_ours():
            d = new_dir("ours")
            r = json.loads(subprocess.check_output(
                [sys.executable, "-c", OURS, os.path.join(ROOT, "runtime", "python")],
                env=dict(ours_env, TMPDIR=d)))
            return r

        def run_zappa():
            d = new_dir("zappa")
            return json.loads(subprocess.check_output(
                [sys.executable, "-c", ZAPPA, BUCKET, "zappa/project.tar.gz", d], env=env))

        def run_limit():
            d = new_dir("limit")
            started = time.perf_counter()
            subprocess.run(["bash", "-c", f"set -o pipefail; curl -sf {moto.url}/{BUCKET}/{ours_key} | tar -xz -C {d}"],
                           check=True)
            return {"seconds": time.perf_counter() - started}

        def run_limit_parallel():
            d = new_dir("limitpar")
            started = time.perf_counter()
            procs = [subprocess.Popen(["bash", "-c", f"set -o pipefail; curl -sf -r {a}-{b} {moto.url}/{BUCKET}/{ours_key}"
                                       f" | tar -xz -C {d}"]) for a, b in parallel_ranges]
            for p in procs:
                if p.wait() != 0:
                    raise RuntimeError("parallel native extraction failed")
            return {"seconds": time.perf_counter() - started}

        methods = {"limit": run_limit, "limitParallel": run_limit_parallel, "zappa": run_zappa, "ours": run_ours}
        results = {name: [] for name in methods}
        for round_no in range(ROUNDS + 1):
            for name, fn in methods.items():
                settle()
                r = fn()
                if round_no > 0:
                    results[name].append(r)
                log(f"{'warm-up' if round_no == 0 else f'round {round_no}'}: {name:<14} {r['seconds']:.3f} s"
                    + (f"  peak RSS {r['rssMB']:.0f} MB" if "rssMB" in r else ""))
        check = results["ours"][-1]["path"]
        same = subprocess.run(["diff", "-rq", "--exclude=.complete", "--exclude=.warm-web-slim",
                               "--exclude=__pycache__", site, check],
                              stdout=subprocess.DEVNULL).returncode == 0
    finally:
        moto.stop()

    def med(name, field="seconds"):
        return round(statistics.median(r[field] for r in results[name]), 3)

    ours_s, zappa_s, limit_s, limitp_s = med("ours"), med("zappa"), med("limit"), med("limitParallel")
    result = {
        "command": "npm run bench:slim",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{cores} cores, {platform.python_implementation()} {platform.python_version()}, S3: moto on loopback",
        "tree": tree,
        "archive": {"bytes": packed["size"], "shards": packed["shards"], "packSeconds": packed["packSeconds"],
                    "zappaTarGzBytes": os.path.getsize(zappa_archive)},
        "runs": ROUNDS,
        "oursSeconds": ours_s,
        "zappaSeconds": zappa_s,
        "limitSeconds": limit_s,
        "limitParallelSeconds": limitp_s,
        "oursPeakRssMB": round(max(r["rssMB"] for r in results["ours"]), 1),
        "zappaPeakRssMB": round(max(r["rssMB"] for r in results["zappa"]), 1),
        "zappaBoto3ImportSeconds": med("zappa", "boto3ImportSeconds"),
        "oursToLimit": round(ours_s / limit_s, 3),
        "oursToLimitParallel": round(ours_s / limitp_s, 3),
        "zappaToOurs": round(zappa_s / ours_s, 3),
        "unpackedTreeIdentical": same,
        "samples": {name: [round(r["seconds"], 3) for r in rs] for name, rs in results.items()},
    }
    with open(RESULT, "w") as f:
        f.write(json.dumps(result, indent=2) + "\n")
    log("deleting the unpacked outputs")
    shutil.rmtree(out_root, ignore_errors=True)
    if os.environ.get("SLIM_KEEP_WORK") != "1":
        shutil.rmtree(WORK, ignore_errors=True)
    print(json.dumps({k: result[k] for k in ("oursSeconds", "zappaSeconds", "limitSeconds", "limitParallelSeconds",
                                              "oursPeakRssMB", "oursToLimit", "zappaToOurs")}))
    if not same:
        log("the tree ours unpacked differs from the source tree")
        sys.exit(1)


if __name__ == "__main__":
    main()
