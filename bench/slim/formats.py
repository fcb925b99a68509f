"""The measurements behind docs/SLIM_FORMAT.md: which archive format decodes fastest into many small files.

Same tree as bench.py (bench/results/slim-work.tmp/site, built by it). Every candidate reads its archive
from the local S3 server (moto, objects in memory) or from the page cache and writes the tree into a new
directory after `sync`; medians of 3 runs. Writes bench/results/slim-formats.json.
  python3 bench/slim/formats.py
"""
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

sys.path.insert(0, os.path.join(bench.ROOT, "runtime", "python"))
from warm_web import slim  # noqa: E402

WORK = bench.WORK
# A new directory each run: deleting a previous run's trees first would slow this one (docs/SLIM_FORMAT.md).
OUT = os.path.join(WORK, f"formats-out-{os.getpid()}")
RUNS = 3


def packed(site, shard_bytes):
    out = os.path.join(WORK, f"ours-{shard_bytes}.tgz")
    result = json.loads(subprocess.check_output(
        ["npx", "ts-node", "--transpile-only", "test/runtime/python/slim/pack_cli.ts", site, out, str(shard_bytes), "",
         ".complete"], cwd=bench.ROOT, stderr=subprocess.DEVNULL))
    return out, result


def main():
    site = os.path.join(WORK, "site")
    bench.build_tree(site)
    os.makedirs(OUT)
    archives = {mib: packed(site, mib << 20) for mib in (1, 4, 16)}
    single = os.path.join(WORK, "single.tar.gz")
    subprocess.run(["tar", "--sort=name", "--format=ustar", "--owner=0", "--group=0", "--exclude=.complete", "-czf",
                    single, "-C", site, "."], check=True)
    zpath = os.path.join(WORK, "perfile.zip")
    started = time.perf_counter()
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for dirpath, _, files in os.walk(site):
            for name in sorted(files):
                full = os.path.join(dirpath, name)
                if not os.path.islink(full) and name != ".complete":
                    z.write(full, os.path.relpath(full, site))
    zip_pack = time.perf_counter() - started
    sizes = {"single.tar.gz": os.path.getsize(single), "perfile.zip": os.path.getsize(zpath)}
    for mib, (path, r) in archives.items():
        sizes[f"shards-{mib}MiB"] = r["size"]

    moto = bench.Moto()
    import boto3
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="x",
                      aws_secret_access_key="x")
    s3.create_bucket(Bucket=bench.BUCKET)
    for mib, (path, r) in archives.items():
        s3.upload_file(path, bench.BUCKET, f"f/{mib}")
    counter = [0]

    def new_dir():
        counter[0] += 1
        d = os.path.join(OUT, str(counter[0]))
        os.makedirs(d)
        return d

    def loader(mib, workers):
        r = archives[mib][1]
        env = {"WARM_WEB_SLIM_BUCKET": bench.BUCKET, "WARM_WEB_SLIM_KEY": f"f/{mib}",
               "WARM_WEB_SLIM_SHA256": r["sha256"], "WARM_WEB_SLIM_SIZE": str(r["size"]),
               "AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
               "TMPDIR": new_dir()}
        slim._loaded.clear()
        slim.materialise(env, workers=workers, emit=False)

    def tarfile_stream():
        with tarfile.open(single, "r|gz") as t:
            t.extractall(new_dir())

    def unpacker_single_stream():
        # Our tar reader on the one-stream tar.gz, one thread: what sharding adds is measured against this.
        d = new_dir()
        u = slim._Unpacker(os.fsencode(d), 315532800, False)
        z = zlib.decompressobj(31)
        with open(single, "rb") as f:
            while True:
                chunk = f.read(256 * 1024)
                if not chunk:
                    break
                u.feed(z.decompress(chunk))
                while z.unused_data:  # gzip's multi-member streams
                    rest = z.unused_data
                    z = zlib.decompressobj(31)
                    u.feed(z.decompress(rest))

    def zip_threads():
        d = new_dir()
        with zipfile.ZipFile(zpath) as z:
            names = z.namelist()
        for parent in sorted({os.path.dirname(n) for n in names}):
            os.makedirs(os.path.join(d, parent), exist_ok=True)  # zipfile's own makedirs races
        chunks = [names[i::3] for i in range(3)]

        def part(ns):
            with zipfile.ZipFile(zpath) as z:
                for n in ns:
                    z.extract(n, d)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            list(pool.map(part, chunks))

    def native_single():
        subprocess.run(["tar", "-xzf", single, "-C", new_dir()], check=True)

    def gunzip_only():
        subprocess.run(["bash", "-c", f"gzip -dc {single} > /dev/null"], check=True)

    candidates = {
        "tar.gz one stream, Python tarfile (Zappa's decoder), 1 thread": tarfile_stream,
        "tar.gz one stream, our tar reader, 1 thread": unpacker_single_stream,
        "shards 4 MiB, our loader from S3, 1 worker": lambda: loader(4, 1),
        "shards 1 MiB, our loader from S3, 3 workers": lambda: loader(1, 3),
        "shards 4 MiB, our loader from S3, 3 workers": lambda: loader(4, 3),
        "shards 16 MiB, our loader from S3, 3 workers": lambda: loader(16, 3),
        "shards 4 MiB, our loader from S3, 6 workers": lambda: loader(4, 6),
        "zip per-file deflate, zipfile, 3 threads": zip_threads,
        "native tar -xzf, one stream (local file)": native_single,
        "native gzip -dc > /dev/null (decode only)": gunzip_only,
    }
    times = {name: [] for name in candidates}
    try:
        for _ in range(RUNS):
            for name, fn in candidates.items():
                bench.settle()
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
                bench.log(f"{times[name][-1]:7.3f} s  {name}")
    finally:
        moto.stop()
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": len(os.sched_getaffinity(0)),
        "archiveBytes": sizes,
        "zipPackSeconds": round(zip_pack, 1),
        "medianSeconds": {n: round(statistics.median(t), 3) for n, t in times.items()},
        "samples": {n: [round(x, 3) for x in t] for n, t in times.items()},
    }
    with open(os.path.join(bench.ROOT, "bench", "results", "slim-formats.json"), "w") as f:
        f.write(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(OUT, ignore_errors=True)
    print(json.dumps(result["medianSeconds"], indent=2))


if __name__ == "__main__":
    main()
