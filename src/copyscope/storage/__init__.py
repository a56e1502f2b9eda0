"""Storage behind narrow role interfaces.

Callers depend on the roles (``WorkStore``, ``ArtifactStore``, ``SegmentStore``),
not on SQL. :class:`~copyscope.storage.registry.SqlRegistry` implements all of
them with SQLAlchemy Core, on SQLite (default) or PostgreSQL.
"""
from __future__ import annotations

from typing import Protocol, Sequence

from copyscope.model import WorkInfo


class ArtifactStore(Protocol):
    def artifact_ids(self, sha256s: Sequence[str]) -> dict[str, int]: ...
    def artifact_sha256(self, artifact_ids: Sequence[int]) -> dict[int, str]: ...
    def artifact_shas(self, modality: str) -> list[tuple[int, str]]: ...
    def artifact_count(self, modality: str) -> int: ...


class WorkStore(Protocol):
    def works_for_artifacts(self, artifact_ids: Sequence[int]) -> dict[int, list[WorkInfo]]: ...
    def list_works(self, limit: int | None = None) -> list[WorkInfo]: ...


class SegmentStore(Protocol):
    def live_segments(self, modality: str) -> list[str]: ...
