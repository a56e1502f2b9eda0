"""artifacts.codes: compact global descriptors (images) for the Hamming scan

Revision ID: 0003_artifact_codes
Revises: 0002_ledger
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_artifact_codes"
down_revision = "0002_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.add_column(sa.Column("codes", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_column("codes")
