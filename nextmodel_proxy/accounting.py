"""RequestState -> Receipt: usage, its source, and every cost figure.

Pure: reads the finished request state and changes nothing on it. The money maths is pricing.py's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from nextmodel_proxy import estimate, pricing, usage
from nextmodel_proxy.config import Config
from nextmodel_proxy.ledger.receipts import Receipt
from nextmodel_proxy.price_resolve import ResolvedPrice, resolve
from nextmodel_proxy.request_state import RequestState
from nextmodel_proxy.text_safety import escaped
from nextmodel_proxy.timespec import format_utc


def usage_of(ex: RequestState) -> tuple[usage.Usage | None, str, str | None]:
    """The request's usage in OpenAI semantics, its source, and why it was estimated (if it was).

    Upstream figures go through the one sanitizer (usage.check_usage); we estimate when a successful
    answer reported none or a figure that cannot be trusted.
    """
    out = ex.outcome
    reason = None
    if out.usage is not None:
        checked = ex.check(out.usage)  # usage.check_usage, done once per usage object
        if checked.usage is not None:
            return checked.usage, out.usage_source, None
        reason = checked.reason
    # completion_chars is set only when there is an answer: an upstream 200 (a stream it then cut, served_mode
    # error, was still consumed upstream) or a replay of one that had no usage. Estimated, never a silent 0.
    if (out.completion_chars is not None or reason) and out.served_mode in ("fresh", "error", "exact-cache"):
        if reason and out.completion_chars is None:
            reason = f"{reason}; answer text not at hand, completion counted 0"
        prompt = estimate.estimate_prompt_tokens(ex.body) if ex.is_chat else _embedding_tokens(ex.body)
        return (
            usage.Usage(prompt, estimate.estimate_text_tokens(out.completion_chars or 0)),
            "estimated",
            reason,
        )
    return None, "none", None


def _embedding_tokens(body: Mapping[str, Any]) -> int:
    """At least one token: an embedding of nothing is still a billed request."""
    return max(1, estimate.estimate_tokens(body.get("input")))


# prompt_cache_retention values that ask OpenAI for extended (longer than in-memory) cache retention.
_EXTENDED_RETENTION = frozenset({"24h", "12h", "extended"})


def _with_retention(ex: RequestState, usage: usage.Usage | None) -> usage.Usage | None:
    """OpenAI reports no split of cache writes by retention: a request that asked for extended retention
    wrote all its cache writes at the extended (cache_write_1h) rate."""
    if usage is None or usage.cache_write_1h_tokens or not usage.cache_write_tokens:
        return usage
    if ex.body.get("prompt_cache_retention") in _EXTENDED_RETENTION:
        return replace(usage, cache_write_1h_tokens=usage.cache_write_tokens)
    return usage


def service_tier_of(ex: RequestState) -> str | None:
    """The tier the upstream reported serving at, else the one the client asked for."""
    if ex.outcome.service_tier:
        return ex.outcome.service_tier
    asked = ex.body.get("service_tier")
    return asked if isinstance(asked, str) and asked else None


def resolved_price(ex: RequestState, usage: usage.Usage | None) -> ResolvedPrice | None:
    """The price this request is billed at: schedule entry in force when it started, its tier by prompt size,
    the UTC window it started in, and the service tier served."""
    model = ex.decision.target.model if ex.decision.target else None
    if model is None or model.pricing is None:
        return None
    return resolve(
        model.id,
        model.pricing,
        ex.created,
        usage.prompt_tokens if usage else 0,
        service_tier_of(ex),
        source=model.source,
        as_of=model.as_of,
    )


def _costs(
    ex: RequestState, usage: usage.Usage | None, price: ResolvedPrice | None, config: Config
) -> dict[str, Any]:
    model = ex.decision.target.model if ex.decision.target else None
    # An error with no usage consumed nothing we know of: priced as 0 (like a refusal), not as unknown.
    served_mode = ex.outcome.served_mode
    mode = "refused" if usage is None and served_mode == "error" else served_mode
    currency = price.currency if price else "USD"
    found = config.fx.rate(currency, ex.created.date())
    rate, rate_date = found if found else (None, None)
    if price is not None and rate is None:
        priced = pricing.PricedCosts(
            pricing.ReceiptCosts(None, None, None, None, f"no FX rate for {currency}"), None
        )
    else:
        priced = pricing.resolved_costs(
            mode,
            usage,
            price,
            rate or Decimal(1),
            replay_ratio=config.cache.replay_price_ratio,
            model=model.id if model else None,
        )
    costs = priced.costs
    known = price is not None and priced.native is not None
    return {
        "upstream_cost_usd": costs.upstream,
        "billed_cost_usd": costs.billed,
        "fresh_cost_usd": costs.fresh,
        "savings_usd": costs.savings,
        "cost_unknown_reason": costs.reason,
        "currency": currency if price else None,
        "native_cost": priced.native if price else None,
        "fx_rate": rate if known else None,
        "fx_date": rate_date.isoformat() if known and rate_date else None,
    }


def display_rate(config: Config, day: dt.date) -> Decimal:
    """The display currency's rate for a receipt of `day`: the dated fx rate of that day, else the undated one."""
    found = config.fx.rate(config.currency.display, day)
    return found[0] if found else config.currency.rates[config.currency.display]


def build_receipt(ex: RequestState, config: Config) -> Receipt:
    """The receipt of a finished request (RequestState.finish() has set its latency)."""
    return priced_receipt(ex, config)[0]


def priced_receipt(ex: RequestState, config: Config) -> tuple[Receipt, ResolvedPrice | None]:
    """The receipt of a finished request and the resolved price it was billed at (for the prices table)."""
    usage, usage_source, usage_reason = usage_of(ex)
    usage = _with_retention(ex, usage)
    price = resolved_price(ex, usage)
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
        **_costs(ex, usage, price, config),
        display_currency=currency.display,
        display_rate=display_rate(config, ex.created.date()),
        latency_ms=round(out.latency_ms or 0.0, 3),
        ttft_ms=round(out.ttft_ms, 3) if out.ttft_ms is not None else None,
        reused_receipt_id=out.reused_receipt_id,
        # the answer's id is the upstream's text too: escaped and cut like the header (text_safety)
        upstream_request_id=out.upstream_request_id
        or (escaped(out.response_id) if out.response_id else None),
        price_version=price.version if price else None,
        cache_key=decision.cache_key,
        cache_status=out.cache_status,
        attempts=attempts,
        usage_reason=usage_reason,
        service_tier=service_tier_of(ex),
        price_tier=price.price_tier if price else None,
        price_window=price.price_window if price else None,
    ), price
