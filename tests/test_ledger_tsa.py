"""RFC 3161 timestamps for checkpoints, against a local TSA on 127.0.0.1 (offline)."""
from __future__ import annotations

import base64
import dataclasses
import json
import socket
import time

import pytest
from cryptography.hazmat.primitives import serialization

from copyscope.errors import CopyscopeError, InputError
from copyscope.ledger.tsa import TimestampError, TimestampToken, request_timestamp, verify_timestamp
from tsa_server import LocalTSA, make_ca

CHECKPOINT = b"copyscope.example/log\n42\nqUJ5kT1zmA3Qm1nU7P9yb5c1kq8kYc4Hc7dGvU1v3aE=\n"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # urllib honours *_proxy variables: the local TSA must be reached directly.
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@pytest.fixture(scope="module")
def server():
    tsa = LocalTSA().start()
    try:
        yield tsa
    finally:
        tsa.stop()


@pytest.fixture
def tsa(server):
    server.mode = "ok"
    yield server
    server.mode = "ok"


@pytest.fixture(scope="module")
def stamped(server):
    server.mode = "ok"
    return request_timestamp(CHECKPOINT, server.url, timeout=5)


def _one_line(err: BaseException) -> str:
    msg = str(err)
    assert msg and "\n" not in msg
    return msg


# --- the happy path ------------------------------------------------------------


def test_request_and_verify_round_trip(tsa, stamped):
    assert stamped.tsa_url == tsa.url
    assert stamped.token[:1] == b"\x30"                   # DER TimeStampToken (ContentInfo)
    assert stamped.gen_time.endswith("Z") and "T" in stamped.gen_time
    assert verify_timestamp(CHECKPOINT, stamped) == stamped.gen_time
    assert verify_timestamp(CHECKPOINT, stamped, roots=[tsa.root_pem]) == stamped.gen_time
    der = tsa.ca_cert.public_bytes(serialization.Encoding.DER)
    assert verify_timestamp(CHECKPOINT, stamped, roots=[der, tsa.root_pem]) == stamped.gen_time


def test_sha512_request(tsa):
    tok = request_timestamp(CHECKPOINT, tsa.url, timeout=5, hash_alg="sha512")
    assert verify_timestamp(CHECKPOINT, tok, roots=[tsa.root_pem]) == tok.gen_time


def test_token_json_round_trip(stamped):
    d = stamped.to_json()
    assert set(d) == {"tsa_url", "gen_time", "token_b64"}
    assert base64.b64decode(d["token_b64"]) == stamped.token
    assert TimestampToken.from_json(d) == stamped
    assert TimestampToken.from_json(json.loads(json.dumps(d))) == stamped


@pytest.mark.parametrize("bad", [
    None, [], {}, {"tsa_url": "u", "gen_time": "t"},
    {"tsa_url": "u", "gen_time": "t", "token_b64": "***not base64***"},
    {"tsa_url": 1, "gen_time": "t", "token_b64": "AA=="},
])
def test_token_from_bad_json(bad):
    with pytest.raises(InputError) as exc:
        TimestampToken.from_json(bad)
    _one_line(exc.value)


# --- verification failures -------------------------------------------------------


def test_tampered_data_fails_naming_the_imprint(tsa, stamped):
    tampered = CHECKPOINT.replace(b"42", b"43")
    for roots in (None, [tsa.root_pem]):
        with pytest.raises(TimestampError) as exc:
            verify_timestamp(tampered, stamped, roots=roots)
        assert "message imprint" in _one_line(exc.value)
        assert exc.value.exit_code == 6 and isinstance(exc.value, CopyscopeError)


def test_wrong_root_fails_naming_signature_and_chain(stamped):
    _, other = make_ca("someone else's root")
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(CHECKPOINT, stamped, roots=[other.public_bytes(serialization.Encoding.PEM)])
    msg = _one_line(exc.value)
    assert "signature/chain" in msg and "local issuer" in msg


