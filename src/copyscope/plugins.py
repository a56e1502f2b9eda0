"""Modality plugins: the interface, and loading them from entry points.

Built-in modalities register exactly as a third-party one would, in the
``copyscope.modalities`` entry-point group (see pyproject.toml). Loading is
explicit (``load_modalities()``), never at import time.
"""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import numpy as np

from copyscope.errors import InputError, PluginError
from copyscope.model import Artifact, Match
from copyscope.stats import CorpusStats

GROUP = "copyscope.modalities"


@runtime_checkable
class Fingerprints(Protocol):
    """A modality's analysis of one artifact; keys are uint64 and deterministic."""

    modality: str
    artifact: Artifact

    def index_keys(self) -> np.ndarray: ...   # stored in the index with postings
    def query_keys(self) -> np.ndarray: ...   # looked up when this artifact is a query
    def stat_keys(self) -> np.ndarray: ...    # counted per document, for rarity
    def is_empty(self) -> bool: ...


@runtime_checkable
class Modality(Protocol):
    name: str
    version: str

    def accepts(self, artifact: Artifact) -> bool: ...
    def fingerprint(self, artifact: Artifact) -> Fingerprints: ...
    def verify(self, query: Any, ref: Any, stats: CorpusStats | None = None) -> Match | None: ...
    def parameters(self) -> dict[str, Any]: ...


_PARAMS: dict[int, tuple[Any, dict[str, Any]]] = {}


def params_dict(algorithm: str, params: Any) -> dict[str, Any]:
    """``{"algorithm": ..., **asdict(params)}`` for a modality's frozen parameters,
    computed once per parameters object: every check reports them, and
    ``asdict`` cost a text check a tenth of its time. A fresh (shallow) copy
    each call, so a caller may set keys on it."""
    hit = _PARAMS.get(id(params))
    if hit is None or hit[0] is not params:      # (each modality builds its own parameters object)
        from dataclasses import asdict  # noqa: PLC0415
        if len(_PARAMS) > 256:          # parameters built in a loop (tests): keep the cache small
            _PARAMS.clear()
        # The object is kept in the entry, so its id cannot be reused while cached.
        hit = _PARAMS[id(params)] = (params, {"algorithm": algorithm, **asdict(params)})
    return dict(hit[1])


def load_modalities(settings: Any = None) -> dict[str, Modality]:
    """Instantiate every installed modality; names must be unique. A plugin with
    a ``configure(settings)`` method gets the settings (e.g. a local model path)."""
    found: dict[str, Modality] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.name, e.value)):
        try:
            plugin = ep.load()()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must name itself
            raise PluginError(f"modality plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        if not isinstance(plugin, Modality):
            raise PluginError(f"modality plugin {ep.name!r} does not implement the Modality interface")
        if plugin.name in found:
            raise PluginError(f"two modality plugins are named {plugin.name!r}")
        if settings is not None and hasattr(plugin, "configure"):
            plugin.configure(settings)
        found[plugin.name] = plugin
    if not found:
        raise PluginError("no modality plugins are installed", hint="run `pip install -e .` in the repo")
    return found


def pick_modality(modalities: dict[str, Modality], artifact: Artifact) -> Modality:
    for m in modalities.values():
        if m.accepts(artifact):
            return m
    raise InputError(f"{artifact.origin}: no modality accepts this file (binary or unsupported)")


def fingerprint(modalities: dict[str, Modality], artifact: Artifact) -> tuple[Modality, Fingerprints]:
    modality = pick_modality(modalities, artifact)
    fp = modality.fingerprint(artifact)
    if fp.is_empty():
        raise InputError(f"{artifact.origin}: nothing to fingerprint (no words or characters)")
    return modality, fp
