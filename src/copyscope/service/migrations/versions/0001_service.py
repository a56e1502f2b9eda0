"""service tables: tenants, API keys, protected sets, audit log, jobs

Revision ID: svc_0001
Revises:
"""
from alembic import op

from copyscope.service import schema as s

revision = "svc_0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = [s.tenants, s.api_keys, s.protected_sets, s.set_members, s.audit_log, s.jobs, s.job_items]


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:        # the 0001 shape is the schema module's; later changes get their own revision
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind, checkfirst=True)
