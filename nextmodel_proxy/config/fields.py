"""Hand-written field validators: each returns the checked value or raises ConfigError naming its YAML path."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from nextmodel_proxy import timespec


class ConfigError(Exception):
    """A configuration problem; `path` is the dotted YAML path it is about."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def as_mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must be a mapping, got {type(value).__name__}")
    return value


def only_keys(value: Mapping[str, Any], path: str, allowed: Any) -> None:
    """Refuse keys not in `allowed` (any collection of key names)."""
    for key in value:
        if key not in allowed:
            raise ConfigError(join(path, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")


def join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def as_str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, "must be a non-empty string")
    return value


def as_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, "must be true or false")
    return value


def as_int(value: Any, path: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, "must be an integer")
    if value < minimum:
        raise ConfigError(path, f"must be >= {minimum}")
    return value


def as_float(value: Any, path: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, "must be a number")
    if value < minimum:
        raise ConfigError(path, f"must be >= {minimum}")
    return float(value)


def as_decimal(value: Any, path: str) -> Decimal:
    """A non-negative amount; parsed from the YAML text form so 0.1 stays exactly 0.1."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(path, "must be a number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(path, f"must be a number, got {value!r}") from None
    if not amount.is_finite():
        raise ConfigError(path, "must be a finite number")
    if amount < 0:
        raise ConfigError(path, "must not be negative")
    return amount


def as_share(value: Any, path: str, message: str = "must be between 0 and 1") -> Decimal:
    """A Decimal in [0, 1]."""
    share = as_decimal(value, path)
    if share > 1:
        raise ConfigError(path, message)
    return share


def as_str_list(value: Any, path: str, allowed: frozenset[str] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, "must be a list of strings")
    out = []
    for i, item in enumerate(value):
        item = as_str(item, f"{path}.{i}")
        if allowed is not None and item not in allowed:
            raise ConfigError(
                f"{path}.{i}", f"unknown value {item!r} (allowed: {', '.join(sorted(allowed))})"
            )
        out.append(item)
    return tuple(out)


def as_date(value: Any, path: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(path, f"must be a date (YYYY-MM-DD), got {value!r}")


def parse_duration(value: Any, path: str = "") -> float:
    """Seconds, in timespec's one duration grammar (30s, 15m, 24h, 7d, 2w or a number of seconds)."""
    try:
        return timespec.parse_duration(value)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None


def as_choice(value: Any, path: str, allowed: frozenset[str]) -> str:
    value = as_str(value, path)
    if value not in allowed:
        raise ConfigError(path, f"must be one of {', '.join(sorted(allowed))}, got {value!r}")
    return value


Reader = Callable[[Any, str], Any]


def given(m: Mapping[str, Any], path: str, readers: Mapping[str, tuple[str, Reader]]) -> dict[str, Any]:
    """Validated keyword arguments for the keys present in `m`: {yaml_key: (field_name, reader)}.

    Absent keys are left out so the dataclass default (written once, on the dataclass) applies.
    """
    return {attr: read(m[key], join(path, key)) for key, (attr, read) in readers.items() if key in m}


def unless_null(read: Reader) -> Reader:
    """A reader for an optional key where an explicit YAML null means 'not set'."""
    return lambda value, path: None if value is None else read(value, path)
