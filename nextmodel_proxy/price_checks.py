"""`nmproxy prices check` findings (pure): stale prices, schedule changes near `today`, retirements, notes
that mention a pricing rule the entry does not model, and FX rates that are stale or undated."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from nextmodel_proxy.config import Config, ModelConfig
from nextmodel_proxy.config.prices import stale_fx

# words in notes/verified -> (what models it, a test that the entry has it)
_MENTIONS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "tiers",
        re.compile(r"long.context|prompts? (over|above)|above \d+K|>\s?\d+K|input.length tier|tiered", re.I),
        "tiers",
    ),
    ("windows", re.compile(r"off-peak|peak hours|time.of.day", re.I), "windows"),
    ("service_tiers", re.compile(r"priority|\bflex\b|fast 2x|batch 50%", re.I), "service_tiers"),
    (
        "cache_write_1h",
        re.compile(r"1-hour|1h (cache )?write|12-h|12-hour|extended retention", re.I),
        "cache_write_1h",
    ),
    ("prices", re.compile(r"price change|doubles|doubled|from 20\d\d-\d\d-\d\d", re.I), "prices"),
)


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # stale | change-soon | changed | retiring | retired | unmodelled | fx-stale
    subject: str  # model id or currency
    message: str


def _has(model: ModelConfig, what: str) -> bool:
    pm = model.pricing
    if pm is None:
        return False
    if what == "tiers":
        return bool(pm.tiers)
    if what == "windows":
        return bool(pm.windows)
    if what == "service_tiers":
        return bool(pm.service_tiers)
    if what == "prices":
        return len(pm.schedule) > 1
    if what == "cache_write_1h":
        rates = [e.rates for e in pm.schedule] + [t.rates for t in pm.tiers]
        return any(r.cache_write_1h is not None for r in rates)
    return False


def check(config: Config, today: dt.date, *, days: int = 30, stale_days: int = 60) -> list[Finding]:
    out: list[Finding] = []
    for model in config.models.values():
        mid = model.id
        if model.retires is not None:
            if model.retires <= today:
                out.append(
                    Finding(
                        "retired", mid, f"retired {model.retires} (replacement: {model.replacement or '-'})"
                    )
                )
                continue
            if (model.retires - today).days <= days:
                out.append(
                    Finding(
                        "retiring", mid, f"retires {model.retires}, in {(model.retires - today).days} days"
                    )
                )
        if model.as_of is not None and (today - model.as_of).days > stale_days:
            out.append(
                Finding("stale", mid, f"prices as of {model.as_of}, {(today - model.as_of).days} days old")
            )
        if model.pricing is not None:
            for entry in model.pricing.schedule:
                if entry.start is None:
                    continue
                delta = (entry.start - today).days
                if 0 < delta <= days:
                    out.append(Finding("change-soon", mid, f"new price from {entry.start} (in {delta} days)"))
                elif -days <= delta <= 0 and entry is not model.pricing.schedule[0]:
                    out.append(
                        Finding("changed", mid, f"new price took effect {entry.start} ({-delta} days ago)")
                    )
        text = " ".join(t for t in (model.notes, model.verified) if t)
        for what, pattern, _attr in _MENTIONS:
            found = pattern.search(text)
            if found and not _has(model, what):
                out.append(
                    Finding(
                        "unmodelled", mid, f"notes mention {found.group(0)!r} but the entry has no {what}"
                    )
                )
    codes = {m.pricing.currency for m in config.models.values() if m.pricing is not None}
    codes.add(config.currency.display)
    for line in stale_fx(config.fx, codes, today):
        out.append(Finding("fx-stale", line.split(":")[0], line))
    return out
