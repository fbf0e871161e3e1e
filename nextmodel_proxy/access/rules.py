"""The input rules for keys and budgets, in one place: the admin API, the CLI and providers.yaml use them.

Each rule returns the checked value or raises InputError with a message that names no field; the caller
adds the field in its own error shape (an OpenAI-style 400 with `param`, a Click option error, a ConfigError
with the YAML path). A leaf module: it imports nothing of ours but timespec.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from nextmodel_proxy import timespec

PERIODS = ("day", "week", "month", "total")


class InputError(ValueError):
    """A value that breaks a rule; `code` is the API error code it maps to (invalid_value/invalid_type)."""

    def __init__(self, message: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.code = code


def amount(value: Any) -> Decimal:
    """An exact, finite, non-negative amount from a decimal string (preferred) or a number."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError('must be a decimal string such as "12.50"', "invalid_type")
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        raise InputError(f"is not a number: {value!r}") from None
    if not parsed.is_finite() or parsed < 0:
        raise InputError("must be a non-negative number")
    return parsed


def currency(value: Any, rates: Mapping[str, Decimal]) -> str:
    """An ISO 4217 code (any case) with a rate in currency.rates (USD always has one); returned upper-case."""
    if not isinstance(value, str) or not value.strip():
        raise InputError('must be a currency code such as "USD"', "invalid_type")
    code = value.strip().upper()
    if code != "USD" and code not in rates:
        raise InputError(f"{code} has no rate in currency.rates")
    return code


def period(value: Any) -> str:
    if value not in PERIODS:
        raise InputError(f"must be one of {', '.join(PERIODS)}")
    return str(value)


def positive_count(value: Any) -> int | None:
    """A rate limit (requests or tokens per minute): a positive integer, or None for no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError("must be a positive integer")
    return value


def models(value: Any, known: Container[str]) -> frozenset[str] | None:
    """A key's allowed models: a list of names or 'a,b' (empty or None = any), each a known model or route."""
    if isinstance(value, list) and all(isinstance(m, str) for m in value):
        value = ",".join(value)
    if value is not None and not isinstance(value, str):
        raise InputError("must be a list of model names or 'a,b'", "invalid_type")
    names = frozenset(m.strip() for m in (value or "").split(",") if m.strip()) or None
    unknown = sorted(m for m in names or () if m not in known)
    if unknown:
        raise InputError(f"unknown model or route {', '.join(unknown)}")
    return names


def expires_at(value: Any, now: dt.datetime) -> dt.datetime | None:
    """A key's lifetime as a duration from `now` (30d, 12h, 2w, seconds), or None for no expiry."""
    if value is None:
        return None
    try:
        return now + dt.timedelta(seconds=timespec.parse_duration(value))
    except ValueError as exc:
        raise InputError(str(exc)) from None
