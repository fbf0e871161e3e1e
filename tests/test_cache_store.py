"""Cache storage against a real SQLite file: verification, TTL, LRU eviction, purge, stats."""

from __future__ import annotations

import pytest

from nextmodel_proxy.cache import store as cache
from nextmodel_proxy.cache.key import cache_key, canonical_request
from nextmodel_proxy.ledger import schema as db

T0 = 1_700_000_000.0
TTL = 3600.0


@pytest.fixture
def conn(tmp_path):
    c = db.open_db(tmp_path / "cache.db")
    yield c
    c.close()


def make_entry(text="What is 2+2?", *, model="gpt-4o-mini", provider="openai", at=T0, body=None, key=None):
    canonical = canonical_request(
        {"messages": [{"role": "user", "content": text}], "temperature": 0},
        scope="project:a",
        provider=provider,
        upstream_model=model,
        endpoint="chat",
    )
    return cache.CacheEntry(
        key=key or cache_key(canonical),
        scope="project:a",
        provider=provider,
        model=model,
        endpoint="chat",
        canonical=canonical,
        response_kind="json",
        body=body or b'{"id":"x","choices":[]}',
        usage={"prompt_tokens": 10, "completion_tokens": 2},
        fresh_receipt_id="rcpt_1",
        fresh_cost_pusd=1234,
        created_at=at,
    )


def put(conn, entry, **caps):
    conn.execute("BEGIN IMMEDIATE")
    cache.store_and_evict(
        conn,
        entry,
        max_entries=caps.get("max_entries", 1000),
        max_bytes=caps.get("max_bytes", 10**9),
        ttl_s=TTL,
    )
    conn.execute("COMMIT")


def get(conn, entry, *, now=T0 + 1, canonical=None, bad=None):
    return cache.lookup(
        conn,
        entry.key,
        canonical or entry.canonical,
        now=now,
        ttl_s=TTL,
        on_bad=bad.append if bad is not None else None,
    )


def test_stored_entry_is_returned_with_its_usage_and_receipt(conn):
    entry = make_entry()
    put(conn, entry)
    hit = get(conn, entry)
    assert hit is not None
    assert (hit.body, hit.usage, hit.fresh_receipt_id, hit.fresh_cost_pusd) == (
        entry.body,
        entry.usage,
        "rcpt_1",
        1234,
    )


def test_absent_key_is_a_miss(conn):
    assert get(conn, make_entry()) is None


def test_forged_collision_is_detected_and_not_returned(conn):
    stored = make_entry("request A")
    put(conn, stored)
    forged = make_entry("request B", key=stored.key)  # two different requests forced onto one key
    bad = []
    assert get(conn, forged, bad=bad) is None
    assert [(b.key, b.reason) for b in bad] == [(stored.key, "canonical-mismatch")]
    cache.drop_bad(conn, bad[0])
    assert get(conn, stored) is None
    assert cache.stats(conn)["verification_failures"] == 1


def test_corrupted_body_is_detected_and_dropped(conn, tmp_path):
    entry = make_entry(body=b'{"answer":"4"}')
    put(conn, entry)
    conn.execute("UPDATE cache_entries SET body = ? WHERE key = ?", (b'{"answer":"5"}', entry.key))
    bad = []
    assert get(conn, entry, bad=bad) is None
    assert bad[0].reason == "checksum-mismatch"
    cache.drop_bad(conn, bad[0])
    assert conn.execute("SELECT count(*) FROM cache_entries").fetchone()[0] == 0


def test_drop_bad_spares_an_entry_rewritten_since(conn):
    entry = make_entry(body=b"old")
    put(conn, entry)
    bad = cache.BadEntry(entry.key, "checksum-mismatch", cache.body_hash(b"something else"))
    cache.drop_bad(conn, bad)
    assert get(conn, entry) is not None


