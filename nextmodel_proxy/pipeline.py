"""The request flow: admit -> route -> cache -> budget -> upstream -> relay + tee -> receipt. No aiohttp.web."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict

from nextmodel_proxy import routing
from nextmodel_proxy.access.auth import Principal, attribute, check_model
from nextmodel_proxy.access.budgets import budget_headers
from nextmodel_proxy.accounting import build_receipt
from nextmodel_proxy.cache import plan as caching
from nextmodel_proxy.cache import replay
from nextmodel_proxy.cache import store as cache
from nextmodel_proxy.cache.sharing import Flight, FlightFailed
from nextmodel_proxy.config import Config
from nextmodel_proxy.drain import Drain, shutting_down
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.ledger.writer import LedgerUnavailable
from nextmodel_proxy.pricing import from_pusd, replay_billed, to_pusd, usage_trusted
from nextmodel_proxy.relay import ClientGone, KeepAlive, StreamSink, error_event, relay_batches, start, write
from nextmodel_proxy.request_log import log_receipt
from nextmodel_proxy.request_state import Exchange
from nextmodel_proxy.services import Services
from nextmodel_proxy.tee import StreamTee, completion_facts
from nextmodel_proxy.upstream.base import Target, UpstreamCall, event_batches
from nextmodel_proxy.upstream.failover import open_first

log = logging.getLogger(__name__)
_NOT_SERVED = object()


@dataclass(slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # case-insensitive when it carries upstream headers
    body: bytes


class Pipeline:
    """One per app: the config, the shared ClientSession, and the long-lived services."""

    def __init__(self, config: Config, session: aiohttp.ClientSession, services: Services) -> None:
        self.config = config
        self.session = session
        self.services = services
        self._leaders: dict[str, str] = {}  # cache key -> receipt id of the request fetching it
        self.drain = Drain()

    # --- admission ----------------------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller's key (401 when keys exist and this one is missing or bad); None in open mode."""
        try:
            return self.services.keys.authenticate(headers.get("Authorization"))
        except ProxyError as exc:
            self.count_rejected(exc)
            raise

    def count_rejected(self, exc: ProxyError) -> None:
        """Requests refused before they have a receipt (unauthenticated, malformed): counted and logged."""
        self.services.rejected[exc.code] = self.services.rejected.get(exc.code, 0) + 1
        log.info("refused request without a receipt: %s %s", exc.status, exc.code)

    def admit(self, ex: Exchange, principal: Principal | None) -> None:
        """Attribute the exchange, then check model permission, ledger health and rate limits."""
        who = attribute(principal, ex.client_headers, self.config)
        ex.key_id, ex.project, ex.team = who.key_id, who.project, who.team
        ex.environment = who.environment or ex.environment
        check_model(principal, ex.model_requested)
        if self.services.ledger is not None and not self.services.ledger.healthy:
            raise LedgerUnavailable("the ledger file cannot be written").proxy_error()
        if principal is not None and (principal.rpm or principal.tpm):  # estimating costs a walk of the body
            estimate = routing.estimate_prompt_tokens(ex.body) + _max_tokens(ex.body) if principal.tpm else 0
            ex.admission = self.services.limiter.check(principal, estimate)

    def resolve(self, ex: Exchange) -> list[Target]:
        """The ordered candidates for the requested model or route, with the decision on the exchange."""
        plan = routing.plan(
            self.config,
            ex.model_requested,
            ex.body,
            today=ex.created.date(),
            endpoint=ex.endpoint,
            latency_stats=self.services.latency_ms,
            project=ex.project,
            budget_share=self._budget_share(ex),
        )
        ex.route = plan.route
        ex.route_decision = plan.decision
        return list(plan.candidates)

    def _budget_share(self, ex: Exchange) -> Any:
        project = self.config.projects.get(ex.project or "")
        if project is None or project.budget is None or project.budget.switch_route is None:
            return None
        shares = [u.share_spent for u in self.services.budgets.usages(ex) if u.budget.scope == "project"]
        return max(shares, default=None)

    # --- entry point --------------------------------------------------------------------------

    async def handle(self, ex: Exchange, principal: Principal | None, sink: StreamSink) -> Reply | None:
        """Serve one exchange; returns the reply for non-streams, None when it streamed into `sink`."""
        with self.drain.track(ex.receipt_id):
            return await self._handle(ex, principal, sink)

    async def _end_stopped(self, ex: Exchange, sink: StreamSink) -> None:
        """Shutdown stopped this exchange (drain.py): end its stream with an error event, or refuse it."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        err = shutting_down()
        if ex.error_code != err.code and ex.stream and ex.status == 200:  # a stream had started
            ex.fail(err.status, err.code)
            with contextlib.suppress(ClientGone):
                await write(sink, error_event(err))
        if ex.error_code == err.code:
            await self._finish(ex, wait=False)
            return None
        ex.fail(err.status, err.code)
        await self._finish(ex, wait=True, raise_on_ledger=False)
        err.headers.update(ex.headers(final=True))
        raise err

    async def _handle(self, ex: Exchange, principal: Principal | None, sink: StreamSink) -> Reply | None:
        try:
            self.admit(ex, principal)
            return await self._serve(ex, sink)
        except ProxyError as exc:
            ex.fail(exc.status, exc.code)
            await self._finish(ex, wait=True, raise_on_ledger=False)
            exc.headers.update(ex.headers(final=True))  # a refusal is a complete non-stream answer
            exc.headers.update(self._budget_headers(ex))
            raise
        except (asyncio.CancelledError, ClientGone) as exc:
            if isinstance(exc, asyncio.CancelledError) and self.drain.stopped(ex.receipt_id):
                return await self._end_stopped(ex, sink)
            if not ex.detached:  # a detached leader records its own receipt when its upstream answer ends
                ex.fail(499, "client_closed")
                await self._finish(ex, wait=False)
            raise
        except Exception:
            # A bug must not leave a budget hold behind or a request unrecorded; the middleware logs it.
            ex.fail(500, "internal_error")
            await self._finish(ex, wait=False)
            raise

    async def _serve(self, ex: Exchange, sink: StreamSink) -> Reply | None:
        targets = self.resolve(ex)
        ex.target = ex.cache_target = targets[0]
        if self.services.cache_reader is None:
            caching.refuse_only_without_cache(ex)
        plan = caching.plan_cache(ex, targets[0], self.config) if self.services.cache_reader else None
        ex.cache_plan = plan
        ex.cache_key = plan.key if plan is not None else None
        if plan is not None and plan.decision.read:
            hit = self._lookup(plan)
            if hit is not None:
                return await self._serve_hit(ex, hit, sink)
            if not plan.decision.upstream_allowed:
                raise caching.cache_miss(
                    "x-nextmodel-cache: only, and no cached answer exists for this request"
                )
        if plan is not None:
            ex.extra_headers.update(caching.status_headers(plan, caching.miss_status(plan)))
            ex.cache_status = caching.miss_status(plan)
        if self.services.budgets.applicable(ex):
            ex.reservation = self.services.budgets.reserve(ex, self._worst_case(ex, targets))
        flight = None
        if plan is not None and plan.active and plan.decision.write:
            flight = self.services.flights.lead_or_follow(plan.key, plan.canonical)
            if not flight.is_leader:
                served = await self._follow(ex, flight, sink)
                if served is not _NOT_SERVED:
                    return served
                flight = None
        if flight is None:
            return await self._serve_upstream(ex, targets, sink, None)
        if not ex.stream:
            return await self._lead(ex, targets, sink, flight)
        # A streaming leader runs in its own task: if its client leaves while others share its answer,
        # the task goes on reading upstream for them (and records the receipt) instead of being cancelled.
        task = asyncio.get_running_loop().create_task(self._lead(ex, targets, sink, flight))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if flight.has_followers and not task.done():
                ex.detached = True
                task.add_done_callback(_retrieve)
            else:
                task.cancel()
                await asyncio.wait({task})
            raise

    async def _lead(
        self, ex: Exchange, targets: list[Target], sink: StreamSink, flight: Flight
    ) -> Reply | None:
        self._leaders[flight.key] = ex.receipt_id
        try:
            with flight:
                return await self._serve_upstream(ex, targets, sink, flight)
        finally:
            if self._leaders.get(flight.key) == ex.receipt_id:
                del self._leaders[flight.key]

    def _worst_case(self, ex: Exchange, targets: list[Target]) -> Any:
        costs = [routing.estimate_request_cost(t.model, ex.body) for t in targets]
        # Decimal, not int: the budget book converts it with Decimal methods (an unpriced model costs 0 here).
        return max((c for c in costs if c is not None), default=Decimal(0))

    # --- cache hits and followers -------------------------------------------------------------

    def _lookup(self, plan: caching.CachePlan) -> cache.CacheHit | None:
        writer = self.services.cache_writer
        assert self.services.cache_reader is not None and plan.key and plan.canonical
        return cache.lookup(
            self.services.cache_reader,
            plan.key,
            plan.canonical,
            now=time.time(),
            ttl_s=self.config.cache.ttl_s,
            on_bad=lambda bad: writer.submit_op(lambda c: cache.drop_bad(c, bad)) if writer else None,
        )

    async def _serve_hit(self, ex: Exchange, hit: cache.CacheHit, sink: StreamSink) -> Reply | None:
        fresh = hit.fresh_cost_pusd
        billed = (
            replay_billed(from_pusd(fresh), self.config.cache.replay_price_ratio) if fresh is not None else 0
        )
        ex.reservation = self.services.budgets.reserve(ex, billed)
        ex.served_from(
            hit.usage,
            hit.fresh_receipt_id,
            "hit",
            _stored_answer(hit.response_kind, hit.body) if not _trusted(ex, hit.usage) else None,
        )
        ex.cache_hit = hit
        ex.extra_headers.update(caching.status_headers(ex.cache_plan, "hit"))
        return await self._write_replay(ex, caching.hit_body(hit, ex), sink)

    async def _write_replay(self, ex: Exchange, out: bytes | list[bytes], sink: StreamSink) -> Reply | None:
        ex.status = 200
        if isinstance(out, list):
            await self._start_stream(ex, sink)
            ex.mark_first_byte()
            await write(sink, b"".join(out))
            await self._finish(ex, wait=False)
            return None
        ex.mark_first_byte()
        await self._finish(ex, wait=True)
        return Reply(
            200,
            {"Content-Type": "application/json", **ex.headers(final=True), **self._budget_headers(ex)},
            out,
        )

    async def _follow(self, ex: Exchange, flight: Flight, sink: StreamSink) -> Any:
        """Answer from an identical request already in flight; _NOT_SERVED if it failed before we sent a byte."""
        leader_receipt = self._leaders.get(flight.key)
        if ex.stream:
            return await self._follow_stream(ex, flight, sink, leader_receipt)
        try:
            events = await flight.wait()
        except FlightFailed:
            return _NOT_SERVED
        kind, body = caching.flight_result(events, flight.final)
        usage = caching.usage_from(kind, body)
        self._served_by_leader(
            ex, leader_receipt, usage, _stored_answer(kind, body) if not _trusted(ex, usage) else None
        )
        return await self._write_replay(
            ex, replay.replay(kind, body, stream=ex.stream, include_usage=ex.client_wants_usage), sink
        )

    @staticmethod
    def _served_by_leader(
        ex: Exchange,
        leader_receipt: str | None,
        usage: dict[str, Any] | None,
        answer: dict[str, Any] | None = None,
    ) -> None:
        ex.served_from(usage, leader_receipt, "hit", answer)
        ex.extra_headers.update(caching.status_headers(ex.cache_plan, "hit"))

    async def _follow_stream(
        self, ex: Exchange, flight: Flight, sink: StreamSink, leader_receipt: str | None
    ) -> Any:
        """Relay the leader's events as they arrive (the stream starts on the first one, so a leader failing
        before it lets us go upstream ourselves); a failure after that ends the stream with an error event."""
        tee = StreamTee(collect=False)
        keepalive: KeepAlive | None = None
        try:
            async for raw in flight.events():
                if keepalive is None:
                    self._served_by_leader(ex, leader_receipt, None)
                    await self._start_stream(ex, sink)
                    ex.mark_first_byte()
                    keepalive = KeepAlive(sink, self.config.server.keepalive_s)
                keepalive.touch()
                if not tee.observe(raw) or ex.client_wants_usage:
                    await write(sink, raw)
        except FlightFailed:
            if keepalive is None:
                return _NOT_SERVED
            exc = ProxyError(
                502,
                "The identical request whose answer this stream was sharing ended before the "
                "answer was complete (upstream error); retry the request.",
                "upstream_error",
            )
            # Nothing complete was delivered: an error, not a replay to bill.
            ex.served_mode, ex.usage, ex.usage_source = "error", None, "none"
            ex.fail(exc.status, exc.code)
            await write(sink, error_event(exc))
            await self._finish(ex, wait=False)
            return None
        except (ClientGone, asyncio.CancelledError):
            if tee.done:  # its client left after [DONE]: it has the whole answer, a replay like any other
                ex.usage, ex.response_id = tee.usage, tee.response_id
                await self._finish(ex, wait=False)
            raise
        finally:
            if keepalive is not None:
                keepalive.stop()
        if keepalive is None:  # the leader asked without streaming: its whole answer, replayed as events
            assert flight.final is not None
            self._served_by_leader(ex, leader_receipt, caching.usage_from("json", flight.final))
            return await self._write_replay(
                ex,
                replay.replay("json", flight.final, stream=True, include_usage=ex.client_wants_usage),
                sink,
            )
        ex.usage, ex.response_id = tee.usage, tee.response_id
        await self._finish(ex, wait=False)
        return None

    # --- upstream ----------------------------------------------------------------------------

    async def _serve_upstream(
        self, ex: Exchange, targets: list[Target], sink: StreamSink, flight: Flight | None
    ) -> Reply | None:
        call = await open_first(self.session, ex, targets)
        if call.is_stream and ex.stream:
            await self._relay_stream(ex, call, sink, flight)
            return None
        return await self._finish_body(ex, call, flight)

    async def _finish_body(self, ex: Exchange, call: UpstreamCall, flight: Flight | None) -> Reply:
        try:
            raw = await call.read()
        finally:
            call.release()
        ex.mark_first_byte()
        ex.status = call.status
        obj, usage = completion_facts(raw)
        if call.status == 200:
            ex.set_usage(usage, estimated_from=obj)
            if ex.cache_plan is not None and ex.cache_plan.decision.write and ex.target is ex.cache_target:
                if caching.storable_body(ex.endpoint, obj, call.status):
                    ex.cache_payload = ("json", raw)
        else:
            ex.fail(call.status, _error_code(obj) or "upstream_error")
        if flight is not None:
            flight.finish(ex.cache_payload is not None, raw if ex.cache_payload is not None else None)
        await self._finish(ex, wait=True)
        headers = CIMultiDict(call.headers)  # upstreams may send lower-case names: ours must replace theirs
        headers.setdefault("Content-Type", "application/json")
        headers.update(ex.headers(final=True))
        headers.update(self._budget_headers(ex))  # after settling, so they count this answer's cost
        return Reply(call.status, headers, raw)

    async def _relay_stream(
        self, ex: Exchange, call: UpstreamCall, sink: StreamSink, flight: Flight | None
    ) -> None:
        storing = ex.cache_plan is not None and ex.cache_plan.decision.write and ex.target is ex.cache_target
        tee = StreamTee(collect=True)
        shared = flight is not None and storing
        lost = False
        try:
            # Inside the try: if even the headers cannot be written, the upstream call is still released.
            await self._start_stream(ex, sink)
            lost = await relay_batches(
                event_batches(call),
                sink,
                tee,
                keepalive_s=self.config.server.keepalive_s,
                wants_usage=ex.client_wants_usage,
                on_first=ex.mark_first_byte,
                publish=flight.publish if shared else None,
                keep_reading=(lambda: flight.has_followers) if shared else None,
            )
            if not tee.done and tee.error is None:
                # A clean close before the end: tell the client rather than let a cut answer pass as whole.
                raise ProxyError(
                    502,
                    f"upstream {ex.provider_name!r} ended the stream before it was complete",
                    "upstream_error",
                )
        except ProxyError as exc:
            ex.fail(exc.status, exc.code)
            with contextlib.suppress(ClientGone):  # a client already gone needs no error event
                await write(sink, error_event(exc))
        except (ClientGone, asyncio.CancelledError) as exc:
            if tee.done:  # a client that already has [DONE] got the whole answer
                raise
            if isinstance(exc, asyncio.CancelledError) and self.drain.stopped(ex.receipt_id):
                err = shutting_down()  # the proxy is stopping: say so, to the client and on the receipt
                ex.fail(err.status, err.code)
                with contextlib.suppress(ClientGone):
                    await write(sink, error_event(err))
            else:
                ex.fail(499, "client_closed")
            raise
        finally:
            call.release()
            ex.finish_stream(tee)
            # Parsing the whole stream is only worth it when someone will reuse it.
            reused = storing or flight is not None
            complete = reused and ex.error_code is None and caching.storable_stream(tee.events)
            if storing and complete:
                ex.cache_payload = ("sse", b"".join(tee.events))
            if flight is not None:
                # An answer from a fallback candidate is not this key's answer: followers go upstream themselves.
                flight.finish(storing and complete)
            if lost and ex.error_code is None:
                ex.error_code = (
                    "client_closed"  # its client left; the answer was read to the end for the others
                )
            await self._finish(ex, wait=False)

    # --- the receipt -------------------------------------------------------------------------

    async def _start_stream(self, ex: Exchange, sink: StreamSink) -> None:
        """Send a 200 event-stream's headers (ClientGone when the client cannot take them)."""
        ex.status = 200
        await start(
            sink,
            200,
            {
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                **ex.headers(),
                **self._budget_headers(ex),
            },
        )

    def _budget_headers(self, ex: Exchange) -> dict[str, str]:
        return (
            budget_headers(self.services.budgets.status(ex)) if self.services.budgets.applicable(ex) else {}
        )

    async def _finish(self, ex: Exchange, *, wait: bool, raise_on_ledger: bool = True) -> None:
        """Build the receipt, settle budget and rate limit, queue cache writes, and record it (once)."""
        if ex.receipt is not None:
            return
        receipt = ex.receipt = build_receipt(ex, self.config)
        log_receipt(receipt)
        s = self.services
        billed = to_pusd(receipt.billed_cost_usd) if receipt.billed_cost_usd is not None else None
        if ex.reservation is not None:
            s.budgets.settle(ex.reservation, billed)
        if ex.admission is not None:
            s.limiter.correct(ex.admission, (receipt.prompt_tokens or 0) + (receipt.completion_tokens or 0))
        self._queue_cache_writes(ex, receipt)
        if s.ledger is None:
            return
        try:
            future = s.ledger.submit(receipt)
        except LedgerUnavailable as exc:
            if raise_on_ledger:
                raise exc.proxy_error() from None
            return
        if not wait:
            future.add_done_callback(_log_ledger_failure)
            return
        try:
            await asyncio.shield(future)
        except LedgerUnavailable as exc:
            if raise_on_ledger:
                raise exc.proxy_error() from None

    def _queue_cache_writes(self, ex: Exchange, receipt: Any) -> None:
        writer = self.services.cache_writer
        if writer is None or ex.cache_plan is None or not ex.cache_plan.active:
            return
        tally = self.services.cache_tally
        if ex.cache_hit is not None:
            saved = to_pusd(receipt.savings_usd) if receipt.savings_usd is not None else 0
            tally.hit(ex.cache_hit.key, len(ex.cache_hit.body), saved)
            return
        if ex.cache_plan.decision.read and ex.served_mode == "fresh":
            tally.miss()
        if ex.cache_payload is not None and ex.target is not None:
            cfg = self.config.cache
            entry = caching.entry_for(ex.cache_plan, ex.target, ex, receipt, *ex.cache_payload)
            self.services.flush_cache_tally()  # recency first: eviction below must see the latest hits
            writer.submit_op(
                lambda c: cache.store_and_evict(
                    c, entry, max_entries=cfg.max_entries, max_bytes=cfg.max_bytes, ttl_s=cfg.ttl_s
                )
            )


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A detached leader's outcome belongs to nobody: read it so it is never reported as lost."""
    if not task.cancelled() and task.exception() is not None:
        log.info("detached stream ended with %r", task.exception())


def _log_ledger_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a receipt could not be committed yet (kept for retry): %s", future.exception())


def _stored_answer(kind: str, body: bytes) -> dict[str, Any] | None:
    """A stored answer as one chat.completion (to estimate a replay whose provider reported no usage)."""
    obj = orjson.loads(body) if kind == "json" else replay.sse_to_completion(replay.decode_events(body))
    return obj if isinstance(obj, dict) else None


def _trusted(ex: Exchange, usage: dict[str, Any] | None) -> bool:
    return usage_trusted(usage, completion_required=ex.is_chat)


def _max_tokens(body: Mapping[str, Any]) -> int:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return value if isinstance(value, int) else 0


def _error_code(obj: dict[str, Any] | None) -> str | None:
    if obj and isinstance(obj.get("error"), dict):
        code = obj["error"].get("code") or obj["error"].get("type")
        return str(code) if code else None
    return None
