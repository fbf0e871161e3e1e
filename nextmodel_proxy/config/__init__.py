"""providers.yaml -> frozen dataclasses, one module per section; every problem is a ConfigError naming its
YAML path. Everything the rest of the code uses is importable from here (`from nextmodel_proxy.config import X`).
Defaults live once, on the dataclasses; readers pass only the keys the YAML gives."""

from nextmodel_proxy.config.budgets import BUDGET_PERIODS, BudgetConfig, ProjectConfig, TeamConfig
from nextmodel_proxy.config.cache import CACHE_POLICIES, CACHE_SCOPES, CacheConfig
from nextmodel_proxy.config.currency import CurrencyConfig
from nextmodel_proxy.config.fields import ConfigError, parse_duration
from nextmodel_proxy.config.loader import DEFAULT_CONFIG, Config, load_config, parse_config
from nextmodel_proxy.config.models import CAPABILITIES, Latency, ModelConfig, Price
from nextmodel_proxy.config.observability import MetricsConfig, UIConfig
from nextmodel_proxy.config.providers import PROVIDER_KINDS, ProviderConfig
from nextmodel_proxy.config.routes import ROUTE_STRATEGIES, Candidate, RouteConfig
from nextmodel_proxy.config.service import DEFAULT_DB, LedgerConfig, ServerConfig
from nextmodel_proxy.config.yaml_text import load_yaml_text

__all__ = [
    "BUDGET_PERIODS",
    "CACHE_POLICIES",
    "CACHE_SCOPES",
    "CAPABILITIES",
    "DEFAULT_CONFIG",
    "DEFAULT_DB",
    "PROVIDER_KINDS",
    "ROUTE_STRATEGIES",
    "BudgetConfig",
    "CacheConfig",
    "Candidate",
    "Config",
    "ConfigError",
    "CurrencyConfig",
    "Latency",
    "LedgerConfig",
    "MetricsConfig",
    "ModelConfig",
    "Price",
    "ProjectConfig",
    "ProviderConfig",
    "RouteConfig",
    "ServerConfig",
    "TeamConfig",
    "UIConfig",
    "load_config",
    "load_yaml_text",
    "parse_config",
    "parse_duration",
]
