"""Model names and routes -> an ordered list of upstream targets, with a readable decision (pure, no I/O)."""

from __future__ import annotations

import datetime as dt
import difflib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nextmodel_proxy.catalog import check_not_retired
from nextmodel_proxy.config import Config, ModelConfig, RouteConfig
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.estimate import IMAGE_PART_TYPES, content_parts, estimate_prompt_tokens
from nextmodel_proxy.upstream.base import Target

DEFAULT_MAX_OUTPUT = 4096  # assumed completion size when the request names no max tokens
MILLION = Decimal(1_000_000)
_ENDPOINT_MODES = {"chat": "chat", "embeddings": "embedding"}


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The targets to try in order, the route used (None for a plain model), and why."""

    candidates: tuple[Target, ...]
    route: str | None
    decision: str
    requirements: frozenset[str] = frozenset()
    switched_from: str | None = None


# --- request analysis ---------------------------------------------------------------------------


def detect_requirements(body: Mapping[str, Any]) -> frozenset[str]:
    """Capabilities the request needs: tools, vision (image parts), json_schema (response_format)."""
    needs = set()
    if body.get("tools"):
        needs.add("tools")
    if any(part.get("type") in IMAGE_PART_TYPES for part in content_parts(body)):
        needs.add("vision")
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") == "json_schema":
        needs.add("json_schema")
    return frozenset(needs)


def requested_max_output(model: ModelConfig, body: Mapping[str, Any]) -> int:
    """max_completion_tokens / max_tokens when given, else min(model max output, 4096)."""
    asked = requested_max_tokens(body)
    if asked is not None:
        return asked
    if model.mode == "embedding":
        return 0
    return min(model.max_output or DEFAULT_MAX_OUTPUT, DEFAULT_MAX_OUTPUT)


def estimate_request_cost(model: ModelConfig, body: Mapping[str, Any]) -> Decimal | None:
    """Estimated fresh cost in USD of `body` on `model` (prompt estimate + max output); None if unpriced."""
    if model.price is None:
        return None
    prompt = estimate_prompt_tokens(body)
    output = requested_max_output(model, body)
    return (prompt * model.price.input + output * model.price.output) / MILLION


# --- filters -------------------------------------------------------------------------------------


def _exclusion(
    model: ModelConfig, route: RouteConfig, needs: frozenset[str], mode: str, today: dt.date
) -> str | None:
    """Why `model` cannot serve this request through `route`, or None if it can."""
    if model.retires is not None and today >= model.retires:
        return f"retired {model.retires.isoformat()}"
    if model.mode is not None and model.mode != mode:
        return f"{model.mode} model"
    missing = needs - model.capabilities
    if missing:
        return f"lacks {', '.join(sorted(missing))}"
    if route.tags and not set(route.tags) & set(model.tags):
        return f"tags {','.join(model.tags) or 'none'} not in {','.join(route.tags)}"
    for side, cap in route.max_price.items():
        price = getattr(model.price, side, None) if model.price else None
        if price is None:
            return f"no {side} price (max_price set)"
        if price > cap:
            return f"{side} ${format(price.normalize(), 'f')}/1M over max ${format(cap.normalize(), 'f')}"
    return None


# --- strategies ----------------------------------------------------------------------------------


def _order(
    route: RouteConfig,
    models: Sequence[ModelConfig],
    body: Mapping[str, Any],
    latency_stats: Mapping[str, float] | None,
    rng: random.Random | None,
) -> tuple[list[ModelConfig], str]:
    """Candidates in the order the strategy picks them, with a note on what decided it."""
    if route.strategy == "cheapest":
        costs = {m.id: estimate_request_cost(m, body) for m in models}
        ordered = sorted(models, key=lambda m: (costs[m.id] is None, costs[m.id] or Decimal(0)))
        note = ", ".join(f"{m.id} ~${_usd(costs[m.id])}" for m in ordered)
        return ordered, f"estimated cost {note}"
    if route.strategy == "fastest":
        seen = latency_stats or {}
        measured = {m.id: _latency(m, seen) for m in models}
        ordered = sorted(models, key=lambda m: measured[m.id][0])
        note = ", ".join(f"{m.id} {_ms(measured[m.id][0])} ({measured[m.id][1]})" for m in ordered)
        return ordered, f"latency {note}"
    if route.strategy == "weighted":
        weights = {c.model: c.weight for c in route.candidates}
        ordered = _weighted_order(models, weights, rng or random.Random())
        return ordered, "weighted draw " + ", ".join(f"{m.id}:{weights[m.id]:g}" for m in ordered)
    return list(models), "in listed order"


def _latency(model: ModelConfig, seen: Mapping[str, float]) -> tuple[float, str]:
    if model.id in seen:
        return float(seen[model.id]), "observed"
    if model.latency and model.latency.ttft_ms is not None:
        return model.latency.ttft_ms, "estimate"
    return math.inf, "unknown"


def _weighted_order(
    models: Sequence[ModelConfig], weights: Mapping[str, float], rng: random.Random
) -> list[ModelConfig]:
    """Weighted random order without replacement (Efraimidis-Spirakis keys); weight 0 goes last."""

    def key(model: ModelConfig) -> float:
        weight = weights.get(model.id, 1.0)
        return rng.random() ** (1.0 / weight) if weight > 0 else -1.0

    keyed = [(key(m), i, m) for i, m in enumerate(models)]
    return [m for _, _, m in sorted(keyed, key=lambda t: (-t[0], t[1]))]


def _usd(value: Decimal | None) -> str:
    return "?" if value is None else format(value.quantize(Decimal("0.000001")).normalize(), "f")


def _ms(value: float) -> str:
    return "?" if math.isinf(value) else f"{value:.0f}ms"


# --- planning ------------------------------------------------------------------------------------


def _not_found(config: Config, name: str) -> ProxyError:
    names = [*config.models, *config.routes]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ProxyError(404, f"model {name!r} does not exist{hint}", "model_not_found", param="model")


def _target(config: Config, model: ModelConfig) -> Target:
    return Target(provider=config.providers[model.provider], model=model)


def _plan_model(config: Config, model: ModelConfig, mode: str, today: dt.date, prefix: str) -> RoutePlan:
    check_not_retired(model, today)
    if model.mode is not None and model.mode != mode:
        endpoint = "/v1/embeddings" if model.mode == "embedding" else "/v1/chat/completions"
        raise ProxyError(
            400, f"model {model.id!r} is a {model.mode} model; use {endpoint}", "invalid_value", param="model"
        )
    return RoutePlan(
        candidates=(_target(config, model),),
        route=None,
        decision=f"{prefix}model {model.id} via {model.provider}",
    )


def _plan_route(
    config: Config,
    route: RouteConfig,
    body: Mapping[str, Any],
    mode: str,
    today: dt.date,
    latency_stats: Mapping[str, float] | None,
    rng: random.Random | None,
    prefix: str,
) -> RoutePlan:
    needs = route.require | detect_requirements(body)
    eligible, skipped = [], []
    for cand in route.candidates:
        model = config.models[cand.model]
        reason = _exclusion(model, route, needs, mode, today)
        if reason:
            skipped.append(f"{model.id} ({reason})")
        else:
            eligible.append(model)
    head = f"{prefix}route {route.name} ({route.strategy})"
    if not eligible:
        wanted = f" needing {', '.join(sorted(needs))}" if needs else ""
        raise ProxyError(
            400,
            f"{head}: no candidate can serve this request{wanted}: {'; '.join(skipped)}",
            "no_eligible_model",
            param="model",
        )
    ordered, why = _order(route, eligible, body, latency_stats, rng)
    skipped_note = f"skipped {'; '.join(skipped)}; " if skipped else ""
    decision = f"{head}: {skipped_note}{why}; chose {ordered[0].id}"
    return RoutePlan(
        candidates=tuple(_target(config, m) for m in ordered),
        route=route.name,
        decision=decision,
        requirements=needs,
    )


def _switch_target(
    config: Config,
    name: str,
    project: str | None,
    budget_share: Decimal | None,
    switch_route: str | None,
    switch_at: Decimal | None,
) -> str | None:
    """The route (or model) to use instead of `name` once the project's budget share is reached."""
    budget = config.projects[project].budget if project in config.projects else None
    target = switch_route or (budget.switch_route if budget else None)
    threshold = switch_at if switch_at is not None else (budget.switch_at if budget else Decimal("0.8"))
    if budget_share is None or target is None or target == name or budget_share < threshold:
        return None
    return target


