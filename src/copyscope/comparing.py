"""Direct comparison of files, without a registry.

* ``compare(a, b)``: one pair, full evidence. With no corpus, every k-gram counts
  as rare and the vocabulary signal is off (it needs IDF).
* ``compare_pairs`` / ``compare_all``: many units; rarity and IDF come from all
  the units of the run, as MOSS and JPlag judge a submission set as a whole.

A unit is a file, or with ``unit="dir"`` every top-level directory; a directory
unit's score is its best file pair, and its evidence is that pair's passages.
"""
from __future__ import annotations

from itertools import combinations, repeat

import numpy as np
from pathlib import Path
from typing import NamedTuple, Sequence

from copyscope.errors import CopyscopeError, InputError, UsageError
from copyscope.evidence import InputRecord, Result
from copyscope.archives import ArchiveCache, is_archive
from copyscope.fingerprint_pool import fingerprint_all
from copyscope.ingest import archive_members, expand_paths, read_path, walk
from copyscope.model import Match
from copyscope.plugins import Fingerprints, Modality, fingerprint
from copyscope.progress import NullProgress, Progress
from copyscope.settings import Settings
from copyscope.stats import MemoryStats


class PairScore(NamedTuple):
    """One scored pair (a tuple: an all-pairs run makes 100,000s of them)."""

    a: str
    b: str
    score: float
    match: Match | None


class _Docs:
    """Fingerprints each path once; remembers failures as one-line errors."""

    def __init__(self, settings: Settings, modalities: dict[str, Modality]) -> None:
        self.settings = settings
        self.modalities = modalities
        self.docs: dict[str, tuple[Modality, Fingerprints]] = {}
        self.errors: dict[str, str] = {}
        # Paths are read in sorted order, so an archive's members come one after
        # another: the archive is opened (a compressed tar streamed) once, not per member.
        self.archives = ArchiveCache(settings)

    def get(self, path: str) -> tuple[Modality, Fingerprints] | None:
        if path in self.docs:
            return self.docs[path]
        if path in self.errors:
            return None
        try:
            art = read_path(path, self.settings, self.archives)
            self.docs[path] = fingerprint(self.modalities, art)
            return self.docs[path]
        except CopyscopeError as exc:
            self.errors[path] = exc.message
            return None


def _record(role: str, fp: Fingerprints) -> InputRecord:
    art = fp.artifact
    return InputRecord(role, art.origin, art.sha256, art.size, getattr(fp, "media_type", art.media_type),
                       getattr(getattr(fp, "decoded", None), "encoding", None))


def _verify(ma: Modality, fa: Fingerprints, mb: Modality, fb: Fingerprints, stats, threshold) -> Match | None:
    if ma.name != mb.name:
        return None
    m = ma.verify(fa, fb, stats)
    if m is not None and threshold is not None:
        from dataclasses import replace  # noqa: PLC0415
        m = replace(m, verdict="copy" if m.score >= threshold else "below-threshold")
    return m


def compare(a: str | Path, b: str | Path, settings: Settings, modalities: dict[str, Modality]) -> Result:
    """Compare two files; ``a`` plays the query, ``b`` the registered side."""
    docs = _Docs(settings, modalities)
    pa, pb = docs.get(str(a)), docs.get(str(b))
    if pa is None or pb is None:
        raise InputError(next(iter(docs.errors.values())))
    result = Result("compare", {n: m.parameters() for n, m in sorted(modalities.items())})
    result.inputs += [_record("a", pa[1]), _record("b", pb[1])]
    m = _verify(pa[0], pa[1], pb[0], pb[1], None, settings.threshold)
    if m is not None and hasattr(pa[0], "evidence_media"):
        m = pa[0].evidence_media(m, pa[1], pb[1])
    if m is not None:
        result.matches.append(m)
    return result


