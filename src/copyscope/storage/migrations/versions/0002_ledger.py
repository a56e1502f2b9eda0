"""ledger: entries, complete-subtree nodes, signed checkpoints, private openings

Revision ID: 0002_ledger
Revises: 0001_initial
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_ledger"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("gen", sa.Integer, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("work_id", sa.String(32)),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("gen", "idx"),
    )
    op.create_index("ix_ledger_entries_work", "ledger_entries", ["work_id"])
    op.create_table(
        "ledger_nodes",
        sa.Column("gen", sa.Integer, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("gen", "level", "idx"),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("gen", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("timestamp_token", sa.Text),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("gen", "size"),
    )
    op.create_table(
        "ledger_openings",
        sa.Column("gen", sa.Integer, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("opening", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("gen", "idx"),
    )


def downgrade() -> None:
    for name in ("ledger_openings", "ledger_checkpoints", "ledger_nodes", "ledger_entries"):
        op.drop_table(name)
