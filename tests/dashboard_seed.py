"""A seeded ledger for the dashboard tests: known receipts at known instants, written the writer's way."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.receipts import Receipt, new_receipt_id
from nextmodel_proxy.ledger.rows import chained_rows, insert_rows, ledger_head
from nextmodel_proxy.timespec import format_utc


def receipt(at: dt.datetime, **kw: Any) -> Receipt:
    """A fresh 200 receipt at `at` (UTC) priced from its tokens at $1 in / $2 out per 1M, unless told."""
    prompt, completion = kw.pop("prompt_tokens", 1000), kw.pop("completion_tokens", 500)
    cost = kw.pop("cost", (Decimal(prompt) * 1 + Decimal(completion) * 2) / Decimal(1_000_000))
    mode = kw.get("served_mode", "fresh")
    billed = kw.pop("billed", cost / 2 if mode == "exact-cache" else cost)
    fields: dict[str, Any] = {
        "receipt_id": new_receipt_id(),
        "created_utc": format_utc(at),
        "model": "demo-chat",
        "provider": "demo",
        "upstream_model": "demo-chat",
        "model_requested": "demo-chat",
        "status": 200,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "usage_source": "upstream",
        "upstream_cost_usd": Decimal(0) if mode == "exact-cache" else cost,
        "billed_cost_usd": billed,
        "fresh_cost_usd": cost,
        "savings_usd": cost - billed,
        "latency_ms": 120.0,
        "ttft_ms": 40.0,
    }
    fields.update(kw)
    return Receipt(**fields)


def seed(path: str | Path, receipts: list[Receipt]) -> None:
    """Append receipts (chained, rolled up) in one transaction, as the ledger writer does."""
    conn = db.open_db(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        rows, _ = chained_rows(receipts, ledger_head(conn))
        insert_rows(conn, rows)
        conn.execute("COMMIT")
    finally:
        conn.close()


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
