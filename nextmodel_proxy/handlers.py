"""One thin async function per endpoint: read, hand to the pipeline, answer."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import urllib.parse
from collections.abc import Coroutine, Mapping
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestPayloadError

from nextmodel_proxy import text_safety, validate
from nextmodel_proxy.access.auth import can_read_project
from nextmodel_proxy.appkeys import CLOCK, CONFIG, PIPELINE, SERVICES
from nextmodel_proxy.catalog import models_list
from nextmodel_proxy.endpoints import validate_bodies
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.ledger import receipts
from nextmodel_proxy.relay import ClientGone
from nextmodel_proxy.request_state import Caller, RequestState

_JSON = "application/json"
_CHECKS = {"chat": validate.check_chat, "embeddings": validate.check_embeddings, **validate_bodies.CHECKS}


class _EventStream(web.StreamResponse):
    # Buffer the status line and headers until the first body write so they leave in one packet with the
    # first event (aiohttp >= 3.11; older versions send them at prepare() as before). ResponseSink.start
    # flushes them on the next loop iteration when no event is ready, so a client never waits for them.
    _send_headers_immediately = False


def _send_headers(writer: object) -> None:
    send = getattr(writer, "send_headers", None)  # StreamWriter; idempotent once the headers are out
    if send is not None:
        with contextlib.suppress(ConnectionError, RuntimeError):  # the client left meanwhile
            send()


class ResponseSink:
    """StreamSink over an aiohttp StreamResponse."""

    __slots__ = ("request", "response")

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        # No enable_chunked_encoding(): aiohttp chunks for HTTP/1.1 by itself, and for an HTTP/1.0
        # client (which cannot read chunks) it sends the stream plain and closes the connection at the end.
        self.response = _EventStream(status=status, headers=headers)
        writer = await self.response.prepare(self.request)
        asyncio.get_running_loop().call_soon(_send_headers, writer)

    def write(self, data: bytes) -> Coroutine[Any, Any, None]:
        # The response's own coroutine, not one wrapped around it: one frame less per relayed read.
        assert self.response is not None
        return self.response.write(data)

    async def end(self, data: bytes) -> None:
        """The last bytes and the end of the body in one write (the handler's own write_eof is then a no-op)."""
        assert self.response is not None
        await self.response.write_eof(data)


async def read_body(request: web.Request) -> bytes:
    """The raw body, refusing more than server.max_body_bytes with a 413."""
    limit = request.app[CONFIG].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise validate.too_large(limit)
    timeout_s = request.app[CONFIG].server.body_timeout_s
    try:
        # Already all buffered (the usual small body): nothing to wait for, so no timer
        # (asyncio.timeout cost ~4% of the loop's samples at c=64, issue 16).
        if request.content.is_eof():
            return await request.read()
        async with asyncio.timeout(timeout_s):
            return await request.read()  # the app's client_max_size stops a chunked body past the limit
    except TimeoutError:
        raise ProxyError(
            408,
            f"The request body did not arrive within {timeout_s:g} s (server.body_timeout_s).",
            "request_timeout",
        ) from None
    except web.HTTPRequestEntityTooLarge:
        raise validate.too_large(limit) from None
    except (RequestPayloadError, BadHttpMessage):  # e.g. Content-Encoding: gzip on a body that is not gzip
        encoding = request.headers.get("Content-Encoding")
        what = f"is not valid {encoding!r} data" if encoding else "is malformed"
        raise ProxyError(
            400, f"The request body {what}: send it as its Content-Encoding header says.", "invalid_body"
        ) from None


ATTRIBUTION_HEADERS = ("x-nextmodel-project", "x-nextmodel-team", "x-nextmodel-environment")
MAX_ATTRIBUTION_CHARS = 128  # each of project, team, environment and every tag
MAX_TAGS_HEADER_CHARS = 1024


def check_attribution(headers: Mapping[str, str], *, open_mode: bool) -> None:
    """400 invalid_header naming the header when an attribution value is not printable UTF-8 or too long.
    Project/team/environment headers are read only in open mode (a key carries its own), so only then."""
    names = (*ATTRIBUTION_HEADERS, "x-nextmodel-tags") if open_mode else ("x-nextmodel-tags",)
    for name in names:
        value = headers.get(name)
        if value is None:
            continue
        limit = MAX_TAGS_HEADER_CHARS if name == "x-nextmodel-tags" else MAX_ATTRIBUTION_CHARS
        if not text_safety.printable(value):
            raise validate.bad_header(
                name, "is not printable UTF-8 text (control characters or invalid bytes)"
            )
        if len(value) > limit:
            raise validate.bad_header(name, f"is longer than {limit} characters")
        if name == "x-nextmodel-tags" and any(
            len(t.strip()) > MAX_ATTRIBUTION_CHARS for t in value.split(",")
        ):
            raise validate.bad_header(name, f"has a tag longer than {MAX_ATTRIBUTION_CHARS} characters")


def caller_of(headers: Mapping[str, str]) -> Caller:
    """The client's headers, free-form tags and request id (project/team come from the key or open-mode
    headers). The request id is the client's x-request-id (or x-client-request-id) when it is printable ASCII
    of at most 128 characters, escaped to that when it is not, generated when there is none; it is echoed
    back as x-request-id."""
    tags = headers.get("x-nextmodel-tags") or ""
    client_id = headers.get("x-request-id") or headers.get("x-client-request-id")
    return Caller(
        client_headers=headers,
        request_id=text_safety.escaped(client_id) if client_id else receipts.new_request_id(),
        tags=tuple(t.strip() for t in tags.split(",") if t.strip()),
    )


async def proxy(
    request: web.Request, endpoint: str, *, auth_headers: Mapping[str, str] | None = None
) -> web.StreamResponse:
    """Any proxied endpoint; `auth_headers` when the proxy key may come in another header (x-api-key)."""
    pipeline = request.app[PIPELINE]
    principal = pipeline.authenticate(auth_headers if auth_headers is not None else request.headers)
    try:
        check_attribution(request.headers, open_mode=principal is None)
    except ProxyError as exc:
        pipeline.count_rejected(exc)
        raise
    body = await _valid_body(request, endpoint)
    state = RequestState(
        endpoint=endpoint,
        body=body,
        caller=caller_of(request.headers),
        receipt_url_base=f"{request.scheme}://{request.host}",
        created=request.app[CLOCK](),
    )
    sink = ResponseSink(request)
    metrics = request.app[SERVICES].metrics
    metrics.inflight += 1
    try:
        reply = await pipeline.handle(state, principal, sink)
    except ClientGone:
        reply = None
    finally:
        metrics.inflight -= 1
    if reply is None:
        return sink.response or web.Response(status=499)
    return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


async def _valid_body(request: web.Request, endpoint: str) -> dict:
    """The parsed, shape-checked body; a malformed request gets no receipt, only a count and a log line."""
    try:
        body = validate.parse_body(await read_body(request))
        validate.require_model(body)
        _CHECKS[endpoint](body)
    except ProxyError as exc:
        request.app[PIPELINE].count_rejected(exc)
        raise
    return body


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await proxy(request, "chat")


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await proxy(request, "embeddings")


async def list_models(request: web.Request) -> web.Response:
    today = dt.datetime.now(dt.UTC).date()
    return web.Response(body=orjson.dumps(models_list(request.app[CONFIG], today)), content_type=_JSON)


async def healthz(request: web.Request) -> web.Response:
    """200 while requests can be served and recorded; 503 while the ledger cannot be written."""
    services = request.app[SERVICES]
    ledger_ok = services.ledger is None or services.ledger.healthy
    body = {
        "status": "ok" if ledger_ok else "ledger_unavailable",
        "ledger": "disabled" if services.ledger is None else ("ok" if ledger_ok else "unavailable"),
        "auth": "open" if services.keys.open_mode else "keys",
        "rejected": services.rejected,
    }
    ledger = services.ledger
    if ledger is not None:  # counted, never a reason for a 503: no receipt can make this red
        body["ledger_backlog"] = ledger.pending
        body["ledger_spooled"] = ledger.backlog.spooled
        body["dead_letter"] = ledger.dead_letter.count
        body["refused_while_unavailable"] = ledger.refused_while_unavailable
    return web.Response(status=200 if ledger_ok else 503, body=orjson.dumps(body), content_type=_JSON)


def _reader(request: web.Request) -> sqlite3.Connection:
    reader = request.app[SERVICES].reader
    if reader is None:
        raise ProxyError(
            404, "Receipts are not kept: the ledger is disabled in this proxy's config.", "not_found"
        )
    return reader


async def get_receipt(request: web.Request) -> web.Response:
    """GET /v1/receipts/{id}: one receipt, to its key's project (or an admin, or anyone in open mode).
    A browser (asking for HTML first) is sent to the dashboard's page for the receipt instead."""
    accept = request.headers.get("Accept", "")
    if accept.startswith("text/html"):
        location = f"/ui/receipts/{urllib.parse.quote(request.match_info['receipt_id'], safe='')}"
        return web.Response(status=303, headers={"Location": location})
    principal = request.app[PIPELINE].authenticate(request.headers)
    receipt = receipts.get_receipt(_reader(request), request.match_info["receipt_id"])
    # Open mode (no keys, principal None) reads every receipt, as it is handed every receipt URL.
    if receipt is None or (principal is not None and not can_read_project(principal, receipt.project)):
        raise ProxyError(404, f"No receipt {request.match_info['receipt_id']!r} on this proxy.", "not_found")
    return web.Response(body=orjson.dumps(receipts.receipt_to_json(receipt)), content_type=_JSON)


async def list_receipts(request: web.Request) -> web.Response:
    """GET /v1/receipts?since=&until=&project=&model=&mode=&limit=&cursor= (newest first)."""
    principal = request.app[PIPELINE].authenticate(request.headers)
    project = request.query.get("project")
    if principal is not None and not principal.is_admin:
        if project is not None and project != principal.project:
            raise ProxyError(403, "This key can read only its own project's receipts.", "permission_denied")
        project = principal.project
    return receipts_page(request, project)


def receipts_page(request: web.Request, project: str | None) -> web.Response:
    """One page of receipts (newest first) for the query's filters; the caller decides the project."""
    try:
        query = receipts.list_query(request.query)
    except receipts.QueryError as exc:
        raise ProxyError(
            400, f"Bad query parameter {exc.param}: {exc}", "invalid_value", param=exc.param
        ) from None
    query.pop("project", None)
    if project is not None:
        query["project"] = project
    rows, cursor = receipts.query_receipts(_reader(request), **query)
    return web.Response(body=orjson.dumps(receipts.list_json(rows, cursor)), content_type=_JSON)