def plan(
    config: Config,
    name: str,
    body: Mapping[str, Any],
    *,
    today: dt.date,
    endpoint: str = "chat",
    latency_stats: Mapping[str, float] | None = None,
    rng: random.Random | None = None,
    project: str | None = None,
    budget_share: Decimal | None = None,
    switch_route: str | None = None,
    switch_at: Decimal | None = None,
) -> RoutePlan:
    """Resolve a requested model id or route name to ordered targets; raises ProxyError 404/410/400.

    With `budget_share` (spent / limit of the project's budget) at or over `switch_at`, a chat request
    goes to the budget's `switch_route` instead (explicit `switch_route`/`switch_at` override the project's).
    """
    mode = _ENDPOINT_MODES.get(endpoint, "chat")
    if name not in config.models and name not in config.routes:
        raise _not_found(config, name)
    target = _switch_target(config, name, project, budget_share, switch_route, switch_at)
    if (
        target is None
        or mode != "chat"
        or (name in config.models and config.models[name].mode not in (None, "chat"))
    ):
        return _plan_name(config, name, body, mode, today, latency_stats, rng, "")
    share = format(budget_share.normalize(), "f") if budget_share is not None else "?"
    try:
        result = _plan_name(
            config,
            target,
            body,
            mode,
            today,
            latency_stats,
            rng,
            f"budget {share} spent, switched {name} -> {target}; ",
        )
    except ProxyError as exc:
        # The cheaper route may lack what this request needs; serving it as asked beats refusing it.
        note = f"budget {share} spent, but {target} cannot serve this request ({exc.code}); kept {name}; "
        return _plan_name(config, name, body, mode, today, latency_stats, rng, note)
    return RoutePlan(
        candidates=result.candidates,
        route=result.route,
        decision=result.decision,
        requirements=result.requirements,
        switched_from=name,
    )


def _plan_name(
    config: Config,
    name: str,
    body: Mapping[str, Any],
    mode: str,
    today: dt.date,
    latency_stats: Mapping[str, float] | None,
    rng: random.Random | None,
    prefix: str,
) -> RoutePlan:
    if name in config.routes:
        return _plan_route(config, config.routes[name], body, mode, today, latency_stats, rng, prefix)
    return _plan_model(config, config.models[name], mode, today, prefix)


def requested_max_tokens(body: Mapping[str, Any]) -> int | None:
    """max_completion_tokens / max_tokens / max_output_tokens when the request names a positive one."""
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
