"""The request flow: resolve -> (cache) -> upstream -> relay + tee -> record. No aiohttp.web here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from nextmodel_proxy import routing
from nextmodel_proxy.config import Config
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.exchange import Exchange
from nextmodel_proxy.retry import RetryPolicy, should_fall_back, should_retry
from nextmodel_proxy.sse import KEEPALIVE
from nextmodel_proxy.tee import StreamTee, completion_facts
from nextmodel_proxy.upstream.base import Target, UpstreamCall, event_batches
from nextmodel_proxy.upstream.registry import adapter_for

log = logging.getLogger(__name__)


class StreamSink(Protocol):
    """Where a stream goes: the handler's HTTP response."""

    async def start(self, status: int, headers: Mapping[str, str]) -> None: ...

    async def write(self, data: bytes) -> None: ...


class ClientGone(Exception):
    """The client closed its connection while we were writing to it."""


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Recorder(Protocol):
    """Turns a finished exchange into a receipt (the ledger); `commit` waits until it is durable."""

    def check_writable(self) -> None: ...

    def record(self, ex: Exchange) -> asyncio.Future[None] | None: ...


class Pipeline:
    """One per app: holds the config, the shared ClientSession and the recorder."""

    def __init__(self, config: Config, session: aiohttp.ClientSession, recorder: Recorder | None = None) -> None:
        self.config = config
        self.session = session
        self.recorder = recorder
        self.latency_stats: dict[str, float] = {}

    # --- resolution -------------------------------------------------------------------------

    def resolve(self, ex: Exchange) -> list[Target]:
        """The ordered candidates for the requested model or route, with the decision on the exchange."""
        plan = routing.plan(self.config, ex.model_requested, ex.body, today=ex.created.date(),
                            endpoint=ex.endpoint, latency_stats=self.latency_stats, project=ex.project)
        ex.route = plan.route
        ex.route_decision = plan.decision
        return list(plan.candidates)

    # --- entry points -----------------------------------------------------------------------

    async def handle(self, ex: Exchange, sink: StreamSink) -> Reply | None:
        """Serve one exchange; returns the reply for non-streams, None when it streamed into `sink`."""
        try:
            if self.recorder is not None:
                self.recorder.check_writable()
            targets = self.resolve(ex)
            call = await self._open(ex, targets)
            if call.is_stream and ex.stream:
                await self._relay_stream(ex, call, sink)
                return None
            return await self._finish_body(ex, call)
        except ProxyError as exc:
            ex.fail(exc.status, exc.code)
            exc.headers.update(ex.headers())
            await self._record(ex, wait=True, raise_on_fail=False)
            raise
        except asyncio.CancelledError:
            ex.fail(499, "client_closed")
            await self._record(ex, wait=False)
            raise
        except ClientGone:
            await self._record(ex, wait=False)
            return None

    async def _open(self, ex: Exchange, targets: list[Target]) -> UpstreamCall:
        """Open the first candidate that answers, retrying transient failures with backoff, then falling back.

        Only before anything reached the client: once this returns, the answer is committed to.
        The last failure (an upstream error response, or our own ProxyError) is what the client gets.
        """
        body = ex.upstream_body()
        last: _Attempt | None = None
        for index, target in enumerate(targets):
            policy = RetryPolicy.for_provider(target.provider)
            attempt = 0
            while True:
                if last is not None:
                    last.discard()
                last = await self._attempt(ex, target, body)
                if last.call is not None and (last.status < 400 or not should_fall_back(last.status, None, False)):
                    return last.call
                attempt += 1
                retrying = should_retry(last.status, last.code, False)
                delay = policy.delay(attempt, last.retry_after) if retrying else None
                if delay is None:
                    break
                await asyncio.sleep(delay)
            if index == len(targets) - 1 or not should_fall_back(last.status, last.code, False):
                break
        assert last is not None
        if last.call is not None:
            return last.call
        assert last.error is not None
        raise last.error

    async def _attempt(self, ex: Exchange, target: Target, body: dict[str, Any]) -> _Attempt:
        ex.target = target
        try:
            call = await adapter_for(target.provider.kind).open(
                self.session, target, body, endpoint=ex.endpoint, client_headers=ex.client_headers,
            )
        except ProxyError as exc:
            ex.attempts.append({"provider": target.provider.name, "model": target.model.id, "outcome": exc.code})
            return _Attempt(None, exc, exc.status, exc.code, None)
        ex.upstream_request_id = call.upstream_request_id
        ex.attempts.append({"provider": target.provider.name, "model": target.model.id, "outcome": str(call.status)})
        return _Attempt(call, None, call.status, None, call.headers.get("Retry-After"))

    async def _finish_body(self, ex: Exchange, call: UpstreamCall) -> Reply:
        try:
            raw = await call.read()
        finally:
            call.release()
        ex.mark_first_byte()
        ex.status = call.status
        obj, usage = completion_facts(raw)
        if call.status == 200:
            ex.set_usage(usage, estimated_from=obj)
        else:
            ex.fail(call.status, _error_code(obj) or "upstream_error")
        await self._record(ex, wait=True)
        headers = dict(call.headers)
        headers.setdefault("Content-Type", "application/json")
        headers.update(ex.headers(final=True))
        return Reply(call.status, headers, raw)

    async def _relay_stream(self, ex: Exchange, call: UpstreamCall, sink: StreamSink) -> None:
        tee = StreamTee(collect=False)
        ex.status = 200
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **ex.headers()}
        await sink.start(200, headers)
        keepalive = _KeepAlive(sink, self.config.server.keepalive_s)
        try:
            async for batch in event_batches(call):
                keepalive.touch()
                if ex.ttft_ms is None:
                    ex.mark_first_byte()
                out = [raw for raw in batch if not (tee.observe(raw) and not ex.client_wants_usage)]
                if out:
                    await _write(sink, out[0] if len(out) == 1 else b"".join(out))
        except ProxyError as exc:
            ex.fail(exc.status, exc.code)
            await _write(sink, _stream_error_event(exc))
        finally:
            keepalive.stop()
            call.release()
            ex.finish_stream(tee)
            await self._record(ex, wait=False)

    async def _record(self, ex: Exchange, *, wait: bool, raise_on_fail: bool = True) -> None:
        if self.recorder is None or ex.recorded:
            return
        ex.recorded = True
        fut = self.recorder.record(ex)
        if fut is None or not wait:
            return
        try:
            await asyncio.shield(fut)
        except ProxyError:
            if raise_on_fail:
                raise


