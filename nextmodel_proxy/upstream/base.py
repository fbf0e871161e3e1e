"""The upstream adapter protocol, header filters, and the shared HTTP call wrapper."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from multidict import CIMultiDict

from nextmodel_proxy import text_safety
from nextmodel_proxy.config import ModelConfig, ProviderConfig
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.sse import SSESplitter

# RFC 7230 hop-by-hop headers plus ones aiohttp must compute itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "host",
    }
)
# Client headers never forwarded upstream: credentials and our own control headers.
CLIENT_DROP = HOP_BY_HOP | {"authorization", "x-api-key", "api-key", "cookie", "accept-encoding"}
UPSTREAM_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "x-amzn-requestid")


@dataclass(frozen=True, slots=True)
class Target:
    """Where one attempt goes: the provider and model entries resolved by routing."""

    provider: ProviderConfig
    model: ModelConfig


class UpstreamCall(Protocol):
    """An open upstream response, already in OpenAI's wire format whatever the provider speaks."""

    status: int
    headers: Mapping[str, str]  # response headers safe to forward (hop-by-hop removed)
    is_stream: bool  # True when the body is an SSE stream of OpenAI chat.completion.chunk events
    upstream_request_id: str | None

    async def read(self) -> bytes:
        """The whole body (non-stream answers and error bodies), OpenAI-shaped JSON."""

    def events(self) -> AsyncIterator[bytes]:
        """Raw SSE events, each a complete event ending in a blank line, in OpenAI chunk format."""

    def release(self) -> None:
        """Close the upstream connection (idempotent); cancels an unfinished upstream request."""


def event_batches(call: UpstreamCall) -> AsyncIterator[list[bytes]]:
    """The call's events grouped per upstream read when the adapter can tell (`batches()`), else one by one.
    The adapter's own iterator when it has one: no extra generator layer per read (issue 16)."""
    batches = getattr(call, "batches", None)
    return batches() if batches is not None else _one_by_one(call)


async def _one_by_one(call: UpstreamCall) -> AsyncIterator[list[bytes]]:
    async for event in call.events():
        yield [event]


class Adapter(Protocol):
    """One provider kind. `open` sends the request; OpenAI-format body in, OpenAI-format call out."""

    async def open(
        self,
        session: aiohttp.ClientSession,
        target: Target,
        body: dict[str, Any],
        *,
        endpoint: str,
        client_headers: Mapping[str, str],
    ) -> UpstreamCall: ...


def provider_key(provider: ProviderConfig) -> str | None:
    """The provider's API key from its environment variable; 503 provider_key_missing when unset."""
    if not provider.api_key_env:
        return None
    key = os.environ.get(provider.api_key_env)
    if not key:
        raise ProxyError(
            503,
            f"provider {provider.name!r} has no API key: set the environment variable {provider.api_key_env} "
            "where the proxy runs and restart the proxy (a running process never sees variables set later)",
            "provider_key_missing",
        )
    return key


def connection_named(client_headers: Mapping[str, str]) -> frozenset[str]:
    """Header names the client's Connection header(s) declare hop-by-hop (RFC 9110 7.6.1), lower-cased."""
    getall = getattr(client_headers, "getall", None)
    values = getall("Connection", ()) if getall is not None else [client_headers.get("Connection") or ""]
    return frozenset(t.strip().lower() for v in values for t in v.split(",") if t.strip())


def forwardable_client_headers(client_headers: Mapping[str, str]) -> dict[str, str]:
    """Client headers that may go upstream: no credentials, no hop-by-hop (including every header the client's
    Connection header names), none of our own x-nextmodel-*."""
    out = {}
    named = connection_named(client_headers)
    for name, value in client_headers.items():
        low = name.lower()
        if (
            low in CLIENT_DROP
            or low in named
            or low.startswith("x-nextmodel-")
            or low.startswith("x-stainless")
            or not name.isascii()
        ):
            continue
        # bytes that are not UTF-8 cannot be re-sent as they came: forwarded escaped (`\\xNN`) instead
        out[name] = value if value.isascii() else text_safety.encodable(value)
    return out


_NOT_RELAYED = HOP_BY_HOP | {"date", "server", "set-cookie"}


def response_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """Upstream response headers (case-insensitive) minus hop-by-hop ones and those aiohttp sets itself."""
    return CIMultiDict(
        (k, v if text_safety.printable(v) else text_safety.escaped(v, _MAX_HEADER_CHARS))
        for k, v in headers.items()
        if k.lower() not in _NOT_RELAYED
    )


