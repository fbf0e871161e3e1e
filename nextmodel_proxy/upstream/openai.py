"""Any OpenAI-compatible API: the body passes through with only `model` rewritten."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from nextmodel_proxy.upstream.base import (
    BoundedSplitter,
    Target,
    forwardable_client_headers,
    provider_key,
    read_body,
    response_headers,
    send,
    transport_errors,
    upstream_request_id,
)

ENDPOINT_PATHS = {
    "chat": "/chat/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
    "completions": "/completions",
}


class HttpCall:
    """An aiohttp response whose body is already in OpenAI's wire format."""

    __slots__ = ("_resp", "_provider", "status", "headers", "is_stream", "upstream_request_id")

    def __init__(self, resp: aiohttp.ClientResponse, target: Target) -> None:
        self._resp = resp
        self._provider = target.provider
        self.status = resp.status
        self.headers = response_headers(resp.headers)
        self.is_stream = resp.content_type == "text/event-stream" and resp.status == 200
        self.upstream_request_id = upstream_request_id(resp.headers)

    async def read(self) -> bytes:
        return await read_body(self._resp, self._provider)

    async def events(self) -> AsyncIterator[bytes]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def batches(self) -> AsyncIterator[list[bytes]]:
        """Events grouped by the upstream read they arrived in, so they can be relayed in one write."""
        splitter = BoundedSplitter(self._provider)
        content = self._resp.content
        try:
            with transport_errors(self._provider.name, "stream"):
                # iter_any() without its iterator layer: readany() gives b"" at the end
                while chunk := await content.readany():
                    events = splitter.feed(chunk)
                    if events:
                        yield events
        finally:
            self._resp.release()

    def release(self) -> None:
        self._resp.close()


class OpenAIAdapter:
    """kind: openai — OpenAI, DeepSeek, Doubao/Ark, Qwen compatible mode, Moonshot, Zhipu, Mistral, xAI, Ollama…"""

    async def open(
        self,
        session: aiohttp.ClientSession,
        target: Target,
        body: dict[str, Any],
        *,
        endpoint: str,
        client_headers: Mapping[str, str],
    ) -> HttpCall:
        provider, model = target.provider, target.model
        headers = forwardable_client_headers(client_headers)
        headers.update(provider.headers)
        key = provider_key(provider)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        headers["Content-Type"] = "application/json"
        if body.get("model") != model.upstream_id:
            body = {**body, "model": model.upstream_id}
        url = provider.base_url + ENDPOINT_PATHS[endpoint]
        resp = await send(session, provider, url, orjson.dumps(body), headers)
        return HttpCall(resp, target)
