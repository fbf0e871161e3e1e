"""providers.yaml -> frozen dataclasses. Every problem is a ConfigError naming its YAML path."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

PROVIDER_KINDS = frozenset({"openai", "demo", "anthropic", "gemini"})
CAPABILITIES = frozenset({"tools", "vision", "json_schema", "reasoning", "embeddings"})
CACHE_POLICIES = frozenset({"deterministic", "always", "never"})
CACHE_SCOPES = frozenset({"project", "key", "global"})
DEFAULT_CONFIG = "providers.yaml"
DEFAULT_DB = "nextmodel.db"


class ConfigError(Exception):
    """A configuration problem; `path` is the dotted YAML path it is about."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Latency:
    ttft_ms: float | None = None
    tokens_per_s: float | None = None


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


@dataclass(frozen=True, slots=True)
class CurrencyConfig:
    display: str = "USD"
    rates: Mapping[str, Decimal] = field(default_factory=lambda: MappingProxyType({"USD": Decimal(1)}))


@dataclass(frozen=True, slots=True)
class CacheConfig:
    enabled: bool = True
    policy: str = "deterministic"
    scope: str = "project"
    replay_price_ratio: Decimal = Decimal("0.1")
    ttl_s: float = 7 * 86400.0
    max_entries: int = 100_000
    max_bytes: int = 1 << 30
    path: str | None = None
    allow_n_gt_1: bool = False


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


@dataclass(frozen=True, slots=True)
class ModelConfig:
    id: str
    provider: str
    upstream_id: str
    price: Price | None = None
    context_window: int | None = None
    max_output: int | None = None
    capabilities: frozenset[str] = frozenset()
    latency: Latency | None = None
    tags: tuple[str, ...] = ()
    source: str | None = None
    as_of: dt.date | None = None
    retires: dt.date | None = None
    mode: str = "chat"
    cache_policy: str | None = None
    replacement: str | None = None  # model to suggest once this one retires
    verified: str | None = None  # research note on how solid the figures are
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    model: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class RouteConfig:
    name: str
    strategy: str
    candidates: tuple[Candidate, ...]
    require: frozenset[str] = frozenset()
    tags: tuple[str, ...] = ()
    max_price: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    amount: Decimal
    currency: str = "USD"
    period: str = "month"
    switch_route: str | None = None
    switch_at: Decimal = Decimal("0.8")


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    name: str
    team: str | None = None
    budget: BudgetConfig | None = None


@dataclass(frozen=True, slots=True)
class TeamConfig:
    name: str
    budget: BudgetConfig | None = None


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    currency: CurrencyConfig = field(default_factory=CurrencyConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)
    routes: Mapping[str, RouteConfig] = field(default_factory=dict)
    projects: Mapping[str, ProjectConfig] = field(default_factory=dict)
    teams: Mapping[str, TeamConfig] = field(default_factory=dict)
    source_path: str | None = None


# --- YAML loading with duplicate-key detection -------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise ConfigError(_path_of(loader, node, key), f"duplicate key {key!r} (line {line})")
        seen[key] = loader.construct_object(value_node, deep=deep)
    return seen


def _path_of(loader: _UniqueKeyLoader, target: yaml.Node, key: Any) -> str:
    """Dotted path of `key` inside mapping `target`, found by walking from the document root."""
    parts = _find_path(loader._nm_root, target) if getattr(loader, "_nm_root", None) else None
    return ".".join([*(parts or []), str(key)])


