#!/usr/bin/env python3
"""Code scale: register a ~10 MLOC source corpus, then check a ~1 MLOC codebase against it.

Targets (issue: source-code scanning at scale), on 2 cores / 24 GiB:

* index (register) a 10 MLOC corpus in < 5 min;
* check a 1 MLOC codebase against it in < 60 s;
* peak memory < 8 GB in both.

Steps (all under ``--workdir``, default /tmp/copyscope-code-scale):

a. **Corpus.** Source files (every extension ``copyscope.code.languages`` knows,
   ``.py``/``.pyi``/``.c``/``.h``/``.js``/``.java``/``.go``/``.rs``/...) are
   collected from the Python standard library (``sysconfig.get_paths()["stdlib"]``,
   its ``test`` package and bundled ``site-packages`` included) and from this
   repository's ``.venv`` site-packages. Files over 1 MB, empty files, Python
   files with nothing but comments and byte-identical duplicates are dropped.
   About 10 % of the files are HELD OUT, by package (all files of a randomly
   chosen top-level package, vendored packages counted under their own name),
   so that held-out code has as few siblings in the registry as possible; it is
   never registered. The rest is copied to ``corpus/dNNNN/`` (1000 files per
   directory). When that is under ``--target-mloc``, mutated copies of the
   registered originals are added (fixed seed) until the line count reaches it;
   when it is over, a random subset of the originals is used.
b. **Register**: ``copyscope --home W/home init``, then
   ``copyscope --home W/home --quiet register W/corpus --each --owner bench --license PSF-2.0``
   under ``/usr/bin/time -v`` (wall, user/sys CPU, peak RSS; files/s, MLOC/min).
   Registration also signs one ledger entry per work (here: per file) and writes a
   receipt per work to ``home/receipts/``; both are counted. A monitor prints
   progress (receipts written) every 30 s and can stop a hopeless run
   (``--abort-projected-min``).
c. **Codebase**, ``--check-mloc`` lines: ~10 % PLANTED files (registered corpus
   originals, renamed and with their top-level functions reordered) and ~90 %
   FRESH files (the held-out files, verbatim first, then mutated variants of
   them). ``copyscope --home W/home --quiet check W/codebase --format tsv``
   runs under ``/usr/bin/time -v``; from its TSV the script reports recall on the
   planted files (matched to their exact source file; to the source or a mutant
   of it; to anything) and how many fresh files got a match (false alarms,
   with the matched registered path: many are genuine shared code, e.g. two
   versions of one vendored library).

Mutations (``mutate()``; deterministic per file): identifier renaming outside
strings/comments with a random consistent map (keywords, builtins and dunders
kept; every language), shuffling runs of consecutive undecorated top-level
``def`` blocks (Python only), and dead statements (``x = 3``, ``if False:`` ...,
``assert 0 >= 0``) before ~3 % of statement lines (Python only). Python, .pyi
included, is 99 % of the collected lines.

    python benchmarks/code_scale.py --target-mloc 0.5 --check-mloc 0.05 --workdir /tmp/cs-code-small
    nohup python benchmarks/code_scale.py > /tmp/copyscope-code-scale.log 2>&1 &     # 10 / 1 MLOC
    python benchmarks/code_scale.py --skip-build --skip-register                      # re-time the check
    python benchmarks/code_scale.py --skip-build --skip-register --skip-check --profile  # cProfile only
    python benchmarks/code_scale.py --skip-build --skip-register --skip-check --cleanup  # delete the data

``--profile`` registers the first ~2,000 corpus files in-process (``copyscope.api``)
into a scratch home under cProfile, and checks ``--profile-check-files`` codebase
files in-process against the full home, writing ``profile-*.txt``.
"""
from __future__ import annotations

import argparse
import builtins
import hashlib
import json
import keyword
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from bisect import bisect_right
from pathlib import Path

from copyscope.code.languages import EXTENSIONS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import copyscope_bin, du, log, time_v  # noqa: E402

SEED = 11
PER_DIR = 1000
MAX_FILE_BYTES = 1_000_000
HOLDOUT_SHARE = 0.10
PLANT_SHARE = 0.10
LICENSE = "PSF-2.0"
TARGET_REGISTER_S = 300.0
TARGET_CHECK_S = 60.0
TARGET_RSS_BYTES = 8e9
CODE_EXTS = frozenset(EXTENSIONS) | {".h"}


def count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


# -- (a) collecting --------------------------------------------------------------------
def default_roots() -> list[Path]:
    roots = [Path(sysconfig.get_paths()["stdlib"])]
    venv = Path(__file__).resolve().parents[1] / ".venv" / "lib"
    roots += sorted(venv.glob("python3*/site-packages"))
    return roots


def _group(rel_parts: tuple[str, ...]) -> str:
    """The package a file belongs to: vendored packages count under their own name."""
    parts = list(rel_parts)
    for marker in ("_vendor", "vendor", "vendored", "_vendored", "extern", "_extern"):
        if marker in parts[:-1]:
            i = len(parts) - 1 - parts[::-1].index(marker)
            if i + 1 < len(parts):
                parts = parts[i + 1:]
    if "site-packages" in parts[:-1]:
        parts = parts[parts.index("site-packages") + 1:]
    top = parts[0]
    if len(parts) == 1:                      # a top-level module: foo.py -> foo
        top = top.split(".")[0]
    return re.sub(r"[-.].*$", "", top.lower())   # foo-1.0.dist-info, foo.libs -> foo


def _has_code(data: bytes, ext: str) -> bool:
    if not data.strip():
        return False
    if ext in (".py", ".pyi"):
        return any(ln.strip() and not ln.lstrip().startswith(b"#") for ln in data.splitlines())
    return True


