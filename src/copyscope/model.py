"""The nouns of copyscope: artifacts, works, spans, passages, matches.

Everything here is plain data. Algorithms live in the modality plugins, storage
in ``copyscope.storage``; both exchange these types.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Artifact:
    """One blob of content: identity is its SHA-256."""

    data: bytes
    origin: str                 # path, archive member or repo file as the user named it
    media_type: str = "application/octet-stream"
    sha256: str = ""

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def size(self) -> int:
        return len(self.data)


class StoredArtifact(Artifact):
    """A registered blob whose bytes are read from the workspace only when
    something needs them: an image candidate is decided from its stored
    features, and reading and re-hashing every candidate's file cost ~4 ms a
    query at 100,000 images. ``load`` verifies the blob as it reads it."""

    def __init__(self, load: Callable[[], bytes], origin: str, sha256: str,
                 media_type: str = "application/octet-stream") -> None:
        object.__setattr__(self, "_load", load)
        object.__setattr__(self, "_data", None)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "media_type", media_type)
        object.__setattr__(self, "sha256", sha256)

    @property
    def data(self) -> bytes:  # type: ignore[override]
        if self._data is None:
            object.__setattr__(self, "_data", self._load())
        return self._data


SIDE_CHANNELS = (("identifiers", "identifier spellings"), ("constants", "unusual constants"),
                 ("typos", "misspellings (possible typos)"))
"""The channels of a code match's ``extra["side_channels"]`` (built by
``copyscope.code.side_channels``), in the order and words output shows them."""
SIDE_CHANNEL_ITEMS = 50     # items per channel and match: evidence for a person, not a dump


@dataclass(frozen=True)
class WorkInfo:
    """What the registry knows about a registered work (for match output)."""

    work_id: str
    title: str
    owner: str
    license: str
    path: str


@dataclass(frozen=True)
class Span:
    """A located region of one side of a match.

    ``start``/``end`` are character offsets into the decoded document, ``byte_*``
    offsets into the original file bytes, lines are 1-based and inclusive.
    ``matched`` lists exact-match ranges relative to ``text``.
    """

    start: int
    end: int
    byte_start: int
    byte_end: int
    line_start: int
    line_end: int
    text: str
    matched: tuple[tuple[int, int], ...] = ()
    before: str = ""
    after: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start, "end": self.end,
            "byte_start": self.byte_start, "byte_end": self.byte_end,
            "line_start": self.line_start, "line_end": self.line_end,
            "text": self.text, "matched": [list(m) for m in self.matched],
            "before": self.before, "after": self.after,
        }


@dataclass(frozen=True)
class Passage:
    """A pair of aligned spans: this part of the query copies that part of the work."""

    query: Span
    registered: Span
    stream: str
    tokens: int
    rarity: float

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "tokens": self.tokens, "rarity": round(self.rarity, 4),
                "query": self.query.to_json(), "registered": self.registered.to_json()}


@dataclass(frozen=True)
class Match:
    """A verified (query, registered) pair. A score is not proof: passages are."""

    modality: str
    algorithm: str
    score: float
    verdict: str                                    # "copy" | "below-threshold"
    coverage_registered: float
    coverage_query: float
    signals: dict[str, float | None]
    passages: tuple[Passage, ...] = ()
    query_sha256: str = ""
    registered_sha256: str = ""
    query_path: str = ""
    registered_path: str = ""
    work: WorkInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        reg: dict[str, Any] = {"path": self.registered_path, "sha256": self.registered_sha256}
        if self.work is not None:
            reg.update(work_id=self.work.work_id, title=self.work.title,
                       owner=self.work.owner, license=self.work.license)
        return {
            "modality": self.modality, "algorithm": self.algorithm,
            "query": {"path": self.query_path, "sha256": self.query_sha256},
            "registered": reg,
            "score": round(self.score, 4), "verdict": self.verdict,
            "coverage": {"registered": round(self.coverage_registered, 4),
                         "query": round(self.coverage_query, 4)},
            "signals": {k: (None if v is None else round(v, 4)) for k, v in sorted(self.signals.items())},
            "passages": [p.to_json() for p in self.passages],
            **({"extra": self.extra} if self.extra else {}),
        }
