"""Demo embeddings (pure): unit vectors from hashed words, so texts sharing words lie close together.

`dimensions` sets the length (default 1536, as text-embedding-3-small); `encoding_format: base64` returns the
little-endian float32 bytes base64-encoded, exactly as OpenAI does, and the float form carries the same float32
values, so both decode to identical vectors.
"""

from __future__ import annotations

import base64
import math
import random
import re
import struct
from typing import Any

import xxhash

from nextmodel_proxy.estimate import estimate_tokens
from nextmodel_proxy.upstream.demo.answer import DemoInputError

DEFAULT_DIMENSIONS = 1536
MAX_DIMENSIONS = 3072
MAX_INPUTS = 2048
_FEATURES_PER_WORD = 4
_WORDS = re.compile(r"\w+")


def check(body: dict[str, Any]) -> None:
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise DemoInputError("Invalid 'encoding_format': expected 'float' or 'base64'.", "encoding_format")
    if len(inputs(body.get("input"))) > MAX_INPUTS:
        raise DemoInputError(f"Invalid 'input': at most {MAX_INPUTS} inputs per request.", "input")
    dims = body.get("dimensions")
    if dims is not None and (
        isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= MAX_DIMENSIONS
    ):
        raise DemoInputError(
            f"Invalid 'dimensions': expected an integer from 1 to {MAX_DIMENSIONS}.", "dimensions"
        )


def inputs(value: Any) -> list[Any]:
    """One entry per input: a string, a list of strings, one token array, or a list of token arrays."""
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return [value]
    return value if isinstance(value, list) else [value]


def input_tokens(item: Any) -> int:
    if isinstance(item, str):
        return estimate_tokens(item)
    if isinstance(item, list):
        return len(item)
    return 1


def vector(item: Any, dims: int) -> list[float]:
    text = item if isinstance(item, str) else " ".join(str(t) for t in item) if isinstance(item, list) else ""
    noise = random.Random(xxhash.xxh3_64_intdigest(text.encode()))
    values = [noise.gauss(0.0, 0.05) for _ in range(dims)]
    for word in _WORDS.findall(text.lower()):
        for k in range(_FEATURES_PER_WORD):
            h = xxhash.xxh3_64_intdigest(word.encode(), seed=k)
            values[h % dims] += 1.0 if h >> 63 else -1.0
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def encode(values: list[float], fmt: str) -> list[float] | str:
    """float32 little-endian, as OpenAI sends it: base64 of the bytes, or the float32 values as numbers."""
    packed = struct.pack(f"<{len(values)}f", *values)
    if fmt == "base64":
        return base64.b64encode(packed).decode("ascii")
    return list(struct.unpack(f"<{len(values)}f", packed))


def embeddings(body: dict[str, Any], model: str) -> dict[str, Any]:
    if len(inputs(body.get("input"))) > MAX_INPUTS:
        raise DemoInputError(f"Invalid 'input': at most {MAX_INPUTS} inputs per request.", "input")
    dims = body.get("dimensions") or DEFAULT_DIMENSIONS
    fmt = body.get("encoding_format") or "float"
    items = inputs(body.get("input"))
    data = [
        {"object": "embedding", "index": i, "embedding": encode(vector(item, dims), fmt)}
        for i, item in enumerate(items)
    ]
    tokens = sum(input_tokens(item) for item in items)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