@dataclass(slots=True)
class _Attempt:
    """One try at one candidate: an open call (maybe an error response) or our own error."""

    call: UpstreamCall | None
    error: ProxyError | None
    status: int
    code: str | None
    retry_after: str | None

    def discard(self) -> None:
        if self.call is not None:
            self.call.release()


class _KeepAlive:
    """Writes `: keep-alive` while upstream is silent, so idle-timeout proxies keep slow streams open."""

    __slots__ = ("_sink", "_interval", "_last", "_task")

    def __init__(self, sink: StreamSink, interval: float) -> None:
        self._sink = sink
        self._interval = interval
        self._last = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def touch(self) -> None:
        self._last = time.monotonic()

    async def _run(self) -> None:
        try:
            while True:
                wait = self._last + self._interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                await self._sink.write(KEEPALIVE)
                self._last = time.monotonic()
        except (ConnectionError, RuntimeError):
            return

    def stop(self) -> None:
        self._task.cancel()


async def _write(sink: StreamSink, data: bytes) -> None:
    try:
        await sink.write(data)
    except (ConnectionError, RuntimeError) as exc:
        raise ClientGone() from exc


def _stream_error_event(exc: ProxyError) -> bytes:
    return b"data: " + exc.body() + b"\n\n"


def _error_code(obj: dict[str, Any] | None) -> str | None:
    if obj and isinstance(obj.get("error"), dict):
        code = obj["error"].get("code") or obj["error"].get("type")
        return str(code) if code else None
    return None
