"""Exchange -> Receipt: usage, its source, and every cost figure (pure; the money maths is pricing.py's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nextmodel_proxy import pricing
from nextmodel_proxy.config import Config
from nextmodel_proxy.ledger.receipts import Receipt
from nextmodel_proxy.request_state import Exchange
from nextmodel_proxy.routing import estimate_prompt_tokens
from nextmodel_proxy.timespec import format_utc


def usage_of(ex: Exchange) -> pricing.Usage | None:
    """The exchange's usage in OpenAI semantics, through the one sanitizer (pricing.check_usage); estimated by
    us when a successful answer reported none or a figure that cannot be trusted (with the reason why)."""
    reason = None
    if ex.usage is not None:
        checked = pricing.check_usage(ex.usage, "openai", completion_required=ex.is_chat)
        if checked.usage is not None:
            return checked.usage
        reason = checked.reason
    # completion_chars is set only when there is an answer: an upstream 200 (a stream it then cut, served_mode
    # error, was still consumed upstream) or a replay of one that had no usage. Estimated, never a silent 0.
    if (ex.completion_chars is not None or reason) and ex.served_mode in ("fresh", "error", "exact-cache"):
        ex.usage_source = "estimated"
        ex.usage_reason = reason
        if reason and ex.completion_chars is None:
            ex.usage_reason = f"{reason}; answer text not at hand, completion counted 0"
        prompt = (
            estimate_prompt_tokens(ex.body) if ex.endpoint != "embeddings" else _embedding_tokens(ex.body)
        )
        return pricing.Usage(prompt, ((ex.completion_chars or 0) + 3) // 4)
    return None


def _embedding_tokens(body: Mapping[str, Any]) -> int:
    value = body.get("input")
    items = value if isinstance(value, list) else [value]
    return sum(max(1, len(str(item)) // 4) for item in items)


def _costs(ex: Exchange, usage: pricing.Usage | None, config: Config) -> dict[str, Any]:
    model = ex.target.model if ex.target else None
    # An error with no usage consumed nothing we know of: priced as 0 (like a refusal), not as unknown.
    mode = "refused" if usage is None and ex.served_mode == "error" else ex.served_mode
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


def build_receipt(ex: Exchange, config: Config) -> Receipt:
    """The receipt of a finished exchange."""
    ex.finish()
    usage = usage_of(ex)
    model = ex.target.model if ex.target else None
    currency = config.currency
    attempts = tuple(ex.attempts)
    if ex.route_decision:
        attempts = ({"route": ex.route, "decision": ex.route_decision}, *attempts)
    return Receipt(
        receipt_id=ex.receipt_id,
        created_utc=format_utc(ex.created),
        request_id=ex.request_id,
        key_id=ex.key_id,
        project=ex.project,
        team=ex.team,
        environment=ex.environment,
        tags=ex.tags,
        endpoint=ex.endpoint,
        model_requested=ex.model_requested,
        model=model.id if model else None,
        provider=ex.provider_name,
        upstream_model=model.upstream_id if model else None,
        route=ex.route,
        served_mode=ex.served_mode,
        stream=ex.stream,
        status=ex.status,
        error_code=ex.error_code,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        cached_tokens=usage.cached_tokens if usage else None,
        cache_write_tokens=usage.cache_write_tokens if usage else None,
        reasoning_tokens=usage.reasoning_tokens if usage else None,
        usage_source=ex.usage_source if usage else "none",
        **_costs(ex, usage, config),
        display_currency=currency.display,
        display_rate=currency.rates[currency.display],
        latency_ms=round(ex.latency_ms or 0.0, 3),
        ttft_ms=round(ex.ttft_ms, 3) if ex.ttft_ms is not None else None,
        reused_receipt_id=ex.reused_receipt_id,
        upstream_request_id=ex.upstream_request_id or ex.response_id,
        price_version=pricing.price_version(model.price) if model and model.price else None,
        cache_key=ex.cache_key,
        cache_status=ex.cache_status,
        attempts=attempts,
        usage_reason=ex.usage_reason if usage else None,
    )
