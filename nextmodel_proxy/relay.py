"""Writing a stream to the client: the sink protocol, keep-alive comments, usage-chunk stripping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.sse import KEEPALIVE
from nextmodel_proxy.tee import StreamTee


class StreamSink(Protocol):
    """Where a stream goes: the handler's HTTP response."""

    async def start(self, status: int, headers: Mapping[str, str]) -> None: ...

    async def write(self, data: bytes) -> None: ...


class ClientGone(Exception):
    """The client closed its connection while we were writing to it."""


async def write(sink: StreamSink, data: bytes) -> None:
    try:
        await sink.write(data)
    except (ConnectionError, RuntimeError) as exc:
        raise ClientGone() from exc


async def end(sink: StreamSink, data: bytes) -> None:
    """The stream's last bytes and its end in one write when the sink can (`end`), else a plain write."""
    finish = getattr(sink, "end", None)
    try:
        await (finish(data) if finish is not None else sink.write(data))
    except (ConnectionError, RuntimeError) as exc:
        raise ClientGone() from exc


async def start(sink: StreamSink, status: int, headers: Mapping[str, str]) -> None:
    try:
        await sink.start(status, headers)
    except (ConnectionError, RuntimeError) as exc:
        raise ClientGone() from exc


def error_event(exc: ProxyError) -> bytes:
    """An error after the stream started: one last SSE event carrying the OpenAI error object."""
    return b"data: " + exc.body() + b"\n\n"


class KeepAlive:
    """Writes `: keep-alive` while upstream is silent, so idle-timeout proxies keep slow streams open.

    A loop timer, not a task: a stream that never falls silent costs one timer and no task (issue 16)."""

    __slots__ = ("_sink", "_interval", "_loop", "_last", "_timer", "_task")

    def __init__(self, sink: StreamSink, interval: float) -> None:
        self._sink = sink
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(self._last + interval, self._due)

    def touch(self) -> None:
        self._last = self._loop.time()

    def _due(self) -> None:
        due = self._last + self._interval
        if due > self._loop.time():  # something was relayed since: wait for the rest of the interval
            self._timer = self._loop.call_at(due, self._due)
            return
        self._timer = None
        self._task = self._loop.create_task(self._send())

    async def _send(self) -> None:
        try:
            await self._sink.write(KEEPALIVE)
        except (ConnectionError, RuntimeError):
            return  # the client is gone (or the stream ended): no more keep-alives
        self._task = None
        self._last = self._loop.time()
        self._timer = self._loop.call_at(self._last + self._interval, self._due)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            self._task = None


async def relay_batches(
    batches: AsyncIterator[list[bytes]],
    sink: StreamSink,
    tee: StreamTee,
    *,
    keepalive_s: float,
    wants_usage: bool,
    on_first: Callable[[], None],
    publish: Callable[[bytes], None] | None = None,
    keep_reading: Callable[[], bool] | None = None,
    held: list[bytes] | None = None,
) -> bool:
    """Write each upstream read's events in one write, then let the tee and followers see them.

    A usage-only chunk the client did not ask for is seen by the tee (and followers) but not written.
    With `held`, the final events (a usage-only chunk the client asked for, the terminal event such as
    `data: [DONE]`, and anything after it) are put there instead of written: the caller sends them once
    the receipt has committed. If the client goes away while `keep_reading()` says others still need the
    answer, reading goes on without writing. Returns whether the client was lost on the way.
    """
    keepalive = KeepAlive(sink, keepalive_s)
    first, writing = True, True
    sink_write = sink.write
    try:
        async for batch in batches:
            keepalive.touch()
            if first:
                on_first()
                first = False
            out = hold_final(batch, tee, wants_usage, held)
            if out and writing:
                try:  # relay.write() inlined: this runs once per upstream read
                    await sink_write(out[0] if len(out) == 1 else b"".join(out))
                except (ConnectionError, RuntimeError) as exc:
                    if keep_reading is None or not keep_reading():
                        raise ClientGone() from exc
                    writing = False
                    keepalive.stop()
            if publish is not None:
                for raw in batch:
                    publish(raw)
    finally:
        keepalive.stop()
    return not writing


def hold_final(
    batch: list[bytes], tee: StreamTee, wants_usage: bool, held: list[bytes] | None
) -> list[bytes]:
    """The events of a batch to write now; the tee sees every event. A usage-only chunk the client did not
    ask for is dropped; with `held`, the final events from the first of them on go there instead."""
    out = []
    for raw in batch:
        usage_only = tee.observe(raw)
        if usage_only and not wants_usage:
            continue
        if held is not None and (held or usage_only or tee.done):
            held.append(raw)
        else:
            out.append(raw)
    return out


def split_final(events: list[bytes], tee: StreamTee) -> tuple[list[bytes], list[bytes]]:
    """(events to write now, final events to send once the receipt has committed) of a whole stream: the final
    group starts at the first usage-only chunk or the end. Only events the tee says may start it are observed
    (a chat stream cache hit skips its ~20 content events, issue 16)."""
    for i, raw in enumerate(events):
        if tee.may_start_final(raw) and (tee.observe(raw) or tee.done):
            return events[:i], events[i:]
    return list(events), []
