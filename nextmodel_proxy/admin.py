"""Admin HTTP endpoints: keys, budgets, all receipts. Thin handlers; the rules live in keys.py/budget_store.py."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from aiohttp import web

from nextmodel_proxy import handlers, validate
from nextmodel_proxy.access import rules
from nextmodel_proxy.access.auth import require_admin
from nextmodel_proxy.access.budget_store import (
    SCOPES,
    Budget,
    set_budget,
    spend_against_budgets,
    usage_json,
)
from nextmodel_proxy.access.keys import (
    KeyNotFound,
    KeyRecord,
    KeySettings,
    NewKey,
    create_key,
    get_key,
    key_json,
    list_keys,
    revoke_key,
    rotate_key,
)
from nextmodel_proxy.appkeys import CONFIG, PIPELINE, SERVICES
from nextmodel_proxy.config import Config
from nextmodel_proxy.errors import ProxyError, bad_request
from nextmodel_proxy.ledger.writer import LedgerUnavailable
from nextmodel_proxy.services import Services
from nextmodel_proxy.timespec import utc_now

T = TypeVar("T")
_JSON = "application/json"
_KEY_FIELDS = frozenset(
    {
        "project",
        "team",
        "env",
        "environment",
        "name",
        "admin",
        "rpm",
        "tpm",
        "expires",
        "models",
        "budget",
        "budget_period",
        "budget_currency",
    }
)
_BUDGET_FIELDS = frozenset({"key", "project", "team", "amount", "currency", "period"})


def _admin(request: web.Request) -> Services:
    """The services, once the caller has shown an admin key (401 without a key, 403 with a normal one)."""
    require_admin(request.app[PIPELINE].authenticate(request.headers))
    return request.app[SERVICES]


def _reader(services: Services) -> sqlite3.Connection:
    if services.reader is None or services.ledger is None:
        raise ProxyError(
            404, "Keys and budgets are not kept: the ledger is disabled in this proxy's config.", "not_found"
        )
    return services.reader


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type=_JSON)


async def _write(services: Services, op: Callable[[sqlite3.Connection], T]) -> T:
    """Run `op` in the ledger writer's transaction, then reload keys and budgets so the change applies now."""
    reader = _reader(services)
    assert services.ledger is not None
    try:
        result = await services.ledger.submit_op(op)
    except KeyNotFound as exc:
        raise ProxyError(404, f"No such key: {exc}.", "not_found") from None
    except ValueError as exc:  # already revoked, bad amount, and the like
        raise bad_request(str(exc)) from None
    except (LedgerUnavailable, sqlite3.Error) as exc:
        raise ProxyError(
            503, f"The ledger cannot be written right now ({exc}).", "ledger_unavailable"
        ) from None
    services.keys.refresh_if_changed(reader)
    services.budgets.refresh_if_changed(reader)
    return result


