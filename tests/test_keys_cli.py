"""`nmproxy keys` and `nmproxy budgets` through click's CliRunner on real ledger files."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner, Result
from test_keys_support import add_receipt, ledger

from nextmodel_proxy.access.auth import KeyStore
from nextmodel_proxy.access.keys import hash_key
from nextmodel_proxy.cli.budgets import budgets_group
from nextmodel_proxy.cli.keys import keys_group
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.ledger import schema as db

CONFIG = """
currency: {rates: {GBP: 0.8}}
providers: {demo: {kind: demo}}
models: {cheap: {provider: demo}, smart: {provider: demo}}
projects: {web: {team: growth, budget: {amount: 10, currency: GBP, period: month}}}
"""


@click.group()
def root() -> None:
    """Stands for nmproxy's main group."""


root.add_command(keys_group)
root.add_command(budgets_group)


@pytest.fixture
def nm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Run `nmproxy ...` against tmp_path's ledger and config; asserts the exit code."""
    # Without --config the CLI reads ./providers.yaml, so run from a folder that has none.
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    (tmp_path / "providers.yaml").write_text(CONFIG)
    ledger(tmp_path / "l.db").close()

    def run(*args: str, code: int = 0, config: bool = True) -> Result:
        extra = ["--db", str(tmp_path / "l.db")] + (
            ["--config", str(tmp_path / "providers.yaml")] if config else []
        )
        result = CliRunner().invoke(root, [*args, *extra])
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result

    return run


def _secret(result: Result) -> str:
    keys = re.findall(r"^    (nm-\S+)$", result.output, re.MULTILINE)
    assert len(keys) == 1, result.output
    return keys[0]


def _store(tmp_path: Path) -> KeyStore:
    return KeyStore.from_db(db.connect(tmp_path / "l.db", readonly=True), admin_key="")


def test_create_prints_the_key_once_and_list_and_show_never_print_secrets(nm, tmp_path: Path) -> None:  # noqa: ANN001
    created = nm("keys", "create", "--project", "web", "--env", "prod", "--name", "site", "--rpm", "60")
    secret = _secret(created)
    key_id = re.search(r"key (key_[0-9a-f]+)", created.output).group(1)
    outputs = [
        nm("keys", "list").output,
        nm("keys", "list", "--json").output,
        nm("keys", "show", key_id).output,
        nm("keys", "show", secret[:11]).output,
    ]
    for out in outputs:
        assert secret not in out and secret[3:] not in out and hash_key(secret) not in out
        assert key_id in out
    listed = orjson.loads(outputs[1])
    assert [(k["project"], k["team"], k["environment"], k["status"], k["rpm"]) for k in listed] == [
        ("web", "growth", "prod", "active", 60)
    ]  # team filled in from the config's project
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("l.db"))
    assert secret.encode() not in raw
    principal = _store(tmp_path).authenticate(f"Bearer {secret}")
    assert principal is not None and principal.key_id == key_id


def test_a_key_budget_needs_a_currency_with_a_rate_and_is_stored_exactly(nm, tmp_path: Path) -> None:  # noqa: ANN001
    refused = nm(
        "keys",
        "create",
        "--project",
        "web",
        "--budget",
        "5",
        "--budget-currency",
        "GBP",
        code=1,
        config=False,
    )
    assert "GBP has no rate" in refused.output
    nm(
        "keys",
        "create",
        "--project",
        "web",
        "--budget",
        "5.10",
        "--budget-currency",
        "GBP",
        "--budget-period",
        "week",
    )
    rows = (
        db.connect(tmp_path / "l.db")
        .execute("SELECT scope, amount, currency, period FROM budgets")
        .fetchall()
    )
    assert rows == [("key", "5.10", "GBP", "week")]
    assert (
        "need --budget" in nm("keys", "create", "--project", "web", "--budget-period", "day", code=2).output
    )


def test_create_checks_its_options(nm) -> None:  # noqa: ANN001
    assert "--project is required" in nm("keys", "create", code=2).output
    assert (
        "unknown model or route nope"
        in nm("keys", "create", "--project", "web", "--models", "cheap,nope", code=1).output
    )
    assert "--expires" in nm("keys", "create", "--project", "web", "--expires", "soon", code=2).output
    assert "(admin)" in nm("keys", "create", "--admin").output


def test_expires_sets_a_lifetime(nm) -> None:  # noqa: ANN001
    nm("keys", "create", "--project", "web", "--expires", "30d")
    expires = orjson.loads(nm("keys", "list", "--json").output)[0]["expires_at"]
    delta = dt.datetime.fromisoformat(expires) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=29, hours=23) < delta <= dt.timedelta(days=30)


def test_revoke_and_rotate_take_effect_and_mistakes_are_clean_errors(nm, tmp_path: Path) -> None:  # noqa: ANN001
    old = _secret(nm("keys", "create", "--project", "web", "--tpm", "1000"))
    rotated = nm("keys", "rotate", old[:11])
    new = _secret(rotated)
    store = _store(tmp_path)
    assert store.authenticate(f"Bearer {new}").tpm == 1000
    with pytest.raises(ProxyError, match="revoked"):
        store.authenticate(f"Bearer {old}")
    assert "already revoked" in nm("keys", "revoke", old[:11], code=1).output
    assert "Revoked key" in nm("keys", "revoke", new[:11]).output
    assert "no key with id or prefix" in nm("keys", "show", "key_missing", code=1).output
    statuses = [k["status"] for k in orjson.loads(nm("keys", "list", "--json").output)]
    assert statuses == ["revoked", "revoked"]


def test_list_without_keys_explains_open_mode(nm) -> None:  # noqa: ANN001
    assert "open mode" in nm("keys", "list").output


def test_budgets_set_list_and_delete(nm, tmp_path: Path) -> None:  # noqa: ANN001
    conn = ledger(tmp_path / "l.db")
    now = dt.datetime.now(dt.UTC)
    add_receipt(conn, now, 4 * 10**12, project="web", team="growth")
    assert "give exactly one of" in nm("budgets", "set", "--amount", "1", code=2).output
    nm("budgets", "set", "--team", "growth", "--amount", "20", "--period", "day")
    table = nm("budgets", "list").output
    assert "config:project:web" in table and "3.20 GBP" in table  # 4 USD at 0.8 GBP per USD
    rows = {r["budget_id"]: r for r in orjson.loads(nm("budgets", "list", "--json").output)}
    team_row = next(r for r in rows.values() if r["scope"] == "team")
    assert (team_row["amount"], team_row["spent"], team_row["remaining"]) == ("20", "4", "16")
    assert rows["config:project:web"]["share_spent"] == "0.320000"
    assert "edit the config" in nm("budgets", "delete", "config:project:web", code=1).output
    nm("budgets", "delete", team_row["budget_id"])
    assert "no budget" in nm("budgets", "delete", team_row["budget_id"], code=1).output
