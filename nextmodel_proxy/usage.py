"""Token usage as providers report it: the Usage counts, the one table of provider dialects, and the one
sanitizer that decides whether an upstream's figures can be trusted (pure; money is pricing.py's)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts in OpenAI's semantics: cached and cache-write tokens are parts of prompt_tokens,
    reasoning tokens are part of completion_tokens."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written for 1 hour / extended retention

    def __post_init__(self) -> None:
        prompt, completion = self.prompt_tokens, self.completion_tokens
        cached, write, reasoning, write_1h = (
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.cache_write_1h_tokens,
        )
        # Every receipt builds one or two: plain ints within their totals pass with cheap checks only.
        if (
            prompt.__class__ is int
            and completion.__class__ is int
            and cached.__class__ is int
            and write.__class__ is int
            and reasoning.__class__ is int
            and write_1h.__class__ is int
            and cached >= 0
            and write >= 0
            and reasoning >= 0
            and write_1h >= 0
            and cached + write <= prompt
            and reasoning <= completion
            and write_1h <= write
        ):
            return
        for name in (
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cache_write_1h_tokens",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.cached_tokens + self.cache_write_tokens > self.prompt_tokens:
            raise ValueError("cached_tokens + cache_write_tokens cannot exceed prompt_tokens")
        if self.reasoning_tokens > self.completion_tokens:
            raise ValueError("reasoning_tokens cannot exceed completion_tokens")
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise ValueError("cache_write_1h_tokens cannot exceed cache_write_tokens")

    @property
    def uncached_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens - self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# --- usage normalisation: the one table of provider dialects ------------------------------------


def _count(value: Any) -> int:
    """A token count from untrusted JSON: non-negative ints only, anything else counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _field(raw: Mapping[str, Any], *path: str) -> int:
    node: Any = raw
    for key in path:
        if not isinstance(node, Mapping):
            return 0
        node = node.get(key)
    return _count(node)


def _has(raw: Mapping[str, Any], *path: str) -> bool:
    node: Any = raw
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return isinstance(node, int) and not isinstance(node, bool)


def _clamped(
    prompt: int, completion: int, cached: int, cache_write: int, reasoning: int, write_1h: int = 0
) -> Usage:
    """Parts never exceed their totals, so no token is billed twice and none goes negative."""
    cached = min(cached, prompt)
    cache_write = min(cache_write, prompt - cached)
    return Usage(
        prompt, completion, cached, cache_write, min(reasoning, completion), min(write_1h, cache_write)
    )


def _openai(raw: Mapping[str, Any]) -> Usage:
    # prompt_tokens already includes prompt_tokens_details.cached_tokens. DeepSeek sends the same object
    # plus prompt_cache_hit_tokens/prompt_cache_miss_tokens (hit + miss = prompt_tokens): the hit count is
    # the cached part, used only when the OpenAI detail is absent so the same tokens are never counted twice.
    hit, miss = _field(raw, "prompt_cache_hit_tokens"), _field(raw, "prompt_cache_miss_tokens")
    prompt = _field(raw, "prompt_tokens") if _has(raw, "prompt_tokens") else hit + miss
    if _has(raw, "prompt_tokens_details", "cached_tokens"):
        cached = _field(raw, "prompt_tokens_details", "cached_tokens")
    else:
        cached = hit
    # OpenAI-compatible gateways (OpenRouter) report cache writes as a part of prompt_tokens here.
    cache_write = _field(raw, "prompt_tokens_details", "cache_write_tokens")
    reasoning = _field(raw, "completion_tokens_details", "reasoning_tokens")
    # Our Anthropic translation names the 1-hour part of the writes here (cache_creation.ephemeral_1h_*).
    write_1h = _field(raw, "prompt_tokens_details", "cache_write_1h_tokens")
    return _clamped(prompt, _field(raw, "completion_tokens"), cached, cache_write, reasoning, write_1h)


def _anthropic(raw: Mapping[str, Any]) -> Usage:
    # input_tokens excludes both cache reads and cache writes; output_tokens includes thinking.
    cached = _field(raw, "cache_read_input_tokens")
    cache_write = _field(raw, "cache_creation_input_tokens")
    prompt = _field(raw, "input_tokens") + cached + cache_write
    write_1h = _field(raw, "cache_creation", "ephemeral_1h_input_tokens")
    return _clamped(prompt, _field(raw, "output_tokens"), cached, cache_write, 0, write_1h)


