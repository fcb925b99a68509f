// The slim-code packer: runs at synth time on the user's machine and turns a code directory into one
// archive that the runtime loaders (runtime/python/warm_web/slim.py, runtime/node/slim.ts) fetch
// from S3 and extract into /tmp during INIT. The format is described in docs/SLIM_FORMAT.md:
//
//   [index member][shard 1]...[shard N]
//
// every part a gzip member, so the whole file is an ordinary .tar.gz (`tar -xzf` extracts it), while each
// shard is also a tar fragment that can be fetched with its own ranged GET and inflated on its own core.
// The index member inflates to nothing; its gzip header's extra field carries the shard table (JSON).
// WARM_WEB_SLIM_SHA256 is the SHA-256 of the index member's bytes: the index holds each shard's length
// and SHA-256, so that one hash commits to every byte of the archive and each shard is verified on its own.
/* eslint-disable no-bitwise */ // file modes, gzip and pyc header fields are bit fields
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

/** Format identifier and version carried in the index. */
export const SLIM_FORMAT = 'warm-web-slim';
export const SLIM_FORMAT_VERSION = 1;
/** Every entry's mtime (1980-01-01T00:00:00Z, the zip epoch CDK's own assets use). */
export const SLIM_MTIME = 315532800;
/** Default target of uncompressed tar bytes per shard (see docs/SLIM_FORMAT.md for the measurements). */
export const DEFAULT_SHARD_BYTES = 4 * 1024 * 1024;
/** The gzip extra-field subfield id that carries the index ('W', 'W'). */
const INDEX_SUBFIELD = Buffer.from('WW', 'latin1');
const MAX_INDEX_JSON = 65535 - 4;
const MAX_SHARDS = 600;
const BLOCK = 512;
const GZIP_OS_UNKNOWN = 255;

export interface PackOptions {
  /**
   * Glob patterns of paths to leave out, relative to the directory, `/`-separated. A pattern without a
   * `/` matches a name at any depth (`__pycache__`, `*.dist-info`); one with a `/` matches the whole
   * relative path (`tests/**`, `bin/*`). `*` and `?` stay within one name, `**` crosses directories. A
   * trailing `/` matches directories only. An excluded directory is left out with everything in it.
   */
  readonly exclude?: string[];
  /** Target uncompressed tar bytes per shard. @default DEFAULT_SHARD_BYTES */
  readonly shardBytes?: number;
  /** gzip level, 1-9. @default 6 */
  readonly level?: number;
}

export interface PackResult {
  /** WARM_WEB_SLIM_SHA256: SHA-256 (hex) of the index member, which holds every shard's SHA-256. */
  readonly sha256: string;
  /** SHA-256 (hex) of the whole archive file, as `sha256sum` prints it (for S3 checksums, logs). */
  readonly fileSha256: string;
  /** WARM_WEB_SLIM_SIZE: archive bytes. */
  readonly size: number;
  /** WARM_WEB_SLIM_UNPACKED: bytes of regular-file content once unpacked. */
  readonly unpackedBytes: number;
  readonly files: number;
  readonly dirs: number;
  readonly symlinks: number;
  readonly shards: number;
  /** `.pyc` files whose recorded source mtime was moved to the fixed mtime (see docs/SLIM_FORMAT.md). */
  readonly pycsRetimed: number;
}

/** One shard in the index: [compressed bytes, uncompressed bytes, entries, sha256 of compressed bytes]. */
export type ShardRecord = [number, number, number, string];

export interface SlimIndex {
  readonly format: string;
  readonly v: number;
  readonly mtime: number;
  readonly unpacked: number;
  readonly files: number;
  readonly dirs: number;
  readonly symlinks: number;
  readonly shards: ShardRecord[];
}

type Entry =
  | { readonly type: 'dir'; readonly rel: string }
  | { readonly type: 'file'; readonly rel: string; readonly abs: string; readonly size: number; readonly exec: boolean; readonly mtimeS: number }
  | { readonly type: 'symlink'; readonly rel: string; readonly target: string };

export class SlimPackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SlimPackError';
  }
}

