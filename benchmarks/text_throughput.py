#!/usr/bin/env python3
"""Fingerprinting throughput of the text modality, one core (target: >= 10 MB/s).

Measures exactly what registration does per file (see ``Workspace._register_batch``)::

    fp = TextModality().fingerprint(Artifact(data=raw_bytes, origin=name))
    fp.index_keys(); fp.stat_keys()

i.e. decoding, markup sniffing/stripping, folding + tokenising, k-grams,
winnowing and the vocabulary keys. Reading files and writing the index are NOT
included (see ``registry_scale.py`` for the end-to-end figure).

Corpora are built in memory from the shared datasets
(``../shared/bench_data/text/{clough_stevenson,zh_news_reuse}/docs``) by splicing
windows of consecutive sentences into documents (fixed seed), ``--mb`` MB each:
English, Chinese and mixed (every document holds both), each as plain text and
wrapped in simple HTML (nav, headings, paragraphs, style and script blocks).
Document sizes are log-uniform in ``--doc-kb`` (default 2-64 KB). A second table
shows how throughput depends on document size (per-document fixed costs).

    python benchmarks/text_throughput.py             # ~50 MB per corpus
    python benchmarks/text_throughput.py --quick     # ~5 MB per corpus, smaller sweep
    python benchmarks/text_throughput.py --peer      # also datasketch MinHash, for reference
"""
from __future__ import annotations

import os

# One core means one core: no BLAS / OpenMP helper threads (numpy ops used here
# are single-threaded anyway, this just makes it explicit).
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import html  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("COPYSCOPE_BENCH_DATA", REPO.parent / "shared/bench_data/text"))
TARGET_MBS = 10.0
SEED = 20240611
MB = 1_000_000                      # throughput is reported in decimal MB (10**6 bytes)

