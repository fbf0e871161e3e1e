"""Ending requests still running when the shutdown grace runs out, in words the client and the ledger understand.

At shutdown aiohttp waits `server.shutdown_grace_s` for requests in flight, then cancels them: a stream would be
cut with no explanation and its receipt would say 499 client_closed. Instead, shortly before the grace ends,
every request still in flight is marked stopped and cancelled; the pipeline turns that into an SSE error event
(`server_shutting_down`) for a stream already started, or a 503 answer for one that is not, and a receipt
that says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from nextmodel_proxy.errors import ProxyError


def shutting_down() -> ProxyError:
    return ProxyError(
        503,
        "The proxy is shutting down and ended this request before it finished; retry it.",
        "server_shutting_down",
        headers={"Retry-After": "1"},
    )


def stop_delay(grace_s: float) -> float:
    """When to stop what is still running: before the grace ends, leaving time to write the endings."""
    return max(0.0, grace_s - min(2.0, grace_s * 0.2))


class Drain:
    __slots__ = ("_active", "_stopped", "_timer")

    def __init__(self) -> None:
        self._active: dict[str, asyncio.Task[object]] = {}  # receipt id -> the task serving it
        self._stopped: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None

    @contextmanager
    def track(self, receipt_id: str) -> Iterator[None]:
        self.enter(receipt_id)
        try:
            yield
        finally:
            self.leave(receipt_id)

    # enter/leave: track() without a generator, for the request path (Pipeline.handle)
    def enter(self, receipt_id: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._active[receipt_id] = task

    def leave(self, receipt_id: str) -> None:
        self._active.pop(receipt_id, None)
        if self._stopped:
            self._stopped.discard(receipt_id)

    def stopped(self, receipt_id: str) -> bool:
        return receipt_id in self._stopped

    def schedule(self, grace_s: float) -> None:
        """Called when shutdown starts: stop what is left once most of the grace has passed."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(stop_delay(grace_s), self.stop_all)

    def stop_all(self) -> None:
        for receipt_id, task in list(self._active.items()):
            if not task.done():
                self._stopped.add(receipt_id)
                task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
