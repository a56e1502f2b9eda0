"""The workspace: registry database, blob store and fingerprint index on disk.

Layout under ``home``::

    registry.db        SQLite (WAL): works, artifacts, live index segments
    blobs/ab/<sha>     the registered bytes, content-addressed
    index/<modality>/  immutable index segments (copyscope.index.inverted)
    lock               held by the one writer

Registration is atomic per batch: blobs and the segment file are written and
fsynced first, then one transaction makes them live. A ``kill -9`` at any point
leaves every work either fully registered and indexed, or absent.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import os
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from copyscope import check_pool
from copyscope.errors import CopyscopeError, InputError, StorageError, WorkspaceError
from copyscope.code.triage import triage_reason
from copyscope.evidence import InputRecord, Result
from copyscope.index.inverted import Candidates, DocKeys, IndexReader, Segment, merge_segments, write_segment
from copyscope.archives import ArchiveCache, is_archive
from copyscope.ingest import FoundFile, expand_paths, read_found
from copyscope.model import Artifact, Match, StoredArtifact
from copyscope.plugins import Fingerprints, Modality, fingerprint, load_modalities
from copyscope.processes import both
from copyscope.progress import NullProgress, Progress
from copyscope.settings import Settings
from copyscope.stats import CachedStats
from copyscope.storage.blobs import BlobStore, FeatureStore
from copyscope.storage.sketches import SketchStore
from copyscope.ledger.entries import content_of
from copyscope.licenses import detect_license
from copyscope.ledger.service import Ledger, WorkClaim, directory_content, write_json
from copyscope.storage.registry import NewArtifact, NewWork, SqlRegistry, make_engine, migrate

MAX_SEGMENTS = 12
DEFAULT_LICENSE = "All-Rights-Reserved"     # when none is given or detected          # more live segments than this triggers a merge of the small ones


@dataclass(frozen=True)
class RegisteredWork:
    work_id: str
    title: str
    path: str
    files: int
    new_artifacts: int       # files whose content was not in the registry yet
    ledger_index: int = -1   # position of the work's entry in the log
    receipt: str = ""        # path of the receipt (entry + inclusion proof + signed checkpoint)


@dataclass(frozen=True)
class RegisterOutcome:
    works: list[RegisteredWork]
    errors: list[str]
    warnings: list[str] = field(default_factory=list)   # e.g. the timestamp authority was down


@dataclass(frozen=True)
class Claim:
    """What every work of one register call is registered as."""

    owner: str
    license: str | None          # None: detect per work
    record: dict[str, Any] | None
    record_sha256: str | None
    private: bool
    parents: tuple[str, ...]
    receipts_dir: Path | None


@dataclass(frozen=True)
class WorkSpec:
    title: str
    root: str
    kind: str
    files: list[FoundFile]


def load_record(path: Path | None) -> tuple[dict[str, Any] | None, str | None]:
    """A creation record (docs/creation-record.md), validated; with its canonical SHA-256."""
    if path is None:
        return None, None
    from copyscope.ledger.record import load_record_file  # noqa: PLC0415
    return load_record_file(Path(path))


class Workspace:
    def __init__(self, settings: Settings, modalities: dict[str, Modality] | None = None) -> None:
        self.settings = settings
        self.home = settings.home
        self.modalities = modalities if modalities is not None else load_modalities(settings)
        self._default_modalities = modalities is None     # so worker processes can load the same ones
        self.engine = make_engine(settings.database_url, schema=settings.db_schema)
        self.registry = SqlRegistry(self.engine)
        self.blobs = BlobStore(self.home / "blobs")
        # Modalities whose analysis is costly (images, code) keep it next to the blobs.
        self.features = {name: FeatureStore(self.home / "features" / name)
                         for name, m in self.modalities.items() if hasattr(m, "dumps")}
        # ... and a fixed-width summary per artifact for re-ranking candidates cheaply.
        self.sketches = {name: SketchStore(self.home / "sketches" / f"{name}-w{m.sketch_width}.bin", m.sketch_width)
                         for name, m in self.modalities.items() if hasattr(m, "sketch")}
        self.ledger = Ledger(self.engine, self.home,
                             settings.passphrase.encode() if settings.passphrase else None, lock=self._lock)
        self._ref_cache: OrderedDict[str, Fingerprints] = OrderedDict()
        self._stats_cache: tuple[tuple[str, ...], CachedStats] | None = None
        self._codes_cache: dict[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]] = {}
        self._readers: dict[str, tuple[tuple[str, ...], IndexReader]] = {}

    # -- lifecycle -------------------------------------------------------------
    @classmethod
    def init(cls, settings: Settings, modalities: dict[str, Modality] | None = None) -> "Workspace":
        try:
            settings.home.mkdir(parents=True, exist_ok=True)
            (settings.home / "blobs").mkdir(exist_ok=True)
            (settings.home / "index").mkdir(exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"cannot create workspace at {settings.home}: {exc.strerror}") from None
        ws = cls(settings, modalities)
        with ws._lock():
            migrate(ws.engine)
            ws.ledger.ensure_keys()
        return ws

    @classmethod
    def open(cls, settings: Settings, modalities: dict[str, Modality] | None = None) -> "Workspace":
        if settings.db_url is None and not (settings.home / "registry.db").exists():
            raise WorkspaceError(f"no workspace at {settings.home}", hint="run `copyscope init` first")
        ws = cls(settings, modalities)
        with ws._lock():
            migrate(ws.engine)
            ws.ledger.ensure_keys()        # workspaces made before the ledger existed
        return ws

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lock(self):  # noqa: ANN202 - a context manager
        return _FileLock(self.home / "lock")

    def _index_dir(self, modality: str) -> Path:
        return self.home / "index" / modality

    def hot_files(self) -> list[Path]:
        """The files every check reads at random offsets: each modality's live
        index segments (mapped) and its sketch rows (read row by row). Cold, a
        page costs a disk read (~0.13 ms here) and an image check reads ~50 of
        them; a server reads them ahead once (``processes.read_ahead``)."""
        out = [self._index_dir(name) / seg for name in self.modalities
               for seg in self.registry.live_segments(name)]
        return out + [store.path for store in self.sketches.values()]

    # -- register ----------------------------------------------------------------
    def plan_works(self, paths: Sequence[str | Path], *, title: str | None, each: bool,
                   skipped: list[str] | None = None) -> list[WorkSpec]:
        specs: list[WorkSpec] = []
        for p in paths:
            path = Path(p)
            files = expand_paths([p], self.settings, skipped)
            container = path.is_dir() or (is_archive(path) and path.is_file())
            if each or not container:
                for f in files:
                    name = f.relative if len(files) > 1 or container else path.name
                    t = title if (title and len(files) == 1 and not container) else (
                        f"{title}: {Path(name).name}" if title else Path(name).name)
                    specs.append(WorkSpec(t, f.relative, "file", [f]))
            else:
                if not files:
                    raise InputError(f"{p}: directory has no files")
                specs.append(WorkSpec(title or path.resolve().name, str(p), "directory", files))
        return specs

    def register(self, paths: Sequence[str | Path], *, owner: str, license: str | None = None,
                 title: str | None = None,
                 record: Path | None = None, each: bool = False, private: bool = False,
                 derived_from: Sequence[str] = (), receipts_dir: Path | None = None,
                 progress: Progress | None = None) -> RegisterOutcome:
        """Register works; a work whose files cannot be used is refused, others proceed.

        Every work gets a ledger entry (``derive`` when ``derived_from`` names
        parent works; a salted commitment only when ``private``) and a receipt in
        ``home/receipts/<work id>.json`` (and in ``receipts_dir`` when given)."""
        errors: list[str] = []
        claim = self._claim(owner, license, record, private, derived_from, receipts_dir)
        specs = self.plan_works(paths, title=title, each=each, skipped=errors)
        return self._register_specs(specs, claim, errors, progress)

    def register_uploads(self, uploads: Sequence[tuple[Path, str, str]], *, owner: str,
                         license: str | None = None, title: str | None = None, record: Path | None = None,
                         private: bool = False, derived_from: Sequence[str] = ()) -> RegisterOutcome:
        """Register files a service staged: (staged path, the client's file name,
        a unique root key). Each is one work titled by its name (or ``title``
        for a single upload); the key lets a resumed job see what is registered."""
        claim = self._claim(owner, license, record, private, derived_from, None)
        specs = [WorkSpec(title if title and len(uploads) == 1 else name, key, "file", [FoundFile(Path(path), name)])
                 for path, name, key in uploads]
        return self._register_specs(specs, claim, [], None)

    def _claim(self, owner: str, license: str | None, record: Path | None, private: bool,
               derived_from: Sequence[str], receipts_dir: Path | None) -> Claim:
        if not owner.strip():
            raise InputError("--owner must not be empty")
        for parent in derived_from:
            self.ledger._require_work(parent)
        rec, rec_sha = load_record(record)
        return Claim(owner, license, rec, rec_sha, private, tuple(derived_from), receipts_dir)

    def _register_specs(self, specs: list[WorkSpec], claim: Claim, errors: list[str],
                        progress: Progress | None) -> RegisterOutcome:
        progress = progress or NullProgress()
        warnings: list[str] = []
        done: list[RegisteredWork] = []
        progress.start(sum(len(s.files) for s in specs), "registering")
        with self._lock():
            for batch in _batches(specs, self.settings.batch_size):
                works, errs, warns = self._register_batch(batch, claim, progress)
                done.extend(works)
                errors.extend(errs)
                warnings.extend(warns)
                self._maybe_merge()      # as batches land: small merges, no big stall at the end
        progress.stop()
        return RegisterOutcome(done, errors, warnings)

    def _register_batch(self, specs: list[WorkSpec], claim: Claim,
                        progress: Progress) -> tuple[list[RegisteredWork], list[str], list[str]]:
        errors: list[str] = []
        warnings: list[str] = []
        ready: list[tuple[WorkSpec, list[tuple[str, Artifact, Modality, Fingerprints]]]] = []
        archives = ArchiveCache(self.settings)
        for spec in specs:
            items = []
            for f in spec.files:
                try:
                    art = read_found(f, self.settings, archives)
                    modality, fp = fingerprint(self.modalities, art)
                    items.append((f.relative, art, modality, fp))
                except CopyscopeError as exc:
                    if spec.kind == "directory":
                        errors.append(f"skipped {exc.message}")
                    else:
                        errors.append(exc.message)
                progress.advance(1)
            if items:
                ready.append((spec, items))
            elif spec.kind == "directory":
                errors.append(f"{spec.root}: no usable files; work not registered")
        archives.close()
        if not ready:
            return [], errors, warnings
        known = self.registry.artifact_ids([a.sha256 for _, items in ready for _, a, _, _ in items])
        fresh: dict[str, tuple[Artifact, Modality, Fingerprints]] = {}
        for _, items in ready:
            for _, art, modality, fp in items:
                if art.sha256 not in known and art.sha256 not in fresh:
                    fresh[art.sha256] = (art, modality, fp)
        next_id = self.registry.next_artifact_id()
        planned = {sha: next_id + i for i, sha in enumerate(fresh)}
        new_artifacts = []
        by_modality: dict[str, list[DocKeys]] = {}
        sketches: dict[str, list[tuple[int, str, bytes]]] = {}
        for sha, (art, modality, fp) in fresh.items():
            self.blobs.put(sha, art.data, sync=False)
            if modality.name in self.features:
                self.features[modality.name].put(sha, modality.dumps(fp), sync=False)
            if modality.name in self.sketches:
                sketches.setdefault(modality.name, []).append((planned[sha], sha, modality.sketch(fp)))
            codes = modality.global_codes(fp) if hasattr(modality, "global_codes") else None
            new_artifacts.append(NewArtifact(sha, art.size, getattr(fp, "media_type", art.media_type),
                                             modality.name, getattr(getattr(fp, "decoded", None),
                                                                    "encoding", None),
                                             None if codes is None else codes.astype("<u8").tobytes()))
            by_modality.setdefault(modality.name, []).append(
                DocKeys(planned[sha], fp.index_keys(), fp.stat_keys()))
        self.blobs.sync()                 # one filesystem sync for the batch's blobs, before the commit
        for name, rows in sketches.items():
            self.sketches[name].put_many(rows)
        segments = []
        for name, docs in by_modality.items():
            seg = write_segment(self._index_dir(name), docs)
            segments.append((name, seg, len(docs), int(sum(d.keys.shape[0] for d in docs))))
        # No licence given: read it from LICENSE files / SPDX headers (docs/cli.md).
        licences = [claim.license or detect_license((rel, art.data) for rel, art, _, _ in items) or DEFAULT_LICENSE
                    for _, items in ready]
        works = [NewWork(spec.title, claim.owner, lic, spec.kind, spec.root,
                         [(rel, art.sha256) for rel, art, _, _ in items], claim.record, claim.record_sha256)
                 for (spec, items), lic in zip(ready, licences)]
        logged: list[int] = []

        def log_entries(conn, work_ids: list[str]) -> None:  # noqa: ANN001
            claims = []
            for wid, (spec, items), lic in zip(work_ids, ready, licences):
                if spec.kind == "directory":
                    content = directory_content([(rel, a.sha256, a.size) for rel, a, _, _ in items])
                else:
                    _, a, _, fp = items[0]
                    content = content_of(a.sha256, a.size, getattr(fp, "media_type", a.media_type))
                claims.append(WorkClaim(wid, content, claim.owner, lic, spec.title, claim.record_sha256,
                                        claim.parents, claim.private))
            logged.extend(self.ledger.append_in(conn, self.ledger.claim_entries(claims)))

        ids = self.registry.commit_batch(new_artifacts, works, segments, planned, on_commit=log_entries)
        if self.settings.tsa_url:
            try:        # the entries are durable already: a TSA outage only costs the token
                self.ledger.timestamp_latest(self.settings.tsa_url)
            except CopyscopeError as exc:
                warnings.append(f"no RFC 3161 timestamp for this checkpoint: {exc.message}")
        receipt_paths = self._write_receipts(ids, logged, claim.receipts_dir)
        out = []
        claimed: set[str] = set()        # content new to the registry counts once, for its first work
        for wid, (spec, items) in zip(ids, ready):
            new_here = {a.sha256 for _, a, _, _ in items if a.sha256 in fresh} - claimed
            claimed |= new_here
            n_new = len(new_here)
            out.append(RegisteredWork(wid, spec.title, spec.root, len(items), n_new,
                                      logged[len(out)], receipt_paths[len(out)]))
        return out, errors, warnings

    def _write_receipts(self, work_ids: list[str], indices: list[int], extra_dir: Path | None) -> list[str]:
        with self.engine.connect() as conn:
            receipts = self.ledger.receipts_at(conn, indices)
        paths = []
        for wid, receipt in zip(work_ids, receipts):
            path = self.home / "receipts" / f"{wid}.json"
            write_json(path, receipt)
            if extra_dir is not None:
                write_json(Path(extra_dir) / f"{wid}.json", receipt)
            paths.append(str(path))
        return paths

    def _maybe_merge(self) -> None:
        """Merge small segments (tiered): keeps lookups fast without rewriting big ones."""
        for name in self.modalities:
            live = self.registry.live_segments(name)
            if len(live) <= MAX_SEGMENTS:
                continue
            d = self._index_dir(name)
            sizes = {n: (d / n).stat().st_size for n in live}
            self._merge(name, sorted(live, key=lambda n: sizes[n])[: len(live) - MAX_SEGMENTS // 2])

    def _merge(self, modality: str, names: list[str]) -> None:
        """Replace live segments by their merge: the new file is written first, the
        registry swap is the commit point, the old files go last."""
        d = self._index_dir(modality)
        segs = [Segment(d / n) for n in names]
        new = merge_segments(d, segs)
        self.registry.swap_segments(modality, names, new, sum(s.n_docs for s in segs),
                                    sum(int(s.post_keys.shape[0]) for s in segs))
        del segs
        self._readers.pop(modality, None)
        for n in names:
            (d / n).unlink(missing_ok=True)

    def compact(self) -> int:
        """Merge every modality's live segments into one (after a bulk load: a
        lookup then searches one sorted key array instead of ten). Atomic like
        any merge: the new segment is live only once the swap commits.
        (``gc --compact`` also calls :meth:`fill_sketches` and :meth:`fill_codes`.)"""
        merged = 0
        with self._lock():
            for name in self.modalities:
                live = self.registry.live_segments(name)
                if len(live) < 2:
                    continue
                self._merge(name, live)
                merged += len(live)
        return merged

    def fill_sketches(self, chunk: int = 2000) -> int:
        """Write the sketch rows that are missing (a workspace registered before
        sketches existed, or rows lost to a crash), so that no check has to fall
        back to the feature files for them. Rows are idempotent hints: no lock."""
        written = 0
        for name, store in self.sketches.items():
            modality = self.modalities[name]
            arts = self.registry.artifact_shas(name)
            for i in range(0, len(arts), chunk):
                shas = dict(arts[i:i + chunk])
                have = store.get_many(shas)
                missing = [a for a in shas if a not in have]
                if not missing:
                    continue
                # an unreadable blob is left out: the check reports it when it gets there
                rows = self._sketch_rows(modality, missing, shas, skip_unreadable=True)
                store.put_many([(a, shas[a], row) for a, row in rows.items()])
                written += len(rows)
        return written

    def fill_codes(self, chunk: int = 2000) -> int:
        """Write the global codes that are missing or narrower than the modality's
        (images registered before their structure code existed), computed from
        the feature files. Until then such an image is found by every other
        code, not by its layout."""
        written = 0
        for name, modality in self.modalities.items():
            if not hasattr(modality, "global_codes"):
                continue
            todo = self.registry.codes_to_fill(name, int(modality.parameters()["code_width"]))
            for i in range(0, len(todo), chunk):
                shas = dict(todo[i:i + chunk])
                # an unreadable blob is left out: the check reports it when it gets there
                rows = self._rows_from_features(modality, list(shas), shas,
                                                lambda fp: modality.global_codes(fp).astype("<u8").tobytes(),
                                                skip_unreadable=True)
                self.registry.set_codes(list(rows.items()))
                written += len(rows)
            self._codes_cache.pop(name, None)
        return written

    def _sketch_rows(self, modality: Modality, ids: list[int], shas: dict[int, str], *,
                     skip_unreadable: bool = False) -> dict[int, bytes]:
        """Sketch rows built from the artifacts' feature files (the blob where one is missing)."""
        return self._rows_from_features(modality, ids, shas, modality.sketch, skip_unreadable=skip_unreadable)

    def _rows_from_features(self, modality: Modality, ids: list[int], shas: dict[int, str],
                            build: Callable[[Fingerprints], bytes], *,
                            skip_unreadable: bool = False) -> dict[int, bytes]:
        """``build`` of each artifact's stored features (the blob where they are missing)."""
        works = self.registry.works_for_artifacts(ids)
        out: dict[int, bytes] = {}
        for i in ids:
            try:
                fp = self._ref_fingerprints(modality, shas[i], self._origin(works, i, shas))
            except CopyscopeError:
                if not skip_unreadable:
                    raise
                continue
            out[i] = build(fp)
        return out

    def collect_garbage(self) -> dict[str, int]:
        """Remove files an interrupted writer left behind (never referenced ones)."""
        with self._lock():
            live = self.registry.all_segment_names()
            removed_segments = 0
            for name in self.modalities:
                d = self._index_dir(name)
                for p in d.glob("seg-*") if d.exists() else []:
                    if p.name not in live:
                        p.unlink(missing_ok=True)
                        removed_segments += 1
            referenced = self.registry.referenced_blobs()
            removed_blobs = self.blobs.collect(referenced)
            for store in self.features.values():
                removed_blobs += store.collect(referenced)
        return {"segments": removed_segments, "blobs": removed_blobs}

    # -- check -------------------------------------------------------------------
    def reader(self, modality: str) -> IndexReader:
        """The live segments, opened once per index generation: a long-lived
        process (a server, a batch check) does not re-map every file per check."""
        names = tuple(self.registry.live_segments(modality))
        cached = self._readers.get(modality)
        if cached is None or cached[0] != names:
            d = self._index_dir(modality)
            cached = self._readers[modality] = (names, IndexReader([Segment(d / n) for n in names]))
        return cached[1]

    def check(self, paths: Sequence[str | Path], *, base: Sequence[str | Path] = (),
              progress: Progress | None = None, media: bool = True, jobs: int = 1) -> Result:
        """``base``: template or starter code whose content never counts as copied.
        ``media=False`` skips the renderings an evidence report embeds (images):
        a decision alone (a TSV line, a service's allow/block) does not need them.
        ``jobs`` > 1 checks a large file list in that many spawned processes (same
        result); like any spawning library call, a script using it needs the
        ``if __name__ == "__main__":`` guard."""
        progress = progress or NullProgress()
        skipped: list[str] = []
        files = expand_paths(list(paths), self.settings, skipped)
        result = Result("check", self.parameters(), errors=skipped)
        progress.start(len(files), "checking")
        if jobs > 1 and len(files) >= check_pool.MIN_FILES and self._default_modalities:
            check_pool.check_in_pool(self.settings, files, base, media, min(jobs, len(files)), result, progress)
        else:
            self._check_files(result, files, self._base_fingerprints(base), media, progress)
        if media:       # evidence extras, like the renderings: a bare decision skips them
            result.provenance = self._provenance(sorted({m.work.work_id for m in result.matches if m.work}))
        progress.stop()
        return result

    def _check_files(self, result: Result, files: Sequence[FoundFile], base_fps: dict[str, list[Fingerprints]],
                     media: bool, progress: Progress | None = None) -> None:
        readers: dict[str, IndexReader] = {}       # opened on first use, once per call
        archives = ArchiveCache(self.settings)
        try:
            for f in files:
                try:
                    art = read_found(f, self.settings, archives)
                except CopyscopeError as exc:
                    result.errors.append(exc.message)
                else:
                    self._check_artifact(result, art, f.relative, base_fps, readers, media)
                if progress is not None:
                    progress.advance(1)
        finally:
            archives.close()

    def check_artifacts(self, artifacts: Sequence[Artifact], *, media: bool = False) -> Result:
        """``check`` for content already in memory (an upload to the service):
        ``artifact.origin`` is the name the matches and the bundle show."""
        readers: dict[str, IndexReader] = {}
        result = Result("check", self.parameters())
        for art in artifacts:
            self._check_artifact(result, art, art.origin, {}, readers, media)
        if media:
            result.provenance = self._provenance(sorted({m.work.work_id for m in result.matches if m.work}))
        return result

    def _check_artifact(self, result: Result, art: Artifact, relative: str,
                        base_fps: dict[str, list[Fingerprints]], readers: dict[str, IndexReader],
                        media: bool) -> None:
        try:
            modality, fp = fingerprint(self.modalities, art)
        except CopyscopeError as exc:
            result.errors.append(exc.message)
            return
        result.inputs.append(_input_record("query", fp))
        # Generated, minified and vendored files are checked too (vendored code is
        # where licensed foreign code legitimately lives) but reported apart.
        found = triage_reason(relative, art.data, source=getattr(modality, "source_code", False))
        kind = found[0] if found and found[0] != "binary" else None
        if kind:
            result.triaged.append({"path": relative, "kind": kind, "reason": found[1]})
        if base_fps.get(modality.name) and hasattr(modality, "without_base"):
            fp = modality.without_base(fp, base_fps[modality.name])
        if modality.name not in readers:       # a service check: one modality's segments looked up, not all
            readers[modality.name] = self.reader(modality.name)
        for match, ref in self.check_one(modality, fp, readers[modality.name], media=media):
            if kind:
                match = replace(match, extra={**match.extra, "triage": kind})
            result.matches.append(match)
            result.inputs.append(_input_record("registered", ref, match.work.work_id if match.work else None,
                                               path=match.registered_path))

    def _provenance(self, work_ids: list[str], limit: int = 200) -> dict[str, dict]:
        """How each matched work came to be, for the evidence: its creation record
        (prompts, parameters, drafts with times) and what the ledger witnessed
        (registration, drafts logged as they were made), each entry with its
        ledger index so its receipt can be exported and verified offline."""
        out: dict[str, dict] = {}
        for wid in work_ids[:limit]:
            record, record_sha = self.registry.work_record(wid)
            history = []
            for index, body in self.ledger.history(wid):
                content = body.get("content") or {}
                history.append({k: v for k, v in (
                    ("index", index), ("kind", body.get("kind")), ("time", body.get("time")),
                    ("sha256", content.get("sha256")), ("media_type", content.get("media_type")),
                    ("note", body.get("note"))) if v is not None})
            if record is None and len(history) <= 1:
                out[wid] = {"ledger": history}
            else:
                out[wid] = {"record_sha256": record_sha, "record": record, "ledger": history}
        return out

    def _base_fingerprints(self, base: Sequence[str | Path]) -> dict[str, list[Fingerprints]]:
        out: dict[str, list[Fingerprints]] = {}
        for f in expand_paths(list(base), self.settings) if base else []:
            try:
                modality, fp = fingerprint(self.modalities, read_found(f, self.settings))
            except CopyscopeError:
                continue                  # base files that cannot be used exclude nothing
            out.setdefault(modality.name, []).append(fp)
        return out

    def check_one(self, modality: Modality, fp: Fingerprints,
                  reader: IndexReader, *, media: bool = True) -> Iterator[tuple[Match, Fingerprints]]:
        params = modality.parameters()
        max_df = max(100, int(0.02 * reader.n_docs))
        limit = min(self.settings.candidate_limit, int(params.get("candidate_limit", self.settings.candidate_limit)))
        pool = int(params.get("rerank_pool", 0)) if hasattr(modality, "rerank") else 0
        min_shared = int(params.get("min_shared_keys", 0))
        keys = fp.query_keys()

        def lookup() -> Candidates:
            return reader.candidates(keys, common_df=params.get("common_df", 3), max_df=max_df,
                                     limit=max(limit, pool), count_shared=min_shared > 1)
        near: list[int] | None = None
        codes: tuple[np.ndarray, np.ndarray] | None = None
        if hasattr(modality, "global_codes"):
            # Second candidate source: nearest global descriptors by Hamming distance
            # (what survives blur, re-drawing and recolouring but leaves few keypoints),
            # scanned on the helper thread while this one looks the keys up.
            codes = self._global_codes(modality, reader, params)
            cands, near = both(lookup, lambda: self._hamming_candidates(modality, fp, codes, params))
        else:
            cands = lookup()
        # Candidates that cannot score, dropped before paying for re-analysis:
        # indexed keys barely present (code, whose score is a containment), or
        # fewer shared indexed keys than a reportable passage carries (text).
        keep = cands.containment >= float(params.get("min_candidate_containment", 0.0))
        if min_shared > 1:
            keep &= cands.shared >= min_shared
        doc_ids = cands.doc_ids[keep].tolist()
        rest = doc_ids[limit:] if pool else []
        doc_ids = doc_ids[:limit] if pool else doc_ids
        head = len(doc_ids)                   # the index's own top; re-ranked ones follow it
        if near is not None:
            seen = set(doc_ids)
            doc_ids += [i for i in near if i not in seen]
        if not doc_ids and not rest:
            return
        shas = self.registry.artifact_sha256(doc_ids + rest)
        if rest:
            # The index ranks by chance-prone key collisions; the modality re-ranks
            # the pool by a real comparison and the best few are verified too.
            doc_ids[head:head] = self._reranked(modality, fp, [i for i in rest if i in shas and i not in doc_ids],
                                                  shas, params)
        works = self.registry.works_for_artifacts(doc_ids)
        refs = [(doc_id, self._ref_fingerprints(modality, shas[doc_id], self._origin(works, doc_id, shas)))
                for doc_id in doc_ids if doc_id in shas]
        if codes is not None and hasattr(modality, "adopt_codes") and refs:
            # The registry's codes are at hand: features stored before a code
            # existed need not compute it again (gc --compact wrote it there).
            ids, table = codes
            rows = np.minimum(np.searchsorted(ids, [d for d, _ in refs]), max(0, ids.shape[0] - 1))
            for (doc_id, ref), row in zip(refs, rows.tolist()):
                if ids.shape[0] and ids[row] == doc_id:
                    modality.adopt_codes(ref, table[row])
        threshold = self.threshold(modality, params)
        if hasattr(fp, "report_floor"):
            fp.report_floor = threshold         # scores under it are not reported: need not be exact
        stats = self._cached_stats(reader) if getattr(modality, "needs_stats", True) else None
        if hasattr(modality, "batch_scores") and refs:
            # Cheap scores first; only pairs that can pass are aligned for evidence.
            scores = modality.batch_scores([fp], [r for _, r in refs])[0]
            refs = [pair for pair, score in zip(refs, scores.tolist()) if score >= threshold]
        prefetch = getattr(modality, "prefetch", None)
        with prefetch(fp, [r for _, r in refs]) if prefetch is not None else contextlib.nullcontext():
            verified = [(match, doc_id, ref) for doc_id, ref in refs
                        if (match := modality.verify(fp, ref, stats)) is not None and match.score >= threshold]
        if hasattr(modality, "explain_away") and len(verified) > 1:
            # Registered variants of one picture all match its copy: the
            # modality weighs each match against the stronger ones.
            weighed = modality.explain_away([m for m, _, _ in verified])
            verified = [(m, doc_id, ref) for m, (_, doc_id, ref) in zip(weighed, verified) if m.score >= threshold]
        for match, doc_id, ref in verified:
            if media and hasattr(modality, "evidence_media"):
                match = modality.evidence_media(match, fp, ref)
            for work in works.get(doc_id, []):
                yield replace(match, work=work, registered_path=work.path, verdict="copy"), ref

    def _reranked(self, modality: Modality, fp: Fingerprints, pool: list[int], shas: dict[int, str],
                  params: dict[str, Any]) -> list[int]:
        """The ``rerank_keep`` best of ``pool`` by the modality's support, read from
        the sketch store (the feature store where a row is missing or stale)."""
        if not pool:
            return []
        rows = self.sketches[modality.name].get_many({i: shas[i] for i in pool}) if modality.name in self.sketches else {}
        missing = [i for i in pool if i not in rows]
        if missing:
            # A workspace from before sketches, or a row lost to a crash: read the
            # feature file and write the row back (an idempotent hint, so no lock).
            rows.update(self._sketch_rows(modality, missing, shas))
            if modality.name in self.sketches:
                self.sketches[modality.name].put_many([(i, shas[i], rows[i]) for i in missing], sync=False,
                                                      best_effort=True)
        support = modality.rerank(fp, [rows[i] for i in pool])
        least = max(1, int(params.get("rerank_min_support", 1)))
        best = np.argsort(-support, kind="stable")[:int(params.get("rerank_keep", 0))]
        return [pool[i] for i in best.tolist() if support[i] >= least]

    @staticmethod
    def _origin(works: dict, doc_id: int, shas: dict[int, str]) -> str:
        """A registered artifact's path (the plugin sniffs formats by extension
        exactly as at registration), else its hash."""
        paths = [w.path for w in works.get(doc_id, [])]
        return paths[0] if paths else shas[doc_id]

    def _global_codes(self, modality: Modality, reader: IndexReader,
                      params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Every registered artifact's id and global codes, memoised per index
        generation (read from the registry, so on the calling thread)."""
        generation = tuple(str(s.path) for s in reader.segments)
        cached = self._codes_cache.get(modality.name)
        if cached is None or cached[0] != generation:
            ids, codes = self.registry.global_codes(modality.name, int(params["code_width"]))
            codes = np.asfortranarray(codes)      # column-major: each code column is scanned alone
            cached = self._codes_cache[modality.name] = (generation, ids, codes)
        return cached[1], cached[2]

    @staticmethod
    def _hamming_candidates(modality: Modality, fp: Fingerprints, id_codes: tuple[np.ndarray, np.ndarray],
                            params: dict[str, Any]) -> list[int]:
        """Brute-force Hamming scan over every registered global code: 24 bytes an
        image, a few milliseconds at 100,000 images, exact (no recall lost to an
        approximate index)."""
        ids, codes = id_codes
        if ids.shape[0] == 0:
            return []
        dist = np.atleast_2d(modality.code_distances(fp, codes))
        # Each row is one view of the query (the whole, its layout, each inset)
        # with its own few candidates, so no view crowds out another's.
        limits = modality.code_row_limits(fp) if hasattr(modality, "code_row_limits") else \
            [(params["hash_candidates"], params["max_hash_distance"])]
        out: list[int] = []
        for row, d in enumerate(dist):
            limit, within = limits[row] if row < len(limits) else (0, -1)
            k = min(int(limit), d.shape[0])
            if k <= 0:
                continue
            near = np.argpartition(d, k - 1)[:k]
            near = near[d[near] <= int(within)]
            out += [i for i in ids[near[np.argsort(d[near], kind="stable")]].tolist() if i not in out]
        return out

    def _cached_stats(self, reader: IndexReader) -> CachedStats:
        """Corpus statistics memoised per index generation (the live segment set):
        a registration in between makes a new generation, so nothing goes stale."""
        generation = tuple(str(s.path) for s in reader.segments)
        if self._stats_cache is None or self._stats_cache[0] != generation:
            self._stats_cache = (generation, CachedStats(reader))
        else:
            self._stats_cache[1].inner = reader     # same files; the newest mmaps
        return self._stats_cache[1]

    def threshold(self, modality: Modality, params: dict[str, Any] | None = None) -> float:
        """``params``: the modality's parameters when the caller already has them."""
        if self.settings.threshold is not None:
            return self.settings.threshold
        return float((params if params is not None else modality.parameters()).get("threshold", 0.5))

    def _ref_fingerprints(self, modality: Modality, sha256: str, origin: str) -> Fingerprints:
        """Re-analyse a registered blob; ``origin`` (its registered path) lets the
        plugin sniff the format by extension exactly as at registration."""
        cached = self._ref_cache.get(sha256)
        if cached is not None:
            self._ref_cache.move_to_end(sha256)
            return cached
        art = StoredArtifact(functools.partial(self.blobs.get, sha256), origin=origin, sha256=sha256)
        store = self.features.get(modality.name)
        fp = None
        if store is not None:
            try:
                fp = modality.loads(store.get(sha256), art)
            except (StorageError, ValueError, KeyError, OSError):
                fp = None                 # missing, damaged or outdated: analyse the blob again
        if fp is None:
            fp = modality.fingerprint(art)
            if store is not None:         # and heal the store (a workspace from before code features)
                store.rewrite(sha256, modality.dumps(fp))
        self._ref_cache[sha256] = fp
        if len(self._ref_cache) > 256:
            self._ref_cache.popitem(last=False)
        return fp

    def parameters(self) -> dict[str, Any]:
        params = {name: m.parameters() for name, m in sorted(self.modalities.items())}
        if self.settings.threshold is not None:
            for p in params.values():
                p["threshold"] = self.settings.threshold
        return params

    def works(self, limit: int | None = None):  # noqa: ANN201
        return self.registry.list_works(limit)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"home": str(self.home), "works": self.registry.work_count()}
        for name in self.modalities:
            out[name] = {"artifacts": self.registry.artifact_count(name),
                         "segments": len(self.registry.live_segments(name))}
        return out


def _input_record(role: str, fp: Fingerprints, work_id: str | None = None, *, path: str | None = None) -> InputRecord:
    art = fp.artifact
    return InputRecord(role, path or art.origin, art.sha256, art.size,
                       getattr(fp, "media_type", art.media_type),
                       getattr(getattr(fp, "decoded", None), "encoding", None), work_id)


def _batches(specs: list[WorkSpec], size: int) -> Iterator[list[WorkSpec]]:
    batch: list[WorkSpec] = []
    count = 0
    for spec in specs:
        if batch and count + len(spec.files) > size:
            yield batch
            batch, count = [], 0
        batch.append(spec)
        count += len(spec.files)
    if batch:
        yield batch


class _FileLock:
    """An exclusive advisory lock: one writer per workspace at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> "_FileLock":
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise WorkspaceError(f"cannot lock workspace {self.path.parent}: {exc.strerror}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
