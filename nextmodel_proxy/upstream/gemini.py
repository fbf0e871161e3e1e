"""kind: gemini — the native Gemini API (generateContent / streamGenerateContent), translated both ways."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any

import aiohttp
import orjson

from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.upstream.base import Target, provider_key
from nextmodel_proxy.upstream.gemini_stream import GeminiStream
from nextmodel_proxy.upstream.gemini_translate import from_error, from_response, to_generate_request
from nextmodel_proxy.upstream.translated import TranslatedCall, Translation, open_translated

_VERSIONED = re.compile(r"/v1(alpha|beta)?$")


def model_url(base_url: str, upstream_id: str, stream: bool) -> str:
    """The method URL; base_url may be the bare host or already end in its API version."""
    root = base_url if _VERSIONED.search(base_url) else base_url + "/v1beta"
    model = upstream_id.removeprefix("models/")
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{root}/models/{model}:{action}"


class GeminiAdapter:
    """kind: gemini — base_url https://generativelanguage.googleapis.com, key in x-goog-api-key."""

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
                f"Gemini models are not served on the {endpoint} endpoint here",
                "unsupported_parameter",
                param="model",
            )
        request = to_generate_request(body, target.model)
        stream = bool(body.get("stream"))
        headers = dict(target.provider.headers)
        key = provider_key(target.provider)
        if key:
            headers["x-goog-api-key"] = key
        headers["Content-Type"] = "application/json"
        model = target.model.upstream_id
        translation = Translation(
            body=partial(from_response, fallback_model=model),
            error=from_error,
            stream=partial(GeminiStream, model),
        )
        return await open_translated(
            session,
            target,
            model_url(target.provider.base_url, model, stream),
            orjson.dumps(request),
            headers,
            stream=stream,
            translation=translation,
        )
