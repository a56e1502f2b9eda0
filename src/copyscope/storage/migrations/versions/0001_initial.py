"""initial registry: meta, artifacts, works, work_artifacts, index_segments

Revision ID: 0001_initial
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("modality", sa.String(32), nullable=False),
        sa.Column("encoding", sa.String(32)),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "works",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("work_id", sa.String(32), nullable=False, unique=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("license", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("root_path", sa.Text, nullable=False),
        sa.Column("record_json", sa.Text),
        sa.Column("record_sha256", sa.String(64)),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "work_artifacts",
        sa.Column("work_pk", sa.Integer, sa.ForeignKey("works.id", ondelete="CASCADE"), nullable=False),
        sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("work_pk", "artifact_id", "path"),
    )
    op.create_index("ix_work_artifacts_artifact", "work_artifacts", ["artifact_id"])
    op.create_table(
        "index_segments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("modality", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("n_docs", sa.Integer, nullable=False),
        sa.Column("n_postings", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for name in ("index_segments", "work_artifacts", "works", "artifacts", "meta"):
        op.drop_table(name)
