"""Optional RFC 3161 trusted timestamps for transparency-log checkpoints.

When a Time-Stamping Authority URL is configured, a checkpoint (C2SP
tlog-checkpoint text, as bytes) can be sent to it; the TSA signs a statement
"these bytes' hash existed at time T". :func:`request_timestamp` fetches such a
token, :func:`verify_timestamp` checks it later, offline.

What is stored is the DER ``TimeStampToken`` (the CMS ``ContentInfo`` holding the
signed ``TSTInfo``), not the whole ``TimeStampResp``: the token is the signed part
and carries everything a verifier needs (genTime, imprint, signature, the TSA's
certificate). The response's ``PKIStatusInfo`` wrapper is unsigned transport data
that, for a token we keep, only ever says "granted". A bare token is also what other
tools take (``openssl ts -verify -token_in``, RFC 5544 containers). Because
``rfc3161-client`` parses only responses, verification wraps the token back into a
minimal granted ``TimeStampResp`` first.

ASN.1 parsing, the request encoding and the CMS signature/chain check are done by
``rfc3161-client`` (OpenSSL's PKCS7_verify underneath); the HTTP exchange is urllib.
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import http.client
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from copyscope.errors import CopyscopeError, InputError

__all__ = ["TimestampError", "TimestampToken", "request_timestamp", "verify_timestamp"]

MAX_RESPONSE_BYTES = 1024 * 1024     # a real TimeStampResp is a few KiB
REQUEST_CONTENT_TYPE = "application/timestamp-query"

_REQUEST_HASHES = {"sha256": HashAlgorithm.SHA256, "sha512": HashAlgorithm.SHA512}
# message-imprint algorithms a token may use, by OID
_IMPRINT_HASHES = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}

T = TypeVar("T")


class TimestampError(CopyscopeError):
    """A timestamp could not be obtained from the TSA, or does not verify."""

    exit_code = 6


@dataclass(frozen=True)
class TimestampToken:
    token: bytes        # DER TimeStampToken (CMS ContentInfo / SignedData over TSTInfo)
    tsa_url: str
    gen_time: str       # RFC 3339 UTC, copied from the token's TSTInfo.genTime

    def to_json(self) -> dict:
        return {
            "tsa_url": self.tsa_url,
            "gen_time": self.gen_time,
            "token_b64": base64.b64encode(self.token).decode("ascii"),
        }

    @classmethod
    def from_json(cls, d: Any) -> "TimestampToken":
        if not isinstance(d, dict):
            raise InputError(f"timestamp record must be a JSON object, not {type(d).__name__}")
        for key in ("tsa_url", "gen_time", "token_b64"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise InputError(f"timestamp record needs a non-empty string {key!r}")
        try:
            token = base64.b64decode(d["token_b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"timestamp record: token_b64 is not valid base64 ({exc})") from None
        return cls(token=token, tsa_url=d["tsa_url"], gen_time=d["gen_time"])


# --- requesting -----------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would turn into a body-less GET: surface the 3xx instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


def request_timestamp(data: bytes, url: str, *, timeout: float = 10.0,
                      hash_alg: str = "sha256") -> TimestampToken:
    """Ask the TSA at ``url`` to timestamp ``data``; return the checked token.

    The request carries a fresh random nonce and ``certReq=TRUE``. The answer must be
    status *granted* (0), and its TSTInfo must echo the nonce and the imprint
    ``hash_alg(data)`` and embed the TSA certificate. ``timeout`` (seconds) bounds
    each wait on the socket (connect, answer, every read), and reading stops with an
    error once it has elapsed overall; the answer is capped at MAX_RESPONSE_BYTES.
    The token's signature is not checked here (that needs trusted roots): call
    :func:`verify_timestamp`.
    """
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise InputError("timestamp: data must be non-empty bytes")
    if hash_alg not in _REQUEST_HASHES:
        raise InputError(f"timestamp: unsupported hash_alg {hash_alg!r} (use sha256 or sha512)")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InputError(f"timestamp: timeout must be positive, not {timeout!r}")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InputError(f"timestamp: TSA URL must be http:// or https://, not {url!r}")
    data = bytes(data)

    req = (TimestampRequestBuilder().data(data).hash_algorithm(_REQUEST_HASHES[hash_alg])
           .nonce(nonce=True).cert_request(cert_request=True).build())
    nonce = req.nonce
    body = _post(url, req.as_bytes(), timeout)

    resp = _lib(lambda: decode_timestamp_response(body),
                f"TSA {url} sent a malformed TimeStampResp")
    status = resp.status
    if status != PKIStatus.GRANTED:
        texts = "; ".join(_lib(lambda: resp.status_string, f"TSA {url} sent a malformed PKIStatusInfo"))
        detail = f": {texts!r}" if texts else ""
        if status == PKIStatus.GRANTED_WITH_MODS:
            raise TimestampError(
                f"TSA {url} granted the request only with modifications (status 1, grantedWithMods)"
                f"{detail}; copyscope accepts only an unmodified grant")
        raise TimestampError(f"TSA {url} refused the request: status {_status_name(status)}{detail}")
    token = _lib(resp.time_stamp_token, f"TSA {url} sent a malformed TimeStampResp")
    if not token:
        raise TimestampError(f"TSA {url} granted the request but sent no TimeStampToken")
    tst = _lib(lambda: resp.tst_info, f"TSA {url} sent a malformed TimeStampToken")
    got_nonce, alg_oid, covered, certs, gen = _lib(
        lambda: (tst.nonce, tst.message_imprint.hash_algorithm.dotted_string,
                 tst.message_imprint.message, resp.signed_data.certificates, tst.gen_time),
        f"TSA {url} sent a malformed TimeStampToken")

    if got_nonce is None:
        raise TimestampError(f"TSA {url} answered without the request's nonce")
    if got_nonce != nonce:
        raise TimestampError(
            f"TSA {url} answered with nonce {got_nonce}, expected {nonce} "
            "(a stale, replayed or mixed-up response)")

    if _IMPRINT_HASHES.get(alg_oid) != hash_alg:
        raise TimestampError(
            f"TSA {url} answered with message imprint algorithm {alg_oid}, requested {hash_alg}")
    if covered != hashlib.new(hash_alg, data).digest():
        raise TimestampError(f"TSA {url} answered with a message imprint that is not {hash_alg}(data)")

    if not certs:
        raise TimestampError(f"TSA {url} sent no certificate although the request asked for one")

    return TimestampToken(token=token, tsa_url=url, gen_time=_rfc3339(gen))


def _post(url: str, payload: bytes, timeout: float) -> bytes:
    """POST ``payload``; return at most MAX_RESPONSE_BYTES of a 200 answer's body."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, data=payload, method="POST", headers={
        "Content-Type": REQUEST_CONTENT_TYPE,
        "Accept": "application/timestamp-reply",
    })
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as resp:
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
                raise TimestampError(
                    f"TSA {url} answer is too large ({declared} bytes, limit {MAX_RESPONSE_BYTES})")
            chunks, size = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunk = resp.read(64 * 1024)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise TimestampError(f"TSA {url} answer is larger than {MAX_RESPONSE_BYTES} bytes")
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise TimestampError(f"TSA {url} answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise TimestampError(f"TSA {url} did not answer within {timeout:g} s") from None
        raise TimestampError(f"cannot reach TSA {url}: {exc.reason}") from None
    except TimeoutError:
        raise TimestampError(f"TSA {url} did not answer within {timeout:g} s") from None
    except (http.client.HTTPException, OSError) as exc:
        raise TimestampError(f"TSA {url} connection failed: {exc!r}") from None
    body = b"".join(chunks)
    if not body:
        raise TimestampError(f"TSA {url} sent an empty answer")
    return body


# --- verifying ------------------------------------------------------------------


def verify_timestamp(data: bytes, token: TimestampToken, *,
                     roots: list[bytes] | None = None) -> str:
    """Check that ``token`` timestamps ``data``; return its genTime (RFC 3339).

    Always checked: the token parses, its message imprint equals the hash of
    ``data`` (with the token's own imprint algorithm: SHA-256/384/512), and the
    recorded ``gen_time`` is the token's. With ``roots`` (PEM or DER certificates,
    a PEM blob may hold several) the CMS signature is verified too and the signer's
    certificate must chain to one of them, be valid at genTime and carry the critical
    id-kp-timeStamping EKU. Without ``roots`` the token is *not* authenticated.
    """
    if not isinstance(token, TimestampToken):
        raise InputError(f"verify_timestamp needs a TimestampToken, not {type(token).__name__}")
    data = bytes(data)
    resp = _lib(lambda: decode_timestamp_response(_granted_response(token.token)),
                "timestamp token is malformed")
    tst = _lib(lambda: resp.tst_info, "timestamp token is malformed")
    alg_oid, covered, gen = _lib(
        lambda: (tst.message_imprint.hash_algorithm.dotted_string, tst.message_imprint.message,
                 tst.gen_time),
        "timestamp token is malformed")
    alg = _IMPRINT_HASHES.get(alg_oid)
    if alg is None:
        raise TimestampError(f"timestamp token uses unsupported message imprint algorithm {alg_oid}")
    digest = hashlib.new(alg, data).digest()
    if covered != digest:
        raise TimestampError(
            f"timestamp message imprint does not match the data: the token covers "
            f"{alg}:{covered.hex()[:16]}…, the data hashes to {alg}:{digest.hex()[:16]}…")

    gen_time = _rfc3339(gen)
    if token.gen_time != gen_time:
        raise TimestampError(
            f"recorded gen_time {token.gen_time} differs from the token's genTime {gen_time}")

    if roots is not None:
        certs = _load_roots(roots)
        builder = VerifierBuilder()
        for cert in certs:
            builder = builder.add_root_certificate(cert)
        verifier = builder.build()
        try:
            verifier.verify(resp, digest)
        except (VerificationError, ValueError) as exc:
            raise TimestampError(
                f"timestamp signature/chain verification failed: {_condense(str(exc))}") from None
        except BaseException as exc:   # a Rust panic inside rfc3161-client on hostile bytes
            if type(exc).__name__ != "PanicException":
                raise
            raise TimestampError("timestamp signature/chain verification failed: "
                                 f"rfc3161-client could not process the token ({exc})") from None
    return gen_time


def _load_roots(roots: list[bytes]) -> list[x509.Certificate]:
    if isinstance(roots, (bytes, bytearray, str)):
        raise InputError("roots must be a list of certificates (PEM or DER bytes), not one blob")
    certs: list[x509.Certificate] = []
    seen: set[bytes] = set()
    for i, blob in enumerate(roots):
        try:
            if not isinstance(blob, (bytes, bytearray)):
                raise TypeError(type(blob).__name__)
            if b"-----BEGIN" in blob:
                loaded = x509.load_pem_x509_certificates(bytes(blob))
            else:
                loaded = [x509.load_der_x509_certificate(bytes(blob))]
        except (ValueError, TypeError) as exc:
            raise InputError(f"root certificate #{i + 1} is not a PEM or DER X.509 certificate "
                             f"({_condense(str(exc))})") from None
        for cert in loaded:
            der = cert.public_bytes(Encoding.DER)
            if der not in seen:       # rfc3161-client refuses a root added twice
                seen.add(der)
                certs.append(cert)
    if not certs:
        raise InputError("roots is empty: give at least one root certificate, "
                         "or roots=None to skip the signature check")
    return certs


# --- helpers ----------------------------------------------------------------------


def _granted_response(token: bytes) -> bytes:
    """TimeStampResp ::= SEQUENCE { PKIStatusInfo{status granted(0)}, token }."""
    content = b"\x30\x03\x02\x01\x00" + token
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return b"\x30" + length + content


def _lib(fn: Callable[[], T], what: str) -> T:
    """Run an rfc3161-client accessor; turn its parse errors (and Rust panics) into ours."""
    try:
        return fn()
    except (ValueError, TypeError, OverflowError) as exc:
        raise TimestampError(f"{what}: {_condense(str(exc))}") from None
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise TimestampError(f"{what}: {_condense(str(exc))}") from None


def _condense(text: str, limit: int = 240) -> str:
    """One short line from an rfc3161-client / OpenSSL message (ErrorStack dumps included)."""
    if "ErrorStack(" in text:
        head = text.split("ErrorStack(", 1)[0].rstrip(" :")
        parts: list[str] = []
        for m in re.finditer(r'reason: "([^"]*)"(?:[^}]*?data: "([^"]*)")?', text):
            part = m.group(1) + (f" ({m.group(2)})" if m.group(2) else "")
            if part not in parts:
                parts.append(part)
        text = f"{head}: {'; '.join(parts)}" if parts else head
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status_name(status: int) -> str:
    names = {1: "grantedWithMods", 2: "rejection", 3: "waiting", 4: "revocationWarning",
             5: "revocationNotification"}
    return f"{names.get(status, 'unknown')} ({status})"


def _rfc3339(t: _dt.datetime) -> str:
    if t.tzinfo is None:                      # GeneralizedTime in a token is always UTC
        t = t.replace(tzinfo=_dt.timezone.utc)
    t = t.astimezone(_dt.timezone.utc)
    frac = f".{t.microsecond:06d}".rstrip("0") if t.microsecond else ""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"
