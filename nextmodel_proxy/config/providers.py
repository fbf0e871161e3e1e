"""`providers:` section: upstream services, how to reach them and how long to wait."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from nextmodel_proxy.config.fields import (
    ConfigError,
    as_choice,
    as_float,
    as_int,
    as_mapping,
    as_str,
    as_str_list,
    given,
    only_keys,
)

PROVIDER_KINDS = frozenset({"openai", "demo", "anthropic", "gemini"})


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    kind: str
    base_url: str = ""
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    max_retries: int = 2
    tags: tuple[str, ...] = ()
    max_answer_bytes: int = 64 * 1024 * 1024  # a whole answer (JSON body or every event of a stream)
    max_event_bytes: int = 8 * 1024 * 1024  # one SSE event, complete or still arriving


_PROVIDER_KEYS = frozenset(
    {
        "kind",
        "base_url",
        "api_key_env",
        "headers",
        "timeout_s",
        "connect_timeout_s",
        "max_retries",
        "tags",
        "max_answer_bytes",
        "max_event_bytes",
    }
)
_PROVIDER_NUMBERS = {
    "timeout_s": ("timeout_s", lambda v, p: as_float(v, p, 0.001)),
    "connect_timeout_s": ("connect_timeout_s", lambda v, p: as_float(v, p, 0.001)),
    "max_retries": ("max_retries", lambda v, p: as_int(v, p, 0)),
    "tags": ("tags", as_str_list),
    "max_answer_bytes": ("max_answer_bytes", lambda v, p: as_int(v, p, 1024)),
    "max_event_bytes": ("max_event_bytes", lambda v, p: as_int(v, p, 1024)),
}


def read_provider(name: str, raw: Any) -> ProviderConfig:
    path = f"providers.{name}"
    m = as_mapping(raw, path)
    only_keys(m, path, _PROVIDER_KEYS)
    if "kind" not in m:
        raise ConfigError(f"{path}.kind", "is required")
    kind = as_choice(m["kind"], f"{path}.kind", PROVIDER_KINDS)
    base_url = m.get("base_url", "")
    if kind != "demo":
        base_url = as_str(base_url, f"{path}.base_url")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{path}.base_url", "must start with http:// or https://")
    key_env = m.get("api_key_env")
    if key_env is not None:
        key_env = as_str(key_env, f"{path}.api_key_env")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key_env):
            raise ConfigError(f"{path}.api_key_env", "must be an environment variable name, not a key")
    headers = as_mapping(m.get("headers"), f"{path}.headers")
    for hk, hv in headers.items():
        as_str(hv, f"{path}.headers.{hk}")
    return ProviderConfig(
        name=name,
        kind=kind,
        base_url=str(base_url).rstrip("/"),
        api_key_env=key_env,
        headers=MappingProxyType({str(k): str(v) for k, v in headers.items()}),
        **given(m, path, _PROVIDER_NUMBERS),
    )
