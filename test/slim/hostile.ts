// Hostile slim archives, in the real format (docs/SLIM_FORMAT.md), for the loaders' tests (Node:
// test/runtime/node/slim-faults.test.ts; Python: test/runtime/python). Every case but `replaced-shard` has an honest
// index (its hash, sizes and shard hashes are right): what is hostile is the tar inside, which is what a
// loader must refuse even when every hash checks out.
//
//   npx ts-node --transpile-only test/slim/hostile.ts CASE OUT_FILE
//     writes the archive and prints one JSON line:
//     {"sha256": <SHA-256 of the index member = WARM_WEB_SLIM_SHA256>, "size": <archive bytes>,
//      "unpacked": <the index's unpacked bytes>, "fileSha256": <SHA-256 of the file>}
//   npx ts-node --transpile-only test/slim/hostile.ts --list
//     prints the case names, one per line.
//
// The packer (lib/private/slim-pack.ts) exports neither its tar headers nor its gzip members, so the minimum of
// both is written here: ustar headers (names under 100 bytes, no pax), gzip members with the packer's
// OS byte, and the index member.
/* eslint-disable no-bitwise */ // gzip flags and file modes are bit fields
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { packDirectory, readIndex, SLIM_FORMAT, SLIM_FORMAT_VERSION, SLIM_MTIME, type ShardRecord, type SlimIndex } from '../../lib/private/slim-pack';

export const CASES = ['good', 'symlink-chain', 'replaced-shard', 'duplicate-entry', 'entry-cut-by-shard-end', 'size-lie',
  'dot-link', 'marker-entry', 'link-over-entry', 'pax-bomb', 'shard-not-gzip', 'link-through-link'] as const;
export type HostileCase = typeof CASES[number];

/** What the crafter prints: the values of WARM_WEB_SLIM_SHA256, WARM_WEB_SLIM_SIZE and WARM_WEB_SLIM_UNPACKED. */
export interface Crafted {
  readonly sha256: string;
  readonly size: number;
  readonly unpacked: number;
  readonly fileSha256: string;
}

/** The good app's modules, and the attacker's (planted by `replaced-shard`): each says whose it is. */
export const GOOD_APP_PY = 'def handler(event, context):\n    return {"app": "good"}\n';
export const GOOD_APP_JS = 'exports.handler = async () => ({ app: "good" });\n';
export const ATTACKER_APP_PY = 'def handler(event, context):\n    return {"app": "attacker"}\n';
export const ATTACKER_APP_JS = 'exports.handler = async () => ({ app: "attacker" });\n';

const BLOCK = 512;
const MARKER = '.warm-web-slim';

/** One tar entry; `size` overrides the header's size field (the content stays `data`). */
type Entry =
  | { readonly type: 'file'; readonly name: string; readonly data: string | Buffer; readonly size?: number }
  | { readonly type: 'dir'; readonly name: string }
  | { readonly type: 'symlink'; readonly name: string; readonly target: string };

function header(name: string, type: '0' | '2' | '5' | 'x', size: number, mode: number, link = ''): Buffer {
  const h = Buffer.alloc(BLOCK);
  const field = (value: number, offset: number, length: number): void => {
    h.write(`${value.toString(8).padStart(length - 1, '0')}\u0000`, offset, 'latin1');
  };
  if (Buffer.byteLength(name) > 100 || Buffer.byteLength(link) > 100) throw new Error(`${name}: names over 100 bytes are not needed here`);
  h.write(name, 0, 'utf8');
  field(mode, 100, 8);
  field(0, 108, 8);
  field(0, 116, 8);
  field(size, 124, 12);
  field(SLIM_MTIME, 136, 12);
  h.write('        ', 148, 'latin1');
  h.write(type, 156, 'latin1');
  h.write(link, 157, 'utf8');
  h.write('ustar\u000000', 257, 'latin1');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
  return h;
}

function pad(n: number): Buffer {
  return Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);
}

function tarOf(entries: readonly Entry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.type === 'dir') {
      parts.push(header(`${e.name}/`, '5', 0, 0o755));
    } else if (e.type === 'symlink') {
      parts.push(header(e.name, '2', 0, 0o777, e.target));
    } else {
      const data = Buffer.from(e.data);
      parts.push(header(e.name, '0', e.size ?? data.length, 0o644), data, pad(data.length));
    }
  }
  return Buffer.concat(parts);
}

