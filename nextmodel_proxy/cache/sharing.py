"""Single-flight: concurrent identical cache misses share one upstream call (event-loop only, no threads).

The first request for a key leads: it calls the upstream and publishes what it receives. Requests for the
same key arriving meanwhile follow: they get every event the leader has published so far, then the rest as
it comes, then the outcome. A leader that fails (error status, cancellation, truncation) tells its
followers `failed`, and each goes upstream itself. A key is released as soon as its leader finishes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from nextmodel_proxy.cache import plan, replay
from nextmodel_proxy.endpoints import wire
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.relay import ClientGone, KeepAlive, StreamSink, hold_final, write
from nextmodel_proxy.usage import usage_trusted

if TYPE_CHECKING:
    from nextmodel_proxy.request_state import JsonObject, RequestState

log = logging.getLogger(__name__)


class FlightFailed(Exception):
    """The leader did not produce a complete answer (or went quiet); the follower must go upstream itself."""


class _Call:
    """The shared state of one in-flight key."""

    __slots__ = ("canonical", "leader", "events", "done", "ok", "final", "changed", "touched", "followers")

    def __init__(self, canonical: bytes, leader: str | None) -> None:
        self.canonical = canonical
        self.leader = leader  # the leading request's receipt id (its followers' receipts point at it)
        self.events: list[bytes] = []
        self.done = False
        self.ok = False
        self.final: bytes | None = None
        self.changed = asyncio.Event()
        self.touched = time.monotonic()
        self.followers = 0

    def wake(self) -> None:
        # Waiters hold the old Event; replacing it lets them wake once and wait afresh.
        self.touched = time.monotonic()
        self.changed.set()
        self.changed = asyncio.Event()


class Flight:
    """One request's handle on a key: the leader publishes, a follower iterates."""

    __slots__ = ("key", "is_leader", "_call", "_owner", "_idle_timeout_s")

    def __init__(
        self, owner: SingleFlight, key: str, call: _Call, is_leader: bool, idle_timeout_s: float
    ) -> None:
        self.key = key
        self.is_leader = is_leader
        self._call = call
        self._owner = owner
        self._idle_timeout_s = idle_timeout_s

    # --- leader side ---

    def publish(self, event: bytes) -> None:
        """Hand one raw SSE event to the followers (call right after writing it to the leader's client)."""
        if not self.is_leader or self._call.done:
            return
        self._call.events.append(event)
        self._call.wake()

    def finish(self, ok: bool, final: bytes | None = None) -> None:
        """End the flight (idempotent): ok with the whole JSON body (non-stream) or None (stream), or failed."""
        call = self._call
        if not self.is_leader or call.done:
            return
        call.done, call.ok, call.final = True, ok, final if ok else None
        self._owner._release(self.key, call)
        call.wake()

    def __enter__(self) -> Flight:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """A leader that leaves without finishing (exception, cancellation) has failed."""
        self.finish(False)

    # --- follower side ---

    @property
    def has_followers(self) -> bool:
        return self._call.followers > 0

    @property
    def leader_receipt_id(self) -> str | None:
        return self._call.leader

    @property
    def final(self) -> bytes | None:
        """The leader's JSON body once the flight ended ok (None for a stream)."""
        return self._call.final

    async def events(self) -> AsyncIterator[bytes]:
        """The leader's events from the first, as they come; raises FlightFailed if the leader fails or idles."""
        call, sent = self._call, 0
        while True:
            while sent < len(call.events):
                sent += 1
                yield call.events[sent - 1]
            if call.done:
                break
            changed = call.changed
            try:
                await asyncio.wait_for(changed.wait(), self._idle_timeout_s)
            except TimeoutError:
                raise FlightFailed(f"leader idle for {self._idle_timeout_s}s") from None
        if not call.ok:
            raise FlightFailed("leader failed")

    async def wait(self) -> list[bytes]:
        """All of the leader's events at once (for a non-stream follower); FlightFailed as for `events`."""
        return [event async for event in self.events()]


class SingleFlight:
    """Per-process registry of in-flight keys; one per app, used only from the event loop."""

    __slots__ = ("_calls", "idle_timeout_s")

    def __init__(self, *, idle_timeout_s: float = 60.0) -> None:
        self._calls: dict[str, _Call] = {}
        self.idle_timeout_s = idle_timeout_s

    def __len__(self) -> int:
        return len(self._calls)

    def lead_or_follow(self, key: str, canonical: bytes, receipt_id: str | None = None) -> Flight:
        """Lead when nobody is fetching `key` (or its leader went quiet too long), else follow.

        Following is verified like a cache hit: only a request with the same canonical bytes follows; a
        different request on the same key (a collision) leads a flight of its own that nobody can join.
        """
        call = self._calls.get(key)
        if call is not None and time.monotonic() - call.touched <= self.idle_timeout_s:
            if call.canonical == canonical:
                call.followers += 1
                return Flight(self, key, call, False, self.idle_timeout_s)
            return Flight(self, key, _Call(canonical, receipt_id), True, self.idle_timeout_s)
        call = _Call(canonical, receipt_id)
        self._calls[key] = call
        return Flight(self, key, call, True, self.idle_timeout_s)

    def _release(self, key: str, call: _Call) -> None:
        # Only the current call: a leader replaced for idling must not release its successor.
        if self._calls.get(key) is call:
            del self._calls[key]


