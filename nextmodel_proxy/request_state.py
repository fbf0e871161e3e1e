"""RequestState: one proxied request on its way through, from which its receipt is built.

It is split by who writes what:
  Caller    who is asking (set by the handler and at admission, then read-only)
  Decision  what was decided (route, the candidate the cache key is over, the candidate that answered, cache plan)
  Outcome   what happened (status, served mode, usage, timings, attempts, extra headers)
  Holds     what is held until the receipt settles it (rate-limit admission, budget reservation, cache answer)
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nextmodel_proxy.ledger.receipts import Receipt, new_receipt_id
from nextmodel_proxy.pricing import format_usd
from nextmodel_proxy.upstream.base import Target
from nextmodel_proxy.usage import CheckedUsage, check_usage

if TYPE_CHECKING:
    from nextmodel_proxy.access.budgets import Reservation
    from nextmodel_proxy.access.ratelimit import Admission
    from nextmodel_proxy.cache.plan import CachePlan
    from nextmodel_proxy.cache.store import CacheHit
    from nextmodel_proxy.tee import StreamTee

_STREAMING = frozenset({"chat", "responses", "messages", "completions"})
_USAGE_OPTION = frozenset({"chat", "completions"})  # endpoints that report stream usage only when asked

# A JSON object as parsed from a request or response body.
JsonObject = dict[str, Any]


def completion_chars(obj: Mapping[str, Any]) -> int:
    """Characters of generated content in a chat.completion (text and tool-call arguments)."""
    total = 0
    for choice in obj.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        total += len(message.get("content") or "") if isinstance(message.get("content"), str) else 0
        for call in message.get("tool_calls") or []:
            total += len(str((call.get("function") or {}).get("arguments") or ""))
    return total


@dataclass(slots=True)
class Caller:
    """Who is asking: the client's headers, then the key and attribution found at admission."""

    client_headers: Mapping[str, str]
    request_id: str | None = None
    key_id: str | None = None
    project: str | None = None
    team: str | None = None
    environment: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(slots=True)
class Decision:
    """What was decided: the route, the first candidate (the cache key is over it), the candidate that
    answered (or was tried last), and the cache plan."""

    route: str | None = None
    route_decision: str | None = None
    first: Target | None = None
    target: Target | None = None
    cache_plan: CachePlan | None = None

    @property
    def cache_key(self) -> str | None:
        return self.cache_plan.key if self.cache_plan is not None else None

    @property
    def stores_answer(self) -> bool:
        """This answer may become the cache entry: the plan writes and the first candidate answered
        (an answer from a fallback candidate is not this key's answer)."""
        plan = self.cache_plan
        return plan is not None and plan.decision.write and self.target is self.first


@dataclass(slots=True)
class Outcome:
    """What happened; everything the receipt reports besides who asked and what was decided."""

    served_mode: str = "fresh"
    status: int = 0
    error_code: str | None = None
    usage: JsonObject | None = None
    usage_source: str = "none"
    completion_chars: int | None = None  # for estimating usage when the provider reported none
    service_tier: str | None = None  # the service tier the upstream reported serving this request at
    ttft_ms: float | None = None
    latency_ms: float | None = None
    upstream_request_id: str | None = None
    response_id: str | None = None
    cache_status: str | None = None
    reused_receipt_id: str | None = None
    attempts: list[JsonObject] = field(default_factory=list)
    extra_headers: dict[str, str] = field(default_factory=dict)
    upstream_started: float | None = None  # perf_counter when the first upstream attempt began (metrics)
    usage_checked: tuple[Any, CheckedUsage] | None = None  # (usage object, its check): RequestState.check


@dataclass(slots=True)
class Holds:
    """What is held until the receipt settles it."""

    admission: Admission | None = None  # rate-limit tokens, corrected to the real usage
    reservation: Reservation | None = None  # budget hold, settled to the billed cost
    cache_hit: CacheHit | None = None  # the stored answer being replayed (its hit is tallied)
    cache_payload: tuple[str, bytes] | None = None  # (kind, body) of a fresh answer to store
    detached: bool = False  # the client left but the upstream answer is still read for followers