def collect(roots: list[Path]) -> tuple[list[dict], dict]:
    files: list[dict] = []
    seen: set[str] = set()
    stats = {"roots": [str(r) for r in roots], "too_big": 0, "duplicates": 0, "no_code": 0, "unreadable": 0}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", ".git"))
            for name in sorted(filenames):
                ext = os.path.splitext(name)[1].lower()
                if ext not in CODE_EXTS:
                    continue
                path = Path(dirpath) / name
                try:
                    if path.is_symlink() or not path.is_file():
                        continue
                    size = path.stat().st_size
                    if size > MAX_FILE_BYTES:
                        stats["too_big"] += 1
                        continue
                    data = path.read_bytes()
                except OSError:
                    stats["unreadable"] += 1
                    continue
                if not _has_code(data, ext):
                    stats["no_code"] += 1
                    continue
                sha = hashlib.sha256(data).hexdigest()
                if sha in seen:
                    stats["duplicates"] += 1
                    continue
                seen.add(sha)
                rel = path.relative_to(root).parts
                files.append({"src": str(path), "ext": ext, "lines": count_lines(data), "bytes": len(data),
                              "group": _group(rel)})
    stats["files"] = len(files)
    stats["lines"] = sum(f["lines"] for f in files)
    stats["bytes"] = sum(f["bytes"] for f in files)
    by_ext: dict[str, list[int]] = {}
    for f in files:
        e = by_ext.setdefault(f["ext"], [0, 0])
        e[0] += 1
        e[1] += f["lines"]
    stats["by_ext"] = {k: {"files": v[0], "lines": v[1]} for k, v in sorted(by_ext.items(), key=lambda kv: -kv[1][1])}
    return files, stats


def hold_out(files: list[dict], rng: random.Random) -> tuple[list[dict], list[dict], list[str]]:
    """Hold out whole packages, in random order, until ~HOLDOUT_SHARE of the files."""
    groups: dict[str, list[dict]] = {}
    for f in files:
        groups.setdefault(f["group"], []).append(f)
    names = sorted(groups)
    rng.shuffle(names)
    want, cap = HOLDOUT_SHARE * len(files), 1.2 * HOLDOUT_SHARE * len(files)
    held_names: list[str] = []
    n = 0
    for g in names:
        if n >= want:
            break
        if n + len(groups[g]) > cap:
            continue                          # too big to fit: keep it registered
        held_names.append(g)
        n += len(groups[g])
    held_set = set(held_names)
    return ([f for f in files if f["group"] not in held_set], [f for f in files if f["group"] in held_set],
            sorted(held_names))


# -- mutations -----------------------------------------------------------------------
_PY_SCAN = re.compile(r'''
  (?P<s>(?:[rRbBuUfF]{1,2})?(?:"""(?:[^"\\]|\\.|"(?!""))*"""|\'\'\'(?:[^'\\]|\\.|'(?!''))*\'\'\'
        |"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'))
 |(?P<c>\#[^\n]*)
 |(?P<n>\.?[0-9](?:[eE][+-]|[\w.])*)
 |(?P<i>[A-Za-z_][A-Za-z0-9_]*)
 |(?P<o>[(\[{])
 |(?P<x>[)\]}])
 |(?P<b>\\\r?\n)
''', re.X | re.S)

_C_SCAN = re.compile(r'''
  (?P<s>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`)
 |(?P<c>//[^\n]*|/\*.*?(?:\*/|\Z)|^[ \t]*\#[ \t]*(?:include|import)[^\n]*)
 |(?P<n>\.?[0-9](?:[eE][+-]|[\w.])*)
 |(?P<i>[A-Za-z_$][A-Za-z0-9_$]*)
 |(?P<o>[(\[{])
 |(?P<x>[)\]}])
 |(?P<b>\\\r?\n)
''', re.X | re.S | re.M)

_PY_KEEP = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | {
    "self", "cls", "print"}
