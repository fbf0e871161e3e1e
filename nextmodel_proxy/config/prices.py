"""The price model under models.<id> (currency, dated `prices`, `tiers`, `windows`, `service_tiers`) and the
dated `fx:` table. Frozen dataclasses and their readers; every problem is a ConfigError with its YAML path.

Which of these applies to one request is price_resolve.py; the money arithmetic is pricing.py.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from nextmodel_proxy.config.fields import ConfigError, as_date, as_decimal

# ISO 4217 active codes (2026). A code outside this list is "unknown currency" in check-config.
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD
    CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD
    HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL
    LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR
    PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP
    TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG""".split()
)
APPLIES_TO = frozenset({"request", "excess"})
RATE_FIELDS = ("input", "output", "cached_input", "cache_write", "cache_write_1h")
DEFAULT_FX_MAX_AGE_DAYS = 7


@dataclass(frozen=True, slots=True)
class Rates:
    """Unit prices per 1M tokens in the model's currency. cached_input / cache_write fall back to input,
    cache_write_1h (1-hour / extended-retention writes) to cache_write, when not given."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None

    def over(self, base: Rates) -> Rates:
        """These rates with the fields they leave out taken from `base` (a tier or window over its entry)."""
        return Rates(
            self.input,
            self.output,
            self.cached_input if self.cached_input is not None else base.cached_input,
            self.cache_write if self.cache_write is not None else base.cache_write,
            self.cache_write_1h if self.cache_write_1h is not None else base.cache_write_1h,
        )


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    start: dt.date | None  # None: the simple `price:` form, in force always
    rates: Rates


@dataclass(frozen=True, slots=True)
class Tier:
    above_input_tokens: int
    applies_to: str  # request | excess
    rates: Rates

    @property
    def label(self) -> str:
        return f">{self.above_input_tokens}" + (" (excess)" if self.applies_to == "excess" else "")


@dataclass(frozen=True, slots=True)
class Window:
    utc: str  # "HH:MM-HH:MM" as written; may wrap midnight
    start_min: int
    end_min: int
    rates: Rates

    def contains(self, minute: int) -> bool:
        """Whether a minute of the UTC day (0..1439) falls in [start, end)."""
        if self.start_min < self.end_min:
            return self.start_min <= minute < self.end_min
        return minute >= self.start_min or minute < self.end_min


@dataclass(frozen=True, slots=True)
class ServiceTierPrice:
    name: str
    rates: Rates | None = None  # explicit prices, or
    multiplier: Decimal | None = None  # a multiple of the price that would otherwise apply


@dataclass(frozen=True, slots=True)
class PriceModel:
    """Everything a model's receipts are priced by. `schedule` is sorted by start (a single undated entry
    for the simple form), `tiers` ascending by threshold."""

    currency: str = "USD"
    schedule: tuple[ScheduleEntry, ...] = ()
    tiers: tuple[Tier, ...] = ()
    windows: tuple[Window, ...] = ()
    service_tiers: Mapping[str, ServiceTierPrice] = field(default_factory=lambda: MappingProxyType({}))

    def entry_on(self, day: dt.date) -> ScheduleEntry | None:
        """The schedule entry in force on `day` (None before the first one starts)."""
        found = None
        for entry in self.schedule:
            if entry.start is None or entry.start <= day:
                found = entry
            else:
                break
        return found


@dataclass(frozen=True, slots=True)
class FxTable:
    """Units of each currency per 1 USD. `dated` is sorted by date; `undated` is the legacy currency.rates."""

    source: str | None = None
    dated: tuple[tuple[dt.date, Mapping[str, Decimal]], ...] = ()
    undated: Mapping[str, Decimal] = field(default_factory=lambda: MappingProxyType({"USD": Decimal(1)}))
    max_age_days: int = DEFAULT_FX_MAX_AGE_DAYS

    def rate(self, code: str, day: dt.date) -> tuple[Decimal, dt.date | None] | None:
        """(rate, its date) with the latest dated rate on or before `day`; before the table starts the
        earliest dated rate; else the undated rate (date None); None when there is none at all."""
        if code == "USD":
            return Decimal(1), None
        best = first = None
        for date, rates in self.dated:
            if code in rates:
                if first is None:
                    first = (rates[code], date)
                if date <= day:
                    best = (rates[code], date)
        if best is not None:
            return best
        if code in self.undated:
            return self.undated[code], None
        return first

    def codes(self) -> frozenset[str]:
        out = set(self.undated)
        for _date, rates in self.dated:
            out.update(rates)
        return frozenset(out | {"USD"})

    def latest(self) -> dict[str, Decimal]:
        """The newest rate of every currency (undated ones under dated ones): what budgets convert with."""
        out = dict(self.undated)
        for _date, rates in self.dated:
            out.update(rates)
        out["USD"] = Decimal(1)
        return out

    def newest_date(self, code: str) -> dt.date | None:
        dates = [date for date, rates in self.dated if code in rates]
        return max(dates) if dates else None


# --- parsing -----------------------------------------------------------------------------------


# The shared field validators, under the names this module reads with.
_amount = as_decimal
_day = as_date


def _keys(m: Any, path: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(m, Mapping):
        raise ConfigError(path, f"must be a mapping, got {type(m).__name__}")
    for key in m:
        if key not in allowed:
            raise ConfigError(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return m


def rates_from(m: Mapping[str, Any], path: str, *, required: bool = True) -> Rates:
    """Rates from a mapping holding input/output[/cached_input/cache_write/cache_write_1h]."""
    if required:
        for name in ("input", "output"):
            if m.get(name) is None:
                raise ConfigError(f"{path}.{name}", "is required")
    values = {n: _amount(m[n], f"{path}.{n}") if m.get(n) is not None else None for n in RATE_FIELDS}
    return Rates(**values)  # type: ignore[arg-type]


def currency_code(value: Any, path: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value):
        raise ConfigError(path, f"a currency is an ISO 4217 code of three capital letters, got {value!r}")
    if value not in ISO_4217:
        raise ConfigError(path, f"unknown currency {value!r} (not an ISO 4217 code)")
    return value


def _schedule(raw: Any, path: str) -> tuple[ScheduleEntry, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(path, "must be a non-empty list of {from: YYYY-MM-DD, input: .., output: ..}")
    entries: list[ScheduleEntry] = []
    for i, item in enumerate(raw):
        ipath = f"{path}.{i}"
        m = _keys(item, ipath, {"from", *RATE_FIELDS})
        if m.get("from") is None:
            raise ConfigError(f"{ipath}.from", "is required (the first day this price is in force)")
        start = _day(m["from"], f"{ipath}.from")
        if entries and entries[-1].start is not None:
            before = entries[-1].start
            if start == before:
                raise ConfigError(f"{ipath}.from", f"overlaps entry {i - 1}: both start on {start}")
            if start < before:
                raise ConfigError(
                    f"{ipath}.from", f"{start} is before entry {i - 1}'s {before}: list entries oldest first"
                )
        entries.append(ScheduleEntry(start, rates_from(m, ipath)))
    return tuple(entries)


def _tiers(raw: Any, path: str) -> tuple[Tier, ...]:
    if not isinstance(raw, list):
        raise ConfigError(path, "must be a list of {above_input_tokens: N, applies_to: request|excess, ...}")
    tiers: list[Tier] = []
    seen: dict[int, int] = {}
    for i, item in enumerate(raw):
        ipath = f"{path}.{i}"
        m = _keys(item, ipath, {"above_input_tokens", "applies_to", *RATE_FIELDS})
        above = m.get("above_input_tokens")
        if isinstance(above, bool) or not isinstance(above, int) or above < 0:
            raise ConfigError(f"{ipath}.above_input_tokens", "must be a whole number of tokens >= 0")
        if above in seen:
            raise ConfigError(
                f"{ipath}.above_input_tokens", f"equal to tier {seen[above]}'s threshold {above}"
            )
        seen[above] = i
        applies = m.get("applies_to", "request")
        if applies not in APPLIES_TO:
            raise ConfigError(f"{ipath}.applies_to", f"must be request or excess, got {applies!r}")
        tiers.append(Tier(above, applies, rates_from(m, ipath)))
    if len({t.applies_to for t in tiers}) > 1:
        raise ConfigError(path, "tiers of one model all apply to the request, or all to the excess")
    return tuple(sorted(tiers, key=lambda t: t.above_input_tokens))


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _minute(text: str) -> int | None:
    match = _HHMM.match(text.strip())
    return int(match.group(1)) * 60 + int(match.group(2)) if match else None


def parse_window(text: Any, path: str) -> tuple[int, int]:
    if isinstance(text, str) and text.count("-") == 1:
        start, end = (_minute(part) for part in text.split("-"))
        if start is not None and end is not None and start != end:
            return start, end
    raise ConfigError(
        path, f'must be "HH:MM-HH:MM" in UTC with different ends (may wrap midnight), got {text!r}'
    )


def _windows(raw: Any, path: str) -> tuple[Window, ...]:
    if not isinstance(raw, list):
        raise ConfigError(path, 'must be a list of {utc: "HH:MM-HH:MM", input: .., output: ..}')
    windows: list[Window] = []
    for i, item in enumerate(raw):
        ipath = f"{path}.{i}"
        m = _keys(item, ipath, {"utc", *RATE_FIELDS})
        start, end = parse_window(m.get("utc"), f"{ipath}.utc")
        window = Window(m["utc"], start, end, rates_from(m, ipath))
        for j, other in enumerate(windows):
            if any(window.contains(minute) and other.contains(minute) for minute in range(1440)):
                raise ConfigError(f"{ipath}.utc", f"overlaps window {j} ({other.utc})")
        windows.append(window)
    return tuple(windows)


def _service_tiers(raw: Any, path: str) -> Mapping[str, ServiceTierPrice]:
    if not isinstance(raw, Mapping):
        raise ConfigError(path, "must be a mapping of service tier name -> prices or {multiplier: x}")
    out = {}
    for name, item in raw.items():
        ipath = f"{path}.{name}"
        m = _keys(item, ipath, {"multiplier", *RATE_FIELDS})
        if "multiplier" in m:
            if any(k in m for k in RATE_FIELDS):
                raise ConfigError(ipath, "give either prices or a multiplier, not both")
            mult = _amount(m["multiplier"], f"{ipath}.multiplier")
            if mult == 0:
                raise ConfigError(f"{ipath}.multiplier", "must be greater than 0")
            out[str(name)] = ServiceTierPrice(str(name), multiplier=mult)
        else:
            out[str(name)] = ServiceTierPrice(str(name), rates=rates_from(m, ipath))
    return MappingProxyType(out)


PRICE_MODEL_KEYS = frozenset({"currency", "prices", "tiers", "windows", "service_tiers"})


def parse_price_model(m: Mapping[str, Any], path: str, simple: Rates | None) -> PriceModel | None:
    """A model's price model from its mapping (`simple` is its parsed `price:`, if any); None if unpriced."""
    currency = currency_code(m["currency"], f"{path}.currency") if m.get("currency") is not None else "USD"
    if m.get("prices") is not None:
        if simple is not None:
            raise ConfigError(f"{path}.prices", "give either price: or prices:, not both")
        schedule = _schedule(m["prices"], f"{path}.prices")
    elif simple is not None:
        schedule = (ScheduleEntry(None, simple),)
    else:
        for key in ("tiers", "windows", "service_tiers"):
            if m.get(key) is not None:
                raise ConfigError(f"{path}.{key}", "needs a base price (price: or prices:)")
        return None
    return PriceModel(
        currency=currency,
        schedule=schedule,
        tiers=_tiers(m["tiers"], f"{path}.tiers") if m.get("tiers") is not None else (),
        windows=_windows(m["windows"], f"{path}.windows") if m.get("windows") is not None else (),
        service_tiers=_service_tiers(m["service_tiers"], f"{path}.service_tiers")
        if m.get("service_tiers") is not None
        else MappingProxyType({}),
    )