def test_tampered_token_fails_the_signature_check(tsa, stamped):
    raw = bytearray(stamped.token)
    raw[-5] ^= 0x01                                         # inside the ECDSA signature
    bad = dataclasses.replace(stamped, token=bytes(raw))
    assert verify_timestamp(CHECKPOINT, bad) == stamped.gen_time   # no roots: not authenticated
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(CHECKPOINT, bad, roots=[tsa.root_pem])
    assert "signature" in _one_line(exc.value)


def test_edited_gen_time_is_caught(stamped):
    bad = dataclasses.replace(stamped, gen_time="2001-01-01T00:00:00Z")
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(CHECKPOINT, bad)
    assert "gen_time" in _one_line(exc.value)


def test_garbage_token_is_malformed(stamped):
    bad = dataclasses.replace(stamped, token=b"\x30\x03\x02\x01\x00")
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(CHECKPOINT, bad)
    assert "malformed" in _one_line(exc.value)


def test_bad_roots_are_input_errors(stamped):
    for roots in ([b"not a certificate"], [], b"-----BEGIN CERTIFICATE-----"):
        with pytest.raises(InputError) as exc:
            verify_timestamp(CHECKPOINT, stamped, roots=roots)
        _one_line(exc.value)


# --- a misbehaving TSA -------------------------------------------------------------


@pytest.mark.parametrize("mode, expected", [
    ("http500", "HTTP 500"),
    ("garbage", "malformed TimeStampResp"),
    ("reject", "refused the request: status rejection (2): 'policy refused'"),
    ("mods", "grantedWithMods"),
    ("wrong_nonce", "nonce"),
    ("no_nonce", "nonce"),
    ("wrong_imprint", "message imprint"),
    ("no_certs", "no certificate"),
])
def test_tsa_failures_raise_timestamp_error(tsa, mode, expected):
    tsa.mode = mode
    with pytest.raises(TimestampError) as exc:
        request_timestamp(CHECKPOINT, tsa.url, timeout=5)
    msg = _one_line(exc.value)
    assert expected in msg, msg
    assert tsa.url in msg


def test_hanging_tsa_times_out(tsa):
    tsa.mode = "hang"
    start = time.monotonic()
    with pytest.raises(TimestampError) as exc:
        request_timestamp(CHECKPOINT, tsa.url, timeout=1)
    assert time.monotonic() - start < 3
    assert "did not answer within 1 s" in _one_line(exc.value)


def test_unreachable_tsa(tsa):
    with socket.socket() as s:                    # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TimestampError) as exc:
        request_timestamp(CHECKPOINT, f"http://127.0.0.1:{port}/", timeout=1)
    assert "cannot reach TSA" in _one_line(exc.value)


@pytest.mark.parametrize("kwargs", [
    {"url": "file:///etc/passwd"}, {"url": "ftp://127.0.0.1/"}, {"hash_alg": "md5"},
    {"data": b""}, {"timeout": 0},
])
def test_bad_arguments_are_input_errors(tsa, kwargs):
    args = {"data": CHECKPOINT, "url": tsa.url, **kwargs}
    before = tsa.requests
    with pytest.raises(InputError) as exc:
        request_timestamp(args.pop("data"), args.pop("url"), **args)
    _one_line(exc.value)
    assert tsa.requests == before                 # refused before any network traffic


def test_chain_through_an_embedded_intermediate():
    tsa = LocalTSA(intermediate=True).start()
    try:
        tok = request_timestamp(CHECKPOINT, tsa.url, timeout=5)
    finally:
        tsa.stop()
    assert verify_timestamp(CHECKPOINT, tok, roots=[tsa.root_pem]) == tok.gen_time
    _, other = make_ca("someone else's root")
    with pytest.raises(TimestampError, match="signature/chain"):
        verify_timestamp(CHECKPOINT, tok, roots=[other.public_bytes(serialization.Encoding.PEM)])
