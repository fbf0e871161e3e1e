"""The whole providers.yaml: sections read in dependency order (providers -> models -> routes -> budgets)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nextmodel_proxy.config.budgets import ProjectConfig, TeamConfig, read_project, read_team
from nextmodel_proxy.config.cache import CacheConfig, read_cache
from nextmodel_proxy.config.currency import CurrencyConfig, read_currency
from nextmodel_proxy.config.fields import ConfigError, as_mapping, only_keys
from nextmodel_proxy.config.models import ModelConfig, Price, read_model
from nextmodel_proxy.config.observability import MetricsConfig, UIConfig, read_metrics, read_ui
from nextmodel_proxy.config.prices import FxTable, parse_fx
from nextmodel_proxy.config.providers import ProviderConfig, read_provider
from nextmodel_proxy.config.routes import RouteConfig, read_route
from nextmodel_proxy.config.service import LedgerConfig, ServerConfig, read_ledger, read_server
from nextmodel_proxy.config.yaml_text import load_yaml_text

DEFAULT_CONFIG = "providers.yaml"
SECTIONS = frozenset(
    {"server", "ledger", "currency", "fx", "cache", "providers", "models", "routes", "projects", "teams"}
    | {"ui", "metrics"}
)


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
    ui: UIConfig = field(default_factory=UIConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    source_path: str | None = None
    fx: FxTable = field(default_factory=FxTable)  # dated rates (fx:) over the undated currency.rates


def _named(root: Mapping[str, Any], section: str) -> dict[str, Any]:
    """The entries under a by-name section, names as strings."""
    return {str(name): raw for name, raw in as_mapping(root.get(section), section).items()}


def parse_config(data: Any, source_path: str | None = None) -> Config:
    """Validate a loaded YAML document into a Config."""
    root = as_mapping(data, "")
    only_keys(root, "", SECTIONS)
    providers = {name: read_provider(name, raw) for name, raw in _named(root, "providers").items()}
    models = {name: read_model(name, raw, providers) for name, raw in _named(root, "models").items()}
    for name, model in models.items():
        if model.replacement is not None and model.replacement not in models:
            raise ConfigError(f"models.{name}.replacement", f"unknown model {model.replacement!r}")
    fx = parse_fx(root.get("fx"), {})
    dated = {code: rate for code, rate in fx.latest().items() if fx.newest_date(code) is not None}
    currency = read_currency(root.get("currency"), dated)
    fx = replace(fx, undated=MappingProxyType({c: r for c, r in currency.rates.items() if c not in dated}))
    models = {name: _priced_in_usd(model, fx) for name, model in models.items()}
    routes = {name: read_route(name, raw, models) for name, raw in _named(root, "routes").items()}
    teams = {name: read_team(name, raw, currency) for name, raw in _named(root, "teams").items()}
    targets = {**models, **routes}
    projects = {
        name: read_project(name, raw, currency, targets) for name, raw in _named(root, "projects").items()
    }
    return Config(
        server=read_server(root.get("server")),
        ledger=read_ledger(root.get("ledger")),
        currency=currency,
        cache=read_cache(root.get("cache")),
        providers=MappingProxyType(providers),
        models=MappingProxyType(models),
        routes=MappingProxyType(routes),
        projects=MappingProxyType(projects),
        teams=MappingProxyType(teams),
        ui=read_ui(root.get("ui")),
        metrics=read_metrics(root.get("metrics")),
        source_path=source_path,
        fx=fx,
    )


_MICRO = Decimal("0.000001")


def _priced_in_usd(model: ModelConfig, fx: FxTable) -> ModelConfig:
    """Check the model's currency has a rate; set `price` to the USD equivalent of today's entry when the
    model is priced by a schedule or in another currency (routing and listings compare USD)."""
    pm = model.pricing
    if pm is None or (pm.currency == "USD" and len(pm.schedule) == 1 and pm.schedule[0].start is None):
        return model
    today = dt.datetime.now(dt.UTC).date()
    found = fx.rate(pm.currency, today)
    if found is None:
        raise ConfigError(
            f"models.{model.id}.currency",
            f"no FX rate for {pm.currency}: add it to fx.rates (units of {pm.currency} per 1 USD)",
        )
    entry = pm.entry_on(today) or pm.schedule[0]
    rate = found[0]

    def usd(value: Decimal) -> Decimal:  # an estimate for routing and listings: 6 decimal places
        return value if rate == 1 else (value / rate).quantize(_MICRO).normalize()

    r = entry.rates
    price = Price(
        usd(r.input),
        usd(r.output),
        *(None if v is None else usd(v) for v in (r.cached_input, r.cache_write, r.cache_write_1h)),
    )
    return replace(model, price=price)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate providers.yaml; raises ConfigError with the YAML path of the first problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {str(p)!r}: {exc.strerror or exc}") from None
    data = load_yaml_text(text, str(p))
    if data is None or data == {}:
        raise ConfigError(
            "",
            f"config file {str(p)!r} is empty: it needs at least providers: and models: "
            "(start from the shipped providers.yaml)",
        )
    return parse_config(data, str(p))