def parse_fx(raw: Any, undated: Mapping[str, Decimal]) -> FxTable:
    """The `fx:` section (dated rates, units per 1 USD), with the legacy undated currency.rates."""
    if raw is None:
        return FxTable(undated=MappingProxyType(dict(undated)))
    m = _keys(raw, "fx", {"source", "rates", "max_age_days"})
    source = m.get("source")
    if source is not None and (not isinstance(source, str) or not source):
        raise ConfigError("fx.source", "must be a non-empty string")
    max_age = m.get("max_age_days", DEFAULT_FX_MAX_AGE_DAYS)
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 1:
        raise ConfigError("fx.max_age_days", "must be a whole number of days >= 1")
    rows = m.get("rates")
    if not isinstance(rows, list) or not rows:
        raise ConfigError("fx.rates", "must be a non-empty list of {date: YYYY-MM-DD, GBP: 0.79, ...}")
    dated: list[tuple[dt.date, Mapping[str, Decimal]]] = []
    for i, row in enumerate(rows):
        ipath = f"fx.rates.{i}"
        if not isinstance(row, Mapping):
            raise ConfigError(ipath, "must be a mapping {date: ..., CODE: units per USD, ...}")
        if row.get("date") is None:
            raise ConfigError(f"{ipath}.date", "is required")
        day = _day(row["date"], f"{ipath}.date")
        if dated and day <= dated[-1][0]:
            raise ConfigError(f"{ipath}.date", f"{day} is not after {dated[-1][0]}: list rates oldest first")
        rates = {}
        for code, value in row.items():
            if code == "date":
                continue
            cpath = f"{ipath}.{code}"
            rates[currency_code(code, cpath)] = _amount(value, cpath)
            if rates[code] == 0:
                raise ConfigError(cpath, "a rate must be greater than 0")
        dated.append((day, MappingProxyType(rates)))
    return FxTable(source, tuple(dated), MappingProxyType(dict(undated)), max_age)


def stale_fx(fx: FxTable, codes: set[str], today: dt.date) -> list[str]:
    """Warnings for currencies in use whose newest rate is older than fx.max_age_days, or undated."""
    out = []
    for code in sorted(codes - {"USD"}):
        newest = fx.newest_date(code)
        if newest is None:
            if code in fx.undated:
                out.append(f"{code}: rate {fx.undated[code]} is undated (currency.rates); add it to fx.rates")
            continue
        age = (today - newest).days
        if age > fx.max_age_days:
            out.append(
                f"{code}: newest rate is dated {newest}, {age} days old (fx.max_age_days {fx.max_age_days})"
            )
    return out