_C_KEEP = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int long
register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
_Bool _Complex _Atomic _Noreturn _Static_assert _Thread_local bool true false NULL nullptr
class namespace template typename public private protected virtual override final friend operator new delete
this throw try catch using noexcept constexpr decltype explicit mutable static_cast dynamic_cast
reinterpret_cast const_cast std include define undef ifdef ifndef elif endif pragma error line defined
var let function async await yield typeof instanceof in of export import from extends super null undefined
package interface implements abstract synchronized transient native throws boolean byte instanceof
func go chan select defer fallthrough map range type struct fn impl trait pub mod use crate mut ref match
loop move where dyn as unsafe Self self string String int8 int16 int32 int64 uint8 uint16 uint32 uint64
size_t ssize_t uintptr_t intptr_t Py_ssize_t PyObject main printf malloc free memcpy memset strlen
""".split())
_WORDS = ("node item value buf ctx data temp res acc key idx cnt obj ref val elem spec info state part "
          "unit field entry slot token frame chunk block blob list table record handle cursor marker probe "
          "sample batch piece bucket cell pivot delta sigma alpha beta gamma omega").split()


def _new_name(orig: str, rng: random.Random, taken: set[str]) -> str:
    for attempt in range(100):
        a, b = rng.choice(_WORDS), rng.choice(_WORDS)
        if orig[:1].isupper():
            name = a.capitalize() + b.capitalize()
        elif orig.isupper() and len(orig) > 1:
            name = f"{a}_{b}".upper()
        else:
            name = f"{a}_{b}"
        if orig.startswith("_"):
            name = "_" + name
        if attempt > 10:
            name += str(rng.randrange(1000))
        if name not in taken:
            taken.add(name)
            return name
    raise AssertionError("no fresh name")


def mutate(data: bytes, ext: str, rng: random.Random, *, rename: float = 0.8, shuffle: bool = True,
           dead: float = 0.03) -> tuple[bytes, dict]:
    """A mutated copy of a source file and what was done to it.

    ``rename``: share of the distinct renamable identifiers renamed (consistently);
    ``shuffle``: reorder runs of consecutive undecorated top-level functions (Python);
    ``dead``: probability of a dead statement before each safe statement line (Python).
    """
    text = data.decode("utf-8", "surrogateescape")
    py = ext in (".py", ".pyi")
    scan = _PY_SCAN if py else _C_SCAN
    keep = _PY_KEEP if py else _C_KEEP
    matches = list(scan.finditer(text))
    idents = {m.group() for m in matches if m.lastgroup == "i"}
    taken = set(idents)
    mapping: dict[str, str] = {}
    for ident in sorted(idents):
        if ident in keep or (ident.startswith("__") and ident.endswith("__")) or rng.random() >= rename:
            continue
        mapping[ident] = _new_name(ident, rng, taken)
    stats = {"renamed": len(mapping), "identifiers": len(idents), "dead": 0, "shuffled_blocks": 0}
    pieces: list[str] = []
    last = 0
    for m in matches:
        if m.lastgroup == "i" and m.group() in mapping:
            pieces.append(text[last:m.start()])
            pieces.append(mapping[m.group()])
            last = m.end()
    pieces.append(text[last:])
    new = "".join(pieces)
    if not py or (not shuffle and dead <= 0):
        return new.encode("utf-8", "surrogateescape"), stats

    # Lines whose start is inside a string or brackets, or after a backslash, are not statement starts.
    line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]

    def line_of(off: int) -> int:
        return bisect_right(line_starts, off) - 1

    bad: set[int] = set()
    depth, open_line = 0, 0
    for m in matches:
        g = m.lastgroup
        if g == "s":
            a, b = line_of(m.start()), line_of(m.end() - 1)
            bad.update(range(a + 1, b + 1))
        elif g == "o":
            if depth == 0:
                open_line = line_of(m.start())
            depth += 1
        elif g == "x" and depth:
            depth -= 1
            if depth == 0:
                bad.update(range(open_line + 1, line_of(m.start()) + 1))
        elif g == "b":
            bad.add(line_of(m.start()) + 1)
    lines = new.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    n = len(lines)

    def is_stmt(i: int) -> bool:
        s = lines[i].lstrip()
        return i not in bad and bool(s.strip()) and not s.startswith("#")

    prefix = [""] * n
    if dead > 0:
        future = max((i for i in range(n) if lines[i].startswith("from __future__")), default=-1)
        prev_stmt = ""
        for i in range(n):
            if not is_stmt(i):
                continue
            s = lines[i].lstrip()
            first = re.match(r"[A-Za-z_]+|\S", s).group()
            ok = (i > future and first not in ("elif", "else", "except", "finally", "case")
                  and first not in (")", "]", "}") and not prev_stmt.startswith("@"))
            prev_stmt = s
            if ok and rng.random() < dead:
                ind = lines[i][: len(lines[i]) - len(s)]
                step = "\t" if "\t" in ind else "    "
                name = _new_name("x", rng, taken)
                form = rng.randrange(4)
                if form == 0:
                    prefix[i] = f"{ind}{name} = {rng.randrange(100)}\n"
                elif form == 1:
                    prefix[i] = f"{ind}if False:\n{ind}{step}{name} = {rng.randrange(100)}\n"
                elif form == 2:
                    prefix[i] = f"{ind}assert {rng.randrange(100)} >= 0\n"
                else:
                    prefix[i] = f"{ind}{name} = [{rng.randrange(10)}, {rng.randrange(10)}]\n"
                stats["dead"] += 1
    body = [p + ln for p, ln in zip(prefix, lines)]
    if shuffle:
        # Top-level blocks: each starts at a column-0 statement line.
        starts = [i for i in range(n) if is_stmt(i) and not lines[i][:1].isspace()]
        blocks: list[tuple[str, int, int]] = []        # (kind, first line, end line)
        j = 0
        while j < len(starts):
            i = starts[j]
            s = lines[i]
            k = j
            if s.startswith("@"):                       # decorators + the def/class they decorate
                while k + 1 < len(starts) and lines[starts[k]].startswith("@"):
                    k += 1
                kind = "other"
            elif s.startswith(("def ", "async def ")):
                kind = "def"
            else:
                kind = "other"
            end = starts[k + 1] if k + 1 < len(starts) else n
            blocks.append((kind, i, end))
            j = k + 1
        head = "".join(body[: blocks[0][1]]) if blocks else "".join(body)
        out: list[str] = [head]
        run: list[str] = []

        def flush() -> None:
            if len(run) > 1:
                rng.shuffle(run)
                stats["shuffled_blocks"] += len(run)
            out.extend(run)
            run.clear()

        for kind, a, b in blocks:
            chunk = "".join(body[a:b])
            if kind == "def":
                run.append(chunk)
            else:
                flush()
                out.append(chunk)
        flush()
        new = "".join(out)
    else:
        new = "".join(body)
    return new.encode("utf-8", "surrogateescape"), stats


# -- (a)+(c) building the corpus and the codebase -----------------------------------------
def _place(root: Path, i: int, prefix: str, src: str) -> Path:
    d = root / f"d{i // PER_DIR:04d}"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{prefix}{i:06d}_{Path(src).name}"


def build(work: Path, target_lines: int, check_lines: int, seed: int, roots: list[Path]) -> dict:
    for sub in ("corpus", "codebase"):
        if (work / sub).exists():
            shutil.rmtree(work / sub)
    t0 = time.perf_counter()
    files, cstats = collect(roots)
    log(f"    collected {cstats['files']} files, {cstats['lines'] / 1e6:.2f} MLOC, "
        f"{cstats['bytes'] / 1e6:.0f} MB ({cstats['duplicates']} duplicates, {cstats['too_big']} > 1 MB, "
        f"{cstats['no_code']} without code dropped) in {time.perf_counter() - t0:.1f} s")
    rng = random.Random(seed)
    registered, held, held_groups = hold_out(files, rng)
    cstats["held_out"] = {"files": len(held), "lines": sum(f["lines"] for f in held), "groups": held_groups}
    log(f"    held out {len(held)} files ({cstats['held_out']['lines'] / 1e6:.2f} MLOC) in "
        f"{len(held_groups)} packages; {len(registered)} files available to register")

    # Corpus: originals (a random subset when over the target), then mutated copies.
    corpus_dir = work / "corpus"
    order = list(range(len(registered)))
    rng.shuffle(order)
    entries: list[dict] = []          # corpus files, in order
    lines = 0
    mut_stats = {"renamed": 0, "dead": 0, "shuffled_blocks": 0}
    t1 = time.perf_counter()
    for i in order:
        if lines >= target_lines:
            break
        f = registered[i]
        data = Path(f["src"]).read_bytes()
        k = len(entries)
        p = _place(corpus_dir, k, "", f["src"])
        p.write_bytes(data)
        entries.append({"path": str(p), "kind": "original", "src": f["src"], "parent": k, "lines": f["lines"]})
        lines += f["lines"]
    originals = len(entries)
    rnd = 0
    while lines < target_lines:
        rnd += 1
        for k in range(originals):
            if lines >= target_lines:
                break
            e = entries[k]
            data, st = mutate(Path(e["src"]).read_bytes(), Path(e["src"]).suffix.lower(),
                              random.Random(f"{seed}:corpus:{rnd}:{k}"))
            for key in mut_stats:
                mut_stats[key] += st[key]
            n = len(entries)
            p = _place(corpus_dir, n, "", e["src"])
            p.write_bytes(data)
            nl = count_lines(data)
            entries.append({"path": str(p), "kind": "mutant", "src": e["src"], "parent": k, "lines": nl})
            lines += nl
    corpus = {"files": len(entries), "lines": lines, "originals": originals, "mutants": len(entries) - originals,
              "mutant_rounds": rnd, "original_lines": sum(e["lines"] for e in entries[:originals]),
              "bytes": sum(Path(e["path"]).stat().st_size for e in entries), "mutations": mut_stats,
              "dirs": (len(entries) + PER_DIR - 1) // PER_DIR, "seconds": time.perf_counter() - t1}
    log(f"    corpus: {corpus['files']} files ({originals} originals + {corpus['mutants']} mutants), "
        f"{lines / 1e6:.2f} MLOC, {corpus['bytes'] / 1e6:.0f} MB in {corpus['seconds']:.1f} s")

    # Codebase: planted copies of registered originals (renamed + reordered), then fresh code.
    cb = work / "codebase"
    crng = random.Random(seed + 1)
    items: list[dict] = []
    plant_target = PLANT_SHARE * check_lines
    cands = [k for k in range(originals) if entries[k]["lines"] >= 20]
    crng.shuffle(cands)
    planted_lines = 0
    for k in cands:
        if planted_lines >= plant_target:
            break
        e = entries[k]
        data, st = mutate(Path(e["path"]).read_bytes(), Path(e["src"]).suffix.lower(),
                          random.Random(f"{seed}:plant:{k}"), dead=0.0)
        p = _place(cb / "planted", len([x for x in items if x["kind"] == "planted"]), "p", e["src"])
        p.write_bytes(data)
        nl = count_lines(data)
        items.append({"path": str(p), "kind": "planted", "source": e["path"], "parent": k, "src": e["src"],
                      "lines": nl, "renamed": st["renamed"], "shuffled_blocks": st["shuffled_blocks"]})
        planted_lines += nl
    fresh_target = check_lines - planted_lines
    fresh_lines, n_fresh, rnd_f = 0, 0, 0
    held_order = list(range(len(held)))
    crng.shuffle(held_order)
    while fresh_lines < fresh_target and held:
        for h in held_order:
            if fresh_lines >= fresh_target:
                break
            f = held[h]
            data = Path(f["src"]).read_bytes()
            if rnd_f:
                data, _ = mutate(data, f["ext"], random.Random(f"{seed}:fresh:{rnd_f}:{h}"))
            p = _place(cb / "fresh", n_fresh, "f", f["src"])
            p.write_bytes(data)
            nl = count_lines(data)
            items.append({"path": str(p), "kind": "fresh", "src": f["src"], "round": rnd_f, "lines": nl})
            fresh_lines += nl
            n_fresh += 1
        rnd_f += 1
    codebase = {"files": len(items), "lines": planted_lines + fresh_lines,
                "planted": {"files": len(items) - n_fresh, "lines": planted_lines},
                "fresh": {"files": n_fresh, "lines": fresh_lines, "rounds": rnd_f,
                          "verbatim_files": sum(1 for x in items if x.get("round") == 0)}}
    log(f"    codebase: {codebase['files']} files, {codebase['lines'] / 1e6:.3f} MLOC "
        f"({codebase['planted']['files']} planted = {planted_lines} lines, {n_fresh} fresh = {fresh_lines} lines)")
    (work / "manifest.json").write_text(json.dumps({"corpus": entries, "codebase": items}))
    return {"collect": cstats, "corpus": corpus, "codebase": codebase, "seed": seed,
            "seconds": time.perf_counter() - t0}


# -- (b) timed subprocesses -----------------------------------------------------------------
def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _rss_mib(pid: int) -> float | None:
    try:
        m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
        return int(m.group(1)) / 1024 if m else None
    except OSError:
        return None


def run_timed(cmd: list[str], out_path: Path, *, label: str, progress=None, total: int | None = None,  # noqa: ANN001
              abort_projected_s: float | None = None, every: float = 30.0) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v`` (stdout to ``out_path``); a monitor logs
    progress (``progress()`` -> items done) and child RSS, and may stop a hopeless run."""
    time_bin = "/usr/bin/time" if Path("/usr/bin/time").exists() else shutil.which("time")
    tv = out_path.with_suffix(".time")
    full = [time_bin, "-v", "-o", str(tv), *cmd] if time_bin else cmd
    samples: list[tuple[float, int | None, float | None]] = []
    aborted: dict = {}
    t0 = time.perf_counter()
    with open(out_path, "wb") as out, open(out_path.with_suffix(".err"), "wb") as err:
        proc = subprocess.Popen(full, stdout=out, stderr=err)
        stop = threading.Event()

        def monitor() -> None:
            while not stop.wait(every):
                kids = _children(proc.pid) if time_bin else [proc.pid]
                rss = _rss_mib(kids[0]) if kids else None
                el = time.perf_counter() - t0
                done = progress() if progress else None
                samples.append((el, done, rss))
                msg = f"    {label}: {el:6.0f} s, RSS {rss or 0:6.0f} MiB"
                if done is not None and total:
                    proj = el * total / max(done, 1)
                    msg += f", {done}/{total} ({done / el:.0f}/s), projected total {proj / 60:.1f} min"
                    if abort_projected_s and el > 180 and done and proj > abort_projected_s and kids:
                        aborted.update(at_s=el, done=done, projected_s=proj)
                        log(msg + "  -> ABORTING (projected over the limit)")
                        os.kill(kids[0], signal.SIGTERM)
                        return
                log(msg)

        th = threading.Thread(target=monitor, daemon=True)
        th.start()
        rc = proc.wait()
        stop.set()
        th.join(timeout=5)
    wall = time.perf_counter() - t0
    res: dict = {"rc": rc, "wall_s": wall, "samples": samples}
    if aborted:
        res["aborted"] = aborted
    res.update(time_v(tv if time_bin else None))
    return res


