"""`currency:` section: the display currency and USD exchange rates (USD is always 1)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from nextmodel_proxy.config.fields import ConfigError, as_decimal, as_mapping, as_str, only_keys


@dataclass(frozen=True, slots=True)
class CurrencyConfig:
    display: str = "USD"
    rates: Mapping[str, Decimal] = field(default_factory=lambda: MappingProxyType({"USD": Decimal(1)}))


_CURRENCY_KEYS = frozenset({"display", "rates"})


def read_currency(raw: Any, dated: Mapping[str, Decimal] | None = None) -> CurrencyConfig:
    """`dated` (the newest rate of each currency in fx.rates) joins the undated rates, over them."""
    m = as_mapping(raw, "currency")
    only_keys(m, "currency", _CURRENCY_KEYS)
    rates_raw = as_mapping(m.get("rates"), "currency.rates")
    rates = dict(CurrencyConfig().rates)
    for code, rate in rates_raw.items():
        path = f"currency.rates.{code}"
        if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{3}", code):
            raise ConfigError(path, "currency codes are three capital letters (ISO 4217)")
        value = as_decimal(rate, path)
        if value == 0:
            raise ConfigError(path, "a rate must be greater than 0")
        rates[code] = value
    rates.update(dated or {})
    if "display" not in m:
        return CurrencyConfig(rates=MappingProxyType(rates))
    display = as_str(m["display"], "currency.display")
    if display not in rates:
        raise ConfigError("currency.display", f"{display!r} has no rate in currency.rates or fx.rates")
    return CurrencyConfig(display=display, rates=MappingProxyType(rates))
