"""Trying upstream candidates in order: retries with backoff for transient failures, then fallback."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

from nextmodel_proxy.endpoints.bridge import open_for
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.request_state import Exchange
from nextmodel_proxy.upstream.base import Target, UpstreamCall
from nextmodel_proxy.upstream.retry import RetryPolicy, should_fall_back, should_retry

TRANSLATED_HEADER = "x-nextmodel-translated"


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


async def open_first(session: aiohttp.ClientSession, ex: Exchange, targets: list[Target]) -> UpstreamCall:
    """Open the first candidate that answers, retrying transient failures with backoff, then falling back.

    Only before anything reached the client: once this returns, the answer is committed to.
    The last failure (an upstream error response, or our own ProxyError) is what the client gets.
    Every attempt's provider and outcome is recorded on the exchange (and so on its receipt).
    """
    body = ex.upstream_body()
    last: _Attempt | None = None
    outcomes: list[str] = []  # per candidate tried: why it did not answer
    for index, target in enumerate(targets):
        policy = RetryPolicy.for_provider(target.provider)
        attempt = 0
        while True:
            if last is not None:
                last.discard()
            last = await _attempt(session, ex, target, body)
            if last.call is not None and (
                last.status < 400 or not should_fall_back(last.status, None, False)
            ):
                return last.call
            attempt += 1
            retrying = should_retry(last.status, last.code, False)
            delay = policy.delay(attempt, last.retry_after) if retrying else None
            if delay is None:
                break
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                last.discard()  # the error response we were holding must not leak its connection
                raise
        outcomes.append(f"{target.model.id} via {target.provider.name}: {_why(last)}")
        if index == len(targets) - 1 or not should_fall_back(last.status, last.code, False):
            break
    assert last is not None
    if last.call is not None:
        return last.call
    assert last.error is not None
    if len(outcomes) > 1:
        raise _every_candidate_failed(ex, last.error, outcomes, len(targets))
    raise last.error


def _why(attempt: _Attempt) -> str:
    if attempt.error is not None:
        return attempt.error.message
    return f"answered {attempt.status}"


def _every_candidate_failed(ex: Exchange, last: ProxyError, outcomes: list[str], total: int) -> ProxyError:
    """The last candidate's error, its message naming every candidate tried and why each did not answer."""
    untried = f" ({total - len(outcomes)} not tried)" if total > len(outcomes) else ""
    decision = f" Routing: {ex.route_decision}." if ex.route_decision else ""
    message = f"no candidate answered{untried}: " + "; ".join(outcomes) + "." + decision
    return ProxyError(last.status, message, last.code, type=last.type, param=last.param, headers=last.headers)


async def _attempt(
    session: aiohttp.ClientSession, ex: Exchange, target: Target, body: dict[str, Any]
) -> _Attempt:
    ex.target = target
    try:
        call = await open_for(session, target, body, endpoint=ex.endpoint, client_headers=ex.client_headers)
    except ProxyError as exc:
        ex.attempts.append({"provider": target.provider.name, "model": target.model.id, "outcome": exc.code})
        return _Attempt(None, exc, exc.status, exc.code, None)
    ex.upstream_request_id = call.upstream_request_id
    translated = getattr(call, "translated", None)  # set when the endpoint was translated to this upstream
    if translated:
        ex.extra_headers[TRANSLATED_HEADER] = translated
    else:
        ex.extra_headers.pop(TRANSLATED_HEADER, None)
    ex.attempts.append(
        {"provider": target.provider.name, "model": target.model.id, "outcome": str(call.status)}
    )
    return _Attempt(call, None, call.status, None, call.headers.get("Retry-After"))
