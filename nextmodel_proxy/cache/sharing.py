"""Single-flight: concurrent identical cache misses share one upstream call (event-loop only, no threads).

The first request for a key leads: it calls the upstream and publishes what it receives. Requests for the
same key arriving meanwhile follow: they get every event the leader has published so far, then the rest as
it comes, then the outcome. A leader that fails (error status, cancellation, truncation) tells its
followers `failed`, and each goes upstream itself. A key is released as soon as its leader finishes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator


class FlightFailed(Exception):
    """The leader did not produce a complete answer (or went quiet); the follower must go upstream itself."""


class _Call:
    """The shared state of one in-flight key."""

    __slots__ = ("canonical", "events", "done", "ok", "final", "changed", "touched", "followers")

    def __init__(self, canonical: bytes) -> None:
        self.canonical = canonical
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

    def lead_or_follow(self, key: str, canonical: bytes) -> Flight:
        """Lead when nobody is fetching `key` (or its leader went quiet too long), else follow.

        Following is verified like a cache hit: only a request with the same canonical bytes follows; a
        different request on the same key (a collision) leads a flight of its own that nobody can join.
        """
        call = self._calls.get(key)
        if call is not None and time.monotonic() - call.touched <= self.idle_timeout_s:
            if call.canonical == canonical:
                call.followers += 1
                return Flight(self, key, call, False, self.idle_timeout_s)
            return Flight(self, key, _Call(canonical), True, self.idle_timeout_s)
        call = _Call(canonical)
        self._calls[key] = call
        return Flight(self, key, call, True, self.idle_timeout_s)

    def _release(self, key: str, call: _Call) -> None:
        # Only the current call: a leader replaced for idling must not release its successor.
        if self._calls.get(key) is call:
            del self._calls[key]
