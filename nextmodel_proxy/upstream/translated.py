"""An upstream call whose provider speaks another dialect, translated into OpenAI's wire format."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.upstream.base import (
    BoundedSplitter,
    Target,
    read_body,
    response_headers,
    send,
    transport_errors,
    upstream_request_id,
)


class StreamTranslator(Protocol):
    """Turns a provider's SSE events into OpenAI chunk events, one upstream event at a time."""

    done: bool  # True once the translated stream is finished ([DONE] or an error event sent)

    def feed(self, raw: bytes) -> list[bytes]:
        """OpenAI SSE events for one raw upstream event."""

    def end(self) -> list[bytes]:
        """Events owed when the upstream body ends (nothing when it ended before finishing)."""


@dataclass(frozen=True, slots=True)
class Translation:
    """How one provider's answers become OpenAI ones."""

    body: Callable[[bytes], bytes]  # a 200 body -> chat.completion JSON; may raise ProxyError
    error: Callable[[int, bytes], tuple[int, bytes]]  # an error answer -> (status, OpenAI error JSON)
    stream: Callable[[], StreamTranslator]


class TranslatedCall:
    """A provider response presented as an OpenAI one; non-stream bodies are translated up front."""

    __slots__ = (
        "_resp",
        "_provider",
        "_body",
        "_translator",
        "status",
        "headers",
        "is_stream",
        "upstream_request_id",
    )

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        target: Target,
        *,
        status: int,
        body: bytes | None,
        translator: StreamTranslator | None,
    ) -> None:
        self._resp = resp
        self._provider = target.provider
        self._body = body
        self._translator = translator
        self.status = status
        self.is_stream = translator is not None
        headers = response_headers(resp.headers)
        # The body changed shape, so the upstream's own type and digest headers no longer describe it.
        headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "etag", "digest")}
        headers["Content-Type"] = "text/event-stream" if self.is_stream else "application/json"
        self.headers: Mapping[str, str] = headers
        self.upstream_request_id = upstream_request_id(resp.headers)

    async def read(self) -> bytes:
        return self._body or b""

    async def events(self) -> AsyncIterator[bytes]:
        translator = self._translator
        if translator is None:
            return
        splitter = BoundedSplitter(self._provider)
        name = self._provider.name
        try:
            with transport_errors(name, "stream"):
                async for data in self._resp.content.iter_any():
                    for raw in splitter.feed(data):
                        for event in translator.feed(raw):
                            yield event
                        if translator.done:
                            return
                for event in translator.end():
                    yield event
        finally:
            self._resp.release()

    def release(self) -> None:
        self._resp.close()


async def open_translated(
    session: aiohttp.ClientSession,
    target: Target,
    url: str,
    payload: bytes,
    headers: Mapping[str, str],
    *,
    stream: bool,
    translation: Translation,
) -> TranslatedCall:
    """Send the provider request; a 200 stream stays open, anything else is read and translated now."""
    provider = target.provider
    resp = await send(session, provider, url, payload, headers)
    if stream and resp.status == 200:
        return TranslatedCall(resp, target, status=200, body=None, translator=translation.stream())
    raw = await read_body(resp, provider)
    if resp.status != 200:
        status, body = translation.error(resp.status, raw)
        return TranslatedCall(resp, target, status=status, body=body, translator=None)
    try:
        body = translation.body(raw)
    except ProxyError as exc:
        return TranslatedCall(resp, target, status=exc.status, body=exc.body(), translator=None)
    return TranslatedCall(resp, target, status=200, body=body, translator=None)
