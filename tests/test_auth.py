"""Keys: hashing at rest, 401/403 cases, open mode, safe bind, and a running KeyStore noticing CLI changes."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest
from test_keys_support import in_transaction, ledger

from nextmodel_proxy.access.auth import (
    Attribution,
    KeyStore,
    UnsafeBindError,
    attribute,
    can_read_project,
    check_bind,
    check_model,
    require_admin,
    run_refresher,
)
from nextmodel_proxy.access.keys import (
    KeyNotFound,
    KeySettings,
    create_key,
    generate_key,
    get_key,
    hash_key,
    key_lineage,
    revoke_key,
    rotate_key,
)
from nextmodel_proxy.config import parse_config
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.ledger import schema as db

NOW = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


def _create(conn, **settings):  # noqa: ANN001, ANN003, ANN202
    return in_transaction(conn, lambda c: create_key(c, KeySettings(**settings), now=NOW))


def _store(conn, admin_key: str = "") -> KeyStore:  # noqa: ANN001
    return KeyStore.from_db(conn, admin_key=admin_key)


def _refused(store: KeyStore, header: str | None, now: dt.datetime = NOW) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        store.authenticate(header, now=now)
    err = info.value
    assert (err.status, err.type, err.code) == (401, "invalid_request_error", "invalid_api_key")
    return err


def test_generated_keys_carry_256_random_bits_and_a_display_prefix() -> None:
    a, b = generate_key(), generate_key()
    assert a.plaintext.startswith("nm-") and len(a.plaintext) >= 3 + 43
    assert a.plaintext != b.plaintext and a.key_id != b.key_id
    assert a.prefix == a.plaintext[3:11] and a.hash == hash_key(a.plaintext) != a.plaintext


def test_plaintext_key_is_nowhere_in_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    conn = ledger(path)
    new, _ = _create(conn, project="acme")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("ledger.db")]
    raw = b"".join(p.read_bytes() for p in files)
    assert new.hash.encode() in raw  # the grep can see what is stored ...
    assert new.plaintext.encode() not in raw  # ... and the secret is not
    assert new.plaintext[3:].encode() not in raw


def test_a_valid_key_authenticates_with_its_settings(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    new, record = _create(
        conn, project="acme", team="growth", environment="prod", rpm=10, models=frozenset({"gpt-x"})
    )
    principal = _store(conn).authenticate(f"Bearer {new.plaintext}", now=NOW)
    assert principal is not None
    assert (principal.key_id, principal.project, principal.team, principal.environment, principal.rpm) == (
        record.key_id,
        "acme",
        "growth",
        "prod",
        10,
    )
    assert principal.models == frozenset({"gpt-x"}) and not principal.is_admin


def test_missing_wrong_revoked_and_expired_keys_get_distinct_401s(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    live, _ = _create(conn, project="acme")
    gone, _ = _create(conn, project="acme")
    old, _ = _create(conn, project="acme", expires_at=NOW + dt.timedelta(days=1))
    in_transaction(conn, lambda c: revoke_key(c, gone.key_id, now=NOW))
    store = _store(conn)
    assert "didn't provide an API key" in _refused(store, None).message
    assert "didn't provide an API key" in _refused(store, f"Basic {live.plaintext}").message
    wrong = _refused(store, "Bearer nm-not-a-key")
    assert "Incorrect API key" in wrong.message and "nm-not-a-key" not in wrong.message
    revoked = _refused(store, f"Bearer {gone.plaintext}")
    assert "revoked" in revoked.message and gone.plaintext not in revoked.message
    assert store.authenticate(f"Bearer {old.plaintext}", now=NOW) is not None
    expired = _refused(store, f"Bearer {old.plaintext}", now=NOW + dt.timedelta(days=2))
    assert "expired at 2026-11-23T08:00:00" in expired.message


def test_open_mode_serves_without_keys_and_attributes_by_headers(tmp_path: Path) -> None:
    store = _store(ledger(tmp_path / "l.db"))
    assert store.open_mode
    assert store.authenticate(None, now=NOW) is None
    assert store.authenticate("Bearer sk-whatever-the-sdk-sends", now=NOW) is None
    config = parse_config({"projects": {"web": {"team": "growth"}}})
    assert attribute(None, {"x-nextmodel-project": "web"}, config) == Attribution(None, "web", "growth")
    assert attribute(None, {}, config) == Attribution(None, None, None)


def test_a_key_project_wins_over_attribution_headers(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    new, record = _create(conn, project="acme", team="core")
    principal = _store(conn).authenticate(f"Bearer {new.plaintext}", now=NOW)
    attr = attribute(principal, {"x-nextmodel-project": "other", "x-nextmodel-team": "x"})
    assert attr == Attribution(record.key_id, "acme", "core")


def test_revoking_the_last_key_keeps_the_proxy_closed(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    new, _ = _create(conn, project="acme")
    in_transaction(conn, lambda c: revoke_key(c, new.key_id))
    store = _store(conn)
    assert not store.open_mode
    _refused(store, None)


def test_admin_key_from_env_is_compared_and_grants_admin(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    open_store = _store(conn, admin_key="nm-admin-secret")
    admin = open_store.authenticate("Bearer nm-admin-secret", now=NOW)
    assert admin is not None and admin.is_admin and require_admin(admin) is admin
    _create(conn, project="acme")
    closed = _store(conn, admin_key="nm-admin-secret")
    assert closed.authenticate("Bearer nm-admin-secret", now=NOW).is_admin
    _refused(closed, "Bearer nm-admin-secreT")


def test_admin_endpoints_need_an_admin_key(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    normal, _ = _create(conn, project="acme")
    boss, _ = _create(conn, is_admin=True)
    store = _store(conn)
    with pytest.raises(ProxyError) as info:
        require_admin(store.authenticate(f"Bearer {normal.plaintext}", now=NOW))
    assert (info.value.status, info.value.code) == (403, "permission_denied")
    with pytest.raises(ProxyError) as info:
        require_admin(None)
    assert info.value.status == 401
    assert require_admin(store.authenticate(f"Bearer {boss.plaintext}", now=NOW)).is_admin


def test_a_normal_key_reads_only_its_own_project_receipts(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    normal, _ = _create(conn, project="acme")
    boss, _ = _create(conn, is_admin=True)
    store = _store(conn)
    mine = store.authenticate(f"Bearer {normal.plaintext}", now=NOW)
    assert can_read_project(mine, "acme") and not can_read_project(mine, "other")
    assert can_read_project(store.authenticate(f"Bearer {boss.plaintext}", now=NOW), "other")
    assert not can_read_project(None, "acme")


def test_a_key_limited_to_models_gets_403_for_another(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    new, _ = _create(conn, project="acme", models=frozenset({"cheap"}))
    principal = _store(conn).authenticate(f"Bearer {new.plaintext}", now=NOW)
    check_model(principal, "cheap")
    check_model(None, "anything")
    with pytest.raises(ProxyError) as info:
        check_model(principal, "expensive")
    assert (info.value.status, info.value.code, info.value.param) == (403, "permission_denied", "model")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_open_mode_may_bind_loopback(host: str) -> None:
    check_bind(host, has_keys=False, allow_open=False)


def test_open_mode_on_a_public_host_needs_allow_open() -> None:
    with pytest.raises(UnsafeBindError, match="--allow-open"):
        check_bind("0.0.0.0", has_keys=False, allow_open=False)
    check_bind("0.0.0.0", has_keys=False, allow_open=True)
    check_bind("0.0.0.0", has_keys=True, allow_open=False)


def test_rotation_revokes_the_old_secret_and_keeps_settings(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    old, _ = _create(conn, project="acme", team="core", rpm=5)
    new, record = in_transaction(conn, lambda c: rotate_key(c, old.key_id))
    store = _store(conn)
    assert "revoked" in _refused(store, f"Bearer {old.plaintext}").message
    principal = store.authenticate(f"Bearer {new.plaintext}", now=NOW)
    assert (principal.project, principal.team, principal.rpm) == ("acme", "core", 5)
    assert record.rotated_from == old.key_id and key_lineage(conn, record.key_id) == [
        record.key_id,
        old.key_id,
    ]
    with pytest.raises(ValueError, match="revoked"):
        in_transaction(conn, lambda c: rotate_key(c, old.key_id))


def test_keys_are_found_by_id_or_display_prefix(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    new, record = _create(conn, project="acme")
    assert get_key(conn, new.key_id) == record
    assert get_key(conn, f"nm-{new.prefix}") == record == get_key(conn, f"nm-{new.prefix}…")
    with pytest.raises(KeyNotFound):
        get_key(conn, "key_nope")


async def test_keystore_notices_a_key_created_and_revoked_by_another_connection_within_a_second(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    cli_conn = ledger(path)  # stands for the CLI process
    store = KeyStore.from_db(db.connect(path, readonly=True), admin_key="")
    task = asyncio.create_task(run_refresher(path, [store], interval_s=0.1))
    try:
        new, _ = _create(cli_conn, project="acme")
        assert await _within_a_second(lambda: _accepts(store, new.plaintext))
        in_transaction(cli_conn, lambda c: revoke_key(c, new.key_id))
        assert await _within_a_second(lambda: not _accepts(store, new.plaintext))
        assert "revoked" in _refused(store, f"Bearer {new.plaintext}").message
    finally:
        task.cancel()


def _accepts(store: KeyStore, plaintext: str) -> bool:
    try:
        return store.authenticate(f"Bearer {plaintext}", now=NOW) is not None
    except ProxyError:
        return False


async def _within_a_second(condition) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return False
