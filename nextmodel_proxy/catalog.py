"""The model catalog: /v1/models rows, price freshness and retirement flags (pure, no I/O)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nextmodel_proxy.config import Config, ModelConfig, Price, RouteConfig
from nextmodel_proxy.errors import ProxyError

# A price older than this is flagged STALE: providers change list prices every few months.
STALE_AFTER_DAYS = 60
# A model retiring within this many days is flagged RETIRING so users move before it breaks.
RETIRING_WITHIN_DAYS = 30
PRICE_UNIT = "USD per 1M tokens"
# The blended price weighs input 3:1 against output, a typical chat workload's token mix.
BLEND_INPUT_WEIGHT = Decimal(3)
BLEND_OUTPUT_WEIGHT = Decimal(1)


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """Freshness and lifecycle flags of one model on a given day."""

    stale: bool = False
    retiring_soon: bool = False
    retired: bool = False
    price_age_days: int | None = None

    def labels(self, model: ModelConfig) -> list[str]:
        """Short flags for tables: STALE, RETIRING <date>, RETIRED <date>."""
        out = []
        if self.retired:
            out.append(f"RETIRED {model.retires}")
        elif self.retiring_soon:
            out.append(f"RETIRING {model.retires}")
        if self.stale:
            out.append("STALE")
        return out


def model_status(model: ModelConfig, today: dt.date) -> ModelStatus:
    """Flags for `model` on `today`; a model retires on its `retires` date (that day included)."""
    age = (today - model.as_of).days if model.as_of else None
    retired = model.retires is not None and today >= model.retires
    soon = model.retires is not None and not retired and (model.retires - today).days <= RETIRING_WITHIN_DAYS
    return ModelStatus(
        stale=age is not None and age > STALE_AFTER_DAYS,
        retiring_soon=soon,
        retired=retired,
        price_age_days=age,
    )


def check_not_retired(model: ModelConfig, today: dt.date) -> None:
    """Raise 410 `model_retired` for a model past its retirement date, naming its replacement."""
    if model.retires is None or today < model.retires:
        return
    message = f"model {model.id!r} was retired on {model.retires.isoformat()}"
    if model.replacement:
        message += f"; use {model.replacement!r} instead"
    raise ProxyError(410, message, "model_retired", type="invalid_request_error", param="model")


def blended_price(price: Price | None) -> Decimal | None:
    """One comparable figure per model: (3 x input + 1 x output) / 4, USD per 1M tokens."""
    if price is None:
        return None
    total = BLEND_INPUT_WEIGHT + BLEND_OUTPUT_WEIGHT
    return (price.input * BLEND_INPUT_WEIGHT + price.output * BLEND_OUTPUT_WEIGHT) / total


def _money(value: Decimal | None) -> str | None:
    """Exact decimal string (no exponent, no float rounding)."""
    return None if value is None else format(value.normalize(), "f")


def pricing_fields(price: Price | None) -> dict[str, Any] | None:
    if price is None:
        return None
    return {
        "input": _money(price.input),
        "output": _money(price.output),
        "cached_input": _money(price.cached_input),
        "cache_write": _money(price.cache_write),
        "unit": PRICE_UNIT,
    }


def _created(model: ModelConfig) -> int:
    """OpenAI's `created` (Unix seconds): the price snapshot date, 0 when unknown."""
    if model.as_of is None:
        return 0
    return int(dt.datetime.combine(model.as_of, dt.time(), dt.UTC).timestamp())


def model_row(model: ModelConfig, today: dt.date) -> dict[str, Any]:
    """One /v1/models entry: OpenAI's fields plus the catalog facts."""
    status = model_status(model, today)
    latency = model.latency
    return {
        "id": model.id,
        "object": "model",
        "created": _created(model),
        "owned_by": model.provider,
        "provider": model.provider,
        "upstream_id": model.upstream_id,
        "mode": model.mode,
        "pricing": pricing_fields(model.price),
        "context_window": model.context_window,
        "max_output": model.max_output,
        "capabilities": sorted(model.capabilities),
        "tags": list(model.tags),
        "latency": {
            "ttft_ms": latency.ttft_ms if latency else None,
            "tokens_per_s": latency.tokens_per_s if latency else None,
            "estimate": True,
        },
        "source": model.source,
        "as_of": model.as_of.isoformat() if model.as_of else None,
        "retires": model.retires.isoformat() if model.retires else None,
        "replacement": model.replacement,
        "verified": model.verified,
        "stale": status.stale,
        "retiring_soon": status.retiring_soon,
        "retired": status.retired,
    }


def route_row(route: RouteConfig) -> dict[str, Any]:
    """A route listed like a model, so clients can discover and pick it."""
    return {
        "id": route.name,
        "object": "model",
        "created": 0,
        "owned_by": "nextmodel-route",
        "route": {
            "strategy": route.strategy,
            "candidates": [
                {"model": c.model, "weight": c.weight} if route.strategy == "weighted" else c.model
                for c in route.candidates
            ],
            "require": sorted(route.require),
            "tags": list(route.tags),
            "max_price": {k: _money(v) for k, v in route.max_price.items()},
        },
    }


def models_list(config: Config, today: dt.date) -> dict[str, Any]:
    """The GET /v1/models body: every model, then every route."""
    data = [model_row(m, today) for m in config.models.values()]
    data.extend(route_row(r) for r in config.routes.values())
    return {"object": "list", "data": data}
