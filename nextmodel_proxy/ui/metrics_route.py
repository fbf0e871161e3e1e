"""GET /metrics: the Prometheus text format; needs an admin key when the proxy has keys (open mode: open)."""

from __future__ import annotations

from decimal import Decimal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from nextmodel_proxy.access.auth import require_admin
from nextmodel_proxy.appkeys import PIPELINE, SERVICES
from nextmodel_proxy.metrics import Collect
from nextmodel_proxy.services import Services


def registry_for(services: Services) -> CollectorRegistry:
    """A registry holding only this proxy's collector (no process-global default registry)."""
    ledger = services.ledger

    def budgets() -> list[tuple[str, str, Decimal]]:
        return [
            (ln.usage.budget.scope, ln.usage.budget.scope_id, ln.remaining_usd)
            for ln in services.budgets.snapshot()
        ]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        Collect(
            services.metrics,
            queue_depth=lambda: ledger.queue_depth if ledger is not None else 0,
            write_errors=lambda: ledger.write_errors if ledger is not None else 0,
            budgets=budgets,
        )
    )
    return registry


async def metrics(request: web.Request) -> web.Response:
    principal = request.app[PIPELINE].authenticate(request.headers)
    if principal is not None:
        require_admin(principal)
    body = generate_latest(registry_for(request.app[SERVICES]))  # a registry per scrape costs microseconds
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
