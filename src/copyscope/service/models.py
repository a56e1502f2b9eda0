"""Request and response shapes of the HTTP API (they make the OpenAPI spec)."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

Scope = Literal["register", "check", "admin"]


class ErrorOut(BaseModel):
    error: str = Field(description="one line, for a person")
    status: int
    detail: Optional[list[dict[str, Any]]] = Field(None, description="validation problems, field by field")


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class InputOut(BaseModel):
    name: str
    sha256: str
    size: int
    media_type: Optional[str] = None


class SetHit(BaseModel):
    set_id: str
    set: str
    action: Literal["block", "flag"]
    threshold: float


class MatchOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    work_id: str
    title: str
    owner: str
    license: str
    modality: str
    score: float = Field(description="calibrated score in [0, 1]")
    likelihood_ratio: Optional[float] = None
    coverage: dict[str, float]
    registered_path: str
    action: Literal["allow", "flag", "block"]
    sets: list[SetHit]
    report: Optional[str] = Field(None, description="URL of the HTML evidence report")


class CheckOut(BaseModel):
    input: InputOut
    check_id: Optional[str] = Field(None, description="the audit record's id")
    decision: Optional[Literal["allow", "flag", "block"]] = Field(None, description="null when the item could not be checked")
    error: Optional[str] = None
    policy: Optional[dict[str, Any]] = None
    matches: list[MatchOut] = []
    took_ms: Optional[float] = None
    total_ms: Optional[float] = None


class BatchOut(BaseModel):
    results: list[CheckOut]


class TextCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=8_000_000, description="the text or source code to check")
    name: str = Field("text.txt", max_length=255,
                      description="a file name: its extension picks the modality (e.g. .py for code)")
    sets: list[str] = Field([], max_length=100, description="only these protected sets apply")


class ReceiptOut(BaseModel):
    model_config = ConfigDict(extra="allow")


class RegisteredOut(BaseModel):
    work_id: str
    title: str
    name: str
    files: int
    ledger_index: int
    receipt: Optional[dict[str, Any]] = None


class RegisterOut(BaseModel):
    works: list[RegisteredOut]
    errors: list[str]
    warnings: list[str]


class WorkOut(BaseModel):
    work_id: str
    title: str
    owner: str
    license: str
    created_at: Optional[str] = None
    files: Optional[int] = None
    kind: Optional[str] = None


class WorkDetail(WorkOut):
    record: Optional[dict[str, Any]] = None
    record_sha256: Optional[str] = None
    sets: list[dict[str, Any]]
    receipts: list[dict[str, Any]]


class WorkList(BaseModel):
    total: int
    limit: int
    offset: int
    works: list[WorkOut]


class SetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    action: Literal["block", "flag"] = "block"
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    description: str = Field("", max_length=2000)
    work_ids: list[str] = Field([], max_length=100_000)


class SetPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Optional[Literal["block", "flag"]] = None
    threshold: Optional[float] = Field(None, ge=0.0, le=1.0)
    description: Optional[str] = Field(None, max_length=2000)
    add: list[str] = Field([], max_length=100_000)
    remove: list[str] = Field([], max_length=100_000)


class SetOut(BaseModel):
    id: str
    name: str
    description: str
    action: Literal["block", "flag"]
    threshold: float
    created_at: str
    work_ids: list[str]


class JobOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    kind: Literal["register", "check"]
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    total: int
    done: int
    failed: int
    pending: int
    cancel_requested: bool
    error: Optional[str] = None
    created_at: str
    updated_at: str


class AuditOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    seq: int
    check_id: str
    time: str
    key_id: str
    input: dict[str, Any]
    decision: Literal["allow", "flag", "block"]
    policy: dict[str, Any]
    matches: list[dict[str, Any]]
    evidence: bool


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    rate_per_s: Optional[float] = Field(None, gt=0, le=100_000)
    burst: Optional[int] = Field(None, ge=1, le=1_000_000)


class KeyOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    rate_per_s: float
    burst: int
    created_at: str
    revoked_at: Optional[str] = None


class NewKeyOut(KeyOut):
    key: str = Field(description="the secret: shown once, only its hash is kept")
