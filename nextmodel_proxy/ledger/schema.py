"""Open and migrate the SQLite file. Migrations are named, append-only, one transaction each.

MIGRATIONS (at the bottom) lists every migration in order, in one literal. Each migration's SQL is frozen in
the migration itself: live SQL used by the running code (the writer's rollup, say) is never shared with a
migration, so editing it can never change a migration that has already shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

Migration = tuple[str, Callable[[sqlite3.Connection], None]]


def _sql(script: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        for statement in script.split(";\n"):
            if statement.strip():
                conn.execute(statement)

    return run


def connect(path: str | Path, *, readonly: bool = False, timeout_s: float = 5.0) -> sqlite3.Connection:
    """A connection with the project's pragmas; `readonly` opens with mode=ro (never creates the file)."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{Path(path)}?mode=ro",
            uri=True,
            timeout=timeout_s,
            check_same_thread=False,
            isolation_level=None,
        )
    else:
        conn = sqlite3.connect(str(path), timeout=timeout_s, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the migrations not yet recorded, each in its own transaction; returns the names applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    applied = []
    for name, step in sorted(migrations if migrations is not None else MIGRATIONS, key=lambda m: m[0]):
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(conn)
            conn.execute(
                "INSERT INTO schema_migrations (name, applied_utc) VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                (name,),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def open_db(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database file."""
    conn = connect(path)
    migrate(conn)
    return conn


# --- m000: meta ---------------------------------------------------------------------------------

_M000_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

# --- m001-m009: receipts ledger ----------------------------------------------------------------

_M001_RECEIPTS = """
CREATE TABLE receipts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    receipt_id TEXT UNIQUE NOT NULL,
    created_utc TEXT NOT NULL,
    request_id TEXT,
    key_id TEXT,
    project TEXT,
    team TEXT,
    environment TEXT,
    tags TEXT,
    endpoint TEXT,
    model_requested TEXT,
    model TEXT,
    provider TEXT,
    upstream_model TEXT,
    route TEXT,
    served_mode TEXT,
    stream INTEGER,
    status INTEGER,
    error_code TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    cached_tokens INTEGER,
    cache_write_tokens INTEGER,
    reasoning_tokens INTEGER,
    usage_source TEXT,
    upstream_cost_pusd INTEGER,
    billed_cost_pusd INTEGER,
    fresh_cost_pusd INTEGER,
    savings_pusd INTEGER,
    cost_unknown_reason TEXT,
    display_currency TEXT,
    display_rate TEXT,
    latency_ms REAL,
    ttft_ms REAL,
    reused_receipt_id TEXT,
    upstream_request_id TEXT,
    price_version TEXT,
    cache_key TEXT,
    cache_status TEXT,
    attempts TEXT,
    prev_hash TEXT,
    hash TEXT
);
CREATE INDEX receipts_created ON receipts (created_utc);
CREATE INDEX receipts_project ON receipts (project);
CREATE INDEX receipts_model ON receipts (model);
CREATE INDEX receipts_key ON receipts (key_id)
"""
# Single-column indexes on purpose: each entry ends in the rowid (seq), so `WHERE project = ? ORDER BY seq DESC`
# pages straight off the index, and every index costs the writer on each INSERT. served_mode has no index:
# with four values it narrows little, and mode filters ride on the seq order or on the other indexes.


# Per-day spend, kept up to date by the ledger writer in the receipts' own transaction. NULL attribution is
# stored as '' because NULLs never collide in a primary key (each NULL row would be its own group).
_M002_SPEND_DAILY = """
CREATE TABLE spend_daily (
    day TEXT NOT NULL,
    project TEXT NOT NULL,
    team TEXT NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    served_mode TEXT NOT NULL,
    n INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    upstream_pusd INTEGER NOT NULL,
    billed_pusd INTEGER NOT NULL,
    fresh_pusd INTEGER NOT NULL,
    savings_pusd INTEGER NOT NULL,
    unknown_cost INTEGER NOT NULL,
    PRIMARY KEY (day, project, team, key_id, model, provider, served_mode)
) WITHOUT ROWID
"""
# m002's backfill, frozen as shipped. The writer's live rollup (now ledger/rollups.py) started as the same text
# but may change; this one must not.
_M002_BACKFILL = """
INSERT INTO spend_daily
SELECT substr(created_utc, 1, 10), COALESCE(project, ''), COALESCE(team, ''), COALESCE(key_id, ''),
       COALESCE(model, ''), COALESCE(provider, ''), COALESCE(served_mode, ''), COUNT(*),
       COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0),
       COALESCE(SUM(cache_write_tokens), 0), COALESCE(SUM(reasoning_tokens), 0),
       COALESCE(SUM(upstream_cost_pusd), 0), COALESCE(SUM(billed_cost_pusd), 0),
       COALESCE(SUM(fresh_cost_pusd), 0), COALESCE(SUM(savings_pusd), 0),
       SUM(billed_cost_pusd IS NULL)
FROM receipts WHERE seq > 0 GROUP BY 1, 2, 3, 4, 5, 6, 7
"""


# --- m010-m019: exact cache ---------------------------------------------------------------------

_M010_CACHE_ENTRIES = """CREATE TABLE cache_entries (
                key TEXT PRIMARY KEY, scope TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
                endpoint TEXT NOT NULL, canonical BLOB NOT NULL,
                response_kind TEXT NOT NULL CHECK (response_kind IN ('json', 'sse')),
                body BLOB NOT NULL, body_hash TEXT NOT NULL, usage TEXT, fresh_receipt_id TEXT,
                fresh_cost_pusd INTEGER, size_bytes INTEGER NOT NULL, created_at REAL NOT NULL,
                last_used_at REAL NOT NULL, hits INTEGER NOT NULL DEFAULT 0);
            CREATE INDEX cache_entries_last_used ON cache_entries (last_used_at);
            CREATE INDEX cache_entries_created ON cache_entries (created_at);
            CREATE INDEX cache_entries_model ON cache_entries (model, provider)"""

# Totals kept by triggers so eviction and `cache stats` never scan the entries (whoever writes).
_M011_CACHE_STATS = """CREATE TABLE cache_stats (
                id INTEGER PRIMARY KEY CHECK (id = 1), entries INTEGER NOT NULL DEFAULT 0,
                bytes INTEGER NOT NULL DEFAULT 0, hits INTEGER NOT NULL DEFAULT 0,
                misses INTEGER NOT NULL DEFAULT 0, verification_failures INTEGER NOT NULL DEFAULT 0,
                bytes_saved INTEGER NOT NULL DEFAULT 0, money_saved_pusd INTEGER NOT NULL DEFAULT 0,
                stores INTEGER NOT NULL DEFAULT 0, evictions INTEGER NOT NULL DEFAULT 0);
            INSERT INTO cache_stats (id) VALUES (1);
            CREATE TRIGGER cache_entries_ai AFTER INSERT ON cache_entries BEGIN
                UPDATE cache_stats SET entries = entries + 1, bytes = bytes + NEW.size_bytes WHERE id = 1; END;
            CREATE TRIGGER cache_entries_ad AFTER DELETE ON cache_entries BEGIN
                UPDATE cache_stats SET entries = entries - 1, bytes = bytes - OLD.size_bytes WHERE id = 1; END;
            CREATE TRIGGER cache_entries_au AFTER UPDATE OF size_bytes ON cache_entries BEGIN
                UPDATE cache_stats SET bytes = bytes - OLD.size_bytes + NEW.size_bytes WHERE id = 1; END"""


# --- m020-m029: keys and budgets ---------------------------------------------------------------

# Proxy keys: only a SHA-256 of the secret is stored; `prefix` is a display fragment, not a secret.
_M020_KEYS = """CREATE TABLE api_keys (
                key_id TEXT PRIMARY KEY, prefix TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
                name TEXT, project TEXT, team TEXT, environment TEXT,
                is_admin INTEGER NOT NULL DEFAULT 0, rpm INTEGER, tpm INTEGER, models TEXT,
                expires_at TEXT, created_at TEXT NOT NULL, revoked_at TEXT, rotated_from TEXT);
            CREATE INDEX api_keys_prefix ON api_keys (prefix)"""

# Budget amounts are exact decimal text in their own currency; one budget per scope, id and period.
_M021_BUDGETS = """CREATE TABLE budgets (
                budget_id TEXT PRIMARY KEY, scope TEXT NOT NULL CHECK (scope IN ('key', 'project', 'team')),
                scope_id TEXT NOT NULL, amount TEXT NOT NULL, currency TEXT NOT NULL,
                period TEXT NOT NULL CHECK (period IN ('day', 'week', 'month', 'total')),
                created_at TEXT NOT NULL, UNIQUE (scope, scope_id, period))"""


# --- m040-m049: billing (issue 11) -----------------------------------------------------------------

_M040_COLUMNS = (
    "service_tier TEXT",
    "price_tier TEXT",
    "price_window TEXT",
    "currency TEXT",
    "native_cost TEXT",
    "fx_rate TEXT",
    "fx_date TEXT",
)
# Every distinct resolved price once, keyed by the price_version receipts carry (unit prices as exact
# decimal text, per 1M tokens in `currency`; brackets is JSON for a tier billed on the excess only).
_M041_PRICES = """
CREATE TABLE prices (
    price_version TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    currency TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    cached_input TEXT,
    cache_write TEXT,
    cache_write_1h TEXT,
    schedule_from TEXT,
    price_tier TEXT,
    price_window TEXT,
    service_tier TEXT,
    brackets TEXT,
    source TEXT,
    as_of TEXT,
    first_seen_utc TEXT NOT NULL
)
"""


# --- every migration, in order. Append at the end, in your reserved range; never edit a shipped one. ---
# Ranges: m001-m009 receipts/ledger, m010-m019 cache, m020-m029 keys/budgets, m030-m039 ledger hardening,
# m040-m049 billing, m050-m059 dashboard, m060-m069 clients. Names sort in application order.
MIGRATIONS: list[Migration] = [
    ("m000_meta", _sql(_M000_META)),
    ("m001_receipts", _sql(_M001_RECEIPTS)),
    ("m002_spend_rollups", _sql(_M002_SPEND_DAILY + ";\n" + _M002_BACKFILL)),
    ("m010_cache_entries", _sql(_M010_CACHE_ENTRIES)),
    ("m011_cache_stats", _sql(_M011_CACHE_STATS)),
    ("m020_keys", _sql(_M020_KEYS)),
    ("m021_budgets", _sql(_M021_BUDGETS)),
    # Why a receipt's usage is estimated (an upstream figure that was not trusted); NULL otherwise.
    ("m030_receipt_usage_reason", _sql("ALTER TABLE receipts ADD COLUMN usage_reason TEXT")),
    (
        "m040_receipt_price_fields",
        _sql(";\n".join(f"ALTER TABLE receipts ADD COLUMN {col}" for col in _M040_COLUMNS)),
    ),
    ("m041_prices", _sql(_M041_PRICES)),
]


# --- m050-m059: dashboard rollups ------------------------------------------------------------------
# Tables and backfill as shipped in m050, frozen (the writer's live fold is ledger/rollups.py).
_M050_WIDE = """
CREATE TABLE {name} (
    bucket TEXT NOT NULL, project TEXT NOT NULL, team TEXT NOT NULL, key_id TEXT NOT NULL, model TEXT NOT NULL,
    provider TEXT NOT NULL, served_mode TEXT NOT NULL, n INTEGER NOT NULL, errors INTEGER NOT NULL,
    estimated INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL,
    upstream_pusd INTEGER NOT NULL, billed_pusd INTEGER NOT NULL, fresh_pusd INTEGER NOT NULL,
    savings_pusd INTEGER NOT NULL, unknown_cost INTEGER NOT NULL,
    PRIMARY KEY (bucket, project, team, key_id, model, provider, served_mode)
) WITHOUT ROWID;"""
_M050_TABLES = (
    _M050_WIDE.format(name="spend_q15")
    + "\nCREATE INDEX spend_q15_key ON spend_q15 (key_id, bucket);"
    + _M050_WIDE.format(name="spend_d")
    + """
CREATE TABLE series_q15 (
    bucket TEXT NOT NULL, model TEXT NOT NULL, served_mode TEXT NOT NULL, n INTEGER NOT NULL,
    billed_pusd INTEGER NOT NULL, PRIMARY KEY (bucket, model, served_mode)
) WITHOUT ROWID;
CREATE TABLE latency_q15 (
    bucket TEXT NOT NULL, kind TEXT NOT NULL, bin INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (bucket, kind, bin)
) WITHOUT ROWID;
CREATE TABLE latency_key_q15 (
    key_id TEXT NOT NULL, bucket TEXT NOT NULL, kind TEXT NOT NULL, bin INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (key_id, bucket, kind, bin)
) WITHOUT ROWID
"""
)


_M050_BACKFILL = (
    """
INSERT INTO spend_q15 (bucket, project, team, key_id, model, provider, served_mode, n, errors, estimated,
prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, upstream_pusd,
billed_pusd, fresh_pusd, savings_pusd, unknown_cost) SELECT substr(created_utc, 1, 14) || CASE WHEN
substr(created_utc, 15, 2) < '15' THEN '00' WHEN substr(created_utc, 15, 2) < '30' THEN '15' WHEN
substr(created_utc, 15, 2) < '45' THEN '30' ELSE '45' END, COALESCE(project, ''), COALESCE(team, ''),
COALESCE(key_id, ''), COALESCE(model, ''), COALESCE(provider, ''), COALESCE(served_mode, ''), COUNT(*),
SUM(served_mode = 'error'), SUM(usage_source = 'estimated'), COALESCE(SUM(prompt_tokens), 0),
COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(cache_write_tokens), 0),
COALESCE(SUM(reasoning_tokens), 0), COALESCE(SUM(upstream_cost_pusd), 0), COALESCE(SUM(billed_cost_pusd),
0), COALESCE(SUM(fresh_cost_pusd), 0), COALESCE(SUM(savings_pusd), 0), SUM(billed_cost_pusd IS NULL) FROM
receipts WHERE seq > 0 GROUP BY 1, 2, 3, 4, 5, 6, 7
""",
    """
INSERT INTO spend_d (bucket, project, team, key_id, model, provider, served_mode, n, errors, estimated,
prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, upstream_pusd,
billed_pusd, fresh_pusd, savings_pusd, unknown_cost) SELECT substr(created_utc, 1, 10), COALESCE(project,
''), COALESCE(team, ''), COALESCE(key_id, ''), COALESCE(model, ''), COALESCE(provider, ''),
COALESCE(served_mode, ''), COUNT(*), SUM(served_mode = 'error'), SUM(usage_source = 'estimated'),
COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0),
COALESCE(SUM(cache_write_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), COALESCE(SUM(upstream_cost_pusd),
0), COALESCE(SUM(billed_cost_pusd), 0), COALESCE(SUM(fresh_cost_pusd), 0), COALESCE(SUM(savings_pusd), 0),
SUM(billed_cost_pusd IS NULL) FROM receipts WHERE seq > 0 GROUP BY 1, 2, 3, 4, 5, 6, 7
""",
    """
INSERT INTO series_q15 (bucket, model, served_mode, n, billed_pusd) SELECT substr(created_utc, 1, 14) ||
CASE WHEN substr(created_utc, 15, 2) < '15' THEN '00' WHEN substr(created_utc, 15, 2) < '30' THEN '15' WHEN
substr(created_utc, 15, 2) < '45' THEN '30' ELSE '45' END, COALESCE(model, ''), served_mode, COUNT(*),
COALESCE(SUM(billed_cost_pusd), 0) FROM receipts WHERE seq > 0 GROUP BY 1, 2, 3
""",
    """
INSERT INTO latency_q15 (bucket, kind, bin, n) SELECT substr(created_utc, 1, 14) || CASE WHEN
substr(created_utc, 15, 2) < '15' THEN '00' WHEN substr(created_utc, 15, 2) < '30' THEN '15' WHEN
substr(created_utc, 15, 2) < '45' THEN '30' ELSE '45' END, 'latency', CASE WHEN latency_ms <= 1 THEN 0 WHEN
latency_ms <= 2 THEN 1 WHEN latency_ms <= 3 THEN 2 WHEN latency_ms <= 5 THEN 3 WHEN latency_ms <= 10 THEN 4
WHEN latency_ms <= 20 THEN 5 WHEN latency_ms <= 30 THEN 6 WHEN latency_ms <= 50 THEN 7 WHEN latency_ms <=
100 THEN 8 WHEN latency_ms <= 200 THEN 9 WHEN latency_ms <= 300 THEN 10 WHEN latency_ms <= 500 THEN 11 WHEN
latency_ms <= 1000 THEN 12 WHEN latency_ms <= 2000 THEN 13 WHEN latency_ms <= 3000 THEN 14 WHEN latency_ms
<= 5000 THEN 15 WHEN latency_ms <= 10000 THEN 16 WHEN latency_ms <= 20000 THEN 17 WHEN latency_ms <= 30000
THEN 18 WHEN latency_ms <= 60000 THEN 19 WHEN latency_ms <= 120000 THEN 20 ELSE 21 END, COUNT(*) FROM
receipts WHERE seq > 0 AND latency_ms IS NOT NULL GROUP BY 1, 2, 3
""",
    """
INSERT INTO latency_key_q15 (key_id, bucket, kind, bin, n) SELECT COALESCE(key_id, ''), substr(created_utc,
1, 14) || CASE WHEN substr(created_utc, 15, 2) < '15' THEN '00' WHEN substr(created_utc, 15, 2) < '30' THEN
'15' WHEN substr(created_utc, 15, 2) < '45' THEN '30' ELSE '45' END, 'latency', CASE WHEN latency_ms <= 1
THEN 0 WHEN latency_ms <= 2 THEN 1 WHEN latency_ms <= 3 THEN 2 WHEN latency_ms <= 5 THEN 3 WHEN latency_ms
<= 10 THEN 4 WHEN latency_ms <= 20 THEN 5 WHEN latency_ms <= 30 THEN 6 WHEN latency_ms <= 50 THEN 7 WHEN
latency_ms <= 100 THEN 8 WHEN latency_ms <= 200 THEN 9 WHEN latency_ms <= 300 THEN 10 WHEN latency_ms <= 500
THEN 11 WHEN latency_ms <= 1000 THEN 12 WHEN latency_ms <= 2000 THEN 13 WHEN latency_ms <= 3000 THEN 14 WHEN
latency_ms <= 5000 THEN 15 WHEN latency_ms <= 10000 THEN 16 WHEN latency_ms <= 20000 THEN 17 WHEN latency_ms
<= 30000 THEN 18 WHEN latency_ms <= 60000 THEN 19 WHEN latency_ms <= 120000 THEN 20 ELSE 21 END, COUNT(*)
FROM receipts WHERE seq > 0 AND latency_ms IS NOT NULL GROUP BY 1, 2, 3, 4
""",
    """
INSERT INTO latency_q15 (bucket, kind, bin, n) SELECT substr(created_utc, 1, 14) || CASE WHEN
substr(created_utc, 15, 2) < '15' THEN '00' WHEN substr(created_utc, 15, 2) < '30' THEN '15' WHEN
substr(created_utc, 15, 2) < '45' THEN '30' ELSE '45' END, 'ttft', CASE WHEN ttft_ms <= 1 THEN 0 WHEN
ttft_ms <= 2 THEN 1 WHEN ttft_ms <= 3 THEN 2 WHEN ttft_ms <= 5 THEN 3 WHEN ttft_ms <= 10 THEN 4 WHEN ttft_ms
<= 20 THEN 5 WHEN ttft_ms <= 30 THEN 6 WHEN ttft_ms <= 50 THEN 7 WHEN ttft_ms <= 100 THEN 8 WHEN ttft_ms <=
200 THEN 9 WHEN ttft_ms <= 300 THEN 10 WHEN ttft_ms <= 500 THEN 11 WHEN ttft_ms <= 1000 THEN 12 WHEN ttft_ms
<= 2000 THEN 13 WHEN ttft_ms <= 3000 THEN 14 WHEN ttft_ms <= 5000 THEN 15 WHEN ttft_ms <= 10000 THEN 16 WHEN
ttft_ms <= 20000 THEN 17 WHEN ttft_ms <= 30000 THEN 18 WHEN ttft_ms <= 60000 THEN 19 WHEN ttft_ms <= 120000
THEN 20 ELSE 21 END, COUNT(*) FROM receipts WHERE seq > 0 AND stream = 1 AND ttft_ms IS NOT NULL GROUP BY 1,
2, 3
""",
    """
INSERT INTO latency_key_q15 (key_id, bucket, kind, bin, n) SELECT COALESCE(key_id, ''), substr(created_utc,
1, 14) || CASE WHEN substr(created_utc, 15, 2) < '15' THEN '00' WHEN substr(created_utc, 15, 2) < '30' THEN
'15' WHEN substr(created_utc, 15, 2) < '45' THEN '30' ELSE '45' END, 'ttft', CASE WHEN ttft_ms <= 1 THEN 0
WHEN ttft_ms <= 2 THEN 1 WHEN ttft_ms <= 3 THEN 2 WHEN ttft_ms <= 5 THEN 3 WHEN ttft_ms <= 10 THEN 4 WHEN
ttft_ms <= 20 THEN 5 WHEN ttft_ms <= 30 THEN 6 WHEN ttft_ms <= 50 THEN 7 WHEN ttft_ms <= 100 THEN 8 WHEN
ttft_ms <= 200 THEN 9 WHEN ttft_ms <= 300 THEN 10 WHEN ttft_ms <= 500 THEN 11 WHEN ttft_ms <= 1000 THEN 12
WHEN ttft_ms <= 2000 THEN 13 WHEN ttft_ms <= 3000 THEN 14 WHEN ttft_ms <= 5000 THEN 15 WHEN ttft_ms <= 10000
THEN 16 WHEN ttft_ms <= 20000 THEN 17 WHEN ttft_ms <= 30000 THEN 18 WHEN ttft_ms <= 60000 THEN 19 WHEN
ttft_ms <= 120000 THEN 20 ELSE 21 END, COUNT(*) FROM receipts WHERE seq > 0 AND stream = 1 AND ttft_ms IS
NOT NULL GROUP BY 1, 2, 3, 4
""",
)


def _m050_dashboard_rollups(conn: sqlite3.Connection) -> None:
    _sql(_M050_TABLES)(conn)
    for statement in _M050_BACKFILL:
        conn.execute(statement)


MIGRATIONS += [("m050_dashboard_rollups", _m050_dashboard_rollups)]
