"""Settings, passed explicitly: nothing reads the environment except ``Settings.resolve``."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

MiB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    home: Path
    max_file_bytes: int = 64 * MiB        # larger inputs are refused (LimitError), never half-read
    max_files: int = 1_000_000            # files per command line / directory walk
    max_depth: int = 64                   # directory nesting followed
    max_archive_bytes: int = 512 * MiB    # uncompressed bytes read from one archive (zip bombs stop here)
    batch_size: int = 256                 # files per registration transaction
    candidate_limit: int = 25             # registered docs verified per query, per ranking (hits, containment)
    threshold: float | None = None        # override the modality's default decision threshold
    db_url: str | None = None             # default: SQLite file inside home
    db_schema: str | None = None          # PostgreSQL schema of this registry (one per tenant); SQLite: None
    passphrase: str | None = field(default=None, repr=False)   # encrypts the ledger keys (PKCS#8)
    tsa_url: str | None = None            # RFC 3161 timestamp authority for checkpoints (optional)
    image_model: Path | None = None       # local ONNX image encoder for semantic matching (optional)

    @classmethod
    def resolve(cls, home: str | Path | None = None, **overrides) -> "Settings":
        """``--home``, else ``$COPYSCOPE_HOME``, else ``~/.copyscope``; the ledger key
        passphrase from ``$COPYSCOPE_PASSPHRASE`` when set."""
        chosen = home or os.environ.get("COPYSCOPE_HOME") or Path.home() / ".copyscope"
        overrides.setdefault("passphrase", os.environ.get("COPYSCOPE_PASSPHRASE") or None)
        overrides.setdefault("tsa_url", os.environ.get("COPYSCOPE_TSA_URL") or None)
        model = overrides.get("image_model") or os.environ.get("COPYSCOPE_IMAGE_MODEL")
        overrides["image_model"] = Path(model).expanduser() if model else None
        return cls(home=Path(chosen).expanduser(), **overrides)

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'registry.db'}"
