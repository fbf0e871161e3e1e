"""Which price applies to one request: schedule entry -> tier -> window -> service tier (pure, cached).

A ResolvedPrice is the unit prices a receipt used plus which rules chose them; its `version` (12 hex of
sha256 over the model id and every field) keys the ledger's prices table, so every receipt's price_version
resolves to the exact prices behind it. The money arithmetic on it is pricing.py's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nextmodel_proxy.config.prices import RATE_FIELDS, PriceModel, Rates

# Service tier names providers report for their standard rate: never a price rule of their own.
STANDARD_TIERS = frozenset({"default", "standard", "auto", "on_demand"})


@dataclass(frozen=True, slots=True)
class ResolvedPrice:
    """The unit prices (per 1M tokens, in `currency`) one request is billed at, and why.

    `brackets` lists (first input token, rates) from 0 up: one bracket unless a tier applies only to the
    excess, when the input tokens past each threshold are billed at that tier's rates (output at the top's)."""

    model: str
    currency: str
    rates: Rates
    schedule_from: dt.date | None = None
    price_tier: str | None = None
    price_window: str | None = None
    service_tier: str | None = None
    brackets: tuple[tuple[int, Rates], ...] = ()
    source: str | None = None
    as_of: dt.date | None = None
    version: str = field(default="", compare=False)

    def as_json(self) -> dict[str, Any]:
        """The prices-table / `prices show --json` form: rates as exact decimal strings."""
        return {
            "price_version": self.version,
            "model": self.model,
            "currency": self.currency,
            **{name: _text(getattr(self.rates, name)) for name in RATE_FIELDS},
            "schedule_from": self.schedule_from.isoformat() if self.schedule_from else None,
            "price_tier": self.price_tier,
            "price_window": self.price_window,
            "service_tier": self.service_tier,
            "brackets": [
                {"from_input_tokens": start, **{n: _text(getattr(r, n)) for n in RATE_FIELDS}}
                for start, r in self.brackets
            ]
            if len(self.brackets) > 1
            else [],
            "source": self.source,
            "as_of": self.as_of.isoformat() if self.as_of else None,
        }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _scaled(rates: Rates, factor: Decimal) -> Rates:
    return Rates(*(None if (v := getattr(rates, n)) is None else v * factor for n in RATE_FIELDS))


def _with_version(price: ResolvedPrice) -> ResolvedPrice:
    data = price.as_json()
    data.pop("price_version")
    text = ";".join(f"{k}={v}" for k, v in sorted(data.items()))
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    object.__setattr__(price, "version", digest)
    return price


# (id of the PriceModel, model id, source, as_of, entry, tier, window, service tier) -> (the PriceModel,
# ResolvedPrice). The entry holds the PriceModel itself, so its id cannot be reused while it is cached.
_CACHE: dict[tuple[Any, ...], tuple[PriceModel, ResolvedPrice]] = {}
_CACHE_MAX = 4096


def resolve(
    model_id: str,
    pm: PriceModel,
    at: dt.datetime,
    input_tokens: int,
    service_tier: str | None = None,
    *,
    source: str | None = None,
    as_of: dt.date | None = None,
) -> ResolvedPrice | None:
    """The price in force for a request that started at `at` (aware UTC) with `input_tokens` of prompt
    (cached included), billed under `service_tier` (as the upstream reported it). None before the schedule
    starts (the model had no price yet)."""
    day = at.date()
    entry_i = -1
    for i, entry in enumerate(pm.schedule):
        if entry.start is None or entry.start <= day:
            entry_i = i
        else:
            break
    if entry_i < 0:
        return None
    tier_i = -1
    for i, tier in enumerate(pm.tiers):
        if input_tokens > tier.above_input_tokens:
            tier_i = i
    window_i = -1
    if pm.windows:
        minute = at.hour * 60 + at.minute
        for i, window in enumerate(pm.windows):
            if window.contains(minute):
                window_i = i
                break
    st = service_tier if service_tier in pm.service_tiers else None
    key = (id(pm), model_id, source, as_of, entry_i, tier_i, window_i, st)
    found = _CACHE.get(key)
    if found is not None and found[0] is pm:
        return found[1]
    price = _build(model_id, pm, entry_i, tier_i, window_i, st, source, as_of)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = (pm, price)
    return price


def _apply(rates: Rates, pm: PriceModel, window_i: int, st: str | None) -> Rates:
    if window_i >= 0:
        rates = pm.windows[window_i].rates.over(rates)
    if st is not None:
        tier = pm.service_tiers[st]
        rates = (
            tier.rates.over(rates)
            if tier.rates is not None
            else _scaled(rates, tier.multiplier or Decimal(1))
        )
    return rates


def _build(
    model_id: str,
    pm: PriceModel,
    entry_i: int,
    tier_i: int,
    window_i: int,
    st: str | None,
    source: str | None,
    as_of: dt.date | None,
) -> ResolvedPrice:
    entry = pm.schedule[entry_i]
    base = entry.rates
    brackets: list[tuple[int, Rates]] = [(0, _apply(base, pm, window_i, st))]
    rates = base
    if tier_i >= 0:
        tier = pm.tiers[tier_i]
        rates = tier.rates.over(base)
        if tier.applies_to == "excess":
            for t in pm.tiers[: tier_i + 1]:
                brackets.append((t.above_input_tokens, _apply(t.rates.over(base), pm, window_i, st)))
    final = _apply(rates, pm, window_i, st)
    if len(brackets) == 1:
        brackets = [(0, final)]
    return _with_version(
        ResolvedPrice(
            model=model_id,
            currency=pm.currency,
            rates=final,
            schedule_from=entry.start,
            price_tier=pm.tiers[tier_i].label if tier_i >= 0 else None,
            price_window=pm.windows[window_i].utc if window_i >= 0 else None,
            service_tier=st,
            brackets=tuple(brackets),
            source=source,
            as_of=as_of,
        )
    )
