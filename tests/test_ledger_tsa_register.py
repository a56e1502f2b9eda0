"""--tsa-url end to end: registration timestamps the checkpoint, receipts carry the
token, `copyscope verify` checks it; a TSA outage warns but loses nothing."""
from __future__ import annotations

import json

from test_ledger_tsa import _no_proxy, server  # noqa: F401 - shared fixtures: local TSA, no proxies


def test_register_with_tsa_stamps_checkpoint_and_receipt_verifies(cli, home, samples, server):
    server.mode = "ok"
    cli("init")
    src = samples / "registered" / "en_soil.txt"
    rc, out, err = cli("--tsa-url", server.url, "register", src, "--owner", "Ann")
    assert rc == 0, err
    receipt_path = home / "receipts" / "W0000001.json"
    receipt = json.loads(receipt_path.read_text(encoding="utf-8"))
    assert receipt["timestamp"]["tsa_url"] == server.url and receipt["timestamp"]["token_b64"]
    rc, out, err = cli("--json", "verify", receipt_path, src)
    assert rc == 0, err
    assert json.loads(out)["timestamp_time"] == receipt["timestamp"]["gen_time"]


def test_tampered_timestamp_fails_verification_naming_it(cli, home, samples, server, tmp_path):
    server.mode = "ok"
    cli("init")
    src = samples / "registered" / "en_soil.txt"
    cli("--tsa-url", server.url, "register", src, "--owner", "Ann")
    receipt = json.loads((home / "receipts" / "W0000001.json").read_text(encoding="utf-8"))
    receipt["timestamp"]["gen_time"] = "2001-01-01T00:00:00Z"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(receipt), encoding="utf-8")
    rc, out, err = cli("verify", bad, src)
    assert rc == 6 and "timestamp" in err


def test_tsa_outage_warns_and_loses_nothing(cli, home, samples, server):
    server.mode = "http500"
    try:
        cli("init")
        src = samples / "registered" / "zh_tea.txt"
        rc, out, err = cli("--tsa-url", server.url, "register", src, "--owner", "Ann")
    finally:
        server.mode = "ok"
    assert rc == 0 and "warning: no RFC 3161 timestamp" in err
    assert out.startswith("W0000001\t")
    rc, _, err = cli("verify", home / "receipts" / "W0000001.json", src)
    assert rc == 0, err
