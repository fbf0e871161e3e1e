"""Trying upstream candidates in order: retries with backoff for transient failures, then fallback."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from nextmodel_proxy.endpoints.bridge import open_for
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.upstream.base import Target, UpstreamCall
from nextmodel_proxy.upstream.retry import RetryPolicy, should_fall_back, should_retry


@dataclass(slots=True)
class _Attempt:
    """One try at one candidate: an open call (maybe an error response) or our own error."""

    call: UpstreamCall | None
    error: ProxyError | None
    status: int
    code: str | None
    retry_after: str | None

    @property
    def outcome(self) -> str:
        """As the receipt's attempts list shows it: the HTTP status, or our error code."""
        return str(self.status) if self.call is not None else str(self.code)

    def discard(self) -> None:
        if self.call is not None:
            self.call.release()


@dataclass(slots=True)
class Answered:
    """The candidate whose answer the client gets (maybe an error response) and its open call."""

    target: Target
    call: UpstreamCall

    @property
    def translated(self) -> str | None:
        """Set when the endpoint was translated to this upstream (its x-nextmodel-translated value)."""
        return getattr(self.call, "translated", None)


class Unanswered(Exception):
    """No candidate gave an answer to relay: `error` is what the client gets; `target` was tried last."""

    def __init__(
        self, target: Target, error: ProxyError, upstream_request_id: str | None, translated: str | None
    ) -> None:
        super().__init__(str(error))
        self.target = target
        self.error = error
        self.upstream_request_id = upstream_request_id
        self.translated = translated  # as of the last attempt that got an answer, like upstream_request_id


async def open_first(
    session: aiohttp.ClientSession,
    targets: list[Target],
    body: dict[str, Any],
    *,
    endpoint: str,
    client_headers: Mapping[str, str],
    attempts: list[dict[str, Any]],
    route_decision: str | None = None,
) -> Answered:
    """Open the first candidate that answers, retrying transient failures with backoff, then falling back.

    Only before anything reached the client: once this returns, the answer is committed to.
    The last failure is what the client gets: an upstream error response (returned, like an answer) or our
    own ProxyError (raised inside Unanswered). Each attempt's provider and outcome is appended to `attempts`.
    """
    last: _Attempt | None = None
    target = targets[0]
    request_id: str | None = None
    translated: str | None = None
    outcomes: list[str] = []  # per candidate tried: why it did not answer
    for index, target in enumerate(targets):
        policy = RetryPolicy.for_provider(target.provider)
        attempt = 0
        while True:
            if last is not None:
                last.discard()
            last = await _attempt(session, target, body, endpoint, client_headers)
            attempts.append(
                {"provider": target.provider.name, "model": target.model.id, "outcome": last.outcome}
            )
            if last.call is not None:
                request_id = last.call.upstream_request_id
                translated = getattr(last.call, "translated", None)
                if last.status < 400 or not should_fall_back(last.status, None, False):
                    return Answered(target, last.call)
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
        return Answered(target, last.call)
    assert last.error is not None
    error = last.error
    if len(outcomes) > 1:
        error = _every_candidate_failed(route_decision, last.error, outcomes, len(targets))
    raise Unanswered(target, error, request_id, translated)


def _why(attempt: _Attempt) -> str:
    if attempt.error is not None:
        return attempt.error.message
    return f"answered {attempt.status}"


def _every_candidate_failed(
    route_decision: str | None, last: ProxyError, outcomes: list[str], total: int
) -> ProxyError:
    """The last candidate's error, its message naming every candidate tried and why each did not answer."""
    untried = f" ({total - len(outcomes)} not tried)" if total > len(outcomes) else ""
    decision = f" Routing: {route_decision}." if route_decision else ""
    message = f"no candidate answered{untried}: " + "; ".join(outcomes) + "." + decision
    return ProxyError(last.status, message, last.code, type=last.type, param=last.param, headers=last.headers)


async def _attempt(
    session: aiohttp.ClientSession,
    target: Target,
    body: dict[str, Any],
    endpoint: str,
    client_headers: Mapping[str, str],
) -> _Attempt:
    try:
        call = await open_for(session, target, body, endpoint=endpoint, client_headers=client_headers)
    except ProxyError as exc:
        return _Attempt(None, exc, exc.status, exc.code, None)
    return _Attempt(call, None, call.status, None, call.headers.get("Retry-After"))