def _count_dir(path: Path) -> int:
    try:
        with os.scandir(path) as it:
            return sum(1 for e in it if e.name.endswith(".json"))
    except OSError:
        return 0


def register(work: Path, corpus_meta: dict, abort_min: float) -> dict:
    home = work / "home"
    if home.exists():
        shutil.rmtree(home)
    cs = copyscope_bin()
    t0 = time.perf_counter()
    subprocess.run([cs, "--home", str(home), "init"], check=True, capture_output=True)
    init_s = time.perf_counter() - t0
    n, lines = corpus_meta["files"], corpus_meta["lines"]
    cmd = [cs, "--home", str(home), "--quiet", "register", str(work / "corpus"), "--each",
           "--owner", "bench", "--license", LICENSE]
    log(f"registering {n} files, {lines / 1e6:.2f} MLOC: {' '.join(cmd)}")
    res = run_timed(cmd, work / "register.out", label="register", total=n,
                    progress=lambda: _count_dir(home / "receipts"),
                    abort_projected_s=abort_min * 60 if abort_min else None)
    res.update(init_s=init_s, files=n, lines=lines, files_per_s=n / res["wall_s"],
               mloc_per_min=lines / 1e6 / (res["wall_s"] / 60), lines_per_s=lines / res["wall_s"])
    res["works_printed"] = sum(1 for _ in open(work / "register.out", "rb"))
    err = (work / "register.err").read_text(errors="replace")
    res["warnings"] = err.count("warning:")
    res["stderr_tail"] = err[-2000:]
    st = subprocess.run([cs, "--home", str(home), "--json", "status"], capture_output=True, text=True)
    res["status"] = json.loads(st.stdout) if st.returncode == 0 else st.stderr
    res["receipts"] = _count_dir(home / "receipts")
    res["ledger_entries"] = _sql_count(home / "registry.db", "ledger_entries")
    res["home_bytes"] = du(home)
    for sub in ("index", "blobs", "receipts"):
        res[f"{sub}_bytes"] = du(home / sub)
    res["db_bytes"] = sum(p.stat().st_size for p in home.glob("registry.db*"))
    return res