# --- the request path's side: a leader that may outlive its client, followers that replay its answer ---


class NotServed:
    """A follower whose leader failed before a byte reached the client: it goes upstream itself."""


NOT_SERVED = NotServed()
R = TypeVar("R")


class Replier(Protocol[R]):
    """What a follower needs from the pipeline to answer its client and record its receipt."""

    keepalive_s: float

    async def start_stream(self, state: RequestState, sink: StreamSink) -> None: ...

    async def write_replay(
        self, state: RequestState, out: bytes | list[bytes], sink: StreamSink
    ) -> R | None: ...

    async def record(self, state: RequestState) -> None: ...

    async def send_final(self, state: RequestState, sink: StreamSink, held: list[bytes]) -> None: ...


async def lead(flight: Flight, state: RequestState, serve: Callable[[], Awaitable[R]]) -> R:
    """Fetch the answer for the followers too; the flight fails if `serve` ends without finishing it.

    A streaming leader runs in its own task: if its client leaves while others share its answer, the task
    goes on reading upstream for them (and records the receipt) instead of being cancelled.
    """

    async def guarded() -> R:
        with flight:
            return await serve()

    if not state.stream:
        return await guarded()
    task = asyncio.get_running_loop().create_task(guarded())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if flight.has_followers and not task.done():
            state.holds.detached = True
            task.add_done_callback(_retrieve)
        else:
            task.cancel()
            await asyncio.wait({task})
        raise


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A detached leader's outcome belongs to nobody: read it so it is never reported as lost."""
    if not task.cancelled() and task.exception() is not None:
        log.info("detached stream ended with %r", task.exception())


async def follow(
    flight: Flight, state: RequestState, sink: StreamSink, out: Replier[R]
) -> R | None | NotServed:
    """Answer from an identical request already in flight; NOT_SERVED if it failed before we sent a byte."""
    if state.stream:
        return await _follow_stream(flight, state, sink, out)
    try:
        events = await flight.wait()
    except FlightFailed:
        return NOT_SERVED
    kind, body = plan.flight_result(events, flight.final)
    usage = plan.usage_from(kind, body, state.endpoint)
    trusted = usage_trusted(usage, completion_required=state.is_chat)
    _served_by_leader(
        state, flight, usage, plan.stored_answer(state.endpoint, kind, body) if not trusted else None
    )
    answer = wire.replay_body(
        state.endpoint, kind, body, stream=False, include_usage=state.client_wants_usage
    )
    return await out.write_replay(state, answer, sink)


def _served_by_leader(
    state: RequestState, flight: Flight, usage: JsonObject | None, answer: JsonObject | None = None
) -> None:
    state.served_from(usage, flight.leader_receipt_id, "hit", answer)
    assert state.decision.cache_plan is not None
    state.outcome.extra_headers.update(plan.status_headers(state.decision.cache_plan, "hit"))


async def _follow_stream(
    flight: Flight, state: RequestState, sink: StreamSink, out: Replier[R]
) -> R | None | NotServed:
    """Relay the leader's events as they arrive (the stream starts on the first one, so a leader failing
    before it lets us go upstream ourselves); a failure after that ends the stream with an error event."""
    tee = wire.tee_for(state.endpoint, collect=False)
    keepalive: KeepAlive | None = None
    held: list[bytes] = []  # the final events ([DONE] ...): sent once this receipt has committed
    try:
        async for raw in flight.events():
            if keepalive is None:
                _served_by_leader(state, flight, None)
                await out.start_stream(state, sink)
                state.mark_first_byte()
                keepalive = KeepAlive(sink, out.keepalive_s)
            keepalive.touch()
            if hold_final([raw], tee, state.client_wants_usage, held):
                await write(sink, raw)
    except FlightFailed:
        if keepalive is None:
            return NOT_SERVED
        exc = ProxyError(
            502,
            "The identical request whose answer this stream was sharing ended before the "
            "answer was complete (upstream error); retry the request.",
            "upstream_error",
        )
        # Nothing complete was delivered: an error, not a replay to bill.
        result = state.outcome
        result.served_mode, result.usage, result.usage_source = "error", None, "none"
        state.fail(exc.status, exc.code)
        await write(sink, wire.error_event(state.endpoint, exc, tee))
        await out.record(state)
        return None
    except (ClientGone, asyncio.CancelledError):
        if tee.done:  # its client left after [DONE]: it has the whole answer, a replay like any other
            state.outcome.usage, state.outcome.response_id = tee.usage, tee.response_id
            await out.record(state)
        raise
    finally:
        if keepalive is not None:
            keepalive.stop()
    if keepalive is None:  # the leader asked without streaming: its whole answer, replayed as events
        assert flight.final is not None
        _served_by_leader(state, flight, plan.usage_from("json", flight.final))
        events = replay.replay("json", flight.final, stream=True, include_usage=state.client_wants_usage)
        return await out.write_replay(state, events, sink)
    state.outcome.usage, state.outcome.response_id = tee.usage, tee.response_id
    await out.send_final(state, sink, held)
    return None