def read_pairs_file(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such pairs file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read pairs file ({exc})") from None
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise UsageError(f"{path}:{n}: expected 'pathA<TAB>pathB'")
        pairs.append((parts[0], parts[1]))
    return pairs


def compare_pairs(pairs: Sequence[tuple[str, str]], settings: Settings, modalities: dict[str, Modality],
                  progress: Progress | None = None, jobs: int = 1) -> tuple[list[PairScore], dict[str, str]]:
    """Score listed pairs; unreadable files score 0 and are reported in the errors.
    ``jobs`` > 1 fingerprints many files in that many forked processes (same result)."""
    progress = progress or NullProgress()
    docs = _Docs(settings, modalities)
    paths = sorted({p for pair in pairs for p in pair})
    progress.start(len(paths) + len(pairs), "comparing")
    fingerprint_all(docs, paths, jobs, progress)
    refs = sorted({b for _, b in pairs if b in docs.docs})
    stats = MemoryStats([docs.docs[b][1] for b in refs], [fp for _, fp in docs.docs.values()])
    out = []
    for a, b in pairs:
        pa, pb = docs.docs.get(a), docs.docs.get(b)
        m = None if pa is None or pb is None else _verify(pa[0], pa[1], pb[0], pb[1], stats, settings.threshold)
        out.append(PairScore(a, b, 0.0 if m is None else m.score, m))
        progress.advance(1)
    progress.stop()
    return out, docs.errors


def units_of(paths: Sequence[str | Path], unit: str, settings: Settings,
             skipped: list[str] | None = None) -> dict[str, list[str]]:
    """Unit name → its files. ``file``: every file; ``dir``: every top-level directory."""
    if unit not in ("file", "dir"):
        raise UsageError(f"--unit must be 'file' or 'dir', not {unit!r}")
    units: dict[str, list[str]] = {}
    for p in paths:
        root = Path(p)
        if unit == "file" or not root.is_dir():
            for f in expand_paths([p], settings, skipped):
                units[f.relative] = [f.source]
            continue
        for child in sorted(root.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                units[str(child)] = [f.source for f in walk(child, settings, skipped)]
            elif is_archive(child) and child.is_file():
                units[str(child)] = [f.source for f in archive_members(child, str(child), settings, skipped)]
            elif child.is_file():
                units[str(child)] = [str(child)]
    return units


def _batch_matrix(docs: "_Docs") -> tuple[Modality, dict[str, int], np.ndarray] | None:
    """All-pairs scores in one call for a modality that offers ``batch_scores``
    (code: a matrix product instead of n² verifications); scores only, no passages."""
    for modality in {m.name: m for m, _ in docs.docs.values()}.values():
        if not hasattr(modality, "batch_scores"):
            continue
        paths = sorted(p for p, (m, _) in docs.docs.items() if m.name == modality.name)
        fps = [docs.docs[p][1] for p in paths]
        return modality, {p: i for i, p in enumerate(paths)}, modality.batch_scores(fps, fps)
    return None


def compare_all(paths: Sequence[str | Path], settings: Settings, modalities: dict[str, Modality], *,
                unit: str = "file", progress: Progress | None = None,
                background: bool = True, jobs: int = 1) -> tuple[list[PairScore], dict[str, str]]:
    """Score every pair of units (i < j, in sorted order).

    ``background``: where every unit was batch-scored by a modality that judges
    a run as a whole (``relative_to_run``: code), each score is taken relative
    to what the run's pairs typically share (docs/code-engine.md). ``jobs`` > 1
    fingerprints many files in that many forked processes (same result)."""
    progress = progress or NullProgress()
    skipped: list[str] = []
    units = units_of(paths, unit, settings, skipped)
    if len(units) < 2:
        raise UsageError("--all-pairs needs at least two units")
    docs = _Docs(settings, modalities)
    all_files = sorted({f for fs in units.values() for f in fs})
    names = sorted(units)
    n_pairs = len(names) * (len(names) - 1) // 2
    progress.start(len(all_files) + n_pairs, "comparing")
    fingerprint_all(docs, all_files, jobs, progress)
    batch = _batch_matrix(docs)
    errors = {**{s: s for s in skipped}, **docs.errors}
    covered = batch is not None and all(f in batch[1] for n in names for f in units[n])
    relative = getattr(batch[0], "relative_to_run", None) if covered and background else None
    if covered and all(len(units[n]) == 1 for n in names):
        # Every unit is one file of a batch-scored modality: all pairs in numpy.
        idx = np.array([batch[1][units[n][0]] for n in names])
        sym = np.maximum(batch[2], batch[2].T)[np.ix_(idx, idx)]
        ii, jj = np.triu_indices(len(names), 1)
        values = sym[ii, jj] if relative is None else relative(sym[ii, jj])
        progress.advance(len(ii))
        progress.stop()
        # _make over a zip: 100,000s of pairs without a Python frame per tuple.
        return (list(map(PairScore._make, zip(map(names.__getitem__, ii.tolist()), map(names.__getitem__, jj.tolist()),
                                               values.tolist(), repeat(None)))), errors)
    batch_index, batch_scores = (batch[1], batch[2]) if batch is not None else ({}, None)
    stats = MemoryStats([fp for _, fp in docs.docs.values()])
    out = []
    for ua, ub in combinations(names, 2):
        best: Match | None = None
        best_score = 0.0
        for fa in units[ua]:
            for fb in units[ub]:
                pa, pb = docs.docs.get(fa), docs.docs.get(fb)
                if pa is None or pb is None:
                    continue
                if fa in batch_index and fb in batch_index:
                    i, j = batch_index[fa], batch_index[fb]
                    # Units have no query/registered roles: the better direction counts.
                    best_score = max(best_score, float(batch_scores[i, j]), float(batch_scores[j, i]))
                    continue
                m = _verify(pa[0], pa[1], pb[0], pb[1], stats, settings.threshold)
                if m is not None and (best is None or m.score > best.score):
                    best, best_score = m, max(best_score, m.score)
        out.append(PairScore(ua, ub, best_score, best))
        progress.advance(1)
    progress.stop()
    if relative is not None:
        values = relative(np.array([s.score for s in out]))
        out = [s._replace(score=float(v)) for s, v in zip(out, values.tolist())]
    return out, errors
