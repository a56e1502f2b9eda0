"""Service tables (SQLAlchemy Core): tenants, API keys, protected sets, the audit
log and background jobs. They live in the service database (``home/service.db``
or the PostgreSQL database given with ``--db``); each tenant's works live in the
tenant's own registry (``copyscope.service.tenants``), so no query on a works
table can ever cross tenants.
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

tenants = sa.Table(
    "svc_tenants", metadata,
    sa.Column("id", sa.String(16), primary_key=True),              # t + 12 hex: also a path and schema name
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("unlisted_action", sa.String(8), nullable=False),     # flag | allow: matches outside any set
    sa.Column("created_at", sa.String(32), nullable=False),
)

api_keys = sa.Table(
    "svc_api_keys", metadata,
    sa.Column("id", sa.String(16), primary_key=True),               # k + 12 hex, the public part of a key
    sa.Column("tenant_id", sa.String(16), sa.ForeignKey("svc_tenants.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),           # SHA-256 of the whole key; the key is never stored
    sa.Column("scopes", sa.String(64), nullable=False),             # comma-separated: register,check,admin
    sa.Column("rate_per_s", sa.Float, nullable=False),
    sa.Column("burst", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("revoked_at", sa.String(32)),
)
sa.Index("ix_svc_api_keys_tenant", api_keys.c.tenant_id)

protected_sets = sa.Table(
    "svc_sets", metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("tenant_id", sa.String(16), sa.ForeignKey("svc_tenants.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("action", sa.String(8), nullable=False),              # block | flag
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.UniqueConstraint("tenant_id", "name", name="uq_svc_sets_name"),
)

set_members = sa.Table(
    "svc_set_members", metadata,
    sa.Column("set_id", sa.String(16), sa.ForeignKey("svc_sets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("work_id", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("set_id", "work_id"),
)
sa.Index("ix_svc_set_members_work", set_members.c.work_id)

audit_log = sa.Table(
    "svc_audit", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("check_id", sa.String(16), nullable=False, unique=True),
    sa.Column("tenant_id", sa.String(16), nullable=False),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("time", sa.String(32), nullable=False),
    sa.Column("input_sha256", sa.String(64), nullable=False),
    sa.Column("input_name", sa.Text, nullable=False),
    sa.Column("input_size", sa.BigInteger, nullable=False),
    sa.Column("decision", sa.String(8), nullable=False),            # allow | flag | block
    sa.Column("policy_json", sa.Text, nullable=False),
    sa.Column("matches_json", sa.Text, nullable=False),
    sa.Column("evidence", sa.Integer, nullable=False),              # 1: the query and bundle were kept for a report
)
sa.Index("ix_svc_audit_tenant_seq", audit_log.c.tenant_id, audit_log.c.seq)

jobs = sa.Table(
    "svc_jobs", metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("tenant_id", sa.String(16), nullable=False),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),               # register | check
    sa.Column("state", sa.String(16), nullable=False),              # queued | running | done | failed | cancelled
    sa.Column("params_json", sa.Text, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("cancel_requested", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)
sa.Index("ix_svc_jobs_tenant", jobs.c.tenant_id, jobs.c.created_at)
sa.Index("ix_svc_jobs_state", jobs.c.state)

job_items = sa.Table(
    "svc_job_items", metadata,
    sa.Column("job_id", sa.String(16), sa.ForeignKey("svc_jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),                     # the uploaded file name (made safe)
    sa.Column("staged", sa.Text, nullable=False),                   # where the upload waits, under the tenant home
    sa.Column("state", sa.String(8), nullable=False),               # pending | done | failed
    sa.Column("result", sa.Text),                                   # work id (register) or decision (check)
    sa.Column("error", sa.Text),
    sa.PrimaryKeyConstraint("job_id", "seq"),
)