async def _body(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    body = validate.parse_body(await handlers.read_body(request))
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(
            f"Unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}.",
            "unsupported_parameter",
            param=unknown[0],
        )
    return body


def _text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{name!r} must be a non-empty string.", "invalid_type", param=name)
    return value.strip()


def _rule(name: str, check: Callable[[], T]) -> T:
    """Run one of access.rules' checks; a broken rule is a 400 naming the field."""
    try:
        return check()
    except rules.InputError as exc:
        raise bad_request(f"{name!r}: {exc}.", exc.code, param=name) from None


def _count(body: Mapping[str, Any], name: str) -> int | None:
    return _rule(name, lambda: rules.positive_count(body.get(name)))


def _amount(value: Any, name: str) -> Decimal:
    return _rule(name, lambda: rules.amount(value))


def _currency(value: Any, name: str, config: Config) -> str:
    return _rule(name, lambda: rules.currency(value, config.currency.rates))


def _period(value: Any, name: str) -> str:
    return _rule(name, lambda: rules.period(value))


def _models(value: Any, config: Config) -> frozenset[str] | None:
    return _rule("models", lambda: rules.models(value, {*config.models, *config.routes}))


def _expires(value: Any) -> dt.datetime | None:
    return _rule("expires", lambda: rules.expires_at(value, utc_now()))


def key_settings(body: Mapping[str, Any], config: Config) -> KeySettings:
    """POST /admin/keys body -> KeySettings; the same rules as `nmproxy keys create`."""
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise bad_request("'admin' must be true or false.", "invalid_type", param="admin")
    project, team = _text(body, "project"), _text(body, "team")
    if project is None and not admin:
        raise bad_request(
            "'project' is required (or \"admin\": true for an admin key).", "missing_field", param="project"
        )
    if team is None and project and project in config.projects:
        team = config.projects[project].team
    return KeySettings(
        project,
        team,
        _text(body, "env") or _text(body, "environment"),
        _text(body, "name"),
        admin,
        _count(body, "rpm"),
        _count(body, "tpm"),
        _models(body.get("models"), config),
        _expires(body.get("expires")),
    )


def key_budget(body: Mapping[str, Any], config: Config) -> tuple[Decimal, str, str] | None:
    """(amount, currency, period) from budget/budget_currency/budget_period, or None without a budget."""
    if body.get("budget") is None:
        if body.get("budget_period") is not None or body.get("budget_currency") is not None:
            raise bad_request(
                "'budget_period'/'budget_currency' need 'budget'.", "missing_field", param="budget"
            )
        return None
    return (
        _amount(body["budget"], "budget"),
        _currency(body.get("budget_currency", "USD"), "budget_currency", config),
        _period(body.get("budget_period", "month"), "budget_period"),
    )


def budget_json(budget: Budget) -> dict[str, Any]:
    return {
        "budget_id": budget.budget_id,
        "scope": budget.scope,
        "scope_id": budget.scope_id,
        "amount": f"{budget.amount:f}",
        "currency": budget.currency,
        "period": budget.period,
        "source": budget.source,
    }


def new_key_json(new: NewKey, record: KeyRecord, budget: Budget | None = None) -> dict[str, Any]:
    """The one answer that carries the plaintext key."""
    out = {"object": "api_key", "key": new.plaintext, **key_json(record, utc_now())}
    if budget is not None:
        out["budget"] = budget_json(budget)
    return out


# --- handlers ------------------------------------------------------------------------------------


async def get_keys(request: web.Request) -> web.Response:
    """GET /admin/keys: every key with its status; never a hash or a secret."""
    services = _admin(request)
    now = utc_now()
    return _reply({"object": "list", "data": [key_json(r, now) for r in list_keys(_reader(services))]})


async def post_key(request: web.Request) -> web.Response:
    """POST /admin/keys: create a key (and optionally its budget); the plaintext is in this answer only."""
    services = _admin(request)
    config = request.app[CONFIG]
    body = await _body(request, _KEY_FIELDS)
    settings, budget = key_settings(body, config), key_budget(body, config)

    def op(conn: sqlite3.Connection) -> dict[str, Any]:
        new, record = create_key(conn, settings)
        made = set_budget(conn, "key", record.key_id, *budget) if budget else None
        return new_key_json(new, record, made)

    return _reply(await _write(services, op), 201)


async def revoke(request: web.Request) -> web.Response:
    """POST /admin/keys/{key_id}/revoke (id or display prefix): refused from now on."""
    services = _admin(request)
    ref = request.match_info["key_id"]
    record = await _write(services, lambda c: revoke_key(c, get_key(c, ref).key_id))
    return _reply({"object": "api_key", **key_json(record, utc_now())})


async def rotate(request: web.Request) -> web.Response:
    """POST /admin/keys/{key_id}/rotate: a new secret with the same settings and budgets; the old one is revoked."""
    services = _admin(request)
    ref = request.match_info["key_id"]
    new, record = await _write(services, lambda c: rotate_key(c, get_key(c, ref).key_id))
    return _reply(new_key_json(new, record))


async def get_budgets(request: web.Request) -> web.Response:
    """GET /admin/budgets: every budget (database and providers.yaml) with its current period's spend."""
    services = _admin(request)
    reader, config = _reader(services), request.app[CONFIG]
    usages = [u for scope in SCOPES for u in spend_against_budgets(reader, scope, config)]
    return _reply({"object": "list", "data": [usage_json(u) for u in usages]})


async def post_budget(request: web.Request) -> web.Response:
    """POST /admin/budgets: create or replace the budget of one key, project or team for one period."""
    services = _admin(request)
    config = request.app[CONFIG]
    body = await _body(request, _BUDGET_FIELDS)
    scopes = [(s, _text(body, s)) for s in SCOPES if body.get(s) is not None]
    if len(scopes) != 1:
        raise bad_request("Give exactly one of 'key', 'project', 'team'.", "missing_field")
    if "amount" not in body:
        raise bad_request("'amount' is required.", "missing_field", param="amount")
    amount = _amount(body["amount"], "amount")
    currency = _currency(body.get("currency", "USD"), "currency", config)
    period = _period(body.get("period", "month"), "period")
    scope, ref = scopes[0]
    assert ref is not None

    def op(conn: sqlite3.Connection) -> Budget:
        scope_id = get_key(conn, ref).key_id if scope == "key" else ref
        return set_budget(conn, scope, scope_id, amount, currency, period)

    return _reply({"object": "budget", **budget_json(await _write(services, op))})


async def get_receipts(request: web.Request) -> web.Response:
    """GET /admin/receipts: every project's receipts, with /v1/receipts' query parameters."""
    _admin(request)
    return handlers.receipts_page(request, request.query.get("project"))


ROUTES = [
    ("GET", "/admin/keys", get_keys),
    ("POST", "/admin/keys", post_key),
    ("POST", "/admin/keys/{key_id}/revoke", revoke),
    ("POST", "/admin/keys/{key_id}/rotate", rotate),
    ("GET", "/admin/budgets", get_budgets),
    ("POST", "/admin/budgets", post_budget),
    ("GET", "/admin/receipts", get_receipts),
]
