"""HTTP handlers for /v1/responses, /v1/messages (+ count_tokens), /v1/completions and /v1/models/{id}."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import orjson
from aiohttp import web
from multidict import CIMultiDict

from nextmodel_proxy import handlers, routing, validate
from nextmodel_proxy.access.auth import check_model
from nextmodel_proxy.appkeys import CONFIG, PIPELINE, SESSION
from nextmodel_proxy.catalog import model_row, route_row
from nextmodel_proxy.endpoints import count_tokens as counting
from nextmodel_proxy.endpoints import messages_reply, validate_bodies
from nextmodel_proxy.endpoints.bridge import open_anthropic
from nextmodel_proxy.endpoints.native import native_endpoints
from nextmodel_proxy.errors import ProxyError

_JSON = "application/json"


def anthropic_auth(headers: Mapping[str, str]) -> Mapping[str, str]:
    """The proxy key as Anthropic clients send it: `x-api-key`, or `Authorization: Bearer` (auth tokens)."""
    if headers.get("Authorization") or not headers.get("x-api-key"):
        return headers
    out = CIMultiDict(headers)
    out["Authorization"] = f"Bearer {headers['x-api-key']}"
    return out


def anthropic_error(exc: ProxyError) -> web.Response:
    """A proxy error on /v1/messages, in Anthropic's error shape with the same status and headers."""
    return web.Response(
        status=exc.status,
        body=messages_reply.error_body(exc.status, exc.message),
        content_type=_JSON,
        headers=exc.headers or None,
    )


async def responses(request: web.Request) -> web.StreamResponse:
    return await handlers.proxy(request, "responses")


async def completions(request: web.Request) -> web.StreamResponse:
    return await handlers.proxy(request, "completions")


async def messages(request: web.Request) -> web.StreamResponse:
    try:
        return await handlers.proxy(request, "messages", auth_headers=anthropic_auth(request.headers))
    except ProxyError as exc:
        return anthropic_error(exc)


async def count_tokens(request: web.Request) -> web.Response:
    """Passed through to Anthropic upstreams; anywhere else a local estimate marked as one. No receipt:
    counting tokens costs nothing upstream."""
    pipeline = request.app[PIPELINE]
    try:
        principal = pipeline.authenticate(anthropic_auth(request.headers))
        try:
            body = validate.parse_body(await handlers.read_body(request))
            model = validate.require_model(body)
            validate_bodies.check_count_tokens(body)
        except ProxyError as exc:
            pipeline.count_rejected(exc)
            raise
        check_model(principal, model)
        config = request.app[CONFIG]
        plan = routing.plan(config, model, body, today=dt.datetime.now(dt.UTC).date(), endpoint="messages")
        target = plan.candidates[0]
        headers = {"x-nextmodel-provider": target.provider.name}
        if "messages" in native_endpoints(target.provider, target.model):
            call = await open_anthropic(
                request.app[SESSION], target, body, request.headers, "/v1/messages/count_tokens"
            )
            raw = await call.read()
            return web.Response(status=call.status, body=raw, content_type=_JSON, headers=headers)
        headers[counting.ESTIMATE_HEADER] = "estimate"
        return web.Response(body=orjson.dumps(counting.estimate(body)), content_type=_JSON, headers=headers)
    except ProxyError as exc:
        return anthropic_error(exc)


async def get_model(request: web.Request) -> web.Response:
    """GET /v1/models/{id}: one model (OpenAI's shape plus pricing and catalog fields) or route."""
    config = request.app[CONFIG]
    name = request.match_info["model_id"]
    if name in config.models:
        model = config.models[name]
        row = model_row(model, dt.datetime.now(dt.UTC).date())
        row["endpoints"] = sorted(native_endpoints(config.providers[model.provider], model))
    elif name in config.routes:
        row = route_row(config.routes[name])
    else:
        raise ProxyError(
            404, f"The model {name!r} does not exist on this proxy.", "model_not_found", param="model"
        )
    return web.Response(body=orjson.dumps(row), content_type=_JSON)
