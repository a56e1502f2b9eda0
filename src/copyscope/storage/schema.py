"""Registry tables (SQLAlchemy 2 Core). Alembic migrations create them.

The same tables serve SQLite (embedded default, WAL) and PostgreSQL (server).
Artifact ids double as document ids in index segments, so they are integers.
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

meta = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

artifacts = sa.Table(
    "artifacts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("media_type", sa.String(128), nullable=False),
    sa.Column("modality", sa.String(32), nullable=False),
    sa.Column("encoding", sa.String(32)),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("codes", sa.LargeBinary),      # fixed-width uint64 global descriptors (images), for the Hamming scan
)

works = sa.Table(
    "works", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("work_id", sa.String(32), nullable=False, unique=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("license", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),          # "file" | "directory"
    sa.Column("root_path", sa.Text, nullable=False),
    sa.Column("record_json", sa.Text),
    sa.Column("record_sha256", sa.String(64)),
    sa.Column("created_at", sa.String(32), nullable=False),
)

work_artifacts = sa.Table(
    "work_artifacts", metadata,
    sa.Column("work_pk", sa.Integer, sa.ForeignKey("works.id", ondelete="CASCADE"), nullable=False),
    sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("work_pk", "artifact_id", "path"),
)
sa.Index("ix_work_artifacts_artifact", work_artifacts.c.artifact_id)

index_segments = sa.Table(
    "index_segments", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("modality", sa.String(32), nullable=False),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("n_docs", sa.Integer, nullable=False),
    sa.Column("n_postings", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

# -- ledger (RFC 9162 log per key generation) -------------------------------------
ledger_entries = sa.Table(
    "ledger_entries", metadata,
    sa.Column("gen", sa.Integer, nullable=False),
    sa.Column("idx", sa.BigInteger, nullable=False),
    sa.Column("leaf", sa.LargeBinary, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("work_id", sa.String(32)),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("gen", "idx"),
)
sa.Index("ix_ledger_entries_work", ledger_entries.c.work_id)

ledger_nodes = sa.Table(
    "ledger_nodes", metadata,
    sa.Column("gen", sa.Integer, nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("idx", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
    sa.PrimaryKeyConstraint("gen", "level", "idx"),
)

ledger_checkpoints = sa.Table(
    "ledger_checkpoints", metadata,
    sa.Column("gen", sa.Integer, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("timestamp_token", sa.Text),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("gen", "size"),
)

ledger_openings = sa.Table(
    "ledger_openings", metadata,
    sa.Column("gen", sa.Integer, nullable=False),
    sa.Column("idx", sa.BigInteger, nullable=False),
    sa.Column("opening", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("gen", "idx"),
)