const END = Buffer.alloc(2 * BLOCK);

/**
 * A gzip member of `raw`, as the packer makes them (OS byte 255). With `length`, the member is made
 * exactly that long by an FEXTRA field of padding (gzip readers skip it), so that it can take the place
 * of another member without moving anything after it.
 */
function member(raw: Buffer, length?: number): Buffer {
  const z = zlib.gzipSync(raw, { level: 9 });
  z[9] = 255;
  if (length === undefined) return z;
  const padBytes = length - z.length - 2 - 4;
  if (padBytes < 0 || padBytes > 65531) throw new Error(`cannot pad a ${z.length}-byte member to ${length} bytes`);
  const extra = Buffer.alloc(2 + 4 + padBytes);
  extra.writeUInt16LE(4 + padBytes, 0);
  extra.write('PD', 2, 'latin1');
  extra.writeUInt16LE(padBytes, 4);
  const head = Buffer.from(z.subarray(0, 10));
  head[3] |= 0x04; // FEXTRA
  return Buffer.concat([head, extra, z.subarray(10)]);
}

/** The index member: empty deflate data, the index JSON in the FEXTRA subfield 'WW'. */
function indexMember(index: SlimIndex): Buffer {
  const json = Buffer.from(JSON.stringify(index), 'utf8');
  const head = Buffer.alloc(16);
  head.set([0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 255]);
  head.writeUInt16LE(json.length + 4, 10);
  head.write('WW', 12, 'latin1');
  head.writeUInt16LE(json.length, 14);
  return Buffer.concat([head, json, Buffer.from([0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0])]);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes an archive whose index is honest about `shards` (each a list of entries; the last gets the end blocks). */
function writeHonest(shards: ReadonlyArray<readonly Entry[]>, outFile: string): Crafted {
  let unpacked = 0;
  let files = 0;
  let dirs = 0;
  let symlinks = 0;
  const records: ShardRecord[] = [];
  const members: Buffer[] = [];
  shards.forEach((entries, i) => {
    for (const e of entries) {
      if (e.type === 'file') {
        files++;
        unpacked += Buffer.byteLength(e.data);
      } else if (e.type === 'dir') {
        dirs++;
      } else {
        symlinks++;
      }
    }
    const raw = i === shards.length - 1 ? Buffer.concat([tarOf(entries), END]) : tarOf(entries);
    const z = member(raw);
    members.push(z);
    records.push([z.length, raw.length, entries.length, sha256(z)]);
  });
  const index: SlimIndex = { format: SLIM_FORMAT, v: SLIM_FORMAT_VERSION, mtime: SLIM_MTIME, unpacked, files, dirs, symlinks, shards: records };
  const head = indexMember(index);
  return save(Buffer.concat([head, ...members]), sha256(head), unpacked, outFile);
}

function save(archive: Buffer, indexSha256: string, unpacked: number, outFile: string): Crafted {
  fs.writeFileSync(outFile, archive);
  return { sha256: indexSha256, size: archive.length, unpacked, fileSha256: sha256(archive) };
}

/** 6000 incompressible bytes, so that the good archive's last shard has room for the attacker's. */
function noise(): Buffer {
  return Buffer.concat(Array.from({ length: 188 }, (_, i) => createHash('sha256').update(`noise ${i}`).digest())).subarray(0, 6000);
}

/**
 * The good app, packed by the real packer into five shards:
 * [app.js] [app.py] [link.py -> app.py, pkg/] [pkg/__init__.py] [pkg/data.bin, end].
 */
function good(outFile: string): Crafted {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-hostile-'));
  try {
    fs.writeFileSync(path.join(dir, 'app.py'), GOOD_APP_PY);
    fs.writeFileSync(path.join(dir, 'app.js'), GOOD_APP_JS);
    fs.symlinkSync('app.py', path.join(dir, 'link.py'));
    fs.mkdirSync(path.join(dir, 'pkg'));
    fs.writeFileSync(path.join(dir, 'pkg', '__init__.py'), 'VALUE = 1\n');
    fs.writeFileSync(path.join(dir, 'pkg', 'data.bin'), noise());
    const r = packDirectory(dir, outFile, { shardBytes: 1024 });
    return { sha256: r.sha256, size: r.size, unpacked: r.unpackedBytes, fileSha256: r.fileSha256 };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The link chain: `l` is the root, so `l/x` is `x` pointing at the root's parent, `l/l/l/y` two levels above that. */
const CHAIN: Entry[] = [
  { type: 'symlink', name: 'l', target: '.' },
  { type: 'symlink', name: 'l/x', target: '..' },
  { type: 'symlink', name: 'l/l/l/y', target: '../../..' },
];

/**
 * The good archive with its index (and so its WARM_WEB_SLIM_SHA256) kept and its last shard replaced,
 * at the same length, by one that writes the ready marker and the attacker's app.py and app.js through
 * the chain into `x/<sha256>/`: with TMPDIR's `warm-web/.tmp-*` as the root, that is
 * `warm-web/<sha256>/`, the path a later INIT looks at.
 */
function replacedShard(outFile: string): Crafted {
  const goodFile = `${outFile}.good.tmp`;
  try {
    const g = good(goodFile);
    const archive = fs.readFileSync(goodFile);
    const { index, length } = readIndex(archive);
    const last = index.shards[index.shards.length - 1];
    const offset = archive.length - last[0];
    const planted = `x/${g.sha256}`;
    const evil = tarOf([
      CHAIN[0],
      CHAIN[1],
      { type: 'dir', name: planted },
      { type: 'file', name: `${planted}/${MARKER}`, data: JSON.stringify({ sha256: g.sha256 }) },
      { type: 'file', name: `${planted}/app.py`, data: ATTACKER_APP_PY },
      { type: 'file', name: `${planted}/app.js`, data: ATTACKER_APP_JS },
    ]);
    const replaced = Buffer.concat([archive.subarray(0, offset), member(Buffer.concat([evil, END]), last[0])]);
    if (replaced.length !== archive.length || offset < length) throw new Error('the replaced shard does not fit');
    return save(replaced, g.sha256, g.unpacked, outFile);
  } finally {
    fs.rmSync(goodFile, { force: true });
  }
}

export function craft(name: HostileCase, outFile: string): Crafted {
  switch (name) {
    case 'good':
      return good(outFile);
    case 'replaced-shard':
      return replacedShard(outFile);
    case 'symlink-chain':
      // One shard for the chain and what goes through it (so the order is fixed), one for the app.
      return writeHonest([
        [...CHAIN, { type: 'dir', name: 'x/planted' }, { type: 'file', name: 'x/planted/app.py', data: ATTACKER_APP_PY },
          { type: 'file', name: 'y/escaped.txt', data: 'outside\n' }],
        [{ type: 'file', name: 'app.js', data: GOOD_APP_JS }, { type: 'file', name: 'app.py', data: GOOD_APP_PY }],
      ], outFile);
    case 'duplicate-entry':
      // The same file in two shards.
      return writeHonest([
        [{ type: 'file', name: 'app.js', data: GOOD_APP_JS }, { type: 'file', name: 'app.py', data: GOOD_APP_PY }],
        [{ type: 'file', name: 'app.py', data: ATTACKER_APP_PY }],
      ], outFile);
    case 'entry-cut-by-shard-end': {
      // big.txt's header and first 1024 bytes end shard 0; the rest of it starts shard 1.
      const big = Buffer.alloc(2048, 'b');
      const shard0 = Buffer.concat([tarOf([{ type: 'file', name: 'app.py', data: GOOD_APP_PY }]), header('big.txt', '0', big.length, 0o644), big.subarray(0, 1024)]);
      const shard1 = Buffer.concat([big.subarray(1024), tarOf([{ type: 'file', name: 'app.js', data: GOOD_APP_JS }]), END]);
      return writeRaw([[shard0, 2], [shard1, 1]], GOOD_APP_PY.length + big.length + GOOD_APP_JS.length, 3, outFile);
    }
    case 'dot-link':
      // `./up` counts as two levels deep to a lexical check, so `..` seems to stay inside; it is the root's parent.
      return writeHonest([[{ type: 'symlink', name: './up', target: '..' }, { type: 'file', name: 'app.js', data: GOOD_APP_JS }]], outFile);
    case 'marker-entry':
      // The archive brings its own ready marker, naming the hash a later INIT will look for.
      return writeHonest([[{ type: 'file', name: MARKER, data: JSON.stringify({ sha256: '0'.repeat(64) }) }, { type: 'file', name: 'app.js', data: GOOD_APP_JS }]], outFile);
    case 'link-over-entry':
      // A file under lib/, then lib itself as a link: the link would sit over the archive's own directory.
      return writeHonest([[{ type: 'dir', name: 'pkg' }, { type: 'file', name: 'lib/a.js', data: GOOD_APP_JS }, { type: 'symlink', name: 'lib', target: 'pkg' }]], outFile);
    case 'link-through-link':
      // Each link stays inside by itself; `c` through `a/b` is the root's parent.
      return writeHonest([[{ type: 'dir', name: 'a' }, { type: 'symlink', name: 'a/b', target: '..' }, { type: 'symlink', name: 'c', target: 'a/b/..' },
        { type: 'file', name: 'app.js', data: GOOD_APP_JS }]], outFile);
    case 'pax-bomb': {
      // A pax header of 100 kB (one `comment` record), which a reader would hold in memory.
      const value = 'c'.repeat(100_000);
      let length = value.length + ' comment=\n'.length;
      length += String(length + String(length).length).length;
      const body = Buffer.from(`${length} comment=${value}\n`);
      const raw = Buffer.concat([header('././@PaxHeader', 'x', body.length, 0o644), body, pad(body.length), tarOf([{ type: 'file', name: 'app.js', data: GOOD_APP_JS }]), END]);
      return writeRaw([[raw, 1]], GOOD_APP_JS.length, 1, outFile);
    }
    case 'shard-not-gzip': {
      // A shard that is not a gzip member at all, with the index's hash of exactly those bytes.
      const junk = Buffer.from('this shard is not a gzip member '.repeat(32));
      const shards: ShardRecord[] = [[junk.length, 1024, 0, sha256(junk)]];
      const none = { unpacked: 0, files: 0, dirs: 0, symlinks: 0 };
      const head = indexMember({ format: SLIM_FORMAT, v: SLIM_FORMAT_VERSION, mtime: SLIM_MTIME, ...none, shards });
      return save(Buffer.concat([head, junk]), sha256(head), 0, outFile);
    }
    case 'size-lie':
      // A header declaring 1 GiB in a shard of a few KiB: what is written must stop at the shard's end.
      return writeHonest([
        [{ type: 'file', name: 'app.py', data: GOOD_APP_PY }],
        [{ type: 'file', name: 'huge.bin', data: Buffer.alloc(3000, 'h'), size: 1 << 30 }, { type: 'file', name: 'app.js', data: GOOD_APP_JS }],
      ], outFile);
  }
}

/** An archive of ready-made tar fragments ([tar, entries]) with an honest index. */
function writeRaw(shards: ReadonlyArray<[Buffer, number]>, unpacked: number, files: number, outFile: string): Crafted {
  const members = shards.map(([raw]) => member(raw));
  const records: ShardRecord[] = shards.map(([raw, entries], i) => [members[i].length, raw.length, entries, sha256(members[i])]);
  const index: SlimIndex = { format: SLIM_FORMAT, v: SLIM_FORMAT_VERSION, mtime: SLIM_MTIME, unpacked, files, dirs: 0, symlinks: 0, shards: records };
  const head = indexMember(index);
  return save(Buffer.concat([head, ...members]), sha256(head), unpacked, outFile);
}

if (require.main === module) {
  const [name, outFile] = process.argv.slice(2);
  if (name === '--list') {
    process.stdout.write(`${CASES.join('\n')}\n`);
  } else if (!(CASES as readonly string[]).includes(name) || !outFile) {
    process.stderr.write(`usage: hostile.ts CASE OUT_FILE | --list (CASE one of ${CASES.join(', ')}; got ${JSON.stringify(name)})\n`);
    process.exit(2);
  } else {
    process.stdout.write(`${JSON.stringify(craft(name as HostileCase, outFile))}\n`);
  }
}