_EN_SPLIT = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)]*\s+(?=[\"'\u201c\u2018(A-Z0-9])")
_ZH_SPLIT = re.compile(r"(?<=[。！？；])[\u201d\u2019」』）]*")


# -- corpus ----------------------------------------------------------------------
def split_sentences(text: str, lang: str) -> list[str]:
    """Rough sentence split; good enough for splicing realistic text."""
    if lang == "en":
        text = re.sub(r"[ \t]*\r?\n(?!\s*\n)[ \t]*", " ", text)   # unwrap hard line breaks
        parts = []
        for para in re.split(r"\n\s*\n", text):
            parts.extend(_EN_SPLIT.split(para))
    else:
        parts = []
        for line in text.splitlines():
            pos = 0
            for m in _ZH_SPLIT.finditer(line):
                if m.end() > pos:
                    parts.append(line[pos:m.end()])
                    pos = m.end()
            parts.append(line[pos:])
    return [p.strip() for p in parts if len(p.strip()) >= 2]


def load_docs(dataset: str, exclude: "callable | None" = None) -> list[list[str]]:
    """Sentences of every document of a shared dataset (one list per document)."""
    lang = "zh" if dataset.startswith("zh") else "en"
    docs_dir = DATA / dataset / "docs"
    if not docs_dir.is_dir():
        raise SystemExit(f"dataset not found: {docs_dir} (set COPYSCOPE_BENCH_DATA)")
    out = []
    for p in sorted(docs_dir.glob("*.txt")):
        if exclude is not None and exclude(p.name):
            continue
        sents = split_sentences(p.read_text(encoding="utf-8", errors="replace"), lang)
        if sents:
            out.append(sents)
    return out


def sentence_window(rng: random.Random, docs: list[list[str]], lo: int = 2, hi: int = 8) -> list[str]:
    """A run of ``lo..hi`` consecutive sentences from a random document."""
    d = docs[rng.randrange(len(docs))]
    n = min(len(d), rng.randint(lo, hi))
    s = rng.randrange(len(d) - n + 1)
    return d[s:s + n]


def make_paragraph(rng: random.Random, docs: list[list[str]], lang: str) -> str:
    sents = sentence_window(rng, docs)
    return (" " if lang == "en" else "").join(sents)


def make_document(rng: random.Random, pools: dict[str, list[list[str]]], target_bytes: int) -> list[str]:
    """Paragraphs (text only) adding up to about ``target_bytes`` UTF-8 bytes."""
    langs = list(pools)
    paras: list[str] = []
    size = 0
    while size < target_bytes:
        lang = langs[rng.randrange(len(langs))] if len(langs) > 1 else langs[0]
        p = make_paragraph(rng, pools[lang], lang)
        paras.append(p)
        size += len(p.encode("utf-8")) + 2
    if len(langs) > 1 and len({_lang_of(p) for p in paras}) < 2:   # mixed docs hold both scripts
        other = "zh" if _lang_of(paras[0]) == "en" else "en"
        paras.insert(rng.randrange(len(paras) + 1), make_paragraph(rng, pools[other], other))
    return paras


def _lang_of(p: str) -> str:
    return "zh" if any("\u4e00" <= c <= "\u9fff" for c in p[:200]) else "en"


_CSS = ("body{font-family:Georgia,serif;max-width:42em;margin:auto}nav a{margin-right:1em}"
        ".meta{color:#666;font-size:small}footer{border-top:1px solid #ccc}")
_JS = ("window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
       "gtag('js',new Date());if(a<b&&c>d){console.log('x')}")


def to_plain(paras: list[str]) -> bytes:
    return "\n\n".join(paras).encode("utf-8") + b"\n"


def to_html(paras: list[str], rng: random.Random, i: int) -> bytes:
    """Simple but realistic page: head, style, nav, h1/h2, p, a script, a footer."""
    title = html.escape(paras[0][:60])
    out = ["<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
           f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
           "<nav><a href=\"/\">Home</a><a href=\"/news\">News</a><a href=\"/about\">About</a></nav>\n",
           f"<article id=\"post-{i}\">\n<h1>{title}</h1>\n<p class=\"meta\">Posted 2024-0{1 + i % 9}-1{i % 10} &middot; "
           f"{rng.randint(1, 20)}&nbsp;min read</p>\n"]
    for j, p in enumerate(paras):
        if j and j % 5 == 0:
            out.append(f"<h2>{html.escape(p[:40])}</h2>\n")
        body = html.escape(p, quote=False)
        if j % 3 == 1:                                   # some inline markup
            cut = body.find(" ", len(body) // 3)
            if cut > 0:
                body = f"{body[:cut]} <em>{body[cut + 1:cut + 20]}</em>{body[cut + 20:]}"
        out.append(f"<p>{body}</p>\n")
    out.append(f"</article>\n<script>{_JS}</script>\n<footer><p>&copy; 2024 Example Media. "
               "All rights reserved.</p></footer>\n</body>\n</html>\n")
    return "".join(out).encode("utf-8")


def build_corpus(pools: dict[str, list[list[str]]], fmt: str, total_bytes: int, kb: tuple[float, float],
                 seed: int) -> list[bytes]:
    """Documents until ``total_bytes``; sizes log-uniform in ``kb`` (KB of text)."""
    rng = random.Random(seed)
    lo, hi = math.log(kb[0] * 1000), math.log(kb[1] * 1000)
    docs: list[bytes] = []
    size = 0
    while size < total_bytes:
        target = int(math.exp(rng.uniform(lo, hi)))
        paras = make_document(rng, pools, target)
        data = to_html(paras, rng, len(docs)) if fmt == "html" else to_plain(paras)
        docs.append(data)
        size += len(data)
    return docs


# -- measurement ---------------------------------------------------------------------
def fingerprint_all(docs: list[bytes], ext: str) -> tuple[float, float, int]:
    """Fingerprint every doc the way registration does; (wall s, cpu s, keys)."""
    from copyscope.model import Artifact
    from copyscope.text.plugin import TextModality

    modality = TextModality()
    names = [f"bench/doc-{i:06d}.{ext}" for i in range(len(docs))]
    keys = 0
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    for data, name in zip(docs, names):
        fp = modality.fingerprint(Artifact(data=data, origin=name))
        keys += fp.index_keys().shape[0]
        fp.stat_keys()
    return time.perf_counter() - t0, time.process_time() - c0, keys


def accepts_all(docs: list[bytes], ext: str) -> tuple[float, int]:
    """``TextModality.accepts`` (registration's ``pick_modality`` runs it first): cpu s, rejected."""
    from copyscope.model import Artifact
    from copyscope.text.plugin import TextModality

    modality = TextModality()
    arts = [Artifact(data=d, origin=f"bench/doc-{i:06d}.{ext}") for i, d in enumerate(docs)]
    c0 = time.process_time()
    rejected = sum(1 for a in arts if not modality.accepts(a))
    return time.process_time() - c0, rejected


def minhash_all(docs: list[bytes]) -> tuple[float, float]:
    """datasketch MinHash (128 perms) over word 3-shingles / CJK 5-shingles, for reference."""
    from datasketch import MinHash

    tok = re.compile(r"\w+|[\u4e00-\u9fff]")
    c0, t0 = time.process_time(), time.perf_counter()
    for data in docs:
        toks = tok.findall(data.decode("utf-8").lower())
        m = MinHash(num_perm=128)
        m.update_batch([" ".join(toks[i:i + 3]).encode() for i in range(max(1, len(toks) - 2))])
    return time.perf_counter() - t0, time.process_time() - c0


def warm_up(pools: dict[str, list[list[str]]]) -> None:
    """Load the fold table, regexes, numpy paths once (lazy first-use costs)."""
    sample = build_corpus(pools, "html", 100_000, (2, 8), seed=1)
    fingerprint_all(sample, "html")
    fingerprint_all([s.replace(b"<", b" ") for s in sample], "txt")


def row(name: str, docs: list[bytes], wall: float, cpu: float, keys: int) -> dict:
    mb = sum(len(d) for d in docs) / MB
    return {"corpus": name, "docs": len(docs), "mb": mb, "s": wall, "cpu": cpu,
            "mbs": mb / max(cpu, 1e-9), "mbs_wall": mb / wall, "docs_s": len(docs) / max(cpu, 1e-9),
            "kb_doc": mb * 1000 / len(docs), "keys_doc": keys / len(docs)}


def print_table(title: str, rows: list[dict], target: float | None) -> None:
    """MB/s and docs/s are per CPU-second of this process (= one core, robust to a
    shared machine); 'wall MB/s' is the same over elapsed time."""
    print(f"\n{title}")
    head = (f"{'corpus':<24} {'docs':>7} {'KB/doc':>7} {'MB':>7} {'wall s':>7} {'cpu s':>7} "
            f"{'MB/s':>7} {'wall MB/s':>9} {'docs/s':>7}")
    print(head + ("  target" if target else ""))
    print("-" * (len(head) + (8 if target else 0)))
    for r in rows:
        verdict = ""
        if target:
            verdict = "  PASS" if r["mbs"] >= target else "  FAIL"
        print(f"{r['corpus']:<24} {r['docs']:>7} {r['kb_doc']:>7.1f} {r['mb']:>7.1f} {r['s']:>7.2f} "
              f"{r['cpu']:>7.2f} {r['mbs']:>7.2f} {r['mbs_wall']:>9.2f} {r['docs_s']:>7.0f}{verdict}")
    busy = [r["corpus"] for r in rows if r["cpu"] < 0.9 * r["s"]]
    if busy:
        print(f"note: cpu < 90% of wall for {len(busy)} row(s): the machine was shared, trust the cpu-based MB/s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=50.0, help="MB per corpus (default 50)")
    ap.add_argument("--quick", action="store_true", help="5 MB per corpus, short size sweep")
    ap.add_argument("--doc-kb", default="2-64", help="document size range in KB, log-uniform (default 2-64)")
    ap.add_argument("--corpora", default="en,zh,mixed", help="subset of en,zh,mixed")
    ap.add_argument("--no-sweep", action="store_true", help="skip the document-size sweep")
    ap.add_argument("--peer", action="store_true", help="also time datasketch MinHash on the plain corpora")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    mb = 5.0 if args.quick and args.mb == 50.0 else args.mb
    lo_kb, hi_kb = (float(x) for x in args.doc_kb.split("-"))

    import numpy as np
    import copyscope

    pools = {"en": load_docs("clough_stevenson"), "zh": load_docs("zh_news_reuse")}
    print(f"copyscope {copyscope.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}, "
          f"pid {os.getpid()} on {os.cpu_count()} cores (measured single-process, one thread)")
    print(f"sources: {sum(len(d) for d in pools['en'])} English sentences in {len(pools['en'])} docs, "
          f"{sum(len(d) for d in pools['zh'])} Chinese sentences in {len(pools['zh'])} docs")
    print("MB/s = input bytes (10**6) per CPU-second of this single-threaded process")
    print(f"corpora: {mb:g} MB each, documents {lo_kb:g}-{hi_kb:g} KB log-uniform, seed {args.seed}")
    warm_up(pools)

    wanted = [c.strip() for c in args.corpora.split(",") if c.strip()]
    rows, peer_rows = [], []
    for ci, corpus in enumerate(wanted):
        sel = {"en": {"en": pools["en"]}, "zh": {"zh": pools["zh"]}, "mixed": pools}[corpus]
        for fmt in ("plain", "html"):
            docs = build_corpus(sel, fmt, int(mb * MB), (lo_kb, hi_kb), args.seed + ci)
            wall, cpu, keys = fingerprint_all(docs, "html" if fmt == "html" else "txt")
            rows.append(row(f"{corpus}-{fmt}", docs, wall, cpu, keys))
            acc_cpu, rejected = accepts_all(docs, "html" if fmt == "html" else "txt")
            rows[-1].update(acc_mbs=rows[-1]["mb"] / max(acc_cpu, 1e-9), rejected=rejected,
                            with_acc_mbs=rows[-1]["mb"] / (cpu + acc_cpu))
            if args.peer and fmt == "plain":
                sub = docs[: max(1, len(docs) // 5)]
                pw, pc = minhash_all(sub)
                peer_rows.append(row(f"{corpus}-plain minhash", sub, pw, pc, 0))
            del docs
            gc.collect()
    print_table(f"Fingerprint throughput, one core (target >= {TARGET_MBS:g} MB/s of input bytes)", rows, TARGET_MBS)
    total_mb = sum(r["mb"] for r in rows)
    total_s = sum(r["s"] for r in rows)
    total_cpu = sum(r["cpu"] for r in rows)
    print(f"{'all':<24} {sum(r['docs'] for r in rows):>7} {'':>7} {total_mb:>7.1f} {total_s:>7.2f} "
          f"{total_cpu:>7.2f} {total_mb / total_cpu:>7.2f} {total_mb / total_s:>9.2f}")

    print("\nRegistration also runs TextModality.accepts() (decodes the first 64 KiB) before fingerprinting:")
    print(f"{'corpus':<24} {'accepts MB/s':>12} {'fp+accepts MB/s':>16} {'rejected':>9}")
    for r in rows:
        print(f"{r['corpus']:<24} {r['acc_mbs']:>12.1f} {r['with_acc_mbs']:>16.2f} {r['rejected']:>9}")
    if any(r["rejected"] for r in rows):
        print("note: rejected = valid UTF-8 documents accepts() refuses (see the 64 KiB sample note in README)")

    if peer_rows:
        print_table("Peer reference: datasketch MinHash(num_perm=128), word 3-shingles, 1/5 of each plain corpus",
                    peer_rows, None)

    if not args.no_sweep:
        sizes = [1, 4, 16, 64, 256] if args.quick else [1, 2, 4, 8, 16, 32, 64, 256, 1024]
        sweep_mb = max(2.0, mb / 5)
        sweep = []
        for kb in sizes:
            docs = build_corpus(pools, "plain", int(sweep_mb * MB), (kb, kb * 1.0001), args.seed + 100 + kb)
            wall, cpu, keys = fingerprint_all(docs, "txt")
            sweep.append(row(f"mixed-plain {kb:g} KB", docs, wall, cpu, keys))
            sweep[-1]["rejected"] = accepts_all(docs, "txt")[1]
            del docs
        print_table(f"Document-size sweep (mixed plain text, {sweep_mb:g} MB per size)", sweep, TARGET_MBS)
        for r in sweep:
            if r["rejected"]:
                print(f"note: accepts() refused {r['rejected']}/{r['docs']} valid UTF-8 docs of {r['corpus']}")
        # Fixed per-document cost and marginal cost per MB, by least squares on time/doc.
        x = np.array([r["kb_doc"] / 1000 for r in sweep])
        y = np.array([r["cpu"] / r["docs"] * 1000 for r in sweep])
        a, b = np.polyfit(x, y, 1)
        print(f"fit: time/doc ≈ {b:.3f} ms + {a:.1f} ms per MB  "
              f"(asymptotic {1000 / a:.1f} MB/s; half of it at {b / a * 1000:.1f} KB/doc)")

    fails = [r["corpus"] for r in rows if r["mbs"] < TARGET_MBS]
    print(f"\nverdict: {'PASS' if not fails else 'FAIL'} (>= {TARGET_MBS:g} MB/s per core)"
          + (f"; below target: {', '.join(fails)}" if fails else ""))
    return 0 if not fails else 1


if __name__ == "__main__":
    sys.exit(main())
