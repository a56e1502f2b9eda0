#!/usr/bin/env python3
"""The HTTP service under load, over loopback: check latency against 100,000
registered works, a sustained request rate, and a background registration job
that survives ``kill -9``.

    python benchmarks/service_load.py --quick                       # smoke run (~3 min)
    python benchmarks/service_load.py --workdir /tmp/copyscope-svc  # full; the registries are kept
    python benchmarks/service_load.py --workdir /tmp/copyscope-svc --skip-build   # re-measure only

Targets (the service issue), measured against ``copyscope serve`` started as a
subprocess (uvicorn, one process) on this machine:

a. ``POST /v1/check`` of one text item against a tenant with ``--works`` text
   works, and of one image against a tenant with ``--images`` images:
   p50 ≤ 20 ms and p99 ≤ 50 ms excluding upload time on loopback. Three figures
   per request: ``took_ms`` (the check itself, from the JSON answer),
   ``total_ms`` (the whole service call: check, policy, audit record, kept
   evidence) and the client's wall time (upload, HTTP, JSON included). The
   verdict is on ``total_ms``; the client figure is printed beside it.
b. ``--rate`` requests/s (200) of text checks for ``--duration`` s (60), open
   loop (each request is sent at its scheduled time whatever the answers do;
   latency counts from the scheduled time, so a slow server cannot hide its
   queue), zero errors (non-200 or a timeout) and no memory growth: the server's
   RSS (``/proc/<pid>/status`` VmRSS) is sampled every second; start, end, max
   and the slope over the last 40 s are printed.
c. A registration job of ``--job-images`` (1,000) generated 256×256 JPEGs,
   uploaded in one ``POST /v1/jobs``; the server is killed with SIGKILL part way
   through, restarted, and the job must resume and finish with exactly that many
   works and no duplicates (``GET /v1/works`` total, and every name once).
d. ``--only stall``: a stall of the machine. Open loop at ``--stall-rate`` (120)
   text checks/s for 20 s, after a 3-s warm-up; 8 s in, every serving process is stopped
   (``SIGSTOP``) for ``--stall-s`` (0.6) s. Checks are late, none may be
   refused: the server has the capacity, only not for that moment.

Build (under ``--workdir``, once; re-used by later runs with the same sizes):
distinct text documents of 200-600 words (sentences from a seeded 30,000-word
vocabulary with Zipf frequencies; ``--text-source shared``: registry_scale's
documents spliced from the shared text datasets, far more redundant) and
distinct synthetic images (smooth colour fields, random shapes and noise),
registered directly through each tenant's workspace in batches (the bulk
path), then compacted. Image registration stops at ``--image-budget-s`` and the
count reached is used (and printed). Every query is distinct (no cache sees one
twice). A ``steady`` run at half the measured capacity (after a warm-up) tells
memory growth from the backlog an overload builds.

The load generator is a small HTTP/1.1 client on asyncio streams with a pool of
keep-alive connections (cheaper per request than httpx, which matters when
the client shares the 2 cores with the server); its CPU time is printed.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import copyscope_bin, log  # noqa: E402

SEED = 20240611
CORPUS_VERSION = 2               # bump when the generated registry texts change: the text tenant is built again
P50_MS, P99_MS = 20.0, 50.0
TEXT_BATCH = 5000
IMAGE_BATCH = 2000
BOUNDARY = "copyscopeloadboundary7d3f"
JOB_SEED = 50_000_000            # job images: seeds far from the image tenant's
NOVEL_SEED = 90_000_000          # query images that match nothing


# -- corpus -------------------------------------------------------------------------------
class TextCorpus:
    """Registry documents and queries.

    ``vocab`` (the default): sentences of 6-22 words drawn from a seeded
    30,000-word vocabulary with Zipf frequencies, 200-600 words a document; a
    query that matches nothing is drawn the same way (so it shares the common
    word runs any text shares). ``shared``: registry_scale's documents, spliced
    from sentence windows of the shared text datasets, and its held-out text
    for the queries that match nothing; every sentence recurs in many
    documents, so one copied document matches dozens of others: a registry far
    more redundant than distinct works are."""

    def __init__(self, source: str = "vocab", seed: int = SEED) -> None:
        self.source = source
        if source == "shared":
            import registry_scale as rs  # noqa: PLC0415
            self._rs = rs
            self.pool, self.held = rs.load_pools()
            return
        vrng = random.Random(seed + 1)
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        lw = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5,
              1.0, 0.8, 0.2, 0.2, 0.1, 0.1]
        words: set[str] = set()
        while len(words) < 30_000:
            words.add("".join(vrng.choices(letters, weights=lw, k=vrng.randint(2, 11))))
        # short words are the frequent ones; (len, word) because a set's order changes with PYTHONHASHSEED
        self.vocab = sorted(words, key=lambda w: (len(w), w))
        self.cum = list(__import__("itertools").accumulate(1.0 / (i + 1) ** 1.05 for i in range(len(self.vocab))))

    def doc(self, rng: random.Random) -> bytes:
        if self.source == "shared":
            return self._rs.make_doc(rng, self.pool)[1]
        return self._text(rng, rng.randint(200, 600)).encode()

    def unrelated(self, rng: random.Random) -> bytes:
        if self.source == "shared":
            return self._rs.make_doc(rng, self.held)[1]
        return self._text(rng, rng.randint(200, 600)).encode()

    def _text(self, rng: random.Random, n: int) -> str:
        words = rng.choices(self.vocab, cum_weights=self.cum, k=n)
        out, i = [], 0
        while i < n:
            m = rng.randint(6, 22)
            s = words[i:i + m]
            out.append(s[0].capitalize() + " " + " ".join(s[1:]) + ".")
            i += m
        paras = [" ".join(out[j:j + 5]) for j in range(0, len(out), 5)]
        return "\n\n".join(paras) + "\n"


def copy_query(rng: random.Random, registered: bytes, filler: bytes) -> bytes:
    """A registered document, lightly edited (a few words dropped), between unrelated text."""
    text = registered.decode("utf-8")
    parts = text.split(" ")
    if len(parts) > 20:
        for _ in range(3):
            parts.pop(rng.randrange(len(parts)))
        text = " ".join(parts)
    half = filler.decode("utf-8", "ignore")
    cut = len(half) // 2
    return (half[:cut] + "\n\n" + text + "\n\n" + half[cut:]).encode("utf-8")


def make_image(seed: int, size: int = 256) -> bytes:
    """A distinct 256×256 JPEG: a smooth colour field, 4-9 random shapes, noise."""
    import numpy as np  # noqa: PLC0415
    from PIL import Image, ImageDraw  # noqa: PLC0415
    rng = np.random.default_rng(seed)
    base = (rng.random((5, 5, 3)) * 255).astype(np.uint8)
    im = Image.fromarray(base).resize((size, size), Image.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(4, 10))):
        kind = int(rng.integers(0, 3))
        x0, y0 = (int(v) for v in rng.integers(-40, size, 2))
        w, h = (int(v) for v in rng.integers(20, 140, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if kind == 0:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        else:
            draw.polygon([tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(3)], fill=colour)
    arr = np.asarray(im, dtype=np.int16) + rng.integers(-12, 13, (size, size, 3), dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def edited_image(data: bytes) -> bytes:
    """A copy as it travels: scaled down, cropped a little, re-encoded."""
    from PIL import Image  # noqa: PLC0415
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    im = im.resize((int(w * 0.86), int(h * 0.86))).crop((4, 4, int(w * 0.86) - 4, int(h * 0.86) - 4))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=75)
    return out.getvalue()


def _write_image(job: tuple[int, str]) -> None:
    seed, path = job
    Path(path).write_bytes(make_image(seed))


# -- build ----------------------------------------------------------------------------------
def load_state(work: Path) -> dict:
    p = work / "state.json"
    return json.loads(p.read_text()) if p.exists() else {}


def save_state(work: Path, state: dict) -> None:
    tmp = work / "state.json.part"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(work / "state.json")


def open_service(work: Path):  # noqa: ANN201
    from copyscope.service.config import ServiceSettings  # noqa: PLC0415
    from copyscope.service.core import Service  # noqa: PLC0415
    return Service(ServiceSettings(home=work / "service"))


def build_text(work: Path, state: dict, n: int, corpus: TextCorpus) -> None:
    if state.get("text", {}).get("works") == n and state["text"].get("corpus_version") == CORPUS_VERSION:
        log(f"text tenant: {n} works (built before, re-used)")
        return
    docs = work / "text-docs"
    shutil.rmtree(docs, ignore_errors=True)
    svc = open_service(work)
    try:
        tenant, _ = svc.create_tenant(f"text-{n}-{int(time.time())}")
        log(f"text tenant {tenant.id}: generating {n} documents ({corpus.source})")
        t0 = time.perf_counter()
        rng = random.Random(SEED)
        paths = []
        for i in range(n):
            d = docs / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                d.mkdir(parents=True, exist_ok=True)
            p = d / f"doc-{i:06d}.txt"
            p.write_bytes(corpus.doc(rng))
            paths.append(p)
        gen_s = time.perf_counter() - t0
        log(f"    generated in {gen_s:.0f} s; registering in batches of {TEXT_BATCH}")
        t0 = time.perf_counter()
        with svc.tenants.writer(tenant.id) as ws:
            for i in range(0, n, TEXT_BATCH):
                out = ws.register(paths[i:i + TEXT_BATCH], owner="bench", license="CC0-1.0", each=True)
                if out.errors:
                    raise SystemExit(f"registration errors: {out.errors[:3]}")
                log(f"    {min(i + TEXT_BATCH, n)}/{n} in {time.perf_counter() - t0:.0f} s")
            reg_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            ws.compact()
            compact_s = time.perf_counter() - t1
            total = ws.registry.search_works("", limit=1)[0]
    finally:
        svc.close()
    state["text"] = {"tenant": tenant.id, "works": n, "registered": total, "generate_s": round(gen_s, 1),
                     "register_s": round(reg_s, 1), "compact_s": round(compact_s, 1), "source": corpus.source,
                     "corpus_version": CORPUS_VERSION}
    state.pop("keys", None)
    save_state(work, state)
    log(f"    text: {total} works, register {reg_s:.0f} s ({n / reg_s:.0f}/s), compact {compact_s:.0f} s")


def build_images(work: Path, state: dict, n: int, budget_s: float) -> None:
    have = state.get("images", {})
    if have.get("target") == n and have.get("budget_s") == budget_s:
        log(f"image tenant: {have['registered']} images (built before, re-used)")
        return
    imgs = work / "images"
    shutil.rmtree(imgs, ignore_errors=True)
    svc = open_service(work)
    try:
        tenant, _ = svc.create_tenant(f"images-{n}-{int(time.time())}")
        log(f"image tenant {tenant.id}: up to {n} generated images, registration budget {budget_s:.0f} s")
        t0 = time.perf_counter()
        gen_s = 0.0
        done = 0
        stopped = False
        with svc.tenants.writer(tenant.id) as ws, Pool(2) as pool:
            for i in range(0, n, IMAGE_BATCH):
                if time.perf_counter() - t0 > budget_s:
                    stopped = True
                    break
                batch = [(k, str(imgs / f"{k // 1000:03d}" / f"img-{k:06d}.jpg")) for k in range(i, min(n, i + IMAGE_BATCH))]
                for k in {k // 1000 for k, _ in batch}:
                    (imgs / f"{k:03d}").mkdir(parents=True, exist_ok=True)
                tg = time.perf_counter()
                pool.map(_write_image, batch, chunksize=50)
                gen_s += time.perf_counter() - tg
                out = ws.register([p for _, p in batch], owner="bench", license="CC0-1.0", each=True)
                if out.errors:
                    log(f"    {len(out.errors)} errors, e.g. {out.errors[:2]}")
                done += len(out.works)
                log(f"    {done}/{n} in {time.perf_counter() - t0:.0f} s (generation {gen_s:.0f} s of it)")
            t1 = time.perf_counter()
            ws.compact()
            compact_s = time.perf_counter() - t1
            total = ws.registry.search_works("", limit=1)[0]
        wall = time.perf_counter() - t0 - compact_s
    finally:
        svc.close()
    state["images"] = {"tenant": tenant.id, "target": n, "budget_s": budget_s, "registered": total,
                       "generated": done, "stopped_by_budget": stopped, "wall_s": round(wall, 1),
                       "generate_s": round(gen_s, 1), "register_s": round(wall - gen_s, 1),
                       "compact_s": round(compact_s, 1)}
    state.pop("keys", None)
    save_state(work, state)
    log(f"    images: {total} registered{' (stopped by the time budget)' if stopped else ''}, "
        f"register {wall - gen_s:.0f} s + generate {gen_s:.0f} s, compact {compact_s:.0f} s")


def make_keys(work: Path, state: dict) -> None:
    """Load keys (a rate limit far above the load) for both tenants, and a fresh
    tenant for the job test (so its work count starts at zero)."""
    svc = open_service(work)
    try:
        keys = state.get("keys") or {}
        for name in ("text", "images"):
            if name not in keys:
                _, secret = svc.store.create_key(state[name]["tenant"], "load", ["check", "register", "admin"],
                                                 rate_per_s=10_000, burst=10_000)
                keys[name] = secret
        tenant, _ = svc.create_tenant(f"jobs-{int(time.time() * 1000)}")
        _, keys["jobs"] = svc.store.create_key(tenant.id, "load", ["check", "register", "admin"],
                                               rate_per_s=10_000, burst=10_000)
        state["keys"] = keys
        state["jobs_tenant"] = tenant.id
        save_state(work, state)
    finally:
        svc.close()


# -- the server ---------------------------------------------------------------------------------
class Server:
    def __init__(self, work: Path, extra_env: dict[str, str] | None = None, serve_args: list[str] | None = None) -> None:
        self.work = work
        self.extra_env = extra_env or {}
        self.serve_args = serve_args or []
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 120.0) -> float:
        env = {k: v for k, v in os.environ.items() if k not in ("COPYSCOPE_HOME", "COPYSCOPE_IMAGE_MODEL")}
        env.update(self.extra_env)
        self.starts += 1
        logf = open(self.work / f"server-{self.starts}.log", "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([copyscope_bin(), "--home", str(self.work / "service"), "serve",
                                      "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
                                      *self.serve_args],
                                     stdout=logf, stderr=subprocess.STDOUT, env=env)
        logf.close()
        import httpx  # noqa: PLC0415
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}; see {self.work}/server-{self.starts}.log")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/v1/health", timeout=1).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise SystemExit("server did not answer /v1/health")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def pids(self) -> list[int]:
        """The server and, with ``--workers N``, its worker processes."""
        if not self.proc:
            return []
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as fh:
                        todo += [int(x) for x in fh.read().split()]
            except OSError:
                pass
        return out

    def rss_kib(self, field: str = "VmRSS") -> int | None:
        values = [rss_kib(pid, field) for pid in self.pids()]
        values = [v for v in values if v is not None]
        return sum(values) if values else None

    def cpu_s(self) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int, field: str = "VmRSS") -> int | None:
    """VmRSS (everything resident), or RssAnon (heap, without the mapped index files)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# -- a small HTTP/1.1 client -------------------------------------------------------------------------
