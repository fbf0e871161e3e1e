"""create_app(config): app keys, resources via cleanup_ctx, routes as data, the error middleware."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from nextmodel_proxy import admin, handlers
from nextmodel_proxy.appkeys import CLOCK, CONFIG, PIPELINE, SERVICES, SESSION
from nextmodel_proxy.config import Config
from nextmodel_proxy.endpoints import http as endpoint_http
from nextmodel_proxy.errors import ProxyError, error_body, retry_headers
from nextmodel_proxy.listener import guard_middleware
from nextmodel_proxy.pipeline import Pipeline
from nextmodel_proxy.services import running
from nextmodel_proxy.ui import routes as ui
from nextmodel_proxy.ui.metrics_route import metrics

log = logging.getLogger(__name__)

ROUTES = [
    ("POST", "/v1/chat/completions", handlers.chat_completions),
    ("POST", "/v1/embeddings", handlers.embeddings),
    ("POST", "/v1/responses", endpoint_http.responses),
    ("POST", "/v1/messages", endpoint_http.messages),
    ("POST", "/v1/messages/count_tokens", endpoint_http.count_tokens),
    ("POST", "/v1/completions", endpoint_http.completions),
    ("GET", "/v1/models", handlers.list_models),
    ("GET", "/v1/models/{model_id:.+}", endpoint_http.get_model),
    ("GET", "/healthz", handlers.healthz),
    ("GET", "/v1/receipts", handlers.list_receipts),
    ("GET", "/v1/receipts/{receipt_id}", handlers.get_receipt),
    *admin.ROUTES,
    ("GET", "/metrics", metrics),
    *ui.ROUTES,
]

# The public API, named in the 404 for any other path (admin endpoints are documented in the README).
SERVED = ", ".join(
    f"{m} {p.replace('{model_id:.+}', '{id}')}" for m, p, _ in ROUTES if not p.startswith("/admin")
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json_error(
    status: int, message: str, type_: str, code: str | None, headers: dict | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(message, type_, code),
        content_type="application/json",
        headers={**retry_headers(code), **(headers or {})},
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place that catches everything: ProxyError -> OpenAI JSON; anything else -> logged api_error."""
    try:
        return await handler(request)
    except ProxyError as exc:
        return web.Response(
            status=exc.status, body=exc.body(), content_type="application/json", headers=exc.headers or None
        )
    except web.HTTPNotFound:
        return _json_error(
            404,
            f"Unknown path: {request.method} {request.path}. This proxy serves: {SERVED}.",
            "invalid_request_error",
            "not_found",
        )
    except web.HTTPMethodNotAllowed as exc:
        return _json_error(
            405,
            f"Method {request.method} is not allowed on {request.path}.",
            "invalid_request_error",
            "method_not_allowed",
            {"Allow": ", ".join(sorted(exc.allowed_methods))},
        )
    except web.HTTPRequestEntityTooLarge:
        return _json_error(413, "Request body is too large.", "invalid_request_error", "body_too_large")
    except web.HTTPException as exc:
        return _json_error(exc.status, exc.reason, "invalid_request_error", None)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _json_error(
            500, "The proxy hit an internal error; it has been logged.", "api_error", "internal_error"
        )


def create_app(config: Config, *, clock: Callable[[], dt.datetime] | None = None) -> web.Application:
    """The proxy as an aiohttp application; resources open in cleanup_ctx and close in reverse order.
    `clock` gives each request's start time (default: now, UTC); tests pass one to bill a given instant."""
    app = web.Application(
        middlewares=[guard_middleware, error_middleware], client_max_size=config.server.max_body_bytes + 1
    )
    app[CONFIG] = config
    app[ui.SESSIONS] = ui.Sessions()
    app[CLOCK] = clock or _utc_now
    app.cleanup_ctx.append(_client_session)
    app.cleanup_ctx.append(_services)
    app.on_shutdown.append(_drain_at_grace)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler, expect_handler=_expect)
    # Last: every other method and path, so that a 404/405 also goes through _expect (aiohttp's own
    # expect handler on its 404/405 answers would echo a non-UTF-8 Expect value into a 500).
    app.router.add_route("*", "/{unmatched:.*}", _unmatched, expect_handler=_expect)
    return app


async def _unmatched(request: web.Request) -> web.StreamResponse:
    """A path or method no route has: the 404 or 405 (with Allow) aiohttp would give, via error_middleware."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is request.match_info.route.resource:
            continue
        _match, methods = await resource.resolve(request)
        allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue` as aiohttp does; any other expectation an OpenAI-shaped 417 (aiohttp's own
    would echo the value into a text body, a 500 when its bytes are not UTF-8)."""
    expect = request.headers.get("Expect", "")
    if request.version != aiohttp.HttpVersion11 or not expect:
        return None
    if expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
        return None
    return _json_error(
        417,
        f"Unsupported Expect header {ascii(expect)}: only 100-continue is understood.",
        "invalid_request_error",
        "expectation_failed",
    )


async def _drain_at_grace(app: web.Application) -> None:
    """Shutdown began: requests still running near the end of the grace get a clean ending (drain.py)."""
    if PIPELINE in app:
        app[PIPELINE].drain.schedule(app[CONFIG].server.shutdown_grace_s)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
    # One session serves every client: no cookie jar, or a cookie an upstream set for one caller would be sent
    # on every later caller's request to that upstream.
    session = aiohttp.ClientSession(
        connector=connector, skip_auto_headers=("User-Agent",), cookie_jar=aiohttp.DummyCookieJar()
    )
    app[SESSION] = session
    yield
    await session.close()


async def _services(app: web.Application) -> AsyncIterator[None]:
    """Ledger, keys, budgets: opened after the HTTP client, closed (ledger flushed) before it."""
    async with running(app[CONFIG]) as services:
        app[SERVICES] = services
        app[PIPELINE] = Pipeline(app[CONFIG], app[SESSION], services)
        yield
        app[PIPELINE].drain.close()
