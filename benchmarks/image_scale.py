#!/usr/bin/env python3
"""Image registry at scale: ingest speed, query latency at 100,000 registered
images, and index bytes per image.

    python benchmarks/image_scale.py                 # 100,000 images, /tmp/copyscope-image-scale
    python benchmarks/image_scale.py --n 20000       # a quicker look

Steps (under --workdir):

a. **Distractors**: N JPEGs (256–512 px, random crops and scales) cut from the
   image corpus that ``../shared/bench/image/fetch_corpus.sh`` unpacks (default
   /tmp/copyscope-corpus/src), two worker processes.
b. **Register** the distractors plus the public bench's references
   (``copyscope register --each``), timed, peak RSS measured; files/s per core =
   files / user+sys CPU seconds. Then ``copyscope gc --compact`` (one segment).
c. **Query latency**, warm, in one process (``copyscope.api``): every copy and
   non-copy query of the public bench (``--queries``, default 300) is checked
   alone (``media=False``: the decision, without the renderings a report
   embeds); p50/p95/p99 of the wall time per check, and whether the true source
   was found.
d. **Index bytes per image**: the image index segments plus the 16-byte global
   codes, divided by the number of registered images (the feature store, kept
   on disk for verification only, is reported separately).

Targets (issue #5): ingest ≥ 100 images/s per core with decoding; query p50 ≤ 50
ms and p99 ≤ 150 ms at 100,000 images; ≤ 4 KB per image in the index.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import log  # noqa: E402


def _make(job: tuple[int, str, str]) -> int:
    i, src, out = job
    from PIL import Image  # noqa: PLC0415
    Image.MAX_IMAGE_PIXELS = None
    rng = random.Random(i)
    try:
        with Image.open(src) as im:
            im.draft("RGB", (1024, 1024))
            im = im.convert("RGB")
            w, h = im.size
            f = rng.uniform(0.5, 1.0)
            cw, ch = max(32, int(w * f)), max(32, int(h * f))
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            im = im.crop((x, y, x + cw, y + ch))
            side = rng.randint(256, 512)
            im.thumbnail((side, side))
            if min(im.size) < 48:
                return 0
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            im.save(out, "JPEG", quality=rng.randint(70, 92))
            return 1
    except Exception:  # noqa: BLE001 - a corpus file we cannot use is just skipped
        return 0


def distractors(corpus: Path, out: Path, n: int) -> int:
    have = sum(1 for _ in out.rglob("*.jpg")) if out.exists() else 0
    if have >= n:
        return have
    sources = sorted(str(p) for p in corpus.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")
                     and p.stat().st_size > 4096)
    made, start = have, (int(n * 1.05) if have else 0)
    while made < n:                      # some corpus files cannot be used: top up until n
        count = int((n - made) * 1.05) + 16
        rng = random.Random(7 + start)
        jobs = [(i, rng.choice(sources), str(out / f"{i // 1000:03d}" / f"d{i:06d}.jpg"))
                for i in range(start, start + count)]
        jobs = [j for j in jobs if not Path(j[2]).exists()]
        with Pool(2) as pool:
            for ok in pool.imap_unordered(_make, jobs, chunksize=64):
                made += ok
        start += count
    return made


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--workdir", default="/tmp/copyscope-image-scale")
    ap.add_argument("--corpus", default="/tmp/copyscope-corpus/src")
    ap.add_argument("--bench", default="/tmp/copyscope-imgbench-public")
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    work, bench = Path(args.workdir), Path(args.bench)
    work.mkdir(parents=True, exist_ok=True)
    summary: dict = {"n": args.n}

    log(f"(a) distractors → {work / 'distractors'}")
    t = time.perf_counter()
    made = distractors(Path(args.corpus), work / "distractors", args.n)
    log(f"    {made} images in {time.perf_counter() - t:.0f} s")

    home = work / "home"
    exe = str(Path(sys.executable).with_name("copyscope"))
    if not (home / "registry.db").exists():
        subprocess.run([exe, "--home", str(home), "--quiet", "init"], check=True, stdout=subprocess.DEVNULL)
        files = sorted(str(p) for p in (work / "distractors").rglob("*.jpg"))[:args.n - 1394] + \
            sorted(str(p) for p in (bench / "refs").iterdir())
        listing = work / "files.txt"
        listing.write_text("\n".join(files) + "\n")
        log(f"(b) registering {len(files)} images")
        t = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        # in chunks (command-line length), one workspace
        for i in range(0, len(files), 5000):
            subprocess.run([exe, "--home", str(home), "--quiet", "register", "--each", "--owner", "bench",
                            *files[i:i + 5000]], stdout=subprocess.DEVNULL)
            log(f"    {min(i + 5000, len(files))}/{len(files)} in {time.perf_counter() - t:.0f} s")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter() - t
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        summary["register"] = {"files": len(files), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                               "files_per_s": round(len(files) / wall, 1),
                               "files_per_cpu_s": round(len(files) / cpu, 1),
                               "peak_rss_mib": round(after.ru_maxrss / 1024, 1)}
        log(f"    register: {summary['register']}")
        t = time.perf_counter()
        subprocess.run([exe, "--home", str(home), "--quiet", "gc", "--compact"], check=True, stdout=subprocess.DEVNULL)
        summary["compact_s"] = round(time.perf_counter() - t, 1)
        log(f"    gc --compact: {summary['compact_s']} s")

    from copyscope import api  # noqa: PLC0415
    from copyscope.processes import keep_freed_memory  # noqa: PLC0415
    keep_freed_memory()          # as the CLI and the service's workers do (copyscope/processes.py)
    settings = api.Settings.resolve(home)
    ws = api.open_workspace(settings)
    n_images = ws.registry.artifact_count("image")
    index_bytes = sum(p.stat().st_size for p in (home / "index" / "image").glob("seg-*"))
    feature_bytes = sum(p.stat().st_size for p in (home / "features" / "image").rglob("*") if p.is_file())
    summary["index"] = {"images": n_images, "index_bytes_per_image": round((index_bytes + 16 * n_images) / n_images, 1),
                        "feature_store_bytes_per_image": round(feature_bytes / n_images, 1)}
    log(f"(d) {summary['index']}")

    meta = list(csv.DictReader(open(bench / "queries_meta.csv")))
    rng = random.Random(3)
    picked = rng.sample([m for m in meta if m["kind"] in ("copy", "non_copy")], min(args.queries, len(meta)))
    log(f"(c) {len(picked)} warm queries against {n_images} images")
    ws.check([str(bench / "queries" / picked[0]["file"])])       # warm-up: imports, mmaps, code cache
    times, found, copies = [], 0, 0
    for m in picked:
        t = time.perf_counter()
        res = ws.check([str(bench / "queries" / m["file"])], media=False)     # the decision, as a service makes it
        times.append((time.perf_counter() - t) * 1000)
        if m["kind"] == "copy":
            copies += 1
            found += any(Path(x.registered_path).stem == m["reference_id"] for x in res.matches)
    times.sort()
    pct = lambda q: round(times[min(len(times) - 1, int(q * len(times)))], 1)  # noqa: E731
    summary["query"] = {"queries": len(times), "p50_ms": pct(0.5), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
                        "max_ms": round(times[-1], 1), "copies_found": f"{found}/{copies}",
                        "rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    log(f"    query: {summary['query']}")
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