def test_expired_entry_is_a_miss_and_evicted(conn):
    old = make_entry("old", at=T0)
    put(conn, old)
    assert get(conn, old, now=T0 + TTL - 1) is not None
    assert get(conn, old, now=T0 + TTL) is None
    put(conn, make_entry("new", at=T0 + TTL + 5))
    assert conn.execute("SELECT count(*) FROM cache_entries WHERE key = ?", (old.key,)).fetchone()[0] == 0


def test_refresh_overwrites_and_resets_hits(conn):
    entry = make_entry(body=b"first")
    put(conn, entry)
    cache.record_hit(conn, entry.key, T0 + 2, 5, 10)
    put(conn, make_entry(body=b"second", at=T0 + 3))
    hit = get(conn, entry, now=T0 + 4)
    assert hit.body == b"second"
    assert conn.execute("SELECT hits FROM cache_entries").fetchone()[0] == 0
    s = cache.stats(conn)
    assert s["entries"] == 1 and s["bytes"] == len(b"second") + len(entry.canonical)


def test_entry_cap_evicts_least_recently_used(conn):
    a, b, c = make_entry("a", at=T0), make_entry("b", at=T0 + 1), make_entry("c", at=T0 + 2)
    put(conn, a, max_entries=2)
    put(conn, b, max_entries=2)
    cache.record_hit(conn, a.key, T0 + 3, 0, 0)  # a is now more recent than b
    put(conn, c, max_entries=2)
    assert get(conn, b, now=T0 + 4) is None
    assert get(conn, a, now=T0 + 4) is not None and get(conn, c, now=T0 + 4) is not None
    assert cache.stats(conn)["evictions"] == 1


def test_byte_cap_evicts_until_it_holds(conn):
    entries = [make_entry(str(i), at=T0 + i, body=b"x" * 1000) for i in range(5)]
    cap = 3 * (1000 + len(entries[0].canonical)) + 10
    for e in entries:
        put(conn, e, max_bytes=cap)
    kept = [e for e in entries if get(conn, e, now=T0 + 10) is not None]
    assert kept == entries[2:]
    assert cache.stats(conn)["bytes"] <= cap


def test_purge_filters(conn):
    put(conn, make_entry("1", model="m1", at=T0))
    put(conn, make_entry("2", model="m2", at=T0))
    put(conn, make_entry("3", model="m1", provider="azure", at=T0 + 100))
    put(conn, make_entry("4", model="m2", at=T0 + 100))
    assert cache.purge(conn, model="m1", provider="openai", now=T0 + 200) == 1
    assert cache.purge(conn, older_than_s=150, now=T0 + 200) == 1  # only "2" is that old now
    assert cache.purge(conn, model="m1", now=T0 + 200) == 1
    with pytest.raises(ValueError):
        cache.purge(conn, now=T0)
    assert cache.purge(conn, all=True, now=T0) == 1
    assert cache.stats(conn)["entries"] == 0 and cache.stats(conn)["bytes"] == 0


def test_stats_counts_hits_misses_and_money_exactly(conn):
    entry = make_entry()
    put(conn, entry)
    cache.record_hit(conn, entry.key, T0 + 1, 500, 1_110_000_000_001)
    cache.record_hit(conn, entry.key, T0 + 2, 500, 1)
    cache.record_miss(conn)
    s = cache.stats(conn)
    assert (s["hits"], s["misses"], s["hit_rate"], s["bytes_saved"]) == (2, 1, 0.6667, 1000)
    assert s["money_saved_usd"] == "1.110000000002"
    assert s["money_saved_pusd"] == 1_110_000_000_002


def test_purge_from_another_connection_takes_effect_on_the_reader_at_once(conn, tmp_path):
    entry = make_entry()
    put(conn, entry)
    reader = db.connect(tmp_path / "cache.db", readonly=True)
    assert get(reader, entry) is not None
    other = db.connect(tmp_path / "cache.db")
    cache.purge(other, all=True, now=T0)
    assert get(reader, entry) is None
    reader.close()
    other.close()
