"""`teams:` and `projects:` sections: who spends, and the budget (amount, period, soft switch) on each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nextmodel_proxy.access import rules
from nextmodel_proxy.config.currency import CurrencyConfig
from nextmodel_proxy.config.fields import (
    ConfigError,
    as_choice,
    as_decimal,
    as_mapping,
    as_share,
    as_str,
    given,
    only_keys,
)

BUDGET_PERIODS = frozenset(rules.PERIODS)  # the same periods the admin API and the CLI accept


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


_BUDGET_KEYS = {
    "switch_at": ("switch_at", lambda v, p: as_share(v, p, "is a share of the budget between 0 and 1")),
    "amount": ("amount", as_decimal),
    "period": ("period", lambda v, p: as_choice(v, p, BUDGET_PERIODS)),
    "switch_route": ("switch_route", lambda v, p: as_str(v, p) if v else None),
}


def read_budget(raw: Any, path: str, currency: CurrencyConfig) -> BudgetConfig:
    m = as_mapping(raw, path)
    only_keys(m, path, {*_BUDGET_KEYS, "currency"})
    if "amount" not in m:
        raise ConfigError(f"{path}.amount", "is required")
    fields = given(m, path, _BUDGET_KEYS)
    if "currency" in m:
        fields["currency"] = as_str(m["currency"], f"{path}.currency")
    budget = BudgetConfig(**fields)
    if budget.currency not in currency.rates:
        raise ConfigError(f"{path}.currency", f"{budget.currency!r} has no rate in currency.rates")
    return budget


def read_team(name: str, raw: Any, currency: CurrencyConfig) -> TeamConfig:
    path = f"teams.{name}"
    tm = as_mapping(raw, path)
    only_keys(tm, path, {"budget"})
    budget = read_budget(tm["budget"], f"{path}.budget", currency) if tm.get("budget") else None
    return TeamConfig(name=name, budget=budget)


def read_project(name: str, raw: Any, currency: CurrencyConfig, targets: Mapping[str, Any]) -> ProjectConfig:
    """`targets`: the route and model names a budget's switch_route may name."""
    path = f"projects.{name}"
    pm = as_mapping(raw, path)
    only_keys(pm, path, {"team", "budget"})
    budget = read_budget(pm["budget"], f"{path}.budget", currency) if pm.get("budget") else None
    if budget and budget.switch_route and budget.switch_route not in targets:
        raise ConfigError(f"{path}.budget.switch_route", f"unknown route or model {budget.switch_route!r}")
    team = as_str(pm["team"], f"{path}.team") if pm.get("team") else None
    return ProjectConfig(name=name, team=team, budget=budget)
