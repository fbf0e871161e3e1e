"""Opening an upstream call for any endpoint: passthrough where the upstream serves it, else through chat."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from nextmodel_proxy.endpoints import (
    messages_reply,
    messages_request,
    responses_reply,
    responses_request,
    responses_stream,
)
from nextmodel_proxy.endpoints.native import UPSTREAM_WIRE, native_endpoints
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.upstream.anthropic import anthropic_headers
from nextmodel_proxy.upstream.base import Target, UpstreamCall, event_batches, send
from nextmodel_proxy.upstream.openai import HttpCall
from nextmodel_proxy.upstream.registry import adapter_for

_DROP = ("content-type", "content-length", "etag", "digest")


async def open_for(
    session: aiohttp.ClientSession,
    target: Target,
    body: dict[str, Any],
    *,
    endpoint: str,
    client_headers: Mapping[str, str],
) -> UpstreamCall:
    """The upstream call for one attempt, answering in the client's wire format."""
    kind = target.provider.kind
    if endpoint in ("chat", "embeddings"):
        return await adapter_for(kind).open(
            session, target, body, endpoint=endpoint, client_headers=client_headers
        )
    native = native_endpoints(target.provider, target.model)
    if endpoint in native:
        if endpoint == "messages":
            return await open_anthropic(session, target, body, client_headers, "/v1/messages")
        return await adapter_for(kind).open(
            session, target, body, endpoint=endpoint, client_headers=client_headers
        )
    if endpoint == "completions":
        raise ProxyError(
            400,
            f"model {target.model.id!r} (provider {target.provider.name!r}, kind {kind}) does not serve "
            "/v1/completions; if its upstream does, add completions to the model's endpoints: list",
            "unsupported_parameter",
            param="model",
        )
    wire = UPSTREAM_WIRE.get(kind, kind)
    where = f"{target.provider.name}, spoken to as {wire}"
    if endpoint == "responses":
        chat_body = responses_request.to_chat_request(body, where)
    else:
        chat_body = messages_request.to_chat_request(body, where)
    inner = await adapter_for(kind).open(
        session, target, chat_body, endpoint="chat", client_headers=client_headers
    )
    return BridgedCall(inner, endpoint, body, wire)


async def open_anthropic(
    session: aiohttp.ClientSession,
    target: Target,
    body: dict[str, Any],
    client_headers: Mapping[str, str],
    path: str,
) -> HttpCall:
    """A Messages API request passed through as sent (only `model` resolved), anthropic-* headers kept."""
    if body.get("model") != target.model.upstream_id:
        body = {**body, "model": target.model.upstream_id}
    headers = anthropic_headers(target, client_headers)
    resp = await send(session, target.provider, target.provider.base_url + path, orjson.dumps(body), headers)
    return HttpCall(resp, target)


class BridgedCall:
    """A chat-format upstream call presented in the Responses or Messages wire format."""

    __slots__ = (
        "_inner",
        "_endpoint",
        "_request",
        "status",
        "headers",
        "is_stream",
        "upstream_request_id",
        "translated",
    )

    def __init__(self, inner: UpstreamCall, endpoint: str, request: Mapping[str, Any], wire: str) -> None:
        self._inner = inner
        self._endpoint = endpoint
        self._request = request
        self.status = inner.status
        self.is_stream = inner.is_stream
        self.upstream_request_id = inner.upstream_request_id
        headers = {k: v for k, v in inner.headers.items() if k.lower() not in _DROP}
        headers["Content-Type"] = "text/event-stream" if self.is_stream else "application/json"
        self.headers: Mapping[str, str] = headers
        self.translated = wire

    async def read(self) -> bytes:
        raw = await self._inner.read()
        if self.status != 200:
            return messages_reply.error_from_openai(self.status, raw) if self._endpoint == "messages" else raw
        try:
            if self._endpoint == "responses":
                return responses_reply.from_completion_bytes(raw, self._request)
            return messages_reply.from_completion_bytes(raw, self._request)
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            self.status = 502
            exc = ProxyError(
                502, "the upstream answered with a body that is not a chat completion", "upstream_error"
            )
            return (
                messages_reply.error_from_openai(502, exc.body())
                if self._endpoint == "messages"
                else exc.body()
            )

    async def batches(self) -> AsyncIterator[list[bytes]]:
        translator: Any = (
            responses_stream.ChatToResponsesStream(self._request)
            if self._endpoint == "responses"
            else messages_reply.ChatToMessagesStream(self._request)
        )
        async for batch in event_batches(self._inner):
            out: list[bytes] = []
            for raw in batch:
                out.extend(translator.feed(raw))
            if out:
                yield out
            if translator.done:
                return
        tail = translator.end()
        if tail:
            yield tail

    async def events(self) -> AsyncIterator[bytes]:
        async for batch in self.batches():
            for event in batch:
                yield event

    def release(self) -> None:
        self._inner.release()
