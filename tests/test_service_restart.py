"""``copyscope serve`` as a real process: killed with SIGKILL in the middle of a
registration job, restarted, and the job finishes with every item registered once."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("uvicorn")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, key: str, data: bytes | None = None, ctype: str | None = None) -> dict:
    req = urllib.request.Request(url, data=data, headers={"X-API-Key": key, **({"Content-Type": ctype} if ctype else {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _multipart(fields: dict, files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "copyscopetestboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    for name, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                     f"Content-Type: text/plain\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _serve(home, port):  # noqa: ANN001, ANN202
    proc = subprocess.Popen([sys.executable, "-m", "copyscope.cli", "--home", str(home), "-q", "serve",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode())
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")


def test_sigkill_mid_job_then_restart_finishes_the_job_exactly_once(tmp_path):
    home = tmp_path / "svc"
    out = subprocess.run([sys.executable, "-m", "copyscope.cli", "--home", str(home), "--json", "tenant", "create",
                          "acme"], capture_output=True, text=True, check=True)
    key = json.loads(out.stdout)["key"]
    port = _free_port()
    base = f"http://127.0.0.1:{port}/v1"
    n = 400
    docs = [(f"doc{i:03d}.txt", (f"Document {i}. " + " ".join(f"w{i}x{j}" for j in range(150))).encode())
            for i in range(n)]
    body, ctype = _multipart({"kind": "register", "owner": "Ann"}, docs)
    proc = _serve(home, port)
    try:
        job = _call(f"{base}/jobs", key, body, ctype)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = _call(f"{base}/jobs/{job['id']}", key)
            if state["done"] >= 16 or state["state"] == "done":
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    interrupted_at = state["done"]
    proc = _serve(home, port)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            final = _call(f"{base}/jobs/{job['id']}?items=true", key)
            if final["state"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        works = _call(f"{base}/works?limit=500", key)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert final["state"] == "done", final
    assert final["done"] == n and final["failed"] == 0
    assert works["total"] == n                                    # nothing registered twice
    assert sorted(w["title"] for w in works["works"]) == sorted(name for name, _ in docs)
    assert len({i["result"] for i in final["items"]}) == n
    print(f"killed with {interrupted_at}/{n} items done")