// ---------------------------------------------------------------------------------------------------
// Walking the tree

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else {
          re += '.*';
        }
      } else {
        re += '[^/]*';
      }
    } else if (c === '?') {
      re += '[^/]';
    } else {
      re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}$`);
}

interface Matcher {
  readonly re: RegExp;
  readonly anchored: boolean;
  readonly dirOnly: boolean;
}

function compileExcludes(patterns: readonly string[]): Matcher[] {
  return patterns.filter((p) => p.trim() !== '').map((raw) => {
    let p = raw.replace(/\\/g, '/');
    const dirOnly = p.endsWith('/');
    p = p.replace(/\/+$/, '');
    const anchored = p.includes('/');
    p = p.replace(/^\.?\//, '');
    return { re: globToRegExp(p), anchored, dirOnly };
  });
}

function excluded(matchers: readonly Matcher[], rel: string, isDir: boolean): boolean {
  const base = rel.slice(rel.lastIndexOf('/') + 1);
  return matchers.some((m) => (!m.dirOnly || isDir) && m.re.test(m.anchored ? rel : base));
}

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** A symlink may point only inside the tree, by a relative path. */
function checkSymlink(rel: string, target: string): void {
  if (target === '' || target.startsWith('/') || /^[A-Za-z]:/.test(target) || target.includes('\\')) {
    throw new SlimPackError(`symlink ${rel} -> ${target}: only relative links that stay inside the directory can be packed (exclude it, or replace it with a copy)`);
  }
  const parts = rel.split('/').slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '..') {
      if (parts.length === 0) {
        throw new SlimPackError(`symlink ${rel} -> ${target} points outside the directory being packed (exclude it, or replace it with a copy)`);
      }
      parts.pop();
    } else if (part !== '.' && part !== '') {
      parts.push(part);
    }
  }
}

/**
 * A link that stays inside by its text may still leave through another link (`l -> .`, `t -> l/..`):
 * the loaders refuse such an archive, so the packer refuses the tree. A dangling link is judged by its text.
 */
function checkResolved(rootReal: string, rel: string, target: string, abs: string): void {
  let resolved: string;
  try {
    resolved = fs.realpathSync.native(abs); // the kernel's: the JS one folds l/.. by text
  } catch {
    return;
  }
  if (resolved !== rootReal && !resolved.startsWith(rootReal + path.sep)) {
    throw new SlimPackError(`symlink ${rel} -> ${target} resolves outside the directory being packed through other links (exclude it, or replace it with a copy)`);
  }
}

function walk(root: string, matchers: readonly Matcher[]): Entry[] {
  const out: Entry[] = [];
  const rootReal = fs.realpathSync.native(root);
  const visit = (relDir: string): void => {
    const absDir = relDir === '' ? root : path.join(root, relDir);
    for (const name of fs.readdirSync(absDir).sort(byBytes)) {
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      const abs = path.join(absDir, name);
      const st = fs.lstatSync(abs, { bigint: true });
      if (st.isDirectory()) {
        if (excluded(matchers, rel, true)) continue;
        out.push({ type: 'dir', rel });
        visit(rel);
      } else if (excluded(matchers, rel, false)) {
        continue;
      } else if (st.isFile()) {
        out.push({
          type: 'file',
          rel,
          abs,
          size: Number(st.size),
          exec: (Number(st.mode) & 0o111) !== 0,
          mtimeS: Number(st.mtimeNs / 1_000_000_000n),
        });
      } else if (st.isSymbolicLink()) {
        const target = fs.readlinkSync(abs);
        checkSymlink(rel, target);
        checkResolved(rootReal, rel, target, abs);
        out.push({ type: 'symlink', rel, target });
      } else {
        throw new SlimPackError(`${rel}: only regular files, directories and symlinks can be packed (exclude it)`);
      }
    }
  };
  visit('');
  return out;
}

// ---------------------------------------------------------------------------------------------------
// .pyc files: keep them valid after the mtimes are normalised

const PYC = /^(.*\/)?__pycache__\/([^/]+?)\.[^./]+(?:\.opt-\d+)?\.pyc$/;

/**
 * Python checks a timestamp-based .pyc against its source's mtime and size. Every file is unpacked with
 * the same fixed mtime, so a .pyc that was valid for its source before packing is rewritten to record
 * that fixed mtime and stays valid; any other .pyc (stale, hash-based, sourceless) is left as it is.
 */
function retimePyc(entry: Entry & { type: 'file' }, data: Buffer, sources: Map<string, Entry>): boolean {
  const m = PYC.exec(entry.rel);
  if (!m || data.length < 16) return false;
  const source = sources.get(`${m[1] ?? ''}${m[2]}.py`);
  if (!source || source.type !== 'file') return false;
  if (data.readUInt32LE(4) !== 0) return false;
  if (data.readUInt32LE(8) !== (source.mtimeS >>> 0) || data.readUInt32LE(12) !== (source.size >>> 0)) return false;
  data.writeUInt32LE(SLIM_MTIME >>> 0, 8);
  return true;
}

// ---------------------------------------------------------------------------------------------------
// tar (POSIX ustar, with pax extended headers for what ustar cannot hold)

function octal(buf: Buffer, offset: number, length: number, value: number): void {
  const digits = value.toString(8);
  if (digits.length > length - 1) throw new SlimPackError(`value ${value} does not fit a ${length}-byte tar field`);
  buf.write(digits.padStart(length - 1, '0'), offset, 'latin1');
  buf[offset + length - 1] = 0;
}

function ustarHeader(name: Buffer, prefix: Buffer, type: string, size: number, mode: number, link: Buffer): Buffer {
  const h = Buffer.alloc(BLOCK);
  name.copy(h, 0);
  octal(h, 100, 8, mode);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, SLIM_MTIME);
  h.write('        ', 148, 'latin1');
  h.write(type, 156, 'latin1');
  link.copy(h, 157);
  h.write('ustar\u000000', 257, 'latin1');
  prefix.copy(h, 345);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  h.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
  return h;
}

/** Splits a name into ustar's prefix (155) and name (100) fields at a `/`, if it can be. */
function splitName(name: Buffer): [Buffer, Buffer] | undefined {
  if (name.length <= 100) return [name, Buffer.alloc(0)];
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] === 0x2f && i <= 155 && name.length - i - 1 <= 100 && name.length - i - 1 > 0) {
      return [name.subarray(i + 1), name.subarray(0, i)];
    }
  }
  return undefined;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** The header block(s) of one entry. */
function headerFor(entry: Entry): Buffer[] {
  const nameStr = entry.type === 'dir' ? `${entry.rel}/` : entry.rel;
  const name = Buffer.from(nameStr, 'utf8');
  const link = entry.type === 'symlink' ? Buffer.from(entry.target, 'utf8') : Buffer.alloc(0);
  const size = entry.type === 'file' ? entry.size : 0;
  const split = splitName(name);
  const pax: Buffer[] = [];
  if (!split) pax.push(paxRecord('path', name));
  if (link.length > 100) pax.push(paxRecord('linkpath', link));
  if (size > 0o77777777777) pax.push(paxRecord('size', Buffer.from(String(size))));
  const out: Buffer[] = [];
  if (pax.length > 0) {
    const body = Buffer.concat(pax);
    out.push(ustarHeader(Buffer.from('././@PaxHeader'), Buffer.alloc(0), 'x', body.length, 0o644, Buffer.alloc(0)));
    out.push(body, Buffer.alloc(padding(body.length)));
  }
  const [n, p] = split ?? [name.subarray(0, 100), Buffer.alloc(0)];
  const type = entry.type === 'dir' ? '5' : entry.type === 'symlink' ? '2' : '0';
  const mode = entry.type === 'symlink' ? 0o777 : entry.type === 'dir' || (entry.type === 'file' && entry.exec) ? 0o755 : 0o644;
  out.push(ustarHeader(n, p, type, size > 0o77777777777 ? 0 : size, mode, link.subarray(0, 100)));
  return out;
}

// ---------------------------------------------------------------------------------------------------
// gzip members

function gzip(data: Buffer, level: number): Buffer {
  const out = zlib.gzipSync(data, { level, memLevel: 9 });
  // The OS byte is where zlib builds differ (3 on Unix, 19 on macOS, 10 on Windows): fix it.
  out[9] = GZIP_OS_UNKNOWN;
  return out;
}

/** A gzip member that inflates to nothing and carries `json` in its extra field. */
function indexMember(json: Buffer): Buffer {
  if (json.length > MAX_INDEX_JSON) throw new SlimPackError(`index of ${json.length} bytes does not fit a gzip extra field`);
  const head = Buffer.alloc(12 + 4);
  head.set([0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, GZIP_OS_UNKNOWN]);
  head.writeUInt16LE(json.length + 4, 10);
  INDEX_SUBFIELD.copy(head, 12);
  head.writeUInt16LE(json.length, 14);
  // An empty final fixed-Huffman deflate block, then CRC32 = 0 and ISIZE = 0.
  const tail = Buffer.from([0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([head, json, tail]);
}

/** Parses the index member at the start of an archive; returns the index and the member's length. */
export function readIndex(archiveHead: Buffer): { index: SlimIndex; length: number } {
  if (archiveHead.length < 16 || archiveHead[0] !== 0x1f || archiveHead[1] !== 0x8b || archiveHead[3] !== 0x04
    || archiveHead[12] !== INDEX_SUBFIELD[0] || archiveHead[13] !== INDEX_SUBFIELD[1]) {
    throw new SlimPackError('not a warm-web slim archive (no index member)');
  }
  const len = archiveHead.readUInt16LE(14);
  const index = JSON.parse(archiveHead.subarray(16, 16 + len).toString('utf8')) as SlimIndex;
  return { index, length: 16 + len + 10 };
}

// ---------------------------------------------------------------------------------------------------

/**
 * Packs `dir` into `outFile` (synchronously). Entries are sorted, owners and mtimes fixed, file modes
 * normalised to 0644/0755 by the owner's execute bit, so the same tree always gives the same bytes with
 * the same Node.js (zlib) version.
 */
export function packDirectory(dir: string, outFile: string, options: PackOptions = {}): PackResult {
  const level = options.level ?? 6;
  if (!Number.isInteger(level) || level < 1 || level > 9) throw new SlimPackError(`level must be 1-9, got ${level}`);
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new SlimPackError(`${dir} is not a directory`);
  const entries = walk(path.resolve(dir), compileExcludes(options.exclude ?? []));

  let unpacked = 0;
  let files = 0;
  let dirs = 0;
  let symlinks = 0;
  for (const e of entries) {
    if (e.type === 'file') {
      files++;
      unpacked += e.size;
    } else if (e.type === 'dir') {
      dirs++;
    } else {
      symlinks++;
    }
  }
  // Keep the shard table small enough for the gzip extra field.
  const shardBytes = Math.max(options.shardBytes ?? DEFAULT_SHARD_BYTES, Math.ceil((unpacked + entries.length * 2 * BLOCK) / MAX_SHARDS), BLOCK);
  const sources = new Map<string, Entry>();
  for (const e of entries) {
    if (e.type === 'file' && e.rel.endsWith('.py')) sources.set(e.rel, e);
  }

  const shardsFile = `${outFile}.shards.tmp`;
  const fd = fs.openSync(shardsFile, 'w');
  const shards: ShardRecord[] = [];
  let pycsRetimed = 0;
  try {
    let pieces: Buffer[] = [];
    let pieceBytes = 0;
    let pieceEntries = 0;
    const flush = (): void => {
      const raw = Buffer.concat(pieces, pieceBytes);
      const z = gzip(raw, level);
      fs.writeSync(fd, z);
      shards.push([z.length, raw.length, pieceEntries, createHash('sha256').update(z).digest('hex')]);
      pieces = [];
      pieceBytes = 0;
      pieceEntries = 0;
    };
    for (const e of entries) {
      const parts = headerFor(e);
      if (e.type === 'file') {
        const data = e.size === 0 ? Buffer.alloc(0) : fs.readFileSync(e.abs);
        if (data.length !== e.size) throw new SlimPackError(`${e.rel} changed size while being packed`);
        if (retimePyc(e, data, sources)) pycsRetimed++;
        parts.push(data, Buffer.alloc(padding(data.length)));
      }
      const bytes = parts.reduce((n, b) => n + b.length, 0);
      if (pieceEntries > 0 && pieceBytes + bytes > shardBytes) flush();
      pieces.push(...parts);
      pieceBytes += bytes;
      pieceEntries++;
    }
    // End of archive: two zero blocks, in the last shard.
    pieces.push(Buffer.alloc(2 * BLOCK));
    pieceBytes += 2 * BLOCK;
    flush();
  } finally {
    fs.closeSync(fd);
  }

  try {
    const index: SlimIndex = { format: SLIM_FORMAT, v: SLIM_FORMAT_VERSION, mtime: SLIM_MTIME, unpacked, files, dirs, symlinks, shards };
    const head = indexMember(Buffer.from(JSON.stringify(index), 'utf8'));
    const sha256 = createHash('sha256').update(head).digest('hex');
    const whole = createHash('sha256').update(head);
    const out = fs.openSync(outFile, 'w');
    let size = head.length;
    try {
      fs.writeSync(out, head);
      const input = fs.openSync(shardsFile, 'r');
      try {
        const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
        for (;;) {
          const n = fs.readSync(input, buf, 0, buf.length, null);
          if (n === 0) break;
          whole.update(buf.subarray(0, n));
          fs.writeSync(out, buf, 0, n);
          size += n;
        }
      } finally {
        fs.closeSync(input);
      }
    } finally {
      fs.closeSync(out);
    }
    return { sha256, fileSha256: whole.digest('hex'), size, unpackedBytes: unpacked, files, dirs, symlinks, shards: shards.length, pycsRetimed };
  } finally {
    fs.rmSync(shardsFile, { force: true });
  }
}
