// The slim-code packer (lib/private/slim-pack.ts): deterministic archives that are ordinary .tar.gz files, split
// into independently inflatable shards, keeping symlinks, exec bits, non-ASCII names and empty dirs.
/* eslint-disable no-bitwise */ // file modes, gzip and pyc header fields are bit fields
import { execFileSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { listing } from './listing';
import { packDirectory, readIndex, SLIM_MTIME, SlimPackError } from '../../lib/private/slim-pack';

let work: string;

beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'slim-pack-'));
});

afterEach(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

function write(rel: string, data: string | Buffer = '', mode = 0o644): void {
  const file = path.join(work, 'src', rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
  fs.chmodSync(file, mode);
}

function sampleTree(): string {
  write('app.py', 'print("hi")\n');
  write('bin/run.sh', '#!/bin/sh\necho run\n', 0o755);
  write('bin/owner-only', 'x', 0o700);
  write('données/café.txt', 'é');
  write('日本語/ファイル.py', 'X = 1\n');
  write('📦.txt', 'emoji');
  write('empty.txt', '');
  write(`deep/${'a'.repeat(70)}/${'b'.repeat(70)}/${'c'.repeat(120)}.txt`, 'long');
  write('big.bin', Buffer.alloc(300_000, 7));
  fs.mkdirSync(path.join(work, 'src', 'empty-dir'));
  fs.mkdirSync(path.join(work, 'src', 'nested', 'empty'), { recursive: true });
  fs.symlinkSync('app.py', path.join(work, 'src', 'link'));
  fs.symlinkSync('../app.py', path.join(work, 'src', 'bin', 'up'));
  fs.symlinkSync('données', path.join(work, 'src', 'dirlink'));
  return path.join(work, 'src');
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function extractWithTar(archive: string): string {
  const out = fs.mkdtempSync(path.join(work, 'out-'));
  execFileSync('tar', ['-xzf', archive, '-C', out]);
  return out;
}

describe('packDirectory', () => {
  test('the archive is an ordinary .tar.gz that tar extracts to the same tree', () => {
    const src = sampleTree();
    const out = path.join(work, 'a.tgz');
    const result = packDirectory(src, out);
    expect(result).toMatchObject({ files: 9, symlinks: 3, dirs: 9, size: fs.statSync(out).size, fileSha256: sha256(out) });
    expect(result.unpackedBytes).toBe(12 + 19 + 1 + 2 + 6 + 5 + 0 + 4 + 300_000);
    const extracted = extractWithTar(out);
    expect(listing(extracted, 'executable')).toEqual(listing(src, 'executable'));
    expect(fs.statSync(path.join(extracted, 'bin/run.sh')).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(extracted, 'bin/owner-only')).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(extracted, 'app.py')).mode & 0o777).toBe(0o644);
    expect(fs.statSync(path.join(extracted, 'app.py')).mtimeMs / 1000).toBe(SLIM_MTIME);
    // Owners and mtimes are fixed in the headers.
    const verbose = execFileSync('tar', ['--numeric-owner', '-tvzf', out], { encoding: 'utf8' });
    for (const line of verbose.trim().split('\n')) expect(line).toMatch(/^\S+ 0\/0 .* 1980-01-01 00:00 /);
  });

  test('the same tree gives the same bytes, whatever its mtimes, owners or the order it was made in', () => {
    const src = sampleTree();
    const a = packDirectory(src, path.join(work, 'a.tgz'));
    const later = new Date('2030-01-01T00:00:00Z');
    for (const f of ['app.py', 'bin/run.sh', 'empty.txt']) fs.utimesSync(path.join(src, f), later, later);
    fs.chmodSync(path.join(src, 'app.py'), 0o600); // a different umask: same exec bit, same archive
    const b = packDirectory(src, path.join(work, 'b.tgz'));
    expect(b.sha256).toBe(a.sha256);
    expect(sha256(path.join(work, 'b.tgz'))).toBe(sha256(path.join(work, 'a.tgz')));
    // Content changes do change it.
    fs.writeFileSync(path.join(src, 'app.py'), 'print("changed")\n');
    expect(packDirectory(src, path.join(work, 'c.tgz')).sha256).not.toBe(a.sha256);
    // So does an exec bit.
    fs.writeFileSync(path.join(src, 'app.py'), 'print("hi")\n');
    fs.chmodSync(path.join(src, 'app.py'), 0o755);
    expect(packDirectory(src, path.join(work, 'd.tgz')).sha256).not.toBe(a.sha256);
  });

  test('the index member leads, inflates to nothing, and its hash covers every shard', () => {
    const src = sampleTree();
    for (let i = 0; i < 200; i++) write(`many/f${String(i).padStart(3, '0')}.txt`, Buffer.alloc(3000, i));
    const out = path.join(work, 'a.tgz');
    const result = packDirectory(src, out, { shardBytes: 64 * 1024 });
    const data = fs.readFileSync(out);
    const { index, length } = readIndex(data);
    expect(createHash('sha256').update(data.subarray(0, length)).digest('hex')).toBe(result.sha256);
    expect(zlib.gunzipSync(data.subarray(0, length)).length).toBe(0);
    expect(index).toMatchObject({ format: 'warm-web-slim', v: 1, mtime: SLIM_MTIME, files: result.files, unpacked: result.unpackedBytes });
    expect(index.shards.length).toBe(result.shards);
    expect(result.shards).toBeGreaterThan(5);
    let offset = length;
    let entries = 0;
    for (const [clen, ulen, count, digest] of index.shards) {
      const member = data.subarray(offset, offset + clen);
      expect(createHash('sha256').update(member).digest('hex')).toBe(digest);
      const tar = zlib.gunzipSync(member);
      expect(tar.length).toBe(ulen);
      expect(tar.length % 512).toBe(0);
      expect(member[9]).toBe(255); // gzip OS byte fixed, whatever zlib build made it
      // Every shard starts with a tar header: it can be unpacked on its own.
      expect(tar.toString('latin1', 257, 263)).toBe('ustar\u0000');
      entries += count;
      offset += clen;
    }
    expect(offset).toBe(data.length);
    expect(entries).toBe(result.files + result.dirs + result.symlinks);
    // Shards stay near the target; the big file gets one of its own.
    const sizes = index.shards.map((s) => s[1]);
    expect(sizes.filter((s) => s > 64 * 1024 + 512).length).toBeLessThanOrEqual(1);
  });

  test('a shard unpacks on its own, as the loaders and a parallel `tar -x` do', () => {
    const src = sampleTree();
    for (let i = 0; i < 50; i++) write(`many/f${i}.txt`, Buffer.alloc(5000, i));
    const out = path.join(work, 'a.tgz');
    packDirectory(src, out, { shardBytes: 32 * 1024 });
    const data = fs.readFileSync(out);
    const { index, length } = readIndex(data);
    const dest = fs.mkdtempSync(path.join(work, 'shards-'));
    let offset = length;
    // Last shard first: the files' directories come from other shards, created as needed.
    const members = index.shards.map(([clen]) => {
      const m = data.subarray(offset, offset + clen);
      offset += clen;
      return m;
    });
    for (const m of members.reverse()) execFileSync('tar', ['-xzf', '-', '-C', dest], { input: m });
    expect(listing(dest, 'executable')).toEqual(listing(src, 'executable'));
  });

  test('exclude patterns: names at any depth, anchored paths, ** and directories only', () => {
    const src = sampleTree();
    write('pkg/__pycache__/m.cpython-312.pyc', 'x');
    write('pkg/tests/test_a.py', 'x');
    write('pkg/mod.py', 'x');
    write('tests/top.py', 'x');
    write('docs/a/b/c.md', 'x');
    write('notes.md', 'x');
    write('build', 'a file named build');
    fs.mkdirSync(path.join(src, 'sub', 'build'), { recursive: true });
    const out = path.join(work, 'a.tgz');
    packDirectory(src, out, { exclude: ['__pycache__', 'tests/**', 'docs/**/*.md', 'build/', '*.sh'] });
    const names = execFileSync('tar', ['-tzf', out], { encoding: 'utf8' }).trim().split('\n');
    expect(names).not.toContain('pkg/__pycache__/');
    expect(names).toContain('pkg/tests/test_a.py'); // `tests/**` is anchored at the top
    expect(names).not.toContain('tests/top.py');
    expect(names).not.toContain('docs/a/b/c.md');
    expect(names).toContain('notes.md');
    expect(names).toContain('build'); // `build/` matches directories only
    expect(names).not.toContain('sub/build/');
    expect(names).not.toContain('bin/run.sh');
    expect(names).toContain('pkg/mod.py');
  });

  test('a .pyc that was valid for its source is rewritten to the fixed mtime; others are left alone', () => {
    const src = path.join(work, 'src');
    write('m.py', 'X = 1\n');
    write('stale.py', 'Y = 2\n');
    const mtime = new Date('2024-05-06T07:08:09Z');
    fs.utimesSync(path.join(src, 'm.py'), mtime, mtime);
    fs.utimesSync(path.join(src, 'stale.py'), mtime, mtime);
    const pyc = (sourceMtime: number, size: number, flags = 0): Buffer => {
      const b = Buffer.alloc(32, 0xab);
      b.writeUInt32LE(0x0a0d0dcb, 0);
      b.writeUInt32LE(flags, 4);
      b.writeUInt32LE(sourceMtime, 8);
      b.writeUInt32LE(size, 12);
      return b;
    };
    const seconds = Math.floor(mtime.getTime() / 1000);
    write('__pycache__/m.cpython-312.pyc', pyc(seconds, 6));
    write('__pycache__/m.cpython-312.opt-1.pyc', pyc(seconds, 6));
    write('__pycache__/stale.cpython-312.pyc', pyc(seconds - 5, 6));
    write('__pycache__/orphan.cpython-312.pyc', pyc(seconds, 6));
    write('__pycache__/hashed.cpython-312.pyc', pyc(seconds, 6, 1));
    write('hashed.py', 'Z = 3\n');
    const out = path.join(work, 'a.tgz');
    expect(packDirectory(src, out).pycsRetimed).toBe(2);
    const extracted = extractWithTar(out);
    const header = (name: string): number => fs.readFileSync(path.join(extracted, '__pycache__', name)).readUInt32LE(8);
    expect(header('m.cpython-312.pyc')).toBe(SLIM_MTIME);
    expect(header('m.cpython-312.opt-1.pyc')).toBe(SLIM_MTIME);
    expect(header('stale.cpython-312.pyc')).toBe(seconds - 5);
    expect(header('orphan.cpython-312.pyc')).toBe(seconds);
    expect(header('hashed.cpython-312.pyc')).toBe(seconds);
    expect(fs.statSync(path.join(extracted, 'm.py')).mtimeMs / 1000).toBe(SLIM_MTIME);
  });

  test.each([
    ['an absolute symlink', '/etc/passwd', /only relative links/],
    ['a symlink out of the tree', '../../outside', /points outside the directory/],
  ])('%s is refused with its path', (_what, target, message) => {
    const src = sampleTree();
    fs.symlinkSync(target, path.join(src, 'bin', 'bad'));
    expect(() => packDirectory(src, path.join(work, 'a.tgz'))).toThrow(SlimPackError);
    expect(() => packDirectory(src, path.join(work, 'a.tgz'))).toThrow(message);
    expect(() => packDirectory(src, path.join(work, 'a.tgz'))).toThrow('bin/bad');
    // ... unless it is excluded.
    expect(packDirectory(src, path.join(work, 'a.tgz'), { exclude: ['bin/bad'] }).symlinks).toBe(3);
  });

  test('a link that leaves the tree through another link is refused, as the loaders would refuse it', () => {
    // Each stays inside by its text: l is the root itself, so l/.. is the root's parent.
    const src = sampleTree();
    fs.symlinkSync('.', path.join(src, 'l'));
    fs.symlinkSync('l/..', path.join(src, 't'));
    expect(() => packDirectory(src, path.join(work, 'a.tgz'))).toThrow(/^symlink t -> l\/\.\. resolves outside the directory being packed through other links/);
    expect(packDirectory(src, path.join(work, 'a.tgz'), { exclude: ['t'] }).symlinks).toBe(4);
  });

  test('special files, a missing directory and a bad level are errors', () => {
    const src = sampleTree();
    execFileSync('mkfifo', [path.join(src, 'fifo')]);
    expect(() => packDirectory(src, path.join(work, 'a.tgz'))).toThrow(/fifo: only regular files, directories and symlinks/);
    fs.rmSync(path.join(src, 'fifo'));
    expect(() => packDirectory(path.join(work, 'nope'), path.join(work, 'a.tgz'))).toThrow(/is not a directory/);
    expect(() => packDirectory(src, path.join(work, 'a.tgz'), { level: 0 })).toThrow(/level must be 1-9/);
    expect(fs.readdirSync(work).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  test('an empty directory packs to a valid, empty archive', () => {
    fs.mkdirSync(path.join(work, 'src'));
    const out = path.join(work, 'a.tgz');
    const result = packDirectory(path.join(work, 'src'), out);
    expect(result).toMatchObject({ files: 0, dirs: 0, symlinks: 0, shards: 1, unpackedBytes: 0 });
    expect(execFileSync('tar', ['-tzf', out], { encoding: 'utf8' })).toBe('');
  });

  test('readIndex refuses what is not a slim archive', () => {
    expect(() => readIndex(zlib.gzipSync(Buffer.from('plain')))).toThrow(/not a warm-web slim archive/);
  });
});