_MAX_HEADER_CHARS = 8192


def upstream_request_id(headers: Mapping[str, str]) -> str | None:
    """The upstream's request id header, escaped (bytes that are not UTF-8 become `\\xNN`, at most 128 chars)."""
    for name in UPSTREAM_ID_HEADERS:
        value = headers.get(name)
        if value:
            return text_safety.escaped(value)
    return None


@functools.lru_cache(maxsize=256)
def _timeout(connect_s: float, read_s: float) -> aiohttp.ClientTimeout:
    """Per-provider timeouts, built once (ClientTimeout is immutable)."""
    return aiohttp.ClientTimeout(total=None, connect=connect_s, sock_connect=connect_s, sock_read=read_s)


_BROKE = {"send": "failed", "read": "broke off", "stream": "broke off mid-stream"}


@contextlib.contextmanager
def transport_errors(provider_name: str, stage: str) -> Iterator[None]:
    """The one mapping of transport failures for every adapter: a timeout is 504 upstream_timeout, any
    other aiohttp failure 502 upstream_unreachable. `stage`: "send", "read" (a whole body) or "stream"."""
    try:
        yield
    except (TimeoutError, aiohttp.ServerTimeoutError):
        during = " mid-stream" if stage == "stream" else ""
        raise ProxyError(504, f"upstream {provider_name!r} timed out{during}", "upstream_timeout") from None
    except aiohttp.ClientConnectorError as exc:
        if stage != "send":
            raise ProxyError(
                502,
                f"upstream {provider_name!r} {_BROKE[stage]}: {type(exc).__name__}",
                "upstream_unreachable",
            ) from None
        raise ProxyError(
            502,
            f"upstream {provider_name!r} unreachable: {exc.strerror or exc.os_error}",
            "upstream_unreachable",
        ) from None
    except aiohttp.ClientError as exc:
        raise ProxyError(
            502, f"upstream {provider_name!r} {_BROKE[stage]}: {type(exc).__name__}", "upstream_unreachable"
        ) from None


async def send(
    session: aiohttp.ClientSession,
    provider: ProviderConfig,
    url: str,
    payload: bytes,
    headers: Mapping[str, str],
) -> aiohttp.ClientResponse:
    """POST with the provider's timeouts, mapping transport failures to 502/504 ProxyErrors."""
    timeout = _timeout(provider.connect_timeout_s, provider.timeout_s)
    with transport_errors(provider.name, "send"):
        return await session.post(url, data=payload, headers=headers, timeout=timeout, allow_redirects=False)


def too_large(provider: ProviderConfig, what: str, key: str, limit: int) -> ProxyError:
    return ProxyError(
        502,
        f"upstream {provider.name!r} sent {what} larger than {limit} bytes (providers.{provider.name}.{key}); "
        "it was not relayed further",
        "upstream_too_large",
    )


class BoundedSplitter:
    """SSESplitter under the provider's caps: no event, even one still arriving (a 10 MB line with no newline),
    grows past max_event_bytes, and the whole stream stops at max_answer_bytes (502 upstream_too_large)."""

    __slots__ = ("_splitter", "_provider", "_total")

    def __init__(self, provider: ProviderConfig) -> None:
        self._splitter = SSESplitter()
        self._provider = provider
        self._total = 0

    def feed(self, data: bytes) -> list[bytes]:
        p = self._provider
        self._total += len(data)
        if self._total > p.max_answer_bytes:
            raise too_large(p, "a stream", "max_answer_bytes", p.max_answer_bytes)
        events = self._splitter.feed(data)
        limit = p.max_event_bytes
        if len(self._splitter.tail()) > limit or (len(data) > limit and any(len(e) > limit for e in events)):
            raise too_large(p, "one stream event", "max_event_bytes", limit)
        return events


async def read_body(resp: aiohttp.ClientResponse, provider: ProviderConfig) -> bytes:
    """The whole response body up to providers.<name>.max_answer_bytes, with read timeouts and broken
    connections as 504/502 and a larger body as 502 upstream_too_large (the connection is dropped)."""
    limit = provider.max_answer_bytes
    try:
        if resp.content_length is not None and resp.content_length > limit:
            resp.close()
            raise too_large(provider, "an answer", "max_answer_bytes", limit)
        with transport_errors(provider.name, "read"):
            chunks, total = [], 0
            async for chunk in resp.content.iter_any():
                total += len(chunk)
                if total > limit:
                    resp.close()
                    raise too_large(provider, "an answer", "max_answer_bytes", limit)
                chunks.append(chunk)
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        resp.release()
