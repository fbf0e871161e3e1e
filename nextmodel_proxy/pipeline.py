"""The request flow, top-down: admit -> route -> cache -> budget -> upstream -> relay + tee -> receipt.

No aiohttp.web here: handlers.py turns HTTP into a RequestState and a sink, and a Reply back into HTTP.
Single-flight (sharing one upstream call between identical requests) is cache/sharing.py's.
"""

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
from multidict import CIMultiDict

from nextmodel_proxy import routing
from nextmodel_proxy.access.auth import Principal, attribute, check_model
from nextmodel_proxy.access.budgets import budget_headers
from nextmodel_proxy.access.worst_case import worst_case_cost
from nextmodel_proxy.cache import plan as caching
from nextmodel_proxy.cache import sharing
from nextmodel_proxy.cache import store as cache
from nextmodel_proxy.cache.sharing import Flight
from nextmodel_proxy.config import Config
from nextmodel_proxy.drain import Drain, shutting_down
from nextmodel_proxy.endpoints import wire
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.estimate import estimate_prompt_tokens
from nextmodel_proxy.ledger.writer import LedgerUnavailable
from nextmodel_proxy.pricing import from_pusd, replay_billed
from nextmodel_proxy.recording import Recorder
from nextmodel_proxy.relay import ClientGone, StreamSink, end, relay_batches, split_final, start, write
from nextmodel_proxy.request_state import JsonObject, RequestState
from nextmodel_proxy.services import Services
from nextmodel_proxy.upstream.base import Target, UpstreamCall, event_batches
from nextmodel_proxy.upstream.failover import Unanswered, open_first

