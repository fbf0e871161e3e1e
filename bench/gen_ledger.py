"""Generate a ledger of N receipts fast (valid hash chain and rollups), then time spend and export.

    python bench/gen_ledger.py [--n 1000000] [--db bench-ledger.db]

Prints one JSON line at the end: generation rate, spend timings (rollup path and edge-of-day path), export rows/s.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nextmodel_proxy.config import CurrencyConfig  # noqa: E402
from nextmodel_proxy.ledger import schema as db  # noqa: E402
from nextmodel_proxy.ledger.chain import GENESIS  # noqa: E402
from nextmodel_proxy.ledger.export import EXPORT_COLUMNS, export_csv_cells, iter_export_rows  # noqa: E402
from nextmodel_proxy.ledger.receipts import Receipt, ReceiptFilter  # noqa: E402
from nextmodel_proxy.ledger.reconcile import Totals, compare, ledger_totals, summary  # noqa: E402
from nextmodel_proxy.ledger.rows import chained_rows, insert_rows  # noqa: E402
from nextmodel_proxy.ledger.spend import spend, spend_total  # noqa: E402
from nextmodel_proxy.ledger.spend_fx import spend_converted  # noqa: E402
from nextmodel_proxy.timespec import format_utc  # noqa: E402
from nextmodel_proxy.ui import pages, views  # noqa: E402
from nextmodel_proxy.ui.access import OPEN_VIEWER  # noqa: E402

MODELS = [
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("claude-sonnet", "anthropic"),
    ("gemini-flash", "gemini"),
    ("deepseek-chat", "deepseek"),
    ("o3-mini", "openai"),
    ("claude-haiku", "anthropic"),
    ("embed-3", "openai"),
]
BILLED_AT = EXPORT_COLUMNS.index("billed_cost_usd")
MODES = ["fresh"] * 6 + ["exact-cache"] * 3 + ["error"]


def receipts(n: int, days: int, seed: int = 7):
    rng = random.Random(seed)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    step = dt.timedelta(days=days) / max(n, 1)
    for i in range(n):
        model, provider = MODELS[i % len(MODELS)]
        mode = MODES[i % len(MODES)]
        fresh = Decimal(rng.randrange(1, 5_000_000)) / Decimal(10**9)
        billed = fresh / 10 if mode == "exact-cache" else fresh
        yield Receipt(
            receipt_id=f"rcpt_{i:012x}{rng.getrandbits(56):014x}",
            created_utc=format_utc(start + step * i),
            request_id=f"req-{i}",
            key_id=f"key_{i % 50}",
            project=f"project-{i % 20}",
            team=f"team-{i % 5}",
            tags=("bench",),
            model_requested=model,
            model=model,
            provider=provider,
            upstream_model=model,
            served_mode=mode,
            stream=bool(i & 1),
            status=500 if mode == "error" else 200,
            prompt_tokens=rng.randrange(10, 4000),
            completion_tokens=rng.randrange(1, 800),
            cached_tokens=0,
            cache_write_tokens=0,
            reasoning_tokens=0,
            usage_source="cache" if mode == "exact-cache" else "upstream",
            upstream_cost_usd=Decimal(0) if mode == "exact-cache" else fresh,
            billed_cost_usd=billed,
            fresh_cost_usd=fresh,
            savings_usd=fresh - billed,
            display_currency="GBP",
            display_rate=Decimal("0.79"),
            latency_ms=rng.uniform(50, 4000),
            ttft_ms=rng.uniform(10, 800),
            price_version="0123456789ab",
            service_tier="default",
            currency="USD",
            native_cost=billed,
            fx_rate=Decimal(1),
        )


def generate(path: Path, n: int, days: int, chunk: int = 50_000) -> float:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = db.open_db(path)
    t0 = time.perf_counter()
    head, batch = GENESIS, []
    for receipt in receipts(n, days):
        batch.append(receipt)
        if len(batch) >= chunk:
            head = _write(conn, batch, head)
            batch = []
    _write(conn, batch, head)
    elapsed = time.perf_counter() - t0
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return elapsed


def _write(conn, batch, head: str) -> str:
    if not batch:
        return head
    rows, head = chained_rows(batch, head)
    conn.execute("BEGIN IMMEDIATE")
    insert_rows(conn, rows)
    conn.execute("COMMIT")
    return head


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--db", default="bench-ledger.db")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    args = parser.parse_args()
    path = Path(args.db)
    gen_s = generate(path, args.n, args.days)
    conn = db.connect(path, readonly=True)
    now = dt.datetime.now(dt.UTC)
    by_project, spend_project_s = timed(lambda: spend(conn, "project"))
    _, spend_day_s = timed(lambda: spend(conn, "day"))
    window = ReceiptFilter(since=now - dt.timedelta(days=30, hours=5), until=now - dt.timedelta(hours=7))
    _, spend_window_s = timed(lambda: spend(conn, "model", window))
    overview_s = _overview_s(conn, now)
    exported, export_s = timed(lambda: _export(conn))
    reconciled, reconcile_s = timed(lambda: _reconcile(conn))
    # spend in another currency reads receipt by receipt (each at its own day's rate), not the rollups
    (gbp_rows, _rates), spend_gbp_s = timed(
        lambda: spend_converted(conn, "project", ReceiptFilter(), "GBP", lambda code, day: Decimal("0.79"))
    )
    assert sum(r.row.count for r in gbp_rows) == args.n
    total = spend_total(by_project)
    assert exported[0] == total.count and exported[1] == total.billed_usd, "export and spend disagree"
    size = path.stat().st_size
    conn.close()
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    print(
        orjson.dumps(
            {
                "bench": "gen_ledger",
                "receipts": args.n,
                "db_bytes": size,
                "generate_receipts_per_s": round(args.n / gen_s),
                "spend_by_project_s": round(spend_project_s, 4),
                "spend_by_day_s": round(spend_day_s, 4),
                "spend_30d_window_by_model_s": round(spend_window_s, 4),
                "export_csv_rows_per_s": round(exported[0] / export_s),
                "export_s": round(export_s, 2),
                "dashboard_overview_30d_s": round(overview_s["30d"], 4),
                "dashboard_overview_90d_kolkata_s": round(overview_s["90d"], 4),
                "reconcile_openai_s": round(reconcile_s, 3),
                "spend_by_project_in_gbp_s": round(spend_gbp_s, 3),
                "reconcile_openai_receipts": reconciled,
                "billed_total_usd": str(total.billed_usd),
            }
        ).decode()
    )


def _overview_s(conn, now: dt.datetime) -> dict[str, float]:
    """Server-side time to build the dashboard overview page (queries + HTML), best of 3 runs each."""
    out = {}
    for name, params in (
        ("30d", {"tz": "UTC", "from": str((now - dt.timedelta(days=29)).date())}),
        ("90d", {"tz": "Asia/Kolkata", "from": str((now - dt.timedelta(days=89)).date())}),
    ):
        window = views.window_of(params, "UTC", now)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            data = views.overview(conn, window, OPEN_VIEWER, None, now)
            pages.overview(data, params, "")
            runs.append(time.perf_counter() - t0)
        out[name] = min(runs)
    return out


def _reconcile(conn) -> int:
    """`nmproxy reconcile --provider openai` over the whole ledger against an export that matches it but for
    one line: the ledger side (every receipt of the provider read once, grouped by day and model) plus the
    comparison. Returns how many receipts the ledger side covered."""
    ours = ledger_totals(conn, "openai")
    theirs = {
        (day, model): Totals(t.input_tokens, t.output_tokens, t.cached_tokens, t.cost)
        for (day, model, _c), t in ours.items()
    }
    first = next(iter(theirs))
    theirs[first].cost += Decimal(1)
    lines = compare(ours, theirs, Decimal("0.01"))
    assert summary(lines)["mismatch"] == 1
    return sum(t.requests for t in ours.values())


def _export(conn) -> tuple[int, Decimal]:
    """The CSV export path into /dev/null; returns (rows, billed sum) to check against spend."""
    currency = CurrencyConfig()
    count, billed = 0, Decimal(0)
    with open(os.devnull, "w", newline="") as sink:
        writer = csv.writer(sink, lineterminator="\r\n")
        for row in iter_export_rows(conn, ReceiptFilter()):
            cells = export_csv_cells(row, currency)
            writer.writerow(cells)
            count += 1
            billed += Decimal(cells[BILLED_AT] or 0)
    return count, billed


if __name__ == "__main__":
    main()
