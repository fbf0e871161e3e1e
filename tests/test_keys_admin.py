"""The admin HTTP API (keys, budgets, all receipts) and `nmproxy serve`'s refusal to bind open mode publicly."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from click.testing import CliRunner
from test_keys_e2e import EXTRA, METERED, ask, direct_key, http, sdk, works

from nextmodel_proxy import listener
from nextmodel_proxy.access.keys import KeySettings
from nextmodel_proxy.cli.main import main
from nextmodel_proxy.cli.serve import ledger_has_keys
from nextmodel_proxy.config import Config, load_config

ADMIN = "nm-admin-from-env-0123456789"


@pytest.fixture
def config(write_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("NMPROXY_ADMIN_KEY", ADMIN)
    path = Path(write_config(EXTRA).source_path)
    path.write_text(path.read_text().replace("\nmodels:\n", "\nmodels:\n" + METERED, 1))
    return load_config(path)


async def test_admin_endpoints_need_an_admin_key(config: Config, start_proxy: Any) -> None:
    normal = direct_key(Path(config.ledger.path), KeySettings(project="web"))
    proxy = await start_proxy(config)
    status, body = await http(proxy, "GET", "/admin/keys")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, body = await http(proxy, "GET", "/admin/budgets", normal)
    assert status == 403 and body["error"]["code"] == "permission_denied"
    status, body = await http(proxy, "GET", "/admin/keys", ADMIN)
    assert status == 200 and [k["project"] for k in body["data"]] == ["web"]
    assert "hash" not in body["data"][0] and "key" not in body["data"][0]


async def test_keys_made_revoked_and_rotated_over_http_apply_at_once(
    config: Config, start_proxy: Any
) -> None:
    proxy = await start_proxy(config)
    status, made = await http(
        proxy,
        "POST",
        "/admin/keys",
        ADMIN,
        {
            "project": "web",
            "env": "prod",
            "rpm": 5,
            "models": ["metered"],
            "budget": "0.009",
            "budget_period": "day",
        },
    )
    assert status == 201 and made["key"].startswith("nm-") and made["team"] == "growth"
    assert (made["environment"], made["rpm"], made["models"], made["status"]) == (
        "prod",
        5,
        ["metered"],
        "active",
    )
    assert made["budget"]["amount"] == "0.009" and made["budget"]["scope_id"] == made["key_id"]
    assert await works(proxy, made["key"])
    status, rotated = await http(proxy, "POST", f"/admin/keys/{made['key_id']}/rotate", ADMIN)
    assert status == 200 and rotated["rotated_from"] == made["key_id"]
    assert await works(proxy, rotated["key"]) and not await works(proxy, made["key"])
    status, revoked = await http(proxy, "POST", f"/admin/keys/{rotated['prefix']}/revoke", ADMIN)
    assert status == 200 and revoked["status"] == "revoked"
    assert not await works(proxy, rotated["key"])
    status, body = await http(proxy, "POST", f"/admin/keys/{rotated['key_id']}/revoke", ADMIN)
    assert status == 400 and "already revoked" in body["error"]["message"]
    status, body = await http(proxy, "POST", "/admin/keys/key_nope/rotate", ADMIN)
    assert status == 404 and body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"team": "t"}, "project"),
        ({"project": "p", "rpm": 0}, "rpm"),
        ({"project": "p", "models": ["no-such-model"]}, "models"),
        ({"project": "p", "budget": "abc"}, "budget"),
        ({"project": "p", "budget": "1", "budget_currency": "XYZ"}, "budget_currency"),
        ({"project": "p", "expires": "soon"}, "expires"),
        ({"project": "p", "colour": "red"}, "colour"),
    ],
)
async def test_bad_key_bodies_are_400_and_create_nothing(
    config: Config, start_proxy: Any, body: dict[str, Any], param: str
) -> None:
    proxy = await start_proxy(config)
    status, answer = await http(proxy, "POST", "/admin/keys", ADMIN, body)
    assert status == 400 and answer["error"]["param"] == param
    assert (await http(proxy, "GET", "/admin/keys", ADMIN))[1]["data"] == []


async def test_budgets_set_over_http_are_enforced_and_listed(config: Config, start_proxy: Any) -> None:
    mobile_key = direct_key(Path(config.ledger.path), KeySettings(project="mobile"))
    proxy = await start_proxy(config)
    status, budget = await http(
        proxy,
        "POST",
        "/admin/budgets",
        ADMIN,
        {"project": "mobile", "amount": "0.0024", "currency": "GBP", "period": "week"},
    )
    assert status == 200 and (budget["scope"], budget["amount"], budget["currency"]) == (
        "project",
        "0.0024",
        "GBP",
    )
    async with sdk(proxy, mobile_key) as client:
        await ask(client, "aa")  # 0.003 USD = 0.0024 GBP: the budget is now spent exactly
        with pytest.raises(openai.RateLimitError):
            await ask(client, "bb")
    status, listed = await http(proxy, "GET", "/admin/budgets", ADMIN)
    rows = {(b["scope"], b["scope_id"]): b for b in listed["data"]}
    mobile = rows[("project", "mobile")]
    assert Decimal(mobile["spent"]) == Decimal("0.0024") and Decimal(mobile["remaining"]) == 0
    assert rows[("project", "web")]["source"] == "config"
    status, body = await http(
        proxy, "POST", "/admin/budgets", ADMIN, {"project": "a", "team": "b", "amount": "1"}
    )
    assert status == 400 and body["error"]["code"] == "missing_field"


async def test_admin_reads_every_projects_receipts(config: Config, start_proxy: Any) -> None:
    keys = [direct_key(Path(config.ledger.path), KeySettings(project=project)) for project in ("one", "two")]
    proxy = await start_proxy(config)
    for key in keys:
        async with sdk(proxy, key) as client:
            await ask(client)
    status, body = await http(proxy, "GET", "/admin/receipts", ADMIN)
    assert status == 200 and sorted(r["project"] for r in body["data"]) == ["one", "two"]
    status, body = await http(proxy, "GET", "/admin/receipts?project=two&limit=1", ADMIN)
    assert [r["project"] for r in body["data"]] == ["two"]
    assert (await http(proxy, "GET", "/admin/receipts?limit=0", ADMIN))[0] == 400


async def test_a_bad_json_body_is_an_openai_shaped_400(config: Config, start_proxy: Any) -> None:
    proxy = await start_proxy(config)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            str(proxy.make_url("/admin/keys")), data=b"{nope", headers={"Authorization": f"Bearer {ADMIN}"}
        ) as resp,
    ):
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"


# --- nmproxy serve --allow-open -------------------------------------------------------------------


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record where `serve` would listen instead of binding (tests never bind a non-loopback address)."""
    binds: list[tuple[str, int]] = []
    monkeypatch.setattr(listener, "run", lambda app, host, port, **kw: binds.append((host, port)))
    return binds