log = logging.getLogger(__name__)
TRANSLATED_HEADER = "x-nextmodel-translated"


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
        self.keepalive_s = config.server.keepalive_s
        self.recorder = Recorder(config, services)  # 4. the receipt (recording.py)
        self.drain = Drain()

    # --- 1. admission ---------------------------------------------------------------------------

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
        self.services.metrics.rejected(exc.code)
        log.info("refused request without a receipt: %s %s", exc.status, exc.code)

    async def handle(
        self, state: RequestState, principal: Principal | None, sink: StreamSink
    ) -> Reply | None:
        """Serve one request; returns the reply for non-streams, None when it streamed into `sink`."""
        drain = self.drain
        drain.enter(state.receipt_id)
        try:
            return await self._handle(state, principal, sink)
        finally:
            drain.leave(state.receipt_id)

    async def _handle(
        self, state: RequestState, principal: Principal | None, sink: StreamSink
    ) -> Reply | None:
        try:
            self.admit(state, principal)
            return await self._serve(state, sink)
        except ProxyError as exc:
            state.fail(exc.status, exc.code)
            # A refusal served no answer: during a ledger outage it is counted per code, not kept.
            await self._finish(state, wait=True, raise_on_ledger=False, served=False)
            exc.headers.update(state.headers(final=True))  # a refusal is a complete non-stream answer
            exc.headers.update(self._budget_headers(state))
            raise
        except (asyncio.CancelledError, ClientGone) as exc:
            if isinstance(exc, asyncio.CancelledError) and self.drain.stopped(state.receipt_id):
                return await self._end_stopped(state, sink)
            if not state.holds.detached:  # a detached leader records its own receipt when its answer ends
                state.fail(499, "client_closed")
                await self._finish(state, wait=False)
            raise
        except Exception:
            # A bug must not leave a budget hold behind or a request unrecorded; the middleware logs it.
            state.fail(500, "internal_error")
            await self._finish(state, wait=False)
            raise

    async def _end_stopped(self, state: RequestState, sink: StreamSink) -> None:
        """Shutdown stopped this request (drain.py): end its started stream with an error event, or refuse it."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        err = shutting_down()
        if state.outcome.error_code != err.code and state.stream and state.outcome.status == 200:
            state.fail(err.status, err.code)
            with contextlib.suppress(ClientGone):
                await write(sink, wire.error_event(state.endpoint, err))
        if state.outcome.error_code == err.code:
            await self.record(state)
            return None
        state.fail(err.status, err.code)
        await self._finish(state, wait=True, raise_on_ledger=False)
        err.headers.update(state.headers(final=True))
        raise err

    def admit(self, state: RequestState, principal: Principal | None) -> None:
        """Attribute the request, then check model permission, ledger health and rate limits."""
        caller = state.caller
        who = attribute(principal, caller.client_headers, self.config)
        caller.key_id, caller.project, caller.team = who.key_id, who.project, who.team
        caller.environment = who.environment or caller.environment
        check_model(principal, state.model_requested)
        if self.services.ledger is not None and not self.services.ledger.healthy:
            raise LedgerUnavailable("the ledger file cannot be written").proxy_error()
        if principal is not None and (principal.rpm or principal.tpm):  # estimating costs a walk of the body
            estimate = estimate_prompt_tokens(state.body) + _max_tokens(state.body) if principal.tpm else 0
            state.holds.admission = self.services.limiter.check(principal, estimate)

    # --- 2. route, cache, budget, single-flight -------------------------------------------------

    def resolve(self, state: RequestState) -> list[Target]:
        """The ordered candidates for the requested model or route, with the decision recorded."""
        plan = routing.plan(
            self.config,
            state.model_requested,
            state.body,
            today=state.created.date(),
            endpoint=state.endpoint,
            latency_stats=self.services.latency_ms,
            project=state.caller.project,
            budget_share=self._budget_share(state),
        )
        state.decision.route = plan.route
        state.decision.route_decision = plan.decision
        return list(plan.candidates)

    def _budget_share(self, state: RequestState) -> Decimal | None:
        project = self.config.projects.get(state.caller.project or "")
        if project is None or project.budget is None or project.budget.switch_route is None:
            return None
        usages = self.services.budgets.usages(state.caller)
        return max((u.share_spent for u in usages if u.budget.scope == "project"), default=None)

    async def _serve(self, state: RequestState, sink: StreamSink) -> Reply | None:
        targets = self.resolve(state)
        decision = state.decision
        decision.target = decision.first = targets[0]
        if self.services.cache_reader is None:
            caching.refuse_only_without_cache(state)
        plan = caching.plan_cache(state, targets[0], self.config) if self.services.cache_reader else None
        decision.cache_plan = plan
        if plan is not None and plan.decision.read:
            hit = self._lookup(plan)
            if hit is not None:
                return await self._serve_hit(state, hit, sink)
            if not plan.decision.upstream_allowed:
                raise caching.cache_miss(
                    "x-nextmodel-cache: only, and no cached answer exists for this request"
                )
        if plan is not None:
            state.outcome.cache_status = caching.miss_status(plan)
            state.outcome.extra_headers.update(caching.status_headers(plan, state.outcome.cache_status))
        if self.services.budgets.applicable(state.caller):
            state.holds.reservation = self.services.budgets.reserve(
                state.caller, self._worst_case(state, targets)
            )
        if plan is not None and plan.active and plan.decision.write:
            assert plan.key is not None and plan.canonical is not None
            flight = self.services.flights.lead_or_follow(plan.key, plan.canonical, state.receipt_id)
            if flight.is_leader:
                return await sharing.lead(
                    flight, state, lambda: self._serve_upstream(state, targets, sink, flight)
                )
            served = await sharing.follow(flight, state, sink, self)
            if not isinstance(served, sharing.NotServed):
                return served
        return await self._serve_upstream(state, targets, sink, None)

    def _worst_case(self, state: RequestState, targets: list[Target]) -> Decimal:
        # A true upper bound in any language (access/worst_case.py), not routing's typical estimate.
        costs = [worst_case_cost(t.model, state.body) for t in targets]
        # Decimal, not int: the budget book converts it with Decimal methods (an unpriced model costs 0 here).
        return max((c for c in costs if c is not None), default=Decimal(0))

    # --- 3a. a cached answer --------------------------------------------------------------------

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

    async def _serve_hit(self, state: RequestState, hit: cache.CacheHit, sink: StreamSink) -> Reply | None:
        fresh = hit.fresh_cost_pusd
        billed = (
            replay_billed(from_pusd(fresh), self.config.cache.replay_price_ratio) if fresh is not None else 0
        )
        state.holds.reservation = self.services.budgets.reserve(state.caller, billed)
        trusted = state.trusted(hit.usage)
        answer = caching.stored_answer(state.endpoint, hit.response_kind, hit.body) if not trusted else None
        state.served_from(hit.usage, hit.fresh_receipt_id, "hit", answer)
        state.holds.cache_hit = hit
        assert state.decision.cache_plan is not None
        state.outcome.extra_headers.update(caching.status_headers(state.decision.cache_plan, "hit"))
        return await self.write_replay(state, caching.hit_body(hit, state), sink)

    async def write_replay(
        self, state: RequestState, out: bytes | list[bytes], sink: StreamSink
    ) -> Reply | None:
        """A whole stored (or shared) answer: events for a stream, one JSON reply otherwise."""
        state.outcome.status = 200
        if isinstance(out, list):
            await self.start_stream(state, sink)
            state.mark_first_byte()
            now, final = split_final(out, wire.tee_for(state.endpoint, collect=False))
            await write(sink, b"".join(now))
            await self.send_final(state, sink, final)
            return None
        state.mark_first_byte()
        await self._finish(state, wait=True)
        headers = {
            "Content-Type": "application/json",
            **state.headers(final=True),
            **self._budget_headers(state),
        }
        return Reply(200, headers, out)

    # --- 3b. upstream ---------------------------------------------------------------------------

    async def _serve_upstream(
        self, state: RequestState, targets: list[Target], sink: StreamSink, flight: Flight | None
    ) -> Reply | None:
        state.outcome.upstream_started = time.perf_counter()
        try:
            answered = await open_first(
                self.session,
                targets,
                state.upstream_body(),
                endpoint=state.endpoint,
                client_headers=state.caller.client_headers,
                attempts=state.outcome.attempts,
                route_decision=state.decision.route_decision,
            )
        except Unanswered as failed:
            self._answered_by(state, failed.target, failed.upstream_request_id, failed.translated)
            raise failed.error from None
        call = answered.call
        self._answered_by(state, answered.target, call.upstream_request_id, answered.translated)
        if call.is_stream and state.stream:
            await self._relay_stream(state, call, sink, flight)
            return None
        return await self._finish_body(state, call, flight)

    @staticmethod
    def _answered_by(
        state: RequestState, target: Target, request_id: str | None, translated: str | None
    ) -> None:
        state.decision.target = target
        state.outcome.upstream_request_id = request_id
        if translated:
            state.outcome.extra_headers[TRANSLATED_HEADER] = translated

    async def _finish_body(self, state: RequestState, call: UpstreamCall, flight: Flight | None) -> Reply:
        try:
            raw = await call.read()
        finally:
            call.release()
        state.mark_first_byte()
        state.outcome.status = call.status
        obj, usage = wire.body_facts(state.endpoint, raw)
        if call.status == 200:
            state.set_usage(usage, estimated_from=obj, answer_bytes=len(raw))
            state.note_service_tier(obj)
            if state.decision.stores_answer and caching.storable_body(state.endpoint, obj, call.status):
                state.holds.cache_payload = ("json", raw)
        else:
            state.fail(call.status, _error_code(obj) or "upstream_error")
        if flight is not None:
            stored = state.holds.cache_payload is not None
            flight.finish(stored, raw if stored else None)
        await self._finish(state, wait=True)
        headers = CIMultiDict(call.headers)  # upstreams may send lower-case names: ours must replace theirs
        headers.setdefault("Content-Type", "application/json")
        headers.update(state.headers(final=True))
        headers.update(self._budget_headers(state))  # after settling, so they count this answer's cost
        return Reply(call.status, headers, raw)

    async def _relay_stream(
        self, state: RequestState, call: UpstreamCall, sink: StreamSink, flight: Flight | None
    ) -> None:
        storing = state.decision.stores_answer
        tee = wire.tee_for(state.endpoint, collect=True)
        shared = flight is not None and storing
        lost, ended = False, False
        held: list[bytes] = []  # the final events ([DONE] ...): sent once the receipt has committed
        try:
            # Inside the try: if even the headers cannot be written, the upstream call is still released.
            await self.start_stream(state, sink)
            lost = await relay_batches(
                event_batches(call),
                sink,
                tee,
                keepalive_s=self.keepalive_s,
                wants_usage=state.client_wants_usage,
                on_first=state.mark_first_byte,
                publish=flight.publish if shared else None,
                keep_reading=(lambda: flight.has_followers) if shared else None,
                held=held,
            )
            if not tee.done and tee.error is None:
                # A clean close before the end: tell the client rather than let a cut answer pass as whole.
                raise ProxyError(
                    502,
                    f"upstream {state.provider_name!r} ended the stream before it was complete",
                    "upstream_error",
                )
            ended = True
            self._stream_ended(state, call, tee, flight, lost=lost)
            if not lost:
                await self.send_final(state, sink, held)
        except ProxyError as exc:
            state.fail(exc.status, exc.code)
            with contextlib.suppress(ClientGone):  # a client already gone needs no error event
                await write(sink, wire.error_event(state.endpoint, exc, tee))
        except (ClientGone, asyncio.CancelledError) as exc:
            if tee.done:  # a client that already has [DONE] got the whole answer
                raise
            if isinstance(exc, asyncio.CancelledError) and self.drain.stopped(state.receipt_id):
                err = shutting_down()  # the proxy is stopping: say so, to the client and on the receipt
                state.fail(err.status, err.code)
                with contextlib.suppress(ClientGone):
                    await write(sink, wire.error_event(state.endpoint, err, tee))
            else:
                state.fail(499, "client_closed")
            raise
        finally:
            if not ended:
                self._stream_ended(state, call, tee, flight, lost=lost)
            await self.record(state)

    def _stream_ended(
        self, state: RequestState, call: UpstreamCall, tee: Any, flight: Flight | None, *, lost: bool
    ) -> None:
        """Release the upstream call and settle what the stream's end decides (usage, cache, followers)."""
        storing = state.decision.stores_answer
        call.release()
        state.finish_stream(tee)
        # Parsing the whole stream is only worth it when someone will reuse it.
        reused = storing or flight is not None
        complete = reused and state.outcome.error_code is None and wire.storable_stream(state.endpoint, tee)
        if storing and complete:
            state.holds.cache_payload = ("sse", b"".join(tee.events))
        if flight is not None:
            # An answer from a fallback candidate is not this key's answer: followers go upstream themselves.
            flight.finish(storing and complete)
        if lost and state.outcome.error_code is None:
            state.outcome.error_code = "client_closed"  # its client left; the answer was read for the others

    async def send_final(self, state: RequestState, sink: StreamSink, held: list[bytes]) -> None:
        """A finished stream's final events go out only once its receipt has committed, as a non-stream
        answer does: a client that saw `[DONE]` always has a receipt. If the commit fails (the receipt is
        kept and written later), the stream ends with the ledger_unavailable error event instead."""
        try:
            await self._finish(state, wait=True)
            out = b"".join(held)
        except ProxyError as exc:
            out = wire.error_event(state.endpoint, exc)
        if out:
            with contextlib.suppress(ClientGone):  # gone now: the answer was complete and is recorded
                await end(sink, out)  # with the body's end: one write, not two (issue 16)

    # --- 4. the receipt -------------------------------------------------------------------------

    async def start_stream(self, state: RequestState, sink: StreamSink) -> None:
        """Send a 200 event-stream's headers (ClientGone when the client cannot take them)."""
        state.outcome.status = 200
        headers = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            **state.headers(),
            **self._budget_headers(state),
        }
        await start(sink, 200, headers)

    def _budget_headers(self, state: RequestState) -> dict[str, str]:
        budgets = self.services.budgets
        return budget_headers(budgets.status(state.caller)) if budgets.applicable(state.caller) else {}

    async def record(self, state: RequestState) -> None:
        """Build and queue the receipt without waiting for its commit (streams: the client has its answer)."""
        await self._finish(state, wait=False)

    async def _finish(
        self, state: RequestState, *, wait: bool, raise_on_ledger: bool = True, served: bool = True
    ) -> None:
        await self.recorder.finish(state, wait=wait, raise_on_ledger=raise_on_ledger, served=served)


def _max_tokens(body: Mapping[str, object]) -> int:
    value = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    return value if isinstance(value, int) else 0


def _error_code(obj: JsonObject | None) -> str | None:
    if obj and isinstance(obj.get("error"), dict):
        code = obj["error"].get("code") or obj["error"].get("type")
        return str(code) if code else None
    return None
