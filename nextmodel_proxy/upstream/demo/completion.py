"""Legacy completions from the demo (pure): `prompt` (a string or a list), `suffix`, `max_tokens` (default 16,
as OpenAI's), `n`, `stop`, `echo`, `seed` and `logprobs` (0-5, in the legacy tokens/token_logprobs shape)."""

from __future__ import annotations

from typing import Any

import orjson
import xxhash

from nextmodel_proxy.estimate import estimate_tokens
from nextmodel_proxy.upstream.demo.answer import MAX_N, DemoInputError, cut, split_tokens, token_logprobs

DEFAULT_MAX_TOKENS = 16
MAX_LOGPROBS = 5


def prompts(body: dict[str, Any]) -> list[str]:
    """One text per prompt: a string, a list of strings, one token array, or a list of token arrays."""
    value = body.get("prompt")
    if isinstance(value, str):
        return [value]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return [" ".join(map(str, value))]
    if isinstance(value, list):
        return [v if isinstance(v, str) else " ".join(map(str, v)) for v in value]
    return [""]


def check(body: dict[str, Any]) -> None:
    value = body.get("prompt")
    if value is None:
        raise DemoInputError("Missing required parameter: 'prompt'.", "prompt")
    if not isinstance(value, str | list) or (
        isinstance(value, list) and not all(isinstance(v, str | int | list) for v in value)
    ):
        raise DemoInputError(
            "Invalid 'prompt': expected a string, an array of strings or token arrays.", "prompt"
        )
    if body.get("suffix") is not None and not isinstance(body["suffix"], str):
        raise DemoInputError("Invalid type for 'suffix': expected a string.", "suffix")
    logprobs = body.get("logprobs")
    if logprobs is not None and (
        isinstance(logprobs, bool) or not isinstance(logprobs, int) or not 0 <= logprobs <= MAX_LOGPROBS
    ):
        raise DemoInputError(f"Invalid 'logprobs': expected an integer from 0 to {MAX_LOGPROBS}.", "logprobs")
    n = body.get("n")
    if isinstance(n, int) and n * len(prompts(body)) > MAX_N:
        raise DemoInputError(f"Invalid 'n': at most {MAX_N} choices in all.", "n")


def completion(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The choices (text_completion shape) and the usage of one request."""
    seed = body.get("seed") if isinstance(body.get("seed"), int) else 0
    n = body.get("n") if isinstance(body.get("n"), int) else 1
    limit = body.get("max_tokens") if isinstance(body.get("max_tokens"), int) else DEFAULT_MAX_TOKENS
    suffix = body.get("suffix") if isinstance(body.get("suffix"), str) else None
    texts = prompts(body)
    choices, generated = [], 0
    for p, prompt in enumerate(texts):
        key = orjson.dumps([prompt, suffix, seed])
        for i in range(n):
            digest = xxhash.xxh3_64_hexdigest(key, seed=i)[:8]
            tail = " ".join(prompt.split()[-8:]) or "(empty prompt)"
            middle = f" and before: {' '.join(suffix.split()[:8])}" if suffix else ""
            text, finish = cut(
                f" [demo completion {digest}: no model was called; it follows: {tail}{middle}]",
                body.get("stop"),
                limit,
            )
            tokens = split_tokens(text)
            generated += len(tokens)
            shown = prompt + text if body.get("echo") is True else text
            choices.append(
                {
                    "text": shown,
                    "index": p * n + i,
                    "logprobs": _legacy_logprobs(
                        tokens, seed + i, body.get("logprobs"), len(shown) - len(text)
                    ),
                    "finish_reason": finish,
                }
            )
    prompt_tokens = sum(estimate_tokens(t) for t in texts)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": prompt_tokens + generated,
    }
    return choices, usage


def _legacy_logprobs(tokens: list[str], seed: int, top: Any, offset: int) -> dict[str, Any] | None:
    if not isinstance(top, int) or isinstance(top, bool):
        return None
    entries = token_logprobs(tokens, seed, top)
    offsets, at = [], offset
    for token in tokens:
        offsets.append(at)
        at += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries]
        if top
        else None,
        "text_offset": offsets,
    }
