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


def _serve(home, port, *args: str):  # noqa: ANN001, ANN202
    proc = subprocess.Popen([sys.executable, "-m", "copyscope.cli", "--home", str(home), "-q", "serve",
                             "--port", str(port), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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


def _tenant_home(tmp_path):  # noqa: ANN001, ANN202
    """A service home with one tenant: (home, its admin key, a free port, the API base URL)."""
    home = tmp_path / "svc"
    out = subprocess.run([sys.executable, "-m", "copyscope.cli", "--home", str(home), "--json", "tenant", "create",
                          "acme"], capture_output=True, text=True, check=True)
    port = _free_port()
    return home, json.loads(out.stdout)["key"], port, f"http://127.0.0.1:{port}/v1"


def test_sigkill_mid_job_then_restart_finishes_the_job_exactly_once(tmp_path):
    home, key, port, base = _tenant_home(tmp_path)
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


def _workers(pid: int) -> list[int]:
    """The serving processes under ``serve --workers N`` (spawned children)."""
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            for child in fh.read().split():
                with open(f"/proc/{child}/cmdline", "rb") as cmd:
                    if b"spawn_main" in cmd.read():
                        out.append(int(child))
    return sorted(out)


def _answer(url: str, key: str, body: bytes, ctype: str) -> str | None:
    """A check's decision, or None while the workers change: a connection the
    kernel hands to a worker's socket as that socket closes or joins is reset,
    and a client retries it (docs/service.md)."""
    try:
        return _call(url, key, body, ctype)["decision"]
    except ConnectionError:
        return None


def _wait_for(what: str, ready, limit: float = 60.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_serve_workers_share_the_port_and_a_killed_worker_is_replaced(tmp_path):
    home, key, port, base = _tenant_home(tmp_path)
    proc = _serve(home, port, "--workers", "2")
    try:
        first = _wait_for("two workers", lambda: len(_workers(proc.pid)) == 2 and _workers(proc.pid))
        body, ctype = _multipart({}, [("note.txt", b"An unregistered note about nothing in particular.")])
        body = body.replace(b'name="files"', b'name="file"')
        for _ in range(8):      # fresh connections: the kernel spreads them over both workers' sockets
            assert _call(f"{base}/check", key, body, ctype)["decision"] == "allow"
        os.kill(first[0], signal.SIGKILL)
        again = _wait_for("a replacement worker",
                          lambda: len(_workers(proc.pid)) == 2 and first[0] not in _workers(proc.pid) and _workers(proc.pid))
        assert first[1] in again
        _wait_for("the port to answer", lambda: _answer(f"{base}/check", key, body, ctype))
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=40) == 0
    assert not any(os.path.exists(f"/proc/{pid}") for pid in first + again)     # the workers ended with it


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_taken_port_is_one_clear_error(tmp_path, workers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "copyscope.cli", "--home", str(tmp_path / "svc"), "serve",
                              "--port", str(port), "--workers", workers], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "cannot listen on 127.0.0.1:" in out.stderr and "Traceback" not in out.stderr


def test_workers_that_keep_failing_to_start_stop_the_server_with_an_error():
    from copyscope.errors import WorkspaceError
    from copyscope.service.workers import MAX_EARLY_EXITS, serve_workers

    t0 = time.monotonic()
    with pytest.raises(WorkspaceError, match="keep exiting as they start"):
        # An option uvicorn does not know: every worker fails as it starts.
        serve_workers("127.0.0.1", _free_port(), 1, {"no_such_uvicorn_option": 1})
    assert time.monotonic() - t0 < 30 * MAX_EARLY_EXITS
