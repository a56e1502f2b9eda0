"""API keys: ``cs_<key id>_<secret>``, sent as ``Authorization: Bearer …`` or
``X-API-Key``. Only the SHA-256 of a key is stored; lookups go by the key id and
the hash is compared in constant time.

A verified key is remembered for ``CACHE_S`` seconds, so revoking a key takes
effect within that time; rate limits are per key, a token bucket per process.
"""
from __future__ import annotations

import hmac
import re
import threading
import time
from dataclasses import dataclass

from copyscope.service.store import ApiKey, ServiceStore, hash_key

CACHE_S = 5.0
KEY_RE = re.compile(r"^cs_(k[0-9a-f]{12})_[A-Za-z0-9_-]{16,64}$")


class AuthError(Exception):
    """401 (no or bad key), 403 (scope) or 429 (rate): ``status`` says which."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    key_id: str
    scopes: tuple[str, ...]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class Authenticator:
    def __init__(self, store: ServiceStore, clock=time.monotonic) -> None:  # noqa: ANN001
        self.store = store
        self.clock = clock
        self._cache: dict[str, tuple[float, ApiKey]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}      # key id → (tokens, last refill)
        self._lock = threading.Lock()

    def authenticate(self, secret: str | None, scope: str) -> Principal:
        if not secret:
            raise AuthError(401, "an API key is required (Authorization: Bearer <key> or X-API-Key)")
        key = self._verified(secret.strip())
        principal = Principal(key.tenant_id, key.id, key.scopes)
        if scope != "any" and not principal.allows(scope):
            raise AuthError(403, f"this key lacks the {scope!r} scope (it has: {', '.join(key.scopes)})")
        self._take(key)
        return principal

    def remembers(self, secret: str | None) -> bool:
        """Whether ``authenticate`` would answer from memory, without the store."""
        if not secret:
            return True                      # refused without a lookup
        with self._lock:
            hit = self._cache.get(hash_key(secret.strip()))
        return bool(hit) and self.clock() - hit[0] < CACHE_S

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._cache = {h: v for h, v in self._cache.items() if v[1].id != key_id}

    def _verified(self, secret: str) -> ApiKey:
        digest = hash_key(secret)
        now = self.clock()
        with self._lock:
            hit = self._cache.get(digest)
        if hit and now - hit[0] < CACHE_S:
            return hit[1]
        m = KEY_RE.match(secret)
        key = self.store.key(m.group(1)) if m else None
        if key is None or key.revoked_at or not hmac.compare_digest(key.key_hash, digest):
            raise AuthError(401, "invalid or revoked API key")
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, key)
        return key

    def _take(self, key: ApiKey) -> None:
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key.id, (float(key.burst), now))
            tokens = min(float(key.burst), tokens + (now - last) * key.rate_per_s)
            if tokens < 1.0:
                self._buckets[key.id] = (tokens, now)
                raise AuthError(429, f"rate limit of {key.rate_per_s:g} requests/s exceeded for this key",
                                retry_after=(1.0 - tokens) / key.rate_per_s)
            self._buckets[key.id] = (tokens - 1.0, now)