def serve(config: Config, *args: str) -> Any:
    return CliRunner().invoke(
        main, ["serve", "--config", str(config.source_path), "--db", config.ledger.path, "--port", "1", *args]
    )


def test_serve_refuses_a_public_host_in_open_mode(
    config: Config, monkeypatch: pytest.MonkeyPatch, no_serving: list[tuple[str, int]]
) -> None:
    monkeypatch.delenv("NMPROXY_ADMIN_KEY")
    result = serve(config, "--host", "0.0.0.0")
    assert result.exit_code != 0 and no_serving == []
    assert (
        "refusing to serve on 0.0.0.0 without API keys" in result.output and "--allow-open" in result.output
    )
    assert "Traceback" not in result.output


def test_serve_binds_a_public_host_with_allow_open_keys_or_an_admin_key(
    config: Config, monkeypatch: pytest.MonkeyPatch, no_serving: list[tuple[str, int]]
) -> None:
    assert serve(config, "--host", "0.0.0.0").exit_code == 0  # NMPROXY_ADMIN_KEY is set by the fixture
    monkeypatch.delenv("NMPROXY_ADMIN_KEY")
    assert serve(config, "--host", "127.0.0.1").exit_code == 0
    assert serve(config, "--host", "0.0.0.0", "--allow-open").exit_code == 0
    assert not ledger_has_keys(config.ledger.path)
    direct_key(Path(config.ledger.path), KeySettings(project="web"), revoked=True)
    assert ledger_has_keys(config.ledger.path)  # a revoked key still closes the proxy, as KeyStore does
    assert serve(config, "--host", "0.0.0.0").exit_code == 0
    assert no_serving == [("0.0.0.0", 1), ("127.0.0.1", 1), ("0.0.0.0", 1), ("0.0.0.0", 1)]


async def test_an_admin_key_from_env_closes_open_mode(config: Config, start_proxy: Any) -> None:
    proxy = await start_proxy(config)  # no keys in the ledger, but NMPROXY_ADMIN_KEY is set
    async with sdk(proxy, "sk-anything") as client:
        with pytest.raises(openai.AuthenticationError):
            await ask(client)
    assert await works(proxy, ADMIN)
