"""One thin async function per endpoint: read, hand to the pipeline, answer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import orjson
from aiohttp import web

from nextmodel_proxy import validate
from nextmodel_proxy.appkeys import CONFIG, PIPELINE
from nextmodel_proxy.catalog import models_list
from nextmodel_proxy.exchange import Exchange
from nextmodel_proxy.pipeline import ClientGone

_JSON = "application/json"


class ResponseSink:
    """StreamSink over an aiohttp StreamResponse."""

    __slots__ = ("request", "response")

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        self.response = web.StreamResponse(status=status, headers=headers)
        self.response.enable_chunked_encoding()
        await self.response.prepare(self.request)

    async def write(self, data: bytes) -> None:
        assert self.response is not None
        await self.response.write(data)


async def read_body(request: web.Request) -> bytes:
    """The raw body, refusing more than server.max_body_bytes with a 413."""
    limit = request.app[CONFIG].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise validate.too_large(limit)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise validate.too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def attribution(ex: Exchange, headers: Mapping[str, str]) -> None:
    """Open-mode attribution headers (keys, once configured, take precedence)."""
    ex.project = headers.get("x-nextmodel-project") or None
    ex.team = headers.get("x-nextmodel-team") or None
    ex.environment = headers.get("x-nextmodel-environment") or None
    tags = headers.get("x-nextmodel-tags")
    if tags:
        ex.tags = tuple(t.strip() for t in tags.split(",") if t.strip())
    ex.request_id = headers.get("x-request-id") or None


async def _proxy(request: web.Request, endpoint: str) -> web.StreamResponse:
    body = validate.parse_body(await read_body(request))
    validate.require_model(body)
    if endpoint == "chat":
        validate.check_chat(body)
    else:
        validate.check_embeddings(body)
    ex = Exchange(endpoint=endpoint, body=body, client_headers=request.headers,
                  receipt_url_base=f"{request.scheme}://{request.host}")
    attribution(ex, request.headers)
    sink = ResponseSink(request)
    try:
        reply = await request.app[PIPELINE].handle(ex, sink)
    except ClientGone:
        reply = None
    if reply is None:
        return sink.response or web.Response(status=499)
    return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _proxy(request, "chat")


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await _proxy(request, "embeddings")


async def list_models(request: web.Request) -> web.Response:
    today = dt.datetime.now(dt.UTC).date()
    return web.Response(body=orjson.dumps(models_list(request.app[CONFIG], today)), content_type=_JSON)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type=_JSON)
