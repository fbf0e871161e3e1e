"""The worst case a request can cost: a true upper bound for budget holds, in any language (pure).

Routing's estimate (estimate.estimate_prompt_tokens, ~4 characters a token) is a typical figure, good for
ordering candidates but ~4x low for Chinese, Japanese, Hindi or Vietnamese text, where a token is about one
character. A budget hold must be an upper bound instead, so it rests on what holds for every tokenizer:

- every token of text covers at least one byte of its UTF-8 encoding, so text tokens <= UTF-8 bytes;
- plus PER_MESSAGE for each message (role markers and separators are tokens that cover no text) and
  REPLY_PRIMING once, PER_TOOL for each tool (its JSON definition is counted by its bytes as well);
- an image part counts MAX_IMAGE_TOKENS, the largest documented per-image cost (OpenAI's patch-based models:
  1,536 patches x 2.46 = 3,779; Anthropic ~1,600; Gemini 258 per 768-px tile), never its base64 length;
- output: max_completion_tokens / max_tokens / max_output_tokens when given, else the model's `max_output`,
  else its `context_window`, else DEFAULT_WORST_OUTPUT.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from nextmodel_proxy.config import ModelConfig
from nextmodel_proxy.estimate import IMAGE_PART_TYPES
from nextmodel_proxy.routing import requested_max_tokens

PER_MESSAGE = 8
REPLY_PRIMING = 4
PER_TOOL = 32
MAX_IMAGE_TOKENS = 4_000
DEFAULT_WORST_OUTPUT = (
    131_072  # max output of most current flagship models; set models.<id>.max_output to tighten
)
_MILLION = Decimal(1_000_000)
_IMAGE_TYPES = IMAGE_PART_TYPES | {"image"}  # Anthropic Messages: {"type": "image", "source": {...}}
_DEFINITIONS = ("tools", "functions", "response_format", "text")  # JSON the model reads whole


def _text_bytes(value: Any) -> tuple[int, int]:
    """(UTF-8 bytes of every string in the tree, image parts), iteratively (bodies nest at most 64 deep)."""
    total, images = 0, 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item.encode("utf-8", "surrogatepass"))
        elif isinstance(item, Mapping):
            if item.get("type") in _IMAGE_TYPES:
                images += 1
                continue
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            total += 24  # a number's digits, at most this many bytes
    return total, images


def worst_prompt_tokens(body: Mapping[str, Any]) -> int:
    """An upper bound of the prompt tokens of `body` under any tokenizer (see the module docstring)."""
    total = REPLY_PRIMING
    for key, value in body.items():
        if key in _DEFINITIONS:
            total += len(orjson.dumps(value, default=str))
            if isinstance(value, list):
                total += PER_TOOL * len(value)
            continue
        if key in ("messages", "input") and isinstance(value, list):
            total += PER_MESSAGE * len(value)
        text, images = _text_bytes(value)
        total += text + images * MAX_IMAGE_TOKENS
    return total


def worst_output_tokens(model: ModelConfig, body: Mapping[str, Any]) -> int:
    asked = requested_max_tokens(body)
    if asked is not None:
        return asked
    if model.mode == "embedding":
        return 0
    return model.max_output or model.context_window or DEFAULT_WORST_OUTPUT


def worst_case_cost(model: ModelConfig, body: Mapping[str, Any]) -> Decimal | None:
    """The most `body` can cost on `model` in USD (prompt at input price, output at output price, each bound
    above); None when the model has no price."""
    price = model.price
    if price is None:
        return None
    prompt = worst_prompt_tokens(body)
    input_rate = max(r for r in (price.input, price.cache_write) if r is not None)
    return (prompt * input_rate + worst_output_tokens(model, body) * price.output) / _MILLION