def _sql_count(db: Path, table: str) -> int | None:
    import sqlite3
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return None


# -- (c) check ---------------------------------------------------------------------------
def check(work: Path, manifest: dict) -> dict:
    home = work / "home"
    cs = copyscope_bin()
    cb = manifest["codebase"]
    n, lines = len(cb), sum(x["lines"] for x in cb)
    cmd = [cs, "--home", str(home), "--quiet", "check", str(work / "codebase"), "--format", "tsv"]
    log(f"checking {n} files, {lines / 1e6:.3f} MLOC: {' '.join(cmd)}")
    res = run_timed(cmd, work / "check.out", label="check")
    res.update(files=n, lines=lines, files_per_s=n / res["wall_s"], lines_per_s=lines / res["wall_s"])
    err = (work / "check.err").read_text(errors="replace")
    res["warnings"] = err.count("warning:")
    res["stderr_tail"] = err[-2000:]
    res["accuracy"] = score_check(work / "check.out", manifest)
    return res


def score_check(tsv: Path, manifest: dict) -> dict:
    rows: dict[str, list[tuple[str, float]]] = {}
    for line in tsv.read_text(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            rows.setdefault(parts[0], []).append((parts[1], float(parts[2])))
    corpus = manifest["corpus"]
    family = {e["path"]: e["parent"] for e in corpus}
    planted = [x for x in manifest["codebase"] if x["kind"] == "planted"]
    fresh = [x for x in manifest["codebase"] if x["kind"] == "fresh"]
    exact = fam = anyhit = 0
    src_scores: list[float] = []
    missed: list[dict] = []
    for x in planted:
        got = rows.get(x["path"], [])
        hit = [s for r, s in got if r == x["source"]]
        if hit:
            exact += 1
            src_scores.append(max(hit))
        if any(family.get(r) == x["parent"] for r, _ in got):
            fam += 1
        if got:
            anyhit += 1
        if not hit:
            missed.append({"path": x["path"], "source": x["source"], "lines": x["lines"],
                           "top": sorted(got, key=lambda t: -t[1])[:3]})
    ref_lines = {e["path"]: e["lines"] for e in corpus}
    flagged = []
    for x in fresh:
        got = rows.get(x["path"])
        if got:
            best = max(got, key=lambda t: t[1])
            same_name = any(Path(r).name.split("_", 1)[-1] == Path(x["src"]).name for r, _ in got)
            flagged.append({"path": x["path"], "src": x["src"], "round": x["round"], "lines": x["lines"],
                            "matches": len(got), "best": best, "best_ref_lines": ref_lines.get(best[0]),
                            "max_ref_lines": max(ref_lines.get(r, 0) for r, _ in got),
                            "same_file_name": same_name})
    src_scores.sort()
    fresh_rows = [(r, sc) for x in fresh for r, sc in rows.get(x["path"], [])]
    big = [f for f in flagged if f["max_ref_lines"] >= 20]
    return {
        "rows": sum(len(v) for v in rows.values()),
        "planted": {"files": len(planted), "matched_source": exact, "matched_source_or_mutant": fam,
                    "matched_any": anyhit, "recall": exact / max(1, len(planted)),
                    "source_score_min": src_scores[0] if src_scores else None,
                    "source_score_median": src_scores[len(src_scores) // 2] if src_scores else None,
                    "missed": missed[:50]},
        "fresh": {"files": len(fresh), "flagged": len(flagged),
                  "flagged_rate": len(flagged) / max(1, len(fresh)),
                  "flagged_same_file_name": sum(1 for f in flagged if f["same_file_name"]),
                  "flagged_verbatim_round": sum(1 for f in flagged if f["round"] == 0),
                  "rows": len(fresh_rows),
                  "rows_to_ref_under_10_lines": sum(1 for r, _ in fresh_rows if ref_lines.get(r, 0) < 10),
                  "flagged_only_by_refs_under_10_lines": sum(1 for f in flagged if f["max_ref_lines"] < 10),
                  "flagged_by_a_ref_of_20_lines_or_more": len(big),
                  "examples": sorted(flagged, key=lambda f: -f["best"][1])[:40],
                  "examples_ref_20_lines_or_more": sorted(big, key=lambda f: -f["max_ref_lines"])[:40]},
    }


# -- profiles --------------------------------------------------------------------------
def _profile_text(pr, n: int = 30) -> tuple[str, dict]:  # noqa: ANN001
    import io
    import pstats
    s = io.StringIO()
    st = pstats.Stats(pr, stream=s)
    st.sort_stats("cumulative").print_stats(n)
    st.sort_stats("tottime").print_stats(n)
    cum = {}
    for (fname, _, func), (_, _, _, ct, _) in st.stats.items():  # type: ignore[attr-defined]
        cum[f"{Path(fname).name}:{func}"] = max(ct, cum.get(f"{Path(fname).name}:{func}", 0.0))
    return s.getvalue(), cum


_REGISTER_STAGES = {
    "fingerprint (tokenize + keys)": "plugins.py:fingerprint",
    "  tokenize_code (tree-sitter walk + build)": "tokens.py:tokenize_code",
    "  _segments (statement bag)": "plugin.py:_segments",
    "read_artifact": "ingest.py:read_artifact",
    "index_keys": "plugin.py:index_keys",
    "blobs.put (blobs and features)": "blobs.py:put",
    "  CodeDoc.dumps (feature bags)": "plugin.py:dumps",
    "blobs.sync": "blobs.py:sync",
    "write_segment": "inverted.py:write_segment",
    "commit_batch (SQL + ledger append)": "registry.py:commit_batch",
    "  ledger claim_entries (signing)": "service.py:claim_entries",
    "  ledger append_in": "service.py:append_in",
    "_write_receipts": "workspace.py:_write_receipts",
    "_maybe_merge": "workspace.py:_maybe_merge",
    "plan_works (walk)": "workspace.py:plan_works",
}
_CHECK_STAGES = {
    "fingerprint query": "plugins.py:fingerprint",
    "reader() (open segments)": "workspace.py:reader",
    "candidates()": "inverted.py:candidates",
    "_ref_fingerprints (registered files' stored bags)": "workspace.py:_ref_fingerprints",
    "  CodeDoc.loads": "plugin.py:loads",
    "tokenize_code (queries; registered files only when verified)": "tokens.py:tokenize_code",
    "batch_scores (cheap score of all candidates)": "plugin.py:batch_scores",
    "verify": "plugin.py:verify",
    "  align": "align.py:align",
    "  _containment": "plugin.py:_containment",
    "registry SQL: artifact_sha256": "registry.py:artifact_sha256",
    "registry SQL: works_for_artifacts": "registry.py:works_for_artifacts",
    "triage_reason": "triage.py:triage_reason",
}


def profile(work: Path, n_register: int, n_check: int) -> dict:
    import cProfile

    from copyscope import api

    out: dict = {}
    home = work / "profile-home"
    if home.exists():
        shutil.rmtree(home)
    dirs = sorted((work / "corpus").iterdir())[: max(1, (n_register + PER_DIR - 1) // PER_DIR)]
    n_files = sum(1 for d in dirs for _ in d.iterdir())
    ws = api.init(api.Settings.resolve(home))
    pr = cProfile.Profile()
    t = time.perf_counter()
    pr.enable()
    outcome = ws.register([str(d) for d in dirs], owner="bench", license=LICENSE, each=True)
    pr.disable()
    wall = time.perf_counter() - t
    ws.close()
    text, cum = _profile_text(pr)
    (work / "profile-register.txt").write_text(text)
    out["register"] = {"files": n_files, "works": len(outcome.works), "errors": len(outcome.errors),
                       "wall_s_profiled": wall,
                       "stages_s": {k: round(cum.get(v, 0.0), 3) for k, v in _REGISTER_STAGES.items()}}
    shutil.rmtree(home, ignore_errors=True)
    log(f"    profile: registered {n_files} files in {wall:.1f} s under cProfile -> {work / 'profile-register.txt'}")
    if (work / "home" / "registry.db").exists():
        manifest = json.loads((work / "manifest.json").read_text())
        cb = manifest["codebase"]
        rng = random.Random(SEED + 5)
        pick = rng.sample(cb, min(n_check, len(cb)))
        ws = api.open_workspace(api.Settings.resolve(work / "home"))
        pr = cProfile.Profile()
        t = time.perf_counter()
        pr.enable()
        result = ws.check([x["path"] for x in pick])
        pr.disable()
        wall = time.perf_counter() - t
        ws.close()
        text, cum = _profile_text(pr)
        (work / "profile-check.txt").write_text(text)
        out["check"] = {"files": len(pick), "lines": sum(x["lines"] for x in pick),
                        "planted": sum(1 for x in pick if x["kind"] == "planted"),
                        "matches": len(result.matches), "wall_s_profiled": wall,
                        "stages_s": {k: round(cum.get(v, 0.0), 3) for k, v in _CHECK_STAGES.items()}}
        log(f"    profile: checked {len(pick)} files in {wall:.1f} s under cProfile -> {work / 'profile-check.txt'}")
    return out


# -- report -----------------------------------------------------------------------------
def src_state() -> dict:
    """Which copyscope code ran: a hash of src/copyscope/**/*.py and the newest mtime
    (the tree can change between steps of a long run)."""
    import copyscope
    root = Path(copyscope.__file__).resolve().parent
    h = hashlib.sha256()
    newest = 0.0
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
        newest = max(newest, p.stat().st_mtime)
    return {"sha256": h.hexdigest()[:16], "newest_mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest)),
            "at": time.strftime("%Y-%m-%d %H:%M:%S")}


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target-mloc", type=float, default=10.0, help="corpus size in million lines (default 10)")
    ap.add_argument("--check-mloc", type=float, default=1.0, help="codebase size in million lines (default 1)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/copyscope-code-scale"))
    ap.add_argument("--root", type=Path, action="append", help="source roots (default: stdlib + .venv site-packages)")
    ap.add_argument("--skip-build", action="store_true", help="reuse WORKDIR/corpus, codebase and manifest.json")
    ap.add_argument("--skip-register", action="store_true", help="reuse WORKDIR/home")
    ap.add_argument("--skip-check", action="store_true", help="do not run the timed check")
    ap.add_argument("--abort-projected-min", type=float, default=30.0,
                    help="stop registration when its projected total exceeds this many minutes (0: never)")
    ap.add_argument("--profile", action="store_true", help="cProfile in-process registration and check")
    ap.add_argument("--profile-register-files", type=int, default=2000)
    ap.add_argument("--profile-check-files", type=int, default=100)
    ap.add_argument("--cleanup", action="store_true",
                    help="at the end delete corpus/, codebase/, home/ and manifest.json (keeps summary.json, logs)")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    path = work / "summary.json"
    summary: dict = {}
    if path.exists():                        # keep what earlier runs measured
        try:
            summary = json.loads(path.read_text())
        except json.JSONDecodeError:
            summary = {}
    summary.update({"workdir": str(work), "python": sys.version.split()[0], "cores": os.cpu_count(),
                    "target_mloc": args.target_mloc, "check_mloc": args.check_mloc})

    def save() -> None:
        path.write_text(json.dumps(summary, indent=1, default=str))

    if not args.skip_build:
        roots = args.root or default_roots()
        log(f"(a) building a {args.target_mloc} MLOC corpus and a {args.check_mloc} MLOC codebase under {work}")
        summary["build"] = build(work, int(args.target_mloc * 1e6), int(args.check_mloc * 1e6), args.seed, roots)
        summary.pop("register", None)
        summary.pop("check", None)
        save()
    have_data = (work / "manifest.json").exists()
    if not args.skip_register and "build" not in summary:
        raise SystemExit(f"no corpus built under {work}: run without --skip-build first")
    if not args.skip_register:
        log("(b) init + register")
        before = src_state()
        reg = register(work, summary["build"]["corpus"], args.abort_projected_min)
        reg["src"] = {"before": before, "after": src_state()}
        summary["register"] = reg
        save()
        log(f"    rc={reg['rc']} wall={reg['wall_s']:.1f} s  {reg['files_per_s']:.0f} files/s  "
            f"{reg['mloc_per_min']:.2f} MLOC/min  peak RSS {reg.get('peak_rss_mib') or 0:.0f} MiB  "
            f"user {reg.get('user_s')} s sys {reg.get('sys_s')} s  CPU {reg.get('cpu_pct')} %")
        log(f"    status: {reg['status']}; receipts {reg['receipts']}, ledger entries {reg['ledger_entries']}")
        if reg["rc"] != 0:
            log(f"    stderr: {reg['stderr_tail']}")
    if not args.skip_check and have_data and not summary.get("register", {}).get("aborted"):
        log("(c) check")
        manifest = json.loads((work / "manifest.json").read_text())
        before = src_state()
        summary["check"] = check(work, manifest)
        summary["check"]["src"] = {"before": before, "after": src_state()}
        save()
    if args.profile and have_data:
        log("profile (in-process, cProfile)")
        summary["profile"] = profile(work, args.profile_register_files, args.profile_check_files)
        summary["profile"]["src"] = src_state()
        save()

    # -- report
    full = args.target_mloc >= 10 and args.check_mloc >= 1
    print()
    if "build" in summary:
        b = summary["build"]
        c, cb = b["corpus"], b["codebase"]
        exts = ", ".join(f"{k} {v['lines'] / 1e6:.2f}M" for k, v in list(b["collect"]["by_ext"].items())[:5])
        print(f"collected: {b['collect']['files']} files, {b['collect']['lines'] / 1e6:.2f} MLOC ({exts}); "
              f"held out {b['collect']['held_out']['files']} files / "
              f"{b['collect']['held_out']['lines'] / 1e6:.2f} MLOC")
        print(f"corpus:    {c['files']} files = {c['originals']} originals + {c['mutants']} mutants, "
              f"{c['lines'] / 1e6:.2f} MLOC, {c['bytes'] / 1e6:.0f} MB, {c['dirs']} dirs")
        print(f"codebase:  {cb['files']} files, {cb['lines'] / 1e6:.3f} MLOC: planted {cb['planted']['files']} "
              f"({cb['planted']['lines']} lines), fresh {cb['fresh']['files']} ({cb['fresh']['lines']} lines, "
              f"{cb['fresh']['verbatim_files']} verbatim held-out files)")
    rc = 0
    if "register" in summary:
        r = summary["register"]
        rss_ok = (r.get("peak_rss_mib") or 0) * 2**20 < TARGET_RSS_BYTES
        t_ok = r["wall_s"] < TARGET_REGISTER_S and r["rc"] == 0 and not r.get("aborted")
        print(f"\nregister: {r['files']} files, {r['lines'] / 1e6:.2f} MLOC in {r['wall_s']:.1f} s = "
              f"{r['files_per_s']:.0f} files/s = {r['mloc_per_min']:.2f} MLOC/min; peak RSS "
              f"{(r.get('peak_rss_mib') or 0) / 1024:.2f} GiB; user {r.get('user_s')} s, sys {r.get('sys_s')} s "
              f"({r.get('cpu_pct')} % CPU); exit {r['rc']}, {r['warnings']} warning(s)"
              + (f"; ABORTED at {r['aborted']['done']} files" if r.get("aborted") else ""))
        print(f"          {r['receipts']} receipts + {r['ledger_entries']} signed ledger entries (one per work); "
              f"home {r['home_bytes'] / 2**20:.0f} MiB (blobs {r['blobs_bytes'] / 2**20:.0f}, index "
              f"{r['index_bytes'] / 2**20:.0f}, receipts {r['receipts_bytes'] / 2**20:.0f}, db "
              f"{r['db_bytes'] / 2**20:.0f} MiB); status {r['status']}")
        print(f"          target < {TARGET_REGISTER_S:.0f} s: {verdict(t_ok if full else None) if full else verdict(None)}"
              f"{'' if full else ' (scaled run)'}; memory < 8 GB: {verdict(rss_ok)}")
        if r.get("src"):
            print(f"          code: src {r['src']['before']['sha256']} (newest file {r['src']['before']['newest_mtime']})"
                  + ("" if r["src"]["before"]["sha256"] == r["src"]["after"]["sha256"] else
                     f"; CHANGED during the run to {r['src']['after']['sha256']}"))
        if full and not (t_ok and rss_ok):
            rc = 1
    if "check" in summary:
        k = summary["check"]
        a = k["accuracy"]
        rss_ok = (k.get("peak_rss_mib") or 0) * 2**20 < TARGET_RSS_BYTES
        t_ok = k["wall_s"] < TARGET_CHECK_S and k["rc"] in (0, 1)
        print(f"\ncheck: {k['files']} files, {k['lines'] / 1e6:.3f} MLOC in {k['wall_s']:.1f} s = "
              f"{k['lines_per_s']:.0f} lines/s; peak RSS {(k.get('peak_rss_mib') or 0) / 1024:.2f} GiB; user "
              f"{k.get('user_s')} s sys {k.get('sys_s')} s; exit {k['rc']} (1 = copies found), "
              f"{k['warnings']} warning(s)")
        p, f = a["planted"], a["fresh"]
        print(f"       planted: {p['matched_source']}/{p['files']} matched to their source (recall {p['recall']:.3f}); "
              f"{p['matched_source_or_mutant']} to source or a mutant of it; {p['matched_any']} to anything; "
              f"source score min {p['source_score_min']}, median {p['source_score_median']}")
        print(f"       fresh:   {f['flagged']}/{f['files']} got a match ({f['flagged_rate']:.3%}); "
              f"{f['flagged_same_file_name']} of them matched a registered file of the same name, "
              f"{f['flagged_verbatim_round']} were verbatim held-out files")
        print(f"                {f['rows']} match rows, {f['rows_to_ref_under_10_lines']} of them to registered "
              f"files under 10 lines; {f['flagged_only_by_refs_under_10_lines']} flagged files matched only "
              f"files under 10 lines, {f['flagged_by_a_ref_of_20_lines_or_more']} matched a file of >= 20 lines")
        for ex in f["examples"][:5] + f["examples_ref_20_lines_or_more"][:5]:
            print(f"         {ex['best'][1]:.3f}  {ex['src']} ({ex['lines']} lines)  ->  {ex['best'][0]} "
                  f"({ex['best_ref_lines']} lines; largest matched {ex['max_ref_lines']})")
        if k.get("src"):
            print(f"       code: src {k['src']['before']['sha256']} (newest file {k['src']['before']['newest_mtime']})"
                  + ("" if k["src"]["before"]["sha256"] == k["src"]["after"]["sha256"] else
                     f"; CHANGED during the run to {k['src']['after']['sha256']}"))
        if k["rc"] not in (0, 1):
            print(f"       the check did not finish (exit {k['rc']}): no accuracy figures")
        print(f"       target < {TARGET_CHECK_S:.0f} s: {verdict(t_ok) if full else verdict(None) + ' (scaled run)'}; "
              f"memory < 8 GB: {verdict(rss_ok)}")
        if full and not (t_ok and rss_ok):
            rc = 1
    if "profile" in summary:
        for name, d in summary["profile"].items():
            if not isinstance(d, dict) or "stages_s" not in d:
                continue
            print(f"\nprofile, {name} ({d['files']} files, {d['wall_s_profiled']:.1f} s under cProfile), cumulative s:")
            for st, s in d["stages_s"].items():
                print(f"    {st:<52} {s:8.2f}")
    print(f"\nsummary: {path}")

    if args.cleanup:
        for sub in ("corpus", "codebase", "home", "profile-home"):
            shutil.rmtree(work / sub, ignore_errors=True)
        (work / "manifest.json").unlink(missing_ok=True)
        log(f"cleaned up {work} (kept summary.json and logs)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
