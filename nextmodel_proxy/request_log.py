"""One log line per request that has a receipt: id, model, provider, status, served mode, cost, latency.

Logged at INFO on `nextmodel_proxy.requests`, with the same fields as structured data for --log-format json.
Never a key, a header value from the client, or a body.
"""

from __future__ import annotations

import logging

from nextmodel_proxy.ledger.receipts import Receipt
from nextmodel_proxy.pricing import format_usd

log = logging.getLogger("nextmodel_proxy.requests")


def log_receipt(r: Receipt) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    cost = format_usd(r.billed_cost_usd) if r.billed_cost_usd is not None else "unknown"
    latency = round(r.latency_ms, 1) if r.latency_ms is not None else None
    fields = {
        "event": "request",
        "receipt_id": r.receipt_id,
        "endpoint": r.endpoint,
        "model": r.model or r.model_requested,
        "provider": r.provider,
        "status": r.status,
        "error_code": r.error_code,
        "served_mode": r.served_mode,
        "stream": r.stream,
        "cost_usd": cost,
        "latency_ms": latency,
    }
    log.info(
        "%s %s %s via %s -> %s %s%s cost=%s latency=%sms",
        r.receipt_id,
        r.endpoint,
        fields["model"],
        r.provider or "-",
        r.status,
        r.served_mode,
        f" ({r.error_code})" if r.error_code else "",
        cost,
        latency if latency is not None else "?",
        extra={"nm": fields},
    )
