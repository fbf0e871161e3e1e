"""`server:` and `ledger:` sections: where the proxy listens and where receipts are written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nextmodel_proxy.config.fields import (
    as_bool,
    as_float,
    as_int,
    as_mapping,
    as_str,
    given,
    only_keys,
)

DEFAULT_DB = "nextmodel.db"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    max_body_bytes: int = 10 * 1024 * 1024
    keepalive_s: float = 15.0
    shutdown_grace_s: float = 30.0


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    path: str = DEFAULT_DB
    enabled: bool = True
    busy_timeout_s: float = 5.0


_SERVER_KEYS = {
    "host": ("host", as_str),
    "port": ("port", lambda v, p: as_int(v, p, 0)),
    "max_body_bytes": ("max_body_bytes", lambda v, p: as_int(v, p, 1)),
    "keepalive_s": ("keepalive_s", lambda v, p: as_float(v, p, 0.01)),
    "shutdown_grace_s": ("shutdown_grace_s", as_float),
}

_LEDGER_KEYS = {
    "path": ("path", as_str),
    "enabled": ("enabled", as_bool),
    "busy_timeout_s": ("busy_timeout_s", lambda v, p: as_float(v, p, 0.001)),
}


def read_server(raw: Any) -> ServerConfig:
    m = as_mapping(raw, "server")
    only_keys(m, "server", _SERVER_KEYS)
    return ServerConfig(**given(m, "server", _SERVER_KEYS))


def read_ledger(raw: Any) -> LedgerConfig:
    m = as_mapping(raw, "ledger")
    only_keys(m, "ledger", _LEDGER_KEYS)
    return LedgerConfig(**given(m, "ledger", _LEDGER_KEYS))
