"""`ui:` and `metrics:` sections: the dashboard's default time zone, and what /metrics labels and caps."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from typing import Any

from nextmodel_proxy.config.fields import (
    ConfigError,
    as_int,
    as_mapping,
    as_str,
    as_str_list,
    given,
    only_keys,
)

METRIC_EXTRA_LABELS = ("key", "project", "team")


@dataclass(frozen=True, slots=True)
class UIConfig:
    timezone: str = "UTC"  # the dashboard's day buckets when the page gives no ?tz=


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    labels: tuple[str, ...] = ()  # extra labels on nmproxy_requests_total: any of key, project, team
    max_series: int = 1000  # per metric; label sets past it are counted under the value "other"


def _timezone(value: Any, path: str) -> str:
    name = as_str(value, path)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            path, f"unknown time zone {name!r}; use an IANA name such as Asia/Kolkata"
        ) from None
    return name


def _labels(value: Any, path: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(as_str_list(value, path, frozenset(METRIC_EXTRA_LABELS))))


_UI_KEYS = {"timezone": ("timezone", _timezone)}
_METRICS_KEYS = {
    "labels": ("labels", _labels),
    "max_series": ("max_series", lambda v, p: as_int(v, p, 1)),
}


def read_ui(raw: Any) -> UIConfig:
    m = as_mapping(raw, "ui")
    only_keys(m, "ui", _UI_KEYS)
    return UIConfig(**given(m, "ui", _UI_KEYS))


def read_metrics(raw: Any) -> MetricsConfig:
    m = as_mapping(raw, "metrics")
    only_keys(m, "metrics", _METRICS_KEYS)
    return MetricsConfig(**given(m, "metrics", _METRICS_KEYS))
