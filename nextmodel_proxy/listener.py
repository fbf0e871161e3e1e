"""The HTTP listener's guards against slow and hostile connections, and running the app until a signal.

aiohttp has no limit on connections and no deadline for a request's headers; these classes add both:
- a connection past `server.max_connections` is answered one OpenAI-shaped 503 (`server_busy`) as soon as its
  request headers are in (or after `header_timeout_s`), then closed, without ever reaching the app;
- a request whose headers are not complete `header_timeout_s` after its first byte (or after the connection
  opened) gets a 408 (`request_timeout`) and the connection is closed.
The body deadline (`body_timeout_s`) is enforced where the body is read (handlers.read_body).
"""

from __future__ import annotations

import asyncio
import gc
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from nextmodel_proxy.errors import error_body

_HEAD_LIMIT = 64 * 1024  # bytes of a refused connection's request we look through for its end of headers


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    header_timeout_s: float


def auto_max_connections() -> int:
    """Half the open-file limit (a proxied request holds a client and an upstream socket), minus room for
    the ledger, logs and /healthz; at least 16, at most 10,000."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(16, min(10_000, (soft - 64) // 2))


def raw_error(status: int, reason: str, message: str, code: str, extra: str = "") -> bytes:
    """A complete HTTP/1.1 error answer that closes the connection, for use before aiohttp has a request."""
    body = error_body(message, "api_error" if status >= 500 else "invalid_request_error", code)
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n{extra}\r\n"
    )
    return head.encode("ascii") + body


BUSY = raw_error(
    503,
    "Service Unavailable",
    "The proxy is at its connection limit (server.max_connections); retry shortly.",
    "server_busy",
    "Retry-After: 1\r\n",
)
SLOW_HEADERS = raw_error(
    408,
    "Request Timeout",
    "The request headers did not arrive in time (server.header_timeout_s); the connection is closed.",
    "request_timeout",
)


class GuardedHandler(RequestHandler):
    """aiohttp's per-connection protocol with a header deadline and the connection cap."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._deadline: asyncio.TimerHandle | None = None
        self._active = 0  # requests of this connection inside the app right now
        self._refused: asyncio.Transport | None = None
        self._counted = False
        self._head = b""

    # --- the connection cap ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if guard.open_connections >= guard.limits.max_connections:
            self._refused = transport  # type: ignore[assignment]
            self._deadline = self._loop.call_later(guard.limits.header_timeout_s, self._refuse)
            guard.refused += 1
            return
        guard.open_connections += 1
        self._counted = True
        super().connection_made(transport)
        self._arm()

    def _refuse(self) -> None:
        transport, self._refused = self._refused, None
        self._cancel()
        if transport is not None and not transport.is_closing():
            transport.write(BUSY)
            transport.close()  # flushes the answer first

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel()
        self._refused = None
        if not self._counted:  # a refused connection never reached aiohttp
            return
        self._counted = False
        self._guard.open_connections -= 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            self._head = (self._head + data)[-_HEAD_LIMIT:]
            if b"\r\n\r\n" in self._head or b"\n\n" in self._head:
                self._refuse()
            return
        if self._deadline is None and self._active == 0:
            self._arm()  # the first bytes of a new request: its headers have header_timeout_s to arrive
        super().data_received(data)

    # --- the header deadline --------------------------------------------------------------------------

    def _arm(self) -> None:
        self._cancel()
        self._deadline = self._loop.call_later(self._guard.limits.header_timeout_s, self._too_slow)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self._active or self.transport is None or self.transport.is_closing():
            return
        self._guard.timed_out += 1
        self.transport.write(SLOW_HEADERS)
        self.force_close()

    def request_started(self) -> None:
        """Called by the app's outermost middleware: headers are in, the deadline is off."""
        self._active += 1
        self._cancel()

    def request_finished(self) -> None:
        self._active -= 1


class GuardedServer(web.Server):
    """aiohttp's Server, making GuardedHandler connections and counting them."""

    def __init__(self, base: web.Server, limits: ConnectionLimits) -> None:
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )
        self.limits = limits
        self.open_connections = 0
        self.refused = 0
        self.timed_out = 0

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """AppRunner whose server is a GuardedServer."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        return GuardedServer(await super()._make_server(), self._limits)


@web.middleware
async def guard_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Outermost middleware: tells a GuardedHandler its request is in the app (so no header deadline)."""
    protocol = request.protocol
    if not isinstance(protocol, GuardedHandler):
        return await handler(request)
    protocol.request_started()
    try:
        return await handler(request)
    finally:
        protocol.request_finished()


# Objects the collector's youngest generation may gather before it runs. CPython's 700 is below the number
# of container objects that requests in flight hold at any moment (~70 each), so under load it ran about
# every 10 requests, only to find them alive, promote them, and scan them again in the older generations:
# ~8% of the proxy's CPU at 64 connections (issue 16). Most garbage is freed by reference counting anyway.
GC_YOUNG_THRESHOLD = 20_000


def settle_gc() -> None:
    """Once serving: move everything loaded at startup (config, modules, the app) out of the collector's
    sight for good (gc.freeze), and let the youngest generation grow past the requests in flight."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def run(
    app: web.Application,
    host: str,
    port: int,
    *,
    limits: ConnectionLimits,
    shutdown_grace_s: float,
    on_started: Callable[[], None],
    on_stopping: Callable[[], None],
) -> None:
    """Serve `app` until SIGINT/SIGTERM, then shut down with the grace period (OSError if it cannot bind)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runner = GuardedRunner(
        app,
        limits,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=shutdown_grace_s,
        handler_cancellation=True,
    )

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            settle_gc()
            on_started()
            await stop.wait()
            on_stopping()
        finally:
            await runner.cleanup()

    try:
        loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