def multipart_request(port: int, key: str, name: str, data: bytes, ctype: str) -> bytes:
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (f"POST /v1/check HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def roundtrip(self, raw: bytes) -> tuple[int, bytes, bool]:
        """(status, body, keep the connection)."""
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            body = b"".join(chunks)
        else:
            body = await self.reader.read()
            return status, body, False
        return status, body, headers.get("connection", "").lower() != "close"

    def close(self) -> None:
        self.writer.close()


class Pool_:
    """Keep-alive connections to the server, opened on demand."""

    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.idle: list[Conn] = []
        self.sem = asyncio.Semaphore(limit)
        self.opened = 0
        self.retried = 0

    async def request(self, raw: bytes, timeout: float) -> tuple[int, bytes]:
        """One request; a kept-alive connection the server closed meanwhile
        (uvicorn drops idle ones after 5 s) is replaced and the request sent
        again once, as HTTP clients do (counted in ``self.retried``)."""
        async with self.sem:
            for attempt in (0, 1):
                conn = self.idle.pop() if self.idle and attempt == 0 else None
                reused = conn is not None
                if conn is None:
                    r, w = await asyncio.open_connection("127.0.0.1", self.port)
                    w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conn = Conn(r, w)
                    self.opened += 1
                try:
                    status, body, keep = await asyncio.wait_for(conn.roundtrip(raw), timeout)
                except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
                    conn.close()
                    stale = reused and (not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial)
                    if stale and attempt == 0:
                        self.retried += 1
                        continue
                    raise
                except BaseException:
                    conn.close()
                    raise
                if keep:
                    self.idle.append(conn)
                else:
                    conn.close()
                return status, body
        raise AssertionError("unreachable")

    def close(self) -> None:
        for c in self.idle:
            c.close()
        self.idle.clear()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


# -- (a) latency -----------------------------------------------------------------------------------------
async def latency(port: int, requests: list[bytes], warmup: int) -> dict:
    """Requests one at a time (closed loop): client wall time, took_ms, total_ms."""
    pool = Pool_(port, 1)
    client, took, total, errors, decisions = [], [], [], 0, {}
    by_decision: dict[str, list[float]] = {}
    try:
        for i, raw in enumerate(requests):          # the first ``warmup`` are not counted
            t = time.perf_counter()
            status, body = await pool.request(raw, 30)
            dt = (time.perf_counter() - t) * 1000
            if i < warmup:
                continue
            if status != 200:
                errors += 1
                continue
            j = json.loads(body)
            client.append(dt)
            took.append(j.get("took_ms") or float("nan"))
            total.append(j.get("total_ms") or float("nan"))
            decisions[j.get("decision")] = decisions.get(j.get("decision"), 0) + 1
            by_decision.setdefault(str(j.get("decision")), []).append(j.get("total_ms") or float("nan"))
    finally:
        pool.close()
    return {"n": len(client), "errors": errors, "decisions": decisions,
            **{f"{name}_{q}": round(pct(v, p), 2) for name, v in (("took", took), ("total", total), ("client", client))
               for q, p in (("p50", 0.5), ("p99", 0.99))},
            "client_max": round(max(client), 2) if client else None,
            "total_p50_by_decision": {k: round(pct(v, 0.5), 2) for k, v in by_decision.items()},
            "loadavg_1min": round(os.getloadavg()[0], 1)}


def text_queries(corpus: TextCorpus, work: Path, n_works: int, n: int, port: int, key: str,
                 seed: int) -> list[bytes]:
    """``n`` distinct queries (none repeats, so no cache sees one twice): half
    lightly edited registered documents inside unrelated text, half unrelated text."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        filler = corpus.unrelated(rng)
        if i % 2 == 0:
            k = rng.randrange(n_works)
            reg = (work / "text-docs" / f"d{k // 1000:03d}" / f"doc-{k:06d}.txt").read_bytes()
            data = copy_query(rng, reg, filler[: len(filler) // 2])     # a cut character is dropped
        else:
            data = filler
        out.append(multipart_request(port, key, f"q{i}.txt", data, "text/plain"))
    return out


def image_queries(work: Path, n_images: int, n: int, port: int, key: str) -> list[bytes]:
    """Half edited copies of distinct registered images, half new images."""
    rng = random.Random(SEED + 6)
    picked = rng.sample(range(n_images), min(n_images, (n + 1) // 2))
    out = []
    for i in range(n):
        if i % 2 == 0:
            k = picked[(i // 2) % len(picked)]
            data = edited_image((work / "images" / f"{k // 1000:03d}" / f"img-{k:06d}.jpg").read_bytes())
        else:
            data = make_image(NOVEL_SEED + i)
        out.append(multipart_request(port, key, f"q{i}.jpg", data, "image/jpeg"))
    return out


async def capacity(port: int, requests: list[bytes], concurrency: int, seconds: float) -> dict:
    """Closed loop, ``concurrency`` requests in flight: the rate the server can sustain."""
    pool = Pool_(port, concurrency)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    done, errors, lat = 0, 0, []

    async def worker(w: int) -> None:
        nonlocal done, errors
        i = w
        while loop.time() < end:
            t = loop.time()
            status, _ = await pool.request(requests[i % len(requests)], 30)
            lat.append((loop.time() - t) * 1000)
            done += status == 200
            errors += status != 200
            i += concurrency

    t0 = loop.time()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    pool.close()
    return {"concurrency": concurrency, "rate": round(done / (loop.time() - t0), 1), "errors": errors,
            "p50_ms": round(pct(lat, 0.5), 1)}


# -- (b) sustained load ---------------------------------------------------------------------------------------
async def load(server: Server, requests: list[bytes], rate: float, duration: float, timeout: float) -> dict:
    pool = Pool_(server.port, 512)
    loop = asyncio.get_running_loop()
    total = int(rate * duration)
    lat: list[float] = []
    lag: list[float] = []
    statuses: dict[int, int] = {}
    timeouts = 0
    other_errors: list[str] = []
    rss: list[tuple[float, int]] = []
    anon: list[tuple[float, int]] = []
    done_at: list[float] = []
    refused_at: list[float] = []      # when (s into the run) a non-200 was sent: bursts or steady?
    in_flight = 0
    max_in_flight = 0

    async def one(i: int, when: float) -> None:
        nonlocal timeouts, in_flight, max_in_flight
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        lag.append((loop.time() - when) * 1000)
        try:
            status, _ = await pool.request(requests[i % len(requests)], timeout)
        except asyncio.TimeoutError:
            timeouts += 1
            return
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            other_errors.append(f"{type(exc).__name__}: {exc}")
            return
        finally:
            in_flight -= 1
        now = loop.time()
        statuses[status] = statuses.get(status, 0) + 1
        if status != 200:
            refused_at.append(round(when - start, 2))
        lat.append((now - when) * 1000)
        done_at.append(now)

    async def sample_rss(start: float) -> None:
        while True:
            v, a = server.rss_kib(), server.rss_kib("RssAnon")
            if v is not None:
                rss.append((loop.time() - start, v))
            if a is not None:
                anon.append((loop.time() - start, a))
            await asyncio.sleep(1.0)

    start = loop.time() + 0.2
    cpu0 = server.cpu_s()
    me0 = resource.getrusage(resource.RUSAGE_SELF)
    sampler = asyncio.create_task(sample_rss(start))
    tasks = []
    for i in range(total):
        when = start + i / rate
        delay = when - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, when)))
    sent_s = loop.time() - start
    await asyncio.gather(*tasks)
    end = loop.time()
    sampler.cancel()
    loadavg = os.getloadavg()[0]
    server_cpu = server.cpu_s() - cpu0
    me1 = resource.getrusage(resource.RUSAGE_SELF)
    pool.close()
    ok = statuses.get(200, 0)
    tail = [(t, v) for t, v in rss if t >= duration - 40]
    slope = fit_slope(tail) * 60 / 1024 if len(tail) >= 2 else float("nan")      # MiB per minute
    atail = [(t, v) for t, v in anon if t >= duration - 40]
    aslope = fit_slope(atail) * 60 / 1024 if len(atail) >= 2 else float("nan")
    return {
        "scheduled": total, "rate_target": rate, "duration_s": duration,
        "sent_rate": round(total / sent_s, 1) if sent_s > 0 else None,
        # 200 answers per second over the whole run (the schedule, or longer if answers came later)
        "completed_rate": round(ok / max(sent_s, max(done_at) - start), 1) if done_at else 0.0,
        "ok": ok, "non_200": sum(v for k, v in statuses.items() if k != 200), "statuses": statuses,
        "timeouts": timeouts, "other_errors": len(other_errors), "error_examples": other_errors[:3],
        "non_200_sent_at_s": sorted(refused_at)[:20],
        "p50_ms": round(pct(lat, 0.5), 1), "p99_ms": round(pct(lat, 0.99), 1), "max_ms": round(max(lat), 1) if lat else None,
        "send_lag_p99_ms": round(pct(lag, 0.99), 1), "max_in_flight": max_in_flight, "connections": pool.opened,
        "stale_connection_retries": pool.retried,
        "drain_s": round(end - start - sent_s, 2),
        "server_cpu_pct": round(100 * server_cpu / (end - start), 0),
        "client_cpu_pct": round(100 * ((me1.ru_utime - me0.ru_utime) + (me1.ru_stime - me0.ru_stime)) / (end - start), 0),
        "rss_start_mib": round(rss[0][1] / 1024, 1) if rss else None,
        "rss_end_mib": round(rss[-1][1] / 1024, 1) if rss else None,
        "rss_max_mib": round(max(v for _, v in rss) / 1024, 1) if rss else None,
        "rss_slope_last40s_mib_per_min": round(slope, 2),
        "rss_samples": len(rss), "loadavg_1min_at_end": round(loadavg, 1),
        "anon_start_mib": round(anon[0][1] / 1024, 1) if anon else None,
        "anon_end_mib": round(anon[-1][1] / 1024, 1) if anon else None,
        "anon_slope_last40s_mib_per_min": round(aslope, 2),
        "anon_mib_every_5s": [round(v / 1024, 1) for _, v in anon[::5]],
    }


def health_wait(server: Server, limit: float) -> float | None:
    import httpx  # noqa: PLC0415
    t = time.perf_counter()
    try:
        httpx.get(f"http://127.0.0.1:{server.port}/v1/health", timeout=limit)
    except httpx.HTTPError:
        return None
    return round(time.perf_counter() - t, 2)


def fit_slope(points: list[tuple[float, float]]) -> float:
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    return sum((t - mx) * (v - my) for t, v in points) / den if den else 0.0


# -- (d) a stall of the machine ---------------------------------------------------------------------------------------
STALL_AT_S, STALL_RUN_S = 8.0, 20.0


def stall_test(server: Server, requests: list[bytes], rate: float, stall_s: float, timeout: float,
               at_s: float = STALL_AT_S, duration: float = STALL_RUN_S) -> dict:
    """An open-loop run during which every serving process is stopped for ``stall_s``."""
    assert server.proc is not None
    serving = [p for p in server.pids() if p != server.proc.pid] or [server.proc.pid]

    def stall() -> None:
        time.sleep(at_s)
        try:
            for pid in serving:
                os.kill(pid, signal.SIGSTOP)
            time.sleep(stall_s)
        finally:
            for pid in serving:
                os.kill(pid, signal.SIGCONT)
    t = threading.Thread(target=stall, daemon=True)
    t.start()
    r = asyncio.run(load(server, requests, rate, duration, timeout))
    t.join()
    return {**r, "stall_s": stall_s, "stall_at_s": at_s}


# -- (c) a registration job through kill -9 -----------------------------------------------------------------------
def job_test(server: Server, key: str, n: int, kill_fraction: float) -> dict:
    import httpx  # noqa: PLC0415
    base = f"http://127.0.0.1:{server.port}"
    auth = {"X-API-Key": key}
    t0 = time.perf_counter()
    with Pool(2) as pool:
        images = pool.map(make_image, [JOB_SEED + i for i in range(n)], chunksize=50)
    gen_s = time.perf_counter() - t0
    assert len(set(images)) == n, "generated job images are not distinct"
    files = [("files", (f"job-{i:05d}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
    t0 = time.perf_counter()
    r = httpx.post(f"{base}/v1/jobs", headers=auth, data={"kind": "register", "owner": "bench", "license": "CC0-1.0"},
                   files=files, timeout=300)
    submit_s = time.perf_counter() - t0
    if r.status_code != 202:
        raise SystemExit(f"job submit: {r.status_code} {r.text[:300]}")
    job_id = r.json()["id"]
    log(f"    job {job_id}: {n} images ({sum(map(len, images)) / 1e6:.1f} MB) accepted in {submit_s:.1f} s")
    t_run = time.perf_counter()
    kill_at = int(n * kill_fraction)
    done = 0
    while True:
        j = httpx.get(f"{base}/v1/jobs/{job_id}", headers=auth, timeout=30).json()
        done = j["done"]
        if done >= kill_at or j["state"] in ("done", "failed", "cancelled"):
            break
        time.sleep(0.05)
    before_kill_s = time.perf_counter() - t_run
    if j["state"] != "running":
        raise SystemExit(f"the job was {j['state']} before the kill ({done}/{n}): raise --job-images")
    server.kill9()
    log(f"    SIGKILL at {done}/{n} done, {before_kill_s:.1f} s after submission")
    t_restart = time.perf_counter()
    start_s = server.start()
    after = httpx.get(f"{base}/v1/jobs/{job_id}", headers=auth, timeout=30).json()
    log(f"    restarted in {start_s:.1f} s; the job reads {after['state']} {after['done']}/{n}")
    while after["state"] not in ("done", "failed", "cancelled"):
        if time.perf_counter() - t_restart > 600:
            raise SystemExit("the job did not finish within 10 minutes of the restart")
        time.sleep(0.2)
        after = httpx.get(f"{base}/v1/jobs/{job_id}", headers=auth, timeout=30).json()
    resume_s = time.perf_counter() - t_restart
    names, ids, total = [], [], None
    offset = 0
    while True:
        page = httpx.get(f"{base}/v1/works", headers=auth, params={"limit": 500, "offset": offset}, timeout=60).json()
        total = page["total"]
        names += [w["title"] for w in page["works"]]
        ids += [w["work_id"] for w in page["works"]]
        offset += len(page["works"])
        if not page["works"] or offset >= total:
            break
    return {"images": n, "generate_s": round(gen_s, 1), "submit_s": round(submit_s, 2),
            "killed_at_done": done, "before_kill_s": round(before_kill_s, 2), "restart_s": round(start_s, 2),
            "resume_to_done_s": round(resume_s, 1), "total_s": round(time.perf_counter() - t_run + submit_s, 1),
            "state": after["state"], "job_done": after["done"], "job_failed": after["failed"],
            "job_pending": after["pending"], "works_total": total, "distinct_names": len(set(names)),
            "distinct_ids": len(set(ids)), "listed": len(names)}


# -- main ------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--works", type=int, default=None, help="text works in the text tenant (default 100000; --quick 2000)")
    ap.add_argument("--images", type=int, default=None, help="images in the image tenant (default = --works)")
    ap.add_argument("--image-budget-s", type=float, default=900.0,
                    help="stop registering images after this long (generation included) and use what is there")
    ap.add_argument("--duration", type=float, default=None, help="seconds of sustained load (default 60; --quick 10)")
    ap.add_argument("--rate", type=float, default=200.0, help="requests/s of the sustained load")
    ap.add_argument("--latency-requests", type=int, default=None, help="sequential checks per modality (default 300)")
    ap.add_argument("--text-source", choices=("vocab", "shared"), default="vocab",
                    help="registry texts: a seeded Zipf vocabulary (distinct works) or registry_scale's spliced corpus")
    ap.add_argument("--sustainable-fraction", type=float, default=0.5,
                    help="the steady run's rate, as a fraction of the measured capacity")
    ap.add_argument("--steady-rate", type=float, default=None, help="the steady run's rate (overrides the fraction)")
    ap.add_argument("--health-wait-s", type=float, default=180.0,
                    help="after the load, how long to wait for /v1/health (the backlog still being worked on)")
    ap.add_argument("--job-images", type=int, default=1000)
    ap.add_argument("--kill-at", type=float, default=0.4, help="fraction of the job done when the server is killed")
    ap.add_argument("--timeout", type=float, default=5.0, help="per-request timeout under load, seconds")
    ap.add_argument("--workdir", default=None, help="default /tmp/copyscope-service-load (--quick: ...-quick)")
    ap.add_argument("--quick", action="store_true", help="2,000 works and images, 10 s of load, 100 checks each")
    ap.add_argument("--skip-build", action="store_true", help="use the registries in --workdir as they are")
    ap.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the server (e.g. MALLOC_ARENA_MAX=2); repeatable")
    ap.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                    help="extra `copyscope serve` argument, repeatable (e.g. --serve-arg=--workers --serve-arg=2)")
    ap.add_argument("--stall-rate", type=float, default=120.0, help="the stall run's rate (text checks/s)")
    ap.add_argument("--stall-s", type=float, default=0.6, help="how long the stall run stops the serving processes")
    ap.add_argument("--only", default="latency,load,steady,job",
                    help="comma-separated parts: latency, load (--rate), steady (below capacity), stall, job")
    args = ap.parse_args()
    works = args.works or (2000 if args.quick else 100_000)
    images = args.images or works
    duration = args.duration or (10.0 if args.quick else 60.0)
    n_lat = args.latency_requests or (100 if args.quick else 300)
    work = Path(args.workdir or ("/tmp/copyscope-service-load" + ("-quick" if args.quick else "")))
    work.mkdir(parents=True, exist_ok=True)
    parts = set(args.only.split(","))
    log(f"workdir {work}; {works} text works, up to {images} images; load {args.rate:g}/s for {duration:g} s; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    state = load_state(work)
    if state.get("text") and state["text"].get("source") != args.text_source and not args.skip_build:
        state.pop("text")                         # another corpus: build again
    corpus = TextCorpus(args.text_source)
    if not args.skip_build:
        build_text(work, state, works, corpus)
        build_images(work, state, images, args.image_budget_s)
    make_keys(work, state)
    n_text, n_img = state["text"]["registered"], state["images"]["registered"]
    results: dict = {"text_works": n_text, "images": n_img, "build": {k: state[k] for k in ("text", "images")}}

    server = Server(work, dict(kv.split("=", 1) for kv in args.server_env), args.serve_arg)
    results["server_env"] = server.extra_env
    try:
        log(f"starting `copyscope serve` on 127.0.0.1:{server.port}")
        results["server_start_s"] = round(server.start(), 2)
        log(f"    up in {results['server_start_s']} s, RSS {server.rss_kib() / 1024:.0f} MiB")
        text_key, n_docs = state["keys"]["text"], state["text"]["works"]

        def tqs(n: int, seed: int) -> list[bytes]:
            return text_queries(corpus, work, n_docs, n, server.port, text_key, seed)

        warm = 30
        if "latency" in parts:
            log(f"(a) {n_lat} sequential text checks against {n_text} works (after {warm} to warm up)")
            results["latency_text"] = asyncio.run(latency(server.port, tqs(n_lat + warm, SEED + 5), warmup=warm))
            log(f"    {results['latency_text']}")
            iq = image_queries(work, state["images"]["generated"], n_lat + warm, server.port, state["keys"]["images"])
            log(f"(a) {n_lat} sequential image checks against {n_img} images (after {warm} to warm up)")
            results["latency_image"] = asyncio.run(latency(server.port, iq, warmup=warm))
            log(f"    {results['latency_image']}")
        cap_s = min(10.0, duration)
        if parts & {"load", "steady"}:
            results["capacity"] = asyncio.run(capacity(server.port, tqs(int(cap_s * 300), SEED + 7), 4, cap_s))
            log(f"(b) capacity first (closed loop, 4 in flight, {cap_s:g} s): {results['capacity']}")
        if "load" in parts:
            log(f"(b) open loop: {args.rate:g} text checks/s for {duration:g} s, every query distinct")
            results["load"] = asyncio.run(load(server, tqs(int(args.rate * duration), SEED + 8), args.rate, duration,
                                               args.timeout))
            log(f"    {results['load']}")
            # Work the server still does for requests the client gave up on: how long until it answers again?
            results["load"]["health_after_load_s"] = health_wait(server, args.health_wait_s)
            log(f"    /v1/health answered {results['load']['health_after_load_s']} s after the load "
                f"(None: not within {args.health_wait_s:g} s)")
            server.stop()
            server.start()
        if "steady" in parts:
            # Below capacity, does memory grow? Both readers' bounded caches are warmed first.
            rate2 = args.steady_rate or max(1.0, round(args.sustainable_fraction * results["capacity"]["rate"]))
            warm_s = 2 * cap_s
            warmed = asyncio.run(capacity(server.port, tqs(int(warm_s * 300), SEED + 9), 4, warm_s))
            log(f"(b') warm-up, closed loop {warm_s:g} s: {warmed}")
            log(f"(b') open loop at {rate2:g}/s for {duration:g} s")
            results["load_steady"] = asyncio.run(load(server, tqs(int(rate2 * duration), SEED + 10), rate2,
                                                      duration, args.timeout))
            log(f"    {results['load_steady']}")
        if "stall" in parts:
            log(f"(d) open loop at {args.stall_rate:g}/s for {STALL_RUN_S:g} s; the serving processes stopped for "
                f"{args.stall_s:g} s at {STALL_AT_S:g} s")
            # warmed first (3 s closed loop): a cold start's slow first turns are not the stall
            asyncio.run(capacity(server.port, tqs(900, SEED + 12), 4, 3.0))
            results["stall"] = stall_test(server, tqs(int(args.stall_rate * STALL_RUN_S), SEED + 11), args.stall_rate,
                                          args.stall_s, args.timeout)
            log(f"    {results['stall']}")
        if "job" in parts:
            log(f"(c) registration job of {args.job_images} images, SIGKILL at {args.kill_at:.0%}")
            results["job"] = job_test(server, state["keys"]["jobs"], args.job_images, args.kill_at)
            log(f"    {results['job']}")
    finally:
        server.stop()
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print_table(results, args, works, images)
    return 0


def print_table(r: dict, args: argparse.Namespace, works: int, images: int) -> None:
    rows = []

    def row(claim: str, target: str, measured: str, ok: bool | None) -> None:
        rows.append((claim, target, measured, "" if ok is None else ("MET" if ok else "SHORT")))

    for name, label, n in (("latency_text", "text", r["text_works"]), ("latency_image", "image", r["images"])):
        x = r.get(name)
        if not x:
            continue
        row(f"POST /v1/check, {label}, {n:,} works: total_ms (service call)", f"p50 ≤ {P50_MS:g}, p99 ≤ {P99_MS:g}",
            f"p50 {x['total_p50']}, p99 {x['total_p99']}", x["total_p50"] <= P50_MS and x["total_p99"] <= P99_MS
            and not x["errors"])
        row("    took_ms (the check itself)", "", f"p50 {x['took_p50']}, p99 {x['took_p99']}",
            x["took_p50"] <= P50_MS and x["took_p99"] <= P99_MS)
        row("    client wall time, upload included", "", f"p50 {x['client_p50']}, p99 {x['client_p99']}",
            x["client_p50"] <= P50_MS and x["client_p99"] <= P99_MS)
    x = r.get("capacity")
    if x:
        row("text checks: capacity, closed loop, 4 in flight", "", f"{x['rate']} checks/s, p50 {x['p50_ms']} ms", None)
    x = r.get("load")
    if x:
        errors = x["non_200"] + x["timeouts"] + x["other_errors"]
        row(f"{args.rate:g} text checks/s for {x['duration_s']:g} s, open loop", f"{args.rate:g}/s sustained",
            f"sent {x['sent_rate']}/s, completed {x['completed_rate']}/s, p50 {x['p50_ms']} ms, p99 {x['p99_ms']} ms",
            x["completed_rate"] >= 0.97 * args.rate and x["sent_rate"] >= 0.97 * args.rate)
        row("    errors (non-200, timeouts)", "0", f"{x['non_200']} non-200, {x['timeouts']} timeouts, "
            f"{x['other_errors']} connection errors", errors == 0)
        row("    server RSS over the run", "no growth (slope ≤ 1 MiB/min)",
            f"start {x['rss_start_mib']}, end {x['rss_end_mib']}, max {x['rss_max_mib']} MiB; "
            f"last 40 s {x['rss_slope_last40s_mib_per_min']:+} MiB/min (anonymous memory {x['anon_start_mib']} → "
            f"{x['anon_end_mib']} MiB, {x['anon_slope_last40s_mib_per_min']:+} MiB/min)",
            x["rss_slope_last40s_mib_per_min"] <= 1.0)
        h = x.get("health_after_load_s")
        row("    server busy after the load ends", "", "/v1/health answered " +
            (f"{h} s later" if h is not None else f"not within {args.health_wait_s:g} s") +
            " (abandoned requests still being worked on)", None)
    x = r.get("load_steady")
    if x:
        errors = x["non_200"] + x["timeouts"] + x["other_errors"]
        row(f"{x['rate_target']:g} text checks/s (below capacity) for {x['duration_s']:g} s", "0 errors, no growth",
            f"completed {x['completed_rate']}/s, p50 {x['p50_ms']} ms, p99 {x['p99_ms']} ms; {errors} errors; RSS "
            f"{x['rss_start_mib']} → {x['rss_end_mib']} MiB, last 40 s {x['rss_slope_last40s_mib_per_min']:+} MiB/min "
            f"(anonymous {x['anon_slope_last40s_mib_per_min']:+})",
            errors == 0 and x["rss_slope_last40s_mib_per_min"] <= 1.0)
    x = r.get("stall")
    if x:
        errors = x["non_200"] + x["timeouts"] + x["other_errors"]
        row(f"{x['rate_target']:g} text checks/s, every serving process stopped {x['stall_s']:g} s", "0 errors",
            f"{errors} errors ({x['non_200']} non-200); p50 {x['p50_ms']} ms, p99 {x['p99_ms']} ms, "
            f"max {x['max_ms']} ms", errors == 0)
    x = r.get("job")
    if x:
        ok = (x["state"] == "done" and x["works_total"] == x["images"] and x["distinct_names"] == x["images"]
              and x["distinct_ids"] == x["images"] and x["job_done"] == x["images"])
        row(f"job: {x['images']} images, SIGKILL at {x['killed_at_done']} done, restart",
            f"resumes; {x['images']} works, no duplicates",
            f"{x['state']}; {x['works_total']} works, {x['distinct_names']} distinct names; "
            f"restart {x['restart_s']} s, finished {x['resume_to_done_s']} s after the kill", ok)
    w = [max(len(c[i]) for c in rows + [("claim", "target", "measured", "")]) for i in range(4)]
    print()
    print(f"{'claim':<{w[0]}}  {'target':<{w[1]}}  {'measured':<{w[2]}}  verdict")
    for c in rows:
        print(f"{c[0]:<{w[0]}}  {c[1]:<{w[1]}}  {c[2]:<{w[2]}}  {c[3]}")
    print(f"\n(text tenant {r['text_works']:,} works; image tenant {r['images']:,} images"
          f"{' (the time budget stopped the build short of ' + format(images, ',') + ')' if r['images'] < images * 0.99 else ''}"
          f"; {os.cpu_count()} CPUs; figures in ms)")


if __name__ == "__main__":
    sys.exit(main())