def _gemini(raw: Mapping[str, Any]) -> Usage:
    # promptTokenCount includes cachedContentTokenCount; tool-use prompt tokens are billed as input;
    # thoughtsTokenCount is billed as output but not included in candidatesTokenCount.
    prompt = _field(raw, "promptTokenCount") + _field(raw, "toolUsePromptTokenCount")
    thoughts = _field(raw, "thoughtsTokenCount")
    completion = _field(raw, "candidatesTokenCount") + thoughts
    return _clamped(prompt, completion, _field(raw, "cachedContentTokenCount"), 0, thoughts)


# dialect -> (key under which a whole response carries its usage, reader of the usage object)
DIALECTS: Mapping[str, tuple[str, Callable[[Mapping[str, Any]], Usage]]] = {
    "openai": ("usage", _openai),
    "deepseek": ("usage", _openai),
    "anthropic": ("usage", _anthropic),
    "gemini": ("usageMetadata", _gemini),
}


def normalise_usage(raw: Mapping[str, Any], dialect: str) -> Usage:
    """A provider's usage object (or a whole response carrying one) in OpenAI semantics."""
    try:
        envelope, reader = DIALECTS[dialect]
    except KeyError:
        raise ValueError(f"unknown usage dialect {dialect!r} (known: {', '.join(DIALECTS)})") from None
    if not isinstance(raw, Mapping):
        return Usage(0, 0)
    inner = raw.get(envelope)
    return reader(inner if isinstance(inner, Mapping) else raw)


# --- untrusted usage: the one sanitizer ---------------------------------------------------------

# No real request comes near this: the largest context windows are ~10M tokens. A count above it is a broken
# or hostile upstream, and trusting it could overflow the 64-bit picodollar cost and integer columns.
MAX_TOKEN_COUNT = 100_000_000

# Per dialect: (count paths that must be present, count paths that may be present). A path is a tuple of keys.
_COUNT_PATHS: Mapping[str, tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]]] = {
    "openai": (
        (("prompt_tokens",), ("completion_tokens",)),
        (
            ("prompt_tokens_details", "cached_tokens"),
            ("prompt_tokens_details", "cache_write_tokens"),
            ("prompt_tokens_details", "cache_write_1h_tokens"),
            ("completion_tokens_details", "reasoning_tokens"),
            ("prompt_cache_hit_tokens",),
            ("prompt_cache_miss_tokens",),
        ),
    ),
    "anthropic": (
        (("input_tokens",), ("output_tokens",)),
        (
            ("cache_read_input_tokens",),
            ("cache_creation_input_tokens",),
            ("cache_creation", "ephemeral_1h_input_tokens"),
        ),
    ),
    "gemini": (
        (("promptTokenCount",),),
        (
            ("candidatesTokenCount",),
            ("thoughtsTokenCount",),
            ("cachedContentTokenCount",),
            ("toolUsePromptTokenCount",),
        ),
    ),
}
_COUNT_PATHS = {**_COUNT_PATHS, "deepseek": _COUNT_PATHS["openai"]}


@dataclass(frozen=True, slots=True)
class CheckedUsage:
    """An upstream's usage after the sanitizer: `usage` when every figure is a believable count, else None
    with the `reason` it was not trusted (the receipt then estimates usage from the text)."""

    usage: Usage | None
    reason: str | None = None


class _Untrusted(ValueError):
    pass


