"""Exchange: everything one request learns on its way through, from which its receipt is built."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nextmodel_proxy.ledger.receipts import new_receipt_id
from nextmodel_proxy.pricing import format_usd, usage_trusted
from nextmodel_proxy.upstream.base import Target

if TYPE_CHECKING:
    from nextmodel_proxy.tee import StreamTee

_STREAMING = frozenset({"chat", "responses", "messages", "completions"})
_USAGE_OPTION = frozenset({"chat", "completions"})  # endpoints that report stream usage only when asked


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
class Exchange:
    endpoint: str  # "chat" | "embeddings" | "responses" | "messages" | "completions"
    body: dict[str, Any]
    client_headers: Mapping[str, str]
    receipt_url_base: str = ""
    receipt_id: str = field(default_factory=new_receipt_id)
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    started: float = field(default_factory=time.perf_counter)
    request_id: str | None = None
    key_id: str | None = None
    project: str | None = None
    team: str | None = None
    environment: str | None = None
    tags: tuple[str, ...] = ()
    target: Target | None = None
    route: str | None = None
    route_decision: str | None = None
    served_mode: str = "fresh"
    status: int = 0
    error_code: str | None = None
    usage: dict[str, Any] | None = None
    usage_source: str = "none"
    usage_reason: str | None = None  # why usage_source is "estimated" when an upstream figure was not trusted
    ttft_ms: float | None = None
    latency_ms: float | None = None
    upstream_request_id: str | None = None
    response_id: str | None = None
    cache_key: str | None = None
    cache_status: str | None = None
    reused_receipt_id: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    extra_headers: dict[str, str] = field(default_factory=dict)
    completion_chars: int | None = None  # for estimating usage when the provider reported none
    service_tier: str | None = None  # the service tier the upstream reported serving this request at
    price: Any = None  # the ResolvedPrice its receipt was billed at (set with the receipt)
    # set by the pipeline as the request goes through
    admission: Any = None
    reservation: Any = None
    cache_plan: Any = None
    cache_target: Target | None = None
    cache_hit: Any = None
    cache_payload: tuple[str, bytes] | None = None
    receipt: Any = None
    detached: bool = False  # the client left but the upstream answer is still read for followers

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

    def upstream_body(self) -> dict[str, Any]:
        """The body sent upstream: a stream always asks for usage so the receipt has real figures."""
        if self.endpoint not in _USAGE_OPTION or not self.stream or self.client_wants_usage:
            return self.body
        opts = self.body.get("stream_options") if isinstance(self.body.get("stream_options"), dict) else {}
        return {**self.body, "stream_options": {**opts, "include_usage": True}}

    def mark_first_byte(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self.started) * 1000.0

    def fail(self, status: int, code: str) -> None:
        self.status = status
        self.error_code = code
        self.served_mode = "error" if self.served_mode == "fresh" else self.served_mode

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
            self.service_tier = tier

    def set_usage(self, usage: dict[str, Any] | None, *, estimated_from: Any = None) -> None:
        if usage is not None:
            self.usage = usage
            self.usage_source = "upstream"
        # The answer's length, for an estimate: when there is no usage, or one the receipt may not trust.
        if isinstance(estimated_from, dict) and not usage_trusted(usage, completion_required=self.is_chat):
            self.completion_chars = completion_chars(estimated_from)

    def served_from(
        self,
        usage: dict[str, Any] | None,
        reused_receipt_id: str | None,
        cache_status: str,
        answer: Mapping[str, Any] | None = None,
    ) -> None:
        """This answer is a replay: usage from the stored answer, billed as a cache hit."""
        self.served_mode = "exact-cache"
        self.usage = usage
        self.usage_source = "cache"
        # its fresh call was estimated: estimate the replay the same way
        if answer is not None and not usage_trusted(usage, completion_required=self.is_chat):
            self.completion_chars = completion_chars(answer)
        self.reused_receipt_id = reused_receipt_id
        self.cache_status = cache_status

    def finish_stream(self, tee: StreamTee) -> None:
        self.response_id = tee.response_id
        tier = getattr(tee, "service_tier", None)  # the chat tee reads it; other endpoints' tees may not
        if tier:
            self.service_tier = tier
        if tee.usage is not None:
            self.set_usage(tee.usage)
        if not usage_trusted(tee.usage, completion_required=self.is_chat):
            self.completion_chars = tee.content_chars()
        if tee.error is not None and self.error_code is None:
            self.error_code = str(tee.error.get("code") or tee.error.get("type") or "upstream_error")
            self.served_mode = "error"
        if self.status == 200 and not tee.complete and self.error_code is None:
            self.error_code = "stream_incomplete"
        self.finish()

    def finish(self) -> None:
        if self.latency_ms is None:
            self.latency_ms = (time.perf_counter() - self.started) * 1000.0

    @property
    def provider_name(self) -> str | None:
        return self.target.provider.name if self.target else None

    def headers(self, *, final: bool = False) -> dict[str, str]:
        """x-nextmodel-* response headers; `final` adds the ones known only once the answer is complete."""
        out = self._headers()
        if final and self.receipt is not None:
            out["x-nextmodel-usage-source"] = self.receipt.usage_source
            billed = self.receipt.billed_cost_usd
            out["x-nextmodel-cost-usd"] = format_usd(billed) if billed is not None else "unknown"
        return out

    def _headers(self) -> dict[str, str]:
        out = {
            "x-nextmodel-receipt-id": self.receipt_id,
            "x-nextmodel-receipt-url": f"{self.receipt_url_base}/v1/receipts/{self.receipt_id}",
            "x-nextmodel-served-mode": self.served_mode,
        }
        if self.target is not None:
            out["x-nextmodel-provider"] = self.target.provider.name
        out.update(self.extra_headers)
        return out
