"""A local token estimate for /v1/messages/count_tokens when the upstream cannot count (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nextmodel_proxy.estimate import estimate_text_tokens

IMAGE_TOKENS = 1600  # Anthropic's guide: about (width x height) / 750 tokens, ~1600 for a 1092x1092 image
TOOL_OVERHEAD = 350  # the tool-use system prompt Anthropic adds when tools are present (documented 313-346)
ESTIMATE_HEADER = "x-nextmodel-token-count"


def _chars(value: Any) -> tuple[int, int]:
    """(text characters, image count) of a Messages tree; image and document sources are not text."""
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, Mapping):
        if value.get("type") in ("image", "document"):
            return 0, 1
        chars = images = 0
        for key, item in value.items():
            if key in ("type", "cache_control", "id", "tool_use_id", "signature"):
                continue
            c, i = _chars(item)
            chars, images = chars + c, images + i
        return chars, images
    if isinstance(value, list):
        chars = images = 0
        for item in value:
            c, i = _chars(item)
            chars, images = chars + c, images + i
        return chars, images
    return 0, 0


def estimate(body: Mapping[str, Any]) -> dict[str, Any]:
    """{"input_tokens": N} over system, tools and messages, marked as our estimate."""
    chars = images = 0
    for key in ("system", "messages", "tools"):
        c, i = _chars(body.get(key))
        chars, images = chars + c, images + i
    tokens = estimate_text_tokens(chars) + images * IMAGE_TOKENS
    if body.get("tools"):
        tokens += TOOL_OVERHEAD
    return {"input_tokens": max(1, tokens), "estimated": True}
