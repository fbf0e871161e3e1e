"""GET /ui and its pages, the JSON API behind them, the login form and the static files (thin handlers).

Reads run in a worker thread on a read-only connection of their own, so a dashboard view never blocks the
event loop that serves proxied requests.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
from aiohttp import web

from nextmodel_proxy.appkeys import CONFIG, SERVICES
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.export import EXPORT_COLUMNS, export_csv_cells, iter_export_rows
from nextmodel_proxy.ledger.receipts import ReceiptFilter
from nextmodel_proxy.ui import pages, views
from nextmodel_proxy.ui.access import (
    COOKIE,
    SESSION_TTL_S,
    NeedsLogin,
    Sessions,
    Viewer,
    check_login,
    viewer_for,
)

T = TypeVar("T")
STATIC = Path(__file__).parent / "static"
SESSIONS = web.AppKey("ui_sessions", Sessions)
CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".LICENSE": "text/plain"}


def _html(text: str, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=text,
        content_type="text/html",
        charset="utf-8",
        headers={**_SECURITY_HEADERS, **(headers or {})},
    )


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=_SECURITY_HEADERS
    )


def _sessions(request: web.Request) -> Sessions:
    return request.app[SESSIONS]


def _viewer(request: web.Request) -> Viewer:
    return viewer_for(
        request.app[SERVICES].keys, _sessions(request), request.headers, request.cookies.get(COOKIE)
    )


def _redirect(location: str) -> web.Response:
    # Returned, not raised: the error middleware turns raised HTTP exceptions into JSON errors.
    return web.Response(status=303, headers={**_SECURITY_HEADERS, "Location": location})


def _login_redirect(request: web.Request) -> web.Response:
    return _redirect(f"/ui/login?{urlencode({'next': request.path_qs})}")


async def _read(request: web.Request, fn: Callable[[sqlite3.Connection], T]) -> T:
    path = request.app[CONFIG].ledger.path
    if not request.app[CONFIG].ledger.enabled:
        raise ProxyError(
            404, "The dashboard needs the ledger, which is disabled in this proxy's config.", "not_found"
        )

    def run() -> T:
        conn = db.connect(path, readonly=True)
        try:
            return fn(conn)
        finally:
            conn.close()

    return await asyncio.to_thread(run)


def _default_tz(request: web.Request) -> str:
    return request.app[CONFIG].ui.timezone


def _range_query(request: web.Request) -> str:
    """The range and zone of this page, to carry over to the links it shows."""
    keep = {k: v for k, v in request.query.items() if k in ("tz", "from", "to") and v}
    return f"?{urlencode(keep)}" if keep else ""


def _page(
    request: web.Request, viewer: Viewer, title: str, body: str, active: str, status: int = 200
) -> web.Response:
    html = pages.page(
        title,
        body,
        viewer=viewer.label,
        signed_in=viewer.signed_in,
        active=active,
        query=_range_query(request),
    )
    return _html(html, status=status)


async def overview(request: web.Request) -> web.Response:
    try:
        viewer = _viewer(request)
    except NeedsLogin:
        return _login_redirect(request)
    now = dt.datetime.now(dt.UTC)
    try:
        window = views.window_of(request.query, _default_tz(request), now)
    except views.ViewError as exc:
        body = pages.range_form("/ui", request.query, "UTC") + pages.problem(str(exc))
        return _page(request, viewer, "Overview", body, "overview", status=400)
    budgets = request.app[SERVICES].budgets
    data = await _read(request, lambda c: views.overview(c, window, viewer, budgets, now))
    body = pages.overview(data, request.query, _range_query(request))
    return _page(request, viewer, "Overview", body, "overview")


async def api_overview(request: web.Request) -> web.Response:
    viewer = _api_viewer(request)
    now = dt.datetime.now(dt.UTC)
    window = _api(lambda: views.window_of(request.query, _default_tz(request), now))
    budgets = request.app[SERVICES].budgets
    return _json(await _read(request, lambda c: views.overview(c, window, viewer, budgets, now)))


def _api_viewer(request: web.Request) -> Viewer:
    try:
        return _viewer(request)
    except NeedsLogin as exc:
        raise ProxyError(
            401,
            exc.message or "The dashboard API needs a key (Authorization: Bearer) or a signed-in session.",
            "invalid_api_key",
        ) from None


def _api(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except views.ViewError as exc:
        raise ProxyError(400, str(exc), "invalid_value", param=exc.param) from None


def _filters(request: web.Request, viewer: Viewer, conn: sqlite3.Connection) -> dict[str, Any]:
    window = views.window_of(request.query, _default_tz(request), dt.datetime.now(dt.UTC))
    configured = set(request.app[CONFIG].models)
    return views.receipts_filters(request.query, window, viewer, views.known_models(conn, configured))


async def receipts(request: web.Request) -> web.Response:
    try:
        viewer = _viewer(request)
    except NeedsLogin:
        return _login_redirect(request)

    def read(conn: sqlite3.Connection) -> tuple[dict[str, Any] | None, str | None, set[str]]:
        models = views.known_models(conn, set(request.app[CONFIG].models))
        try:
            return views.receipts_page(conn, _filters(request, viewer, conn)), None, models
        except views.ViewError as exc:
            return None, str(exc), models

    result, error, models = await _read(request, read)
    body = pages.receipts_list(result, request.query, _default_tz(request), error, models)
    return _page(request, viewer, "Receipts", body, "receipts", status=400 if error else 200)


async def api_receipts(request: web.Request) -> web.Response:
    viewer = _api_viewer(request)
    result = await _read(
        request, lambda c: _api(lambda: views.receipts_page(c, _filters(request, viewer, c)))
    )
    return _json({"object": "list", **result})


async def receipt(request: web.Request) -> web.Response:
    try:
        viewer = _viewer(request)
    except NeedsLogin:
        return _login_redirect(request)
    receipt_id = request.match_info["receipt_id"]
    data = await _read(request, lambda c: views.receipt_detail(c, receipt_id, viewer))
    if data is None:
        notice = pages.problem(f"No receipt {receipt_id[:80]!r} that you can see.")
        return _page(request, viewer, "Receipt", notice, "receipts", status=404)
    return _page(request, viewer, f"Receipt {receipt_id}", pages.receipt(data), "receipts")


async def export_csv(request: web.Request) -> web.StreamResponse:
    """The receipts behind a view, with `nmproxy receipts export`'s columns, streamed."""
    viewer = _api_viewer(request)
    window = _api(lambda: views.window_of(request.query, _default_tz(request), dt.datetime.now(dt.UTC)))
    currency = request.app[CONFIG].currency
    filters = ReceiptFilter(since=window.start, until=window.end, key_id=viewer.key_id)

    def rows(conn: sqlite3.Connection) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(EXPORT_COLUMNS)
        for row in iter_export_rows(conn, filters):
            writer.writerow(export_csv_cells(row, currency))
        return out.getvalue().encode()

    body = await _read(request, rows)
    name = f"receipts-{window.first_day}-{window.last_day}.csv"
    return web.Response(
        body=body,
        content_type="text/csv",
        headers={**_SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
    )


async def login_form(request: web.Request) -> web.Response:
    return _html(
        pages.page(
            "Sign in",
            pages.login(None, _safe_next(request.query.get("next"))),
            viewer=None,
            signed_in=False,
            active="",
        )
    )


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    key, next_url = str(form.get("key") or ""), _safe_next(str(form.get("next") or ""))
    try:
        check_login(request.app[SERVICES].keys, key)
    except ProxyError as exc:
        body = pages.login(exc.message, next_url)
        return _html(pages.page("Sign in", body, viewer=None, signed_in=False, active=""), status=401)
    response = _redirect(next_url)
    response.set_cookie(
        COOKIE,
        _sessions(request).create(key),
        httponly=True,
        samesite="Strict",
        max_age=SESSION_TTL_S,
        path="/ui",
    )
    return response


async def logout(request: web.Request) -> web.Response:
    _sessions(request).drop(request.cookies.get(COOKIE))
    response = _redirect("/ui/login")
    response.del_cookie(COOKIE, path="/ui")
    return response


def _safe_next(url: str | None) -> str:
    """Only a path on this proxy's dashboard (never another site)."""
    if url and url.startswith("/ui") and not url.startswith("//") and "\\" not in url and url.isprintable():
        return url
    return "/ui"


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = (STATIC / name).resolve()
    if STATIC.resolve() not in path.parents or not path.is_file():
        raise ProxyError(404, f"No static file {name[:80]!r}.", "not_found")
    kind = _STATIC_TYPES.get(path.suffix, "application/octet-stream")
    headers = {
        **_SECURITY_HEADERS,
        "Cache-Control": "public, max-age=3600",
        "Content-Type": f"{kind}; charset=utf-8",
    }
    return web.FileResponse(path, headers=headers)


ROUTES = [
    ("GET", "/ui", overview),
    ("GET", "/ui/", overview),
    ("GET", "/ui/receipts", receipts),
    ("GET", "/ui/receipts/{receipt_id}", receipt),
    ("GET", "/ui/export.csv", export_csv),
    ("GET", "/ui/api/overview", api_overview),
    ("GET", "/ui/api/receipts", api_receipts),
    ("GET", "/ui/login", login_form),
    ("POST", "/ui/login", login),
    ("POST", "/ui/logout", logout),
    ("GET", "/ui/static/{name:.+}", static),
]