def _find_path(node: yaml.Node, target: yaml.Node) -> list[str] | None:
    if node is target:
        return []
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            sub = _find_path(v, target)
            if sub is not None:
                return [str(k.value), *sub]
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            sub = _find_path(v, target)
            if sub is not None:
                return [str(i), *sub]
    return None


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_text(text: str) -> Any:
    loader = _UniqueKeyLoader(text)
    try:
        root = loader.get_single_node()
        loader._nm_root = root  # type: ignore[attr-defined]
        return loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError("", f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


# --- field validators ------------------------------------------------------------------------


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must be a mapping, got {type(value).__name__}")
    return value


def _only(value: Mapping[str, Any], path: str, allowed: set[str] | frozenset[str]) -> None:
    for key in value:
        if key not in allowed:
            raise ConfigError(_join(path, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, "must be a non-empty string")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, "must be true or false")
    return value


def _int(value: Any, path: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, "must be an integer")
    if value < minimum:
        raise ConfigError(path, f"must be >= {minimum}")
    return value


def _float(value: Any, path: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, "must be a number")
    if value < minimum:
        raise ConfigError(path, f"must be >= {minimum}")
    return float(value)


def _decimal(value: Any, path: str) -> Decimal:
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


def _str_list(value: Any, path: str, allowed: frozenset[str] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, "must be a list of strings")
    out = []
    for i, item in enumerate(value):
        item = _str(item, f"{path}.{i}")
        if allowed is not None and item not in allowed:
            raise ConfigError(
                f"{path}.{i}", f"unknown value {item!r} (allowed: {', '.join(sorted(allowed))})"
            )
        out.append(item)
    return tuple(out)


def _date(value: Any, path: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(path, "must be a date (YYYY-MM-DD)")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, path: str = "") -> float:
    """Seconds from a number or a string with an s/m/h/d suffix."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_S[match.group(2)]
    raise ConfigError(path, f"must be a duration like 30s, 15m, 24h or 7d, got {value!r}")


def _choice(value: Any, path: str, allowed: frozenset[str]) -> str:
    value = _str(value, path)
    if value not in allowed:
        raise ConfigError(path, f"must be one of {', '.join(sorted(allowed))}, got {value!r}")
    return value


# --- sections --------------------------------------------------------------------------------


def _server(raw: Any) -> ServerConfig:
    m = _mapping(raw, "server")
    _only(m, "server", {"host", "port", "max_body_bytes", "keepalive_s", "shutdown_grace_s"})
    d = ServerConfig()
    return ServerConfig(
        host=_str(m.get("host", d.host), "server.host"),
        port=_int(m.get("port", d.port), "server.port", 0),
        max_body_bytes=_int(m.get("max_body_bytes", d.max_body_bytes), "server.max_body_bytes", 1),
        keepalive_s=_float(m.get("keepalive_s", d.keepalive_s), "server.keepalive_s", 0.01),
        shutdown_grace_s=_float(m.get("shutdown_grace_s", d.shutdown_grace_s), "server.shutdown_grace_s"),
    )


def _ledger(raw: Any) -> LedgerConfig:
    m = _mapping(raw, "ledger")
    _only(m, "ledger", {"path", "enabled", "busy_timeout_s"})
    return LedgerConfig(
        path=_str(m.get("path", DEFAULT_DB), "ledger.path"),
        enabled=_bool(m.get("enabled", True), "ledger.enabled"),
        busy_timeout_s=_float(m.get("busy_timeout_s", 5.0), "ledger.busy_timeout_s", 0.001),
    )


def _currency(raw: Any) -> CurrencyConfig:
    m = _mapping(raw, "currency")
    _only(m, "currency", {"display", "rates"})
    rates_raw = _mapping(m.get("rates"), "currency.rates")
    rates = {"USD": Decimal(1)}
    for code, rate in rates_raw.items():
        path = f"currency.rates.{code}"
        if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{3}", code):
            raise ConfigError(path, "currency codes are three capital letters (ISO 4217)")
        value = _decimal(rate, path)
        if value == 0:
            raise ConfigError(path, "a rate must be greater than 0")
        rates[code] = value
    display = _str(m.get("display", "USD"), "currency.display")
    if display not in rates:
        raise ConfigError("currency.display", f"{display!r} has no rate in currency.rates")
    return CurrencyConfig(display=display, rates=MappingProxyType(rates))


def _cache(raw: Any) -> CacheConfig:
    m = _mapping(raw, "cache")
    allowed = {"enabled", "policy", "scope", "replay_price_ratio", "ttl", "max_entries", "max_bytes", "path"}
    _only(m, "cache", allowed | {"allow_n_gt_1"})
    d = CacheConfig()
    ratio = _decimal(m.get("replay_price_ratio", "0.1"), "cache.replay_price_ratio")
    if ratio > 1:
        raise ConfigError("cache.replay_price_ratio", "must be between 0 and 1")
    return CacheConfig(
        enabled=_bool(m.get("enabled", d.enabled), "cache.enabled"),
        policy=_choice(m.get("policy", d.policy), "cache.policy", CACHE_POLICIES),
        scope=_choice(m.get("scope", d.scope), "cache.scope", CACHE_SCOPES),
        replay_price_ratio=ratio,
        ttl_s=parse_duration(m.get("ttl", d.ttl_s), "cache.ttl"),
        max_entries=_int(m.get("max_entries", d.max_entries), "cache.max_entries", 1),
        max_bytes=_int(m.get("max_bytes", d.max_bytes), "cache.max_bytes", 1),
        path=_str(m["path"], "cache.path") if m.get("path") is not None else None,
        allow_n_gt_1=_bool(m.get("allow_n_gt_1", False), "cache.allow_n_gt_1"),
    )


def _provider(name: str, raw: Any) -> ProviderConfig:
    path = f"providers.{name}"
    m = _mapping(raw, path)
    _only(
        m,
        path,
        {
            "kind",
            "base_url",
            "api_key_env",
            "headers",
            "timeout_s",
            "connect_timeout_s",
            "max_retries",
            "tags",
        },
    )
    if "kind" not in m:
        raise ConfigError(f"{path}.kind", "is required")
    kind = _choice(m["kind"], f"{path}.kind", PROVIDER_KINDS)
    base_url = m.get("base_url", "")
    if kind != "demo":
        base_url = _str(base_url, f"{path}.base_url")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{path}.base_url", "must start with http:// or https://")
    key_env = m.get("api_key_env")
    if key_env is not None:
        key_env = _str(key_env, f"{path}.api_key_env")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key_env):
            raise ConfigError(f"{path}.api_key_env", "must be an environment variable name, not a key")
    headers = _mapping(m.get("headers"), f"{path}.headers")
    for hk, hv in headers.items():
        _str(hv, f"{path}.headers.{hk}")
    return ProviderConfig(
        name=name,
        kind=kind,
        base_url=str(base_url).rstrip("/"),
        api_key_env=key_env,
        headers=MappingProxyType({str(k): str(v) for k, v in headers.items()}),
        timeout_s=_float(m.get("timeout_s", 600), f"{path}.timeout_s", 0.001),
        connect_timeout_s=_float(m.get("connect_timeout_s", 10), f"{path}.connect_timeout_s", 0.001),
        max_retries=_int(m.get("max_retries", 2), f"{path}.max_retries", 0),
        tags=_str_list(m.get("tags", []), f"{path}.tags"),
    )


def _price(raw: Any, path: str) -> Price:
    m = _mapping(raw, path)
    _only(m, path, {"input", "output", "cached_input", "cache_write"})
    for required in ("input", "output"):
        if required not in m:
            raise ConfigError(f"{path}.{required}", "is required")
    return Price(
        input=_decimal(m["input"], f"{path}.input"),
        output=_decimal(m["output"], f"{path}.output"),
        cached_input=_decimal(m["cached_input"], f"{path}.cached_input")
        if m.get("cached_input") is not None
        else None,
        cache_write=_decimal(m["cache_write"], f"{path}.cache_write")
        if m.get("cache_write") is not None
        else None,
    )


_MODEL_KEYS = {
    "provider",
    "upstream_id",
    "price",
    "context_window",
    "max_output",
    "capabilities",
    "latency",
    "tags",
    "source",
    "as_of",
    "retires",
    "mode",
    "cache_policy",
    "notes",
    "verified",
    "replacement",
}


def _model(name: str, raw: Any, providers: Mapping[str, ProviderConfig]) -> ModelConfig:
    path = f"models.{name}"
    m = _mapping(raw, path)
    _only(m, path, _MODEL_KEYS)
    if "provider" not in m:
        raise ConfigError(f"{path}.provider", "is required")
    provider = _str(m["provider"], f"{path}.provider")
    if provider not in providers:
        raise ConfigError(f"{path}.provider", f"unknown provider {provider!r} (not under providers:)")
    latency = None
    if m.get("latency") is not None:
        lm = _mapping(m["latency"], f"{path}.latency")
        _only(lm, f"{path}.latency", {"ttft_ms", "tokens_per_s"})
        latency = Latency(
            ttft_ms=_float(lm["ttft_ms"], f"{path}.latency.ttft_ms") if "ttft_ms" in lm else None,
            tokens_per_s=_float(lm["tokens_per_s"], f"{path}.latency.tokens_per_s")
            if "tokens_per_s" in lm
            else None,
        )
    tags = _str_list(m.get("tags", []), f"{path}.tags")
    return ModelConfig(
        id=name,
        provider=provider,
        upstream_id=_str(m.get("upstream_id", name), f"{path}.upstream_id"),
        price=_price(m["price"], f"{path}.price") if m.get("price") is not None else None,
        context_window=_int(m["context_window"], f"{path}.context_window", 1)
        if m.get("context_window")
        else None,
        max_output=_int(m["max_output"], f"{path}.max_output", 1) if m.get("max_output") else None,
        capabilities=frozenset(_str_list(m.get("capabilities", []), f"{path}.capabilities", CAPABILITIES)),
        latency=latency,
        tags=tuple(dict.fromkeys(tags + providers[provider].tags)),
        source=_str(m["source"], f"{path}.source") if m.get("source") is not None else None,
        as_of=_date(m["as_of"], f"{path}.as_of") if m.get("as_of") is not None else None,
        retires=_date(m["retires"], f"{path}.retires") if m.get("retires") is not None else None,
        mode=_choice(m.get("mode", "chat"), f"{path}.mode", frozenset({"chat", "embedding"})),
        cache_policy=_choice(m["cache_policy"], f"{path}.cache_policy", CACHE_POLICIES)
        if m.get("cache_policy") is not None
        else None,
        replacement=_optional_str(m, "replacement", path),
        verified=_optional_str(m, "verified", path),
        notes=_optional_str(m, "notes", path),
    )


def _optional_str(m: Mapping[str, Any], key: str, path: str) -> str | None:
    return _str(m[key], f"{path}.{key}") if m.get(key) is not None else None


ROUTE_STRATEGIES = frozenset({"fallback", "cheapest", "fastest", "weighted"})


def _route(name: str, raw: Any, models: Mapping[str, ModelConfig]) -> RouteConfig:
    path = f"routes.{name}"
    m = _mapping(raw, path)
    _only(m, path, {"strategy", "candidates", "require", "tags", "max_price"})
    if name in models:
        raise ConfigError(path, f"a route cannot share its name with model {name!r}")
    strategy = _choice(m.get("strategy", "fallback"), f"{path}.strategy", ROUTE_STRATEGIES)
    raw_candidates = m.get("candidates")
    if not isinstance(raw_candidates, list) or not raw_candidates:
        raise ConfigError(f"{path}.candidates", "must be a non-empty list of model ids")
    candidates = []
    for i, item in enumerate(raw_candidates):
        cpath = f"{path}.candidates.{i}"
        if isinstance(item, Mapping):
            _only(item, cpath, {"model", "weight"})
            cand = Candidate(
                _str(item.get("model"), f"{cpath}.model"), _float(item.get("weight", 1), f"{cpath}.weight")
            )
        else:
            cand = Candidate(_str(item, cpath))
        if cand.model not in models:
            raise ConfigError(cpath, f"unknown model {cand.model!r}")
        candidates.append(cand)
    max_price_raw = _mapping(m.get("max_price"), f"{path}.max_price")
    _only(max_price_raw, f"{path}.max_price", {"input", "output"})
    return RouteConfig(
        name=name,
        strategy=strategy,
        candidates=tuple(candidates),
        require=frozenset(_str_list(m.get("require", []), f"{path}.require", CAPABILITIES)),
        tags=_str_list(m.get("tags", []), f"{path}.tags"),
        max_price=MappingProxyType(
            {k: _decimal(v, f"{path}.max_price.{k}") for k, v in max_price_raw.items()}
        ),
    )


def _budget(raw: Any, path: str, currency: CurrencyConfig) -> BudgetConfig:
    m = _mapping(raw, path)
    _only(m, path, {"amount", "currency", "period", "switch_route", "switch_at"})
    if "amount" not in m:
        raise ConfigError(f"{path}.amount", "is required")
    cur = _str(m.get("currency", "USD"), f"{path}.currency")
    if cur not in currency.rates:
        raise ConfigError(f"{path}.currency", f"{cur!r} has no rate in currency.rates")
    switch_at = _decimal(m.get("switch_at", "0.8"), f"{path}.switch_at")
    if switch_at > 1:
        raise ConfigError(f"{path}.switch_at", "is a share of the budget between 0 and 1")
    return BudgetConfig(
        amount=_decimal(m["amount"], f"{path}.amount"),
        currency=cur,
        period=_choice(
            m.get("period", "month"), f"{path}.period", frozenset({"day", "week", "month", "total"})
        ),
        switch_route=_str(m["switch_route"], f"{path}.switch_route") if m.get("switch_route") else None,
        switch_at=switch_at,
    )


def parse_config(data: Any, source_path: str | None = None) -> Config:
    """Validate a loaded YAML document into a Config."""
    root = _mapping(data, "")
    _only(
        root,
        "",
        {"server", "ledger", "currency", "cache", "providers", "models", "routes", "projects", "teams"},
    )
    providers = {}
    for name, raw in _mapping(root.get("providers"), "providers").items():
        providers[str(name)] = _provider(str(name), raw)
    models = {}
    for name, raw in _mapping(root.get("models"), "models").items():
        models[str(name)] = _model(str(name), raw, providers)
    for name, model in models.items():
        if model.replacement is not None and model.replacement not in models:
            raise ConfigError(f"models.{name}.replacement", f"unknown model {model.replacement!r}")
    routes = {str(n): _route(str(n), r, models) for n, r in _mapping(root.get("routes"), "routes").items()}
    currency = _currency(root.get("currency"))
    teams = {}
    for name, raw in _mapping(root.get("teams"), "teams").items():
        tm = _mapping(raw, f"teams.{name}")
        _only(tm, f"teams.{name}", {"budget"})
        budget = _budget(tm["budget"], f"teams.{name}.budget", currency) if tm.get("budget") else None
        teams[str(name)] = TeamConfig(name=str(name), budget=budget)
    projects = {}
    for name, raw in _mapping(root.get("projects"), "projects").items():
        pm = _mapping(raw, f"projects.{name}")
        _only(pm, f"projects.{name}", {"team", "budget"})
        budget = _budget(pm["budget"], f"projects.{name}.budget", currency) if pm.get("budget") else None
        if (
            budget
            and budget.switch_route
            and budget.switch_route not in routes
            and budget.switch_route not in models
        ):
            raise ConfigError(
                f"projects.{name}.budget.switch_route", f"unknown route or model {budget.switch_route!r}"
            )
        team = _str(pm["team"], f"projects.{name}.team") if pm.get("team") else None
        projects[str(name)] = ProjectConfig(name=str(name), team=team, budget=budget)
    return Config(
        server=_server(root.get("server")),
        ledger=_ledger(root.get("ledger")),
        currency=currency,
        cache=_cache(root.get("cache")),
        providers=MappingProxyType(providers),
        models=MappingProxyType(models),
        routes=MappingProxyType(routes),
        projects=MappingProxyType(projects),
        teams=MappingProxyType(teams),
        source_path=source_path,
    )


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate providers.yaml; raises ConfigError with the YAML path of the first problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {str(p)!r}: {exc.strerror or exc}") from None
    return parse_config(load_yaml_text(text), str(p))