def _checked_count(value: Any, name: str) -> int:
    """A count from untrusted JSON: an int (or a whole float such as 8753.0) from 0 to MAX_TOKEN_COUNT."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise _Untrusted(f"{name} is not a whole number ({type(value).__name__} {shown})")
    if value < 0:
        raise _Untrusted(f"{name} is negative ({value})")
    if value > MAX_TOKEN_COUNT:
        raise _Untrusted(f"{name} is beyond any real request ({value} > {MAX_TOKEN_COUNT})")
    return value


def _cleaned(raw: Mapping[str, Any], dialect: str, *, completion_required: bool) -> dict[str, Any]:
    """A copy of the known count fields with every value checked (raises _Untrusted)."""
    required, optional = _COUNT_PATHS[dialect]
    if not completion_required:
        required, optional = required[:1], (*required[1:], *optional)
    openai_like = dialect in ("openai", "deepseek")
    # DeepSeek's hit + miss stand in for prompt_tokens; with neither there is no prompt figure at all.
    if openai_like and raw.get("prompt_tokens") is None:
        if raw.get("prompt_cache_hit_tokens") is None or raw.get("prompt_cache_miss_tokens") is None:
            raise _Untrusted("prompt_tokens is missing")
    out: dict[str, Any] = {}
    for path, must in [(p, True) for p in required] + [(p, False) for p in optional]:
        node: Any = raw
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        name = ".".join(path)
        if node is None:
            if must and not (openai_like and path == ("prompt_tokens",)):
                raise _Untrusted(f"{name} is missing")
            continue
        target = out
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = _checked_count(node, name)
    return out


def _plain_count(value: Any) -> int | None:
    """A count that is a plain int within bounds (None: absent, or anything the full check must judge)."""
    if value.__class__ is int and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    return None


def _detail(details: Any, key: str) -> int | None:
    """A count under a *_details object for the fast path: 0 when absent, None when the full check decides."""
    if details is None:
        return 0
    if details.__class__ is not dict:
        return None
    value = details.get(key)
    return 0 if value is None else _plain_count(value)


def _plain_openai(raw: Mapping[str, Any], completion_required: bool) -> Usage | None:
    """check_usage's answer for the everyday OpenAI usage object (plain in-bounds ints, no DeepSeek hit/miss
    counts), without building the cleaned copy; None whenever anything needs the full sanitizer, which then
    decides exactly as before. Runs once or twice on every answer and every cache hit (issue 16)."""
    if raw.__class__ is not dict:
        return None
    if raw.get("prompt_cache_hit_tokens") is not None or raw.get("prompt_cache_miss_tokens") is not None:
        return None
    prompt = _plain_count(raw.get("prompt_tokens"))
    if prompt is None:
        return None
    completion_raw = raw.get("completion_tokens")
    if completion_raw is None:
        if completion_required:
            return None
        completion: int | None = 0
    else:
        completion = _plain_count(completion_raw)
    prompt_details = raw.get("prompt_tokens_details")
    cached = _detail(prompt_details, "cached_tokens")
    cache_write = _detail(prompt_details, "cache_write_tokens")
    write_1h = _detail(prompt_details, "cache_write_1h_tokens")
    reasoning = _detail(raw.get("completion_tokens_details"), "reasoning_tokens")
    if completion is None or cached is None or cache_write is None or write_1h is None or reasoning is None:
        return None
    return _clamped(prompt, completion, cached, cache_write, reasoning, write_1h)


def check_usage(raw: Any, dialect: str = "openai", *, completion_required: bool = True) -> CheckedUsage:
    """The one gate for an upstream's usage object (or a whole response carrying one). Whole-number floats
    count; strings, negatives, other non-numbers, missing counts, `{}` and counts over MAX_TOKEN_COUNT are
    not trusted (usage None + reason). `completion_required=False` for embeddings (no completion count)."""
    try:
        envelope, reader = DIALECTS[dialect]
    except KeyError:
        raise ValueError(f"unknown usage dialect {dialect!r} (known: {', '.join(DIALECTS)})") from None
    if not isinstance(raw, Mapping):
        return CheckedUsage(None, f"usage is not an object ({type(raw).__name__})")
    inner = raw.get(envelope)
    source = inner if isinstance(inner, Mapping) else raw
    if reader is _openai:
        usage = _plain_openai(source, completion_required)
        if usage is not None:
            return CheckedUsage(usage)
    try:
        cleaned = _cleaned(source, dialect, completion_required=completion_required)
    except _Untrusted as exc:
        return CheckedUsage(None, f"upstream usage not trusted: {exc}")
    return CheckedUsage(reader(cleaned))


def usage_trusted(raw: Any, *, completion_required: bool = True) -> bool:
    """check_usage(raw).usage is not None, for callers that only decide whether to keep the answer text."""
    return raw is not None and check_usage(raw, completion_required=completion_required).usage is not None