@dataclass(slots=True)
class RequestState:
    endpoint: str  # "chat" | "embeddings" | "responses" | "messages" | "completions"
    body: JsonObject
    caller: Caller
    receipt_url_base: str = ""
    receipt_id: str = field(default_factory=new_receipt_id)
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    started: float = field(default_factory=time.perf_counter)
    decision: Decision = field(default_factory=Decision)
    outcome: Outcome = field(default_factory=Outcome)
    holds: Holds = field(default_factory=Holds)
    receipt: Receipt | None = None

    @property
    def model_requested(self) -> str:
        return self.body["model"]

    @property
    def is_chat(self) -> bool:
        """Answers with a completion (chat, and responses/messages/completions, whose usage is kept in chat
        semantics): its usage must carry a completion count. False only for embeddings."""
        return self.endpoint != "embeddings"

    @property
    def stream(self) -> bool:
        return self.endpoint in _STREAMING and self.body.get("stream") is True

    @property
    def client_wants_usage(self) -> bool:
        opts = self.body.get("stream_options")
        return isinstance(opts, dict) and opts.get("include_usage") is True

    @property
    def provider_name(self) -> str | None:
        target = self.decision.target
        return target.provider.name if target else None

    def upstream_body(self) -> JsonObject:
        """The body sent upstream: a stream always asks for usage so the receipt has real figures."""
        if self.endpoint not in _USAGE_OPTION or not self.stream or self.client_wants_usage:
            return self.body
        opts = self.body.get("stream_options") if isinstance(self.body.get("stream_options"), dict) else {}
        return {**self.body, "stream_options": {**opts, "include_usage": True}}

    # --- outcome ---------------------------------------------------------------------------------

    @property
    def before_upstream_s(self) -> float | None:
        """Seconds from arrival to the first upstream attempt (None when no upstream was called)."""
        started = self.outcome.upstream_started
        return None if started is None else started - self.started

    def mark_first_byte(self) -> None:
        if self.outcome.ttft_ms is None:
            self.outcome.ttft_ms = (time.perf_counter() - self.started) * 1000.0

    def fail(self, status: int, code: str) -> None:
        out = self.outcome
        out.status = status
        out.error_code = code
        out.served_mode = "error" if out.served_mode == "fresh" else out.served_mode

    def note_service_tier(self, obj: Any) -> None:
        """Keep the service tier an answer reports: OpenAI's top-level `service_tier`, or the one inside
        usage (Anthropic's usage.service_tier, kept there by our translation)."""
        if not isinstance(obj, dict):
            return
        tier = obj.get("service_tier")
        usage = obj.get("usage")
        if not isinstance(tier, str) and isinstance(usage, dict):
            tier = usage.get("service_tier")
        if isinstance(tier, str) and tier:
            self.outcome.service_tier = tier

    def check(self, usage: JsonObject) -> CheckedUsage:
        """usage.check_usage of an upstream's usage object for this endpoint, worked out once per object: the
        answer's usage is checked when it arrives and again when the receipt is priced (issue 16)."""
        memo = self.outcome.usage_checked
        if memo is not None and memo[0] is usage:
            return memo[1]
        checked = check_usage(usage, completion_required=self.is_chat)
        self.outcome.usage_checked = (usage, checked)
        return checked

    def trusted(self, usage: JsonObject | None) -> bool:
        """usage.usage_trusted, through check()."""
        return usage is not None and self.check(usage).usage is not None

    def set_usage(
        self,
        usage: JsonObject | None,
        *,
        estimated_from: JsonObject | None = None,
        answer_bytes: int | None = None,
    ) -> None:
        if usage is not None:
            self.outcome.usage = usage
            self.outcome.usage_source = "upstream"
        # The answer's length, for an estimate: when there is no usage, or one the receipt may not trust.
        if self.trusted(usage):
            return
        if isinstance(estimated_from, dict):
            self.outcome.completion_chars = completion_chars(estimated_from)
        elif answer_bytes is not None:  # an answer that is not a JSON object: estimated from its length
            self.outcome.completion_chars = answer_bytes

    def served_from(
        self,
        usage: JsonObject | None,
        reused_receipt_id: str | None,
        cache_status: str,
        answer: Mapping[str, Any] | None = None,
    ) -> None:
        """This answer is a replay: usage from the stored answer, billed as a cache hit."""
        out = self.outcome
        out.served_mode = "exact-cache"
        out.usage = usage
        out.usage_source = "cache"
        # its fresh call was estimated: estimate the replay the same way
        if answer is not None and not self.trusted(usage):
            out.completion_chars = completion_chars(answer)
        out.reused_receipt_id = reused_receipt_id
        out.cache_status = cache_status

    def finish_stream(self, tee: StreamTee) -> None:
        out = self.outcome
        out.response_id = tee.response_id
        tier = getattr(tee, "service_tier", None)  # the chat tee reads it; other endpoints' tees may not
        if tier:
            out.service_tier = tier
        if tee.usage is not None:
            self.set_usage(tee.usage)
        if not self.trusted(tee.usage):
            out.completion_chars = tee.content_chars()
        if tee.error is not None and out.error_code is None:
            out.error_code = str(tee.error.get("code") or tee.error.get("type") or "upstream_error")
            out.served_mode = "error"
        if out.status == 200 and not tee.complete and out.error_code is None:
            out.error_code = "stream_incomplete"
        self.finish()

    def finish(self) -> None:
        if self.outcome.latency_ms is None:
            self.outcome.latency_ms = (time.perf_counter() - self.started) * 1000.0

    # --- response headers ------------------------------------------------------------------------

    def headers(self, *, final: bool = False) -> dict[str, str]:
        """x-nextmodel-* response headers; `final` adds the ones known only once the answer is complete."""
        out = {
            "x-nextmodel-receipt-id": self.receipt_id,
            "x-nextmodel-receipt-url": f"{self.receipt_url_base}/v1/receipts/{self.receipt_id}",
            "x-nextmodel-served-mode": self.outcome.served_mode,
        }
        if self.caller.request_id is not None:
            out["x-request-id"] = self.caller.request_id
        if self.decision.target is not None:
            out["x-nextmodel-provider"] = self.decision.target.provider.name
        out.update(self.outcome.extra_headers)
        if final and self.receipt is not None:
            out["x-nextmodel-usage-source"] = self.receipt.usage_source
            billed = self.receipt.billed_cost_usd
            out["x-nextmodel-cost-usd"] = format_usd(billed) if billed is not None else "unknown"
        return out
