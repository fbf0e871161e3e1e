"""RequestState -> Receipt: usage, its source, and every cost figure.

Pure: reads the finished request state and changes nothing on it. The money maths is pricing.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nextmodel_proxy import pricing
from nextmodel_proxy.config import Config
from nextmodel_proxy.ledger.receipts import Receipt
from nextmodel_proxy.request_state import RequestState
from nextmodel_proxy.routing import estimate_prompt_tokens
from nextmodel_proxy.timespec import format_utc


def usage_of(ex: RequestState) -> tuple[pricing.Usage | None, str, str | None]:
    """The request's usage in OpenAI semantics, its source, and why it was estimated (if it was).

    Upstream figures go through the one sanitizer (pricing.check_usage); we estimate when a successful
    answer reported none or a figure that cannot be trusted.
    """
    out = ex.outcome
    reason = None
    if out.usage is not None:
        checked = pricing.check_usage(out.usage, "openai", completion_required=ex.is_chat)
        if checked.usage is not None:
            return checked.usage, out.usage_source, None
        reason = checked.reason
    # completion_chars is set only when there is an answer: an upstream 200 (a stream it then cut, served_mode
    # error, was still consumed upstream) or a replay of one that had no usage. Estimated, never a silent 0.
    if (out.completion_chars is not None or reason) and out.served_mode in ("fresh", "error", "exact-cache"):
        if reason and out.completion_chars is None:
            reason = f"{reason}; answer text not at hand, completion counted 0"
        prompt = (
            estimate_prompt_tokens(ex.body) if ex.endpoint != "embeddings" else _embedding_tokens(ex.body)
        )
        return pricing.Usage(prompt, ((out.completion_chars or 0) + 3) // 4), "estimated", reason
    return None, "none", None


def _embedding_tokens(body: Mapping[str, Any]) -> int:
    value = body.get("input")
    items = value if isinstance(value, list) else [value]
    return sum(max(1, len(str(item)) // 4) for item in items)


def _costs(ex: RequestState, usage: pricing.Usage | None, config: Config) -> dict[str, Any]:
    model = ex.decision.target.model if ex.decision.target else None
    # An error with no usage consumed nothing we know of: priced as 0 (like a refusal), not as unknown.
    served_mode = ex.outcome.served_mode
    mode = "refused" if usage is None and served_mode == "error" else served_mode
    costs = pricing.receipt_costs(
        mode,
        usage,
        model.price if model else None,
        replay_ratio=config.cache.replay_price_ratio,
        model=model.id if model else None,
    )
    return {
        "upstream_cost_usd": costs.upstream,
        "billed_cost_usd": costs.billed,
        "fresh_cost_usd": costs.fresh,
        "savings_usd": costs.savings,
        "cost_unknown_reason": costs.reason,
    }


def build_receipt(ex: RequestState, config: Config) -> Receipt:
    """The receipt of a finished request (RequestState.finish() has set its latency)."""
    usage, usage_source, usage_reason = usage_of(ex)
    caller, decision, out = ex.caller, ex.decision, ex.outcome
    model = decision.target.model if decision.target else None
    currency = config.currency
    attempts = tuple(out.attempts)
    if decision.route_decision:
        attempts = ({"route": decision.route, "decision": decision.route_decision}, *attempts)
    return Receipt(
        receipt_id=ex.receipt_id,
        created_utc=format_utc(ex.created),
        request_id=caller.request_id,
        key_id=caller.key_id,
        project=caller.project,
        team=caller.team,
        environment=caller.environment,
        tags=caller.tags,
        endpoint=ex.endpoint,
        model_requested=ex.model_requested,
        model=model.id if model else None,
        provider=ex.provider_name,
        upstream_model=model.upstream_id if model else None,
        route=decision.route,
        served_mode=out.served_mode,
        stream=ex.stream,
        status=out.status,
        error_code=out.error_code,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        cached_tokens=usage.cached_tokens if usage else None,
        cache_write_tokens=usage.cache_write_tokens if usage else None,
        reasoning_tokens=usage.reasoning_tokens if usage else None,
        usage_source=usage_source,
        **_costs(ex, usage, config),
        display_currency=currency.display,
        display_rate=currency.rates[currency.display],
        latency_ms=round(out.latency_ms or 0.0, 3),
        ttft_ms=round(out.ttft_ms, 3) if out.ttft_ms is not None else None,
        reused_receipt_id=out.reused_receipt_id,
        upstream_request_id=out.upstream_request_id or out.response_id,
        price_version=pricing.price_version(model.price) if model and model.price else None,
        cache_key=decision.cache_key,
        cache_status=out.cache_status,
        attempts=attempts,
        usage_reason=usage_reason,
    )
