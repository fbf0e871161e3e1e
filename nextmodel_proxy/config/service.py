"""`server:` and `ledger:` sections: where the proxy listens and where receipts are written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nextmodel_proxy.config.fields import (
    ConfigError,
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
    header_timeout_s: float = (
        10.0  # from a request's first byte (or the connection opening) to its last header
    )
    body_timeout_s: float = 60.0  # to read the whole request body once the headers are in
    max_connections: int | None = None  # None: from the open-file limit (listener.auto_max_connections)


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    path: str = DEFAULT_DB
    enabled: bool = True
    busy_timeout_s: float = 5.0


_SERVER_KEYS = {
    "host": ("host", as_str),
    "port": ("port", lambda v, p: _port(as_int(v, p, 0), p)),
    "max_body_bytes": ("max_body_bytes", lambda v, p: as_int(v, p, 1)),
    "keepalive_s": ("keepalive_s", lambda v, p: as_float(v, p, 0.01)),
    "shutdown_grace_s": ("shutdown_grace_s", as_float),
    "header_timeout_s": ("header_timeout_s", lambda v, p: as_float(v, p, 0.01)),
    "body_timeout_s": ("body_timeout_s", lambda v, p: as_float(v, p, 0.01)),
    "max_connections": ("max_connections", lambda v, p: as_int(v, p, 1)),
}

_LEDGER_KEYS = {
    "path": ("path", as_str),
    "enabled": ("enabled", as_bool),
    "busy_timeout_s": ("busy_timeout_s", lambda v, p: as_float(v, p, 0.001)),
}


def _port(value: int, path: str) -> int:
    if value > 65535:
        raise ConfigError(path, "must be a TCP port, 0 to 65535")
    return value


def read_server(raw: Any) -> ServerConfig:
    m = as_mapping(raw, "server")
    only_keys(m, "server", _SERVER_KEYS)
    return ServerConfig(**given(m, "server", _SERVER_KEYS))


def read_ledger(raw: Any) -> LedgerConfig:
    m = as_mapping(raw, "ledger")
    only_keys(m, "ledger", _LEDGER_KEYS)
    return LedgerConfig(**given(m, "ledger", _LEDGER_KEYS))
