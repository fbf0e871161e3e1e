"""The dashboard's rollups, folded by the writer in each receipt batch's own transaction (SQL text only).

- spend_q15 / spend_d: every attribution, per quarter hour and per UTC day. A range's totals and breakdowns read
  whole UTC days from spend_d and only the partial days at its edges from spend_q15, so the rows read stay
  bounded by the number of days, not by quarter hours. Quarter hours make any zone's day edges exact: every UTC
  offset in use is a multiple of 15 minutes (Asia/Kolkata +5:30, Asia/Kathmandu +5:45).
- series_q15: billed and count per quarter hour, model and served mode only, for the daily charts in any zone.
- latency_q15 / latency_key_q15: histograms of latency and time to first token (bins below), all keys / per key.
Each statement folds the receipts with seq > ? (the writer passes the last seq before its INSERT).
"""

from __future__ import annotations

# Upper edges (ms) of the latency histogram bins; the last bin is everything above the last edge.
LATENCY_EDGES_MS: tuple[float, ...] = (
    1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 10000, 20000, 30000, 60000, 120000,
)  # fmt: skip
Q15 = (
    "substr(created_utc, 1, 14) || CASE WHEN substr(created_utc, 15, 2) < '15' THEN '00' "
    "WHEN substr(created_utc, 15, 2) < '30' THEN '15' WHEN substr(created_utc, 15, 2) < '45' THEN '30' "
    "ELSE '45' END"
)
DAY = "substr(created_utc, 1, 10)"
_ATTRIBUTION = ("project", "team", "key_id", "model", "provider", "served_mode")
_SUMS = (
    ("n", "COUNT(*)"),
    ("errors", "SUM(served_mode = 'error')"),
    ("estimated", "SUM(usage_source = 'estimated')"),
    ("prompt_tokens", "COALESCE(SUM(prompt_tokens), 0)"),
    ("completion_tokens", "COALESCE(SUM(completion_tokens), 0)"),
    ("cached_tokens", "COALESCE(SUM(cached_tokens), 0)"),
    ("cache_write_tokens", "COALESCE(SUM(cache_write_tokens), 0)"),
    ("reasoning_tokens", "COALESCE(SUM(reasoning_tokens), 0)"),
    ("upstream_pusd", "COALESCE(SUM(upstream_cost_pusd), 0)"),
    ("billed_pusd", "COALESCE(SUM(billed_cost_pusd), 0)"),
    ("fresh_pusd", "COALESCE(SUM(fresh_cost_pusd), 0)"),
    ("savings_pusd", "COALESCE(SUM(savings_pusd), 0)"),
    ("unknown_cost", "SUM(billed_cost_pusd IS NULL)"),
)


def _bin_of(column: str) -> str:
    whens = " ".join(f"WHEN {column} <= {edge} THEN {i}" for i, edge in enumerate(LATENCY_EDGES_MS))
    return f"CASE {whens} ELSE {len(LATENCY_EDGES_MS)} END"


def _fold(
    table: str, keys: list[tuple[str, str]], sums: tuple[tuple[str, str], ...], where: str, upsert: bool
) -> str:
    """INSERT INTO table SELECT keys, sums FROM receipts WHERE seq > ? [AND where] GROUP BY keys [upsert]."""
    select = (
        f"SELECT {', '.join(expr for _, expr in keys)}, {', '.join(expr for _, expr in sums)} FROM receipts "
        f"WHERE seq > ?{' AND ' + where if where else ''} GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}"
    )
    sql = f"INSERT INTO {table} ({', '.join([k for k, _ in keys] + [s for s, _ in sums])}) {select}"
    if not upsert:
        return sql
    # "WHERE true" keeps SQLite from reading ON CONFLICT as a join's ON clause after GROUP BY.
    return (
        f"INSERT INTO {table} ({', '.join([k for k, _ in keys] + [s for s, _ in sums])}) "
        f"SELECT * FROM ({select}) WHERE true ON CONFLICT ({', '.join(k for k, _ in keys)}) DO UPDATE SET "
        + ", ".join(f"{s} = {s} + excluded.{s}" for s, _ in sums)
    )


def _statements(upsert: bool) -> list[str]:
    """The folds; with upsert=False plain INSERTs (how m050's frozen backfill was first generated)."""
    attribution = [(c, f"COALESCE({c}, '')") for c in _ATTRIBUTION]
    latency = ("latency", "latency_ms", ""), ("ttft", "ttft_ms", "stream = 1 AND ")
    out = [
        _fold("spend_q15", [("bucket", Q15), *attribution], _SUMS, "", upsert),
        _fold("spend_d", [("bucket", DAY), *attribution], _SUMS, "", upsert),
        _fold(
            "series_q15",
            [("bucket", Q15), ("model", "COALESCE(model, '')"), ("served_mode", "served_mode")],
            (("n", "COUNT(*)"), ("billed_pusd", "COALESCE(SUM(billed_cost_pusd), 0)")),
            "",
            upsert,
        ),
    ]
    for kind, column, cond in latency:
        keys = [("bucket", Q15), ("kind", f"'{kind}'"), ("bin", _bin_of(column))]
        out.append(_fold("latency_q15", keys, (("n", "COUNT(*)"),), f"{cond}{column} IS NOT NULL", upsert))
        keys = [("key_id", "COALESCE(key_id, '')"), *keys]
        out.append(
            _fold("latency_key_q15", keys, (("n", "COUNT(*)"),), f"{cond}{column} IS NOT NULL", upsert)
        )
    return out


UPSERTS: tuple[str, ...] = tuple(_statements(upsert=True))
