"""Admission control: when a new check would wait too long, answer 503 at once.

Without it, an overload queues every request; the queue outlives the clients'
timeouts, so the server spends its CPU on answers nobody waits for and useful
throughput collapses (measured: 23 checks/s fell to under 1/s at 200/s offered).
Refusing early keeps the server answering at its capacity, and a client that
gets 503 + Retry-After can back off or go to another replica.

The bound is a wait, not a count: checks in a process compute one at a time,
so a newcomer waits about (checks in flight) × (the median turn, see
``Turns.typical_hold_s``). A text check takes ~5 ms and an image check ~35, so
a fixed count either refused text checks behind a 0.2-s hiccup (16 in flight is
80 ms of text) or let image checks queue for over half a second. A hard count
still caps the queue. A batch request counts once here although each of its
items takes a turn: its own wait is what the batch endpoint's caller accepts.

A wait over the bound refuses only once it has *stood* for ``standing_ms``
(CoDel's rule: a queue that drains within an interval is a burst, one that
stays is overload). A stall of the machine (measured: one of half a second in a
60-s run at 200 checks/s) queues ~50 checks in each process for a moment; the
bound refused 97 of them, all within 0.7 s, although the server had the
capacity to answer them a few hundred ms late. Under overload the queue stands
and is refused as before. A wait over four times the bound is refused at once,
so no admitted check waits much over a second.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable

GUARDED = ("/v1/check",)            # the request-path endpoints a platform calls per item


class Admission:
    HARD_FACTOR = 4             # a wait this many times the bound is refused without standing

    def __init__(self, app, limit: int, max_wait_ms: float = 0.0,  # noqa: ANN001
                 turn_s: Callable[[], float] = lambda: 0.0, standing_ms: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.limit = limit
        self.max_wait_s = max_wait_ms / 1000
        self.standing_s = standing_ms / 1000
        self.turn_s = turn_s        # the typical turn of a check in this process (Service.turn_s)
        self.clock = clock
        self.in_flight = 0          # one event loop per process: no lock needed
        self.over_since: float | None = None    # when the expected wait last rose over the bound

    def _refuse(self) -> str | None:
        if self.limit > 0 and self.in_flight >= self.limit:
            return f"{self.in_flight} checks in flight (the limit)"
        if self.max_wait_s > 0 and self.in_flight:
            wait_s = self.in_flight * self.turn_s()
            if wait_s <= self.max_wait_s:
                self.over_since = None
                return None
            why = f"{self.in_flight} checks in flight, ~{wait_s * 1000:.0f} ms of waiting"
            if wait_s > self.HARD_FACTOR * self.max_wait_s:
                return why
            now = self.clock()
            if self.over_since is None:
                self.over_since = now
            if now - self.over_since >= self.standing_s:
                return why
        elif self.in_flight == 0:
            self.over_since = None
        return None

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or not scope["path"].startswith(GUARDED):
            await self.app(scope, receive, send)
            return
        why = self._refuse()
        if why is not None:
            body = json.dumps({"error": f"busy: {why}; retry shortly", "status": 503}).encode()
            # Closing the connection sends the client's retry (and its next
            # requests) through a new connection, which the kernel may hand to
            # another worker (``serve --workers``); kept alive, a refused
            # connection came straight back to the busy worker, measured at
            # 98 % of a core while the other idled at 51 %.
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                    (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
