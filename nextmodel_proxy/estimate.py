"""The one token estimator, for when a provider reports no usage and for budget and rate-limit holds (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English text
_PER_MESSAGE = 4  # role and separators, as in OpenAI's cookbook count for chat messages
_REPLY_PRIMING = 3
IMAGE_TOKENS = 1000  # a flat guess per image part; base64 length says nothing about image tokens
IMAGE_PART_TYPES = frozenset({"image_url", "input_image"})


def estimate_tokens(value: Any) -> int:
    """A cheap token estimate when a provider reports no usage: ceil(chars / 4) of the text, plus 4 per chat
    message and 3 for the reply priming; lists of strings (embedding input) are summed without overhead."""
    if value is None:
        return 0
    if isinstance(value, str):
        return estimate_text_tokens(len(value))
    if isinstance(value, Mapping):
        return _PER_MESSAGE + estimate_tokens(value.get("content")) + estimate_tokens(value.get("name"))
    if isinstance(value, list | tuple):
        if any(isinstance(item, Mapping) and "role" in item for item in value):
            return sum(estimate_tokens(item) for item in value) + _REPLY_PRIMING
        return sum(_part_tokens(item) for item in value)
    return 0


def _part_tokens(item: Any) -> int:
    """A content part ({"type": "text", "text": ...}), a string, or a token id; images and the like count 0."""
    if isinstance(item, Mapping):
        return estimate_tokens(item.get("text"))
    if isinstance(item, int) and not isinstance(item, bool):
        return 1
    return estimate_tokens(item) if isinstance(item, str) else 0


def estimate_text_tokens(chars: int) -> int:
    """ceil(chars / 4): the one rule every estimate here is built on."""
    return -(-chars // CHARS_PER_TOKEN)


def content_parts(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The content parts (dicts) of every message whose content is a list."""
    parts = []
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list):
            parts.extend(p for p in content if isinstance(p, Mapping))
    return parts


def _text_chars(value: Any) -> int:
    """Characters of text in a message tree; image parts are counted separately."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        if value.get("type") in IMAGE_PART_TYPES:
            return 0
        return sum(_text_chars(v) for v in value.values())
    if isinstance(value, list):
        return sum(_text_chars(v) for v in value)
    return 0


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Prompt size estimate: text characters / 4 plus a flat allowance per image."""
    # messages (chat, Messages API), input + instructions (Responses API), system (Messages API), tools
    chars = sum(_text_chars(body.get(k)) for k in ("messages", "tools", "input", "system", "instructions"))
    images = sum(1 for part in content_parts(body) if part.get("type") in IMAGE_PART_TYPES)
    return estimate_text_tokens(chars) + images * IMAGE_TOKENS
