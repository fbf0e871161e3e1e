"""kind: anthropic — the Messages API, translated to and from OpenAI chat completions."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import aiohttp
import orjson

from nextmodel_proxy import text_safety
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.upstream.anthropic_stream import AnthropicStream
from nextmodel_proxy.upstream.anthropic_translate import from_error, from_message, to_messages_request
from nextmodel_proxy.upstream.base import Target, connection_named, provider_key
from nextmodel_proxy.upstream.translated import TranslatedCall, Translation, open_translated

API_VERSION = "2023-06-01"


def anthropic_headers(target: Target, client_headers: Mapping[str, str]) -> dict[str, str]:
    """Auth and version headers; of the client's headers only anthropic-* (e.g. anthropic-beta) go through."""
    named = connection_named(client_headers)
    headers = {
        k: text_safety.encodable(v)  # bytes that are not UTF-8 go on escaped, as for other providers
        for k, v in client_headers.items()
        if k.lower().startswith("anthropic-") and k.lower() not in named
    }
    headers.update(target.provider.headers)
    headers.setdefault("anthropic-version", API_VERSION)
    key = provider_key(target.provider)
    if key:
        headers["x-api-key"] = key
    headers["Content-Type"] = "application/json"
    return headers


class AnthropicAdapter:
    """kind: anthropic — POST {base_url}/v1/messages."""

    async def open(
        self,
        session: aiohttp.ClientSession,
        target: Target,
        body: dict[str, Any],
        *,
        endpoint: str,
        client_headers: Mapping[str, str],
    ) -> TranslatedCall:
        if endpoint != "chat":
            raise ProxyError(
                400,
                f"Anthropic models do not serve the {endpoint} endpoint",
                "unsupported_parameter",
                param="model",
            )
        request = to_messages_request(body, target.model)
        model = target.model.upstream_id
        translation = Translation(
            body=partial(from_message, fallback_model=model),
            error=from_error,
            stream=partial(AnthropicStream, model),
        )
        return await open_translated(
            session,
            target,
            target.provider.base_url + "/v1/messages",
            orjson.dumps(request),
            anthropic_headers(target, client_headers),
            stream=bool(request.get("stream")),
            translation=translation,
        )
