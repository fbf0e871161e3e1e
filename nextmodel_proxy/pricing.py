"""Usage + price -> cost in exact Decimal USD; per-provider usage normalisation; display currency (pure)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from nextmodel_proxy.config import CurrencyConfig, Price
from nextmodel_proxy.config.prices import Rates
from nextmodel_proxy.price_resolve import ResolvedPrice

PICO = Decimal("1e-12")  # the ledger stores money as integer picodollars
PUSD_PER_USD = 10**12  # picodollars in one US dollar
_PER_TOKENS = Decimal(1_000_000)  # prices are USD per 1M tokens
# Wide enough that no intermediate product is ever rounded; the only rounding is the final quantize.
_EXACT = Context(prec=60, rounding=ROUND_HALF_EVEN)
# One receipt's cost never goes past this: the ledger's 64-bit picodollar columns end near $9.2M.
MAX_RECEIPT_USD = Decimal(1_000_000)


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


@dataclass(frozen=True, slots=True)
class Cost:
    """`amount` is exact USD quantized to picodollars, or None with a `reason` (never a silent 0)."""

    amount: Decimal | None
    reason: str | None = None


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
    try:
        cleaned = _cleaned(source, dialect, completion_required=completion_required)
    except _Untrusted as exc:
        return CheckedUsage(None, f"upstream usage not trusted: {exc}")
    return CheckedUsage(reader(cleaned))


def usage_trusted(raw: Any, *, completion_required: bool = True) -> bool:
    """check_usage(raw).usage is not None, for callers that only decide whether to keep the answer text."""
    return raw is not None and check_usage(raw, completion_required=completion_required).usage is not None


# --- money -------------------------------------------------------------------------------------


def cost(usage: Usage | None, price: Price | None, *, model: str | None = None) -> Cost:
    """Exact USD: uncached prompt at input, cache reads at cached_input, cache writes at cache_write
    (each falling back to input), completion at output; per 1M tokens, rounded once to picodollars."""
    if price is None:
        return Cost(None, f"no price for model {model}" if model else "no price for this model")
    if usage is None:
        return Cost(None, "no usage")
    cached_rate = price.cached_input if price.cached_input is not None else price.input
    write_rate = price.cache_write if price.cache_write is not None else price.input
    with localcontext(_EXACT):
        total = (
            usage.uncached_prompt_tokens * price.input
            + usage.cached_tokens * cached_rate
            + usage.cache_write_tokens * write_rate
            + usage.completion_tokens * price.output
        ) / _PER_TOKENS
        if (
            total > MAX_RECEIPT_USD
        ):  # only a misconfigured price gets here (counts are bounded): never overflow
            return Cost(None, f"cost beyond ${MAX_RECEIPT_USD} for one request (check the price of {model})")
        return Cost(total.quantize(PICO, rounding=ROUND_HALF_EVEN))


_KINDS = ("cached_input", "cache_write_1h", "cache_write", "input")  # the prompt's order, prefix first


def _unit(rates: Rates, kind: str) -> Decimal:
    """The per-1M rate of a token kind; cache reads and writes fall back to input, 1-hour writes to writes."""
    if kind == "cache_write_1h":
        value = rates.cache_write_1h if rates.cache_write_1h is not None else rates.cache_write
    else:
        value = getattr(rates, kind)
    return rates.input if value is None else value


# price_version -> (decimal places, ((bracket start, (rate per kind as an integer at that scale)), ...),
# output rate as an integer). Integer arithmetic keeps the cost exact and cheap on every receipt.
_SCALED: dict[str, tuple[int, tuple[tuple[int, tuple[int, ...]], ...], int]] = {}


def _scaled(price: ResolvedPrice) -> tuple[int, tuple[tuple[int, tuple[int, ...]], ...], int]:
    found = _SCALED.get(price.version)
    if found is not None:
        return found
    brackets = price.brackets or ((0, price.rates),)
    values = [_unit(r, k) for _s, r in brackets for k in _KINDS] + [price.rates.output]
    places = max(0, *(-v.as_tuple().exponent for v in values if v.is_finite()))
    factor = Decimal(10) ** places

    def whole(v: Decimal) -> int:
        return int(_EXACT.multiply(v, factor))

    scaled = (
        places,
        tuple((start, tuple(whole(_unit(r, k)) for k in _KINDS)) for start, r in brackets),
        whole(price.rates.output),
    )
    if len(_SCALED) > 4096:
        _SCALED.clear()
    _SCALED[price.version] = scaled
    return scaled


def native_cost(usage: Usage, price: ResolvedPrice) -> Decimal:
    """Exact cost in the price's own currency, rounded once to 1e-12: each input token at the rate of its
    kind in its bracket (one bracket unless a tier applies to the excess), output at the top rate. The
    prompt's order is cache reads (the prefix), 1-hour writes, 5-minute writes, then uncached tokens."""
    places, brackets, output = _scaled(price)
    counts = (
        usage.cached_tokens,
        usage.cache_write_1h_tokens,
        usage.cache_write_tokens - usage.cache_write_1h_tokens,
        usage.uncached_prompt_tokens,
    )
    total = usage.completion_tokens * output
    if len(brackets) == 1:
        rates = brackets[0][1]
        total += sum(n * r for n, r in zip(counts, rates, strict=True))
    else:
        pos = 0
        for kind, count in enumerate(counts):
            end = pos + count
            for i, (start, rates) in enumerate(brackets):
                stop = brackets[i + 1][0] if i + 1 < len(brackets) else end
                lo, hi = max(pos, start), min(end, stop)
                if hi > lo:
                    total += (hi - lo) * rates[kind]
            pos = end
    # total is in units of 10^-places per 1M tokens
    amount = Decimal(total).scaleb(-(places + 6), _EXACT)
    return amount.quantize(PICO, rounding=ROUND_HALF_EVEN, context=_EXACT)


def to_usd(amount: Decimal, fx_rate: Decimal) -> Decimal:
    """A native amount in USD at `fx_rate` units per USD, rounded once (half-even) to picodollars."""
    if fx_rate == 1:
        return amount
    return _EXACT.divide(amount, fx_rate).quantize(PICO, rounding=ROUND_HALF_EVEN, context=_EXACT)


@dataclass(frozen=True, slots=True)
class PricedCosts:
    """A receipt's money under a resolved price: USD figures and the billed cost in the native currency."""

    costs: ReceiptCosts
    native: Decimal | None


def resolved_costs(
    served_mode: str,
    usage: Usage | None,
    price: ResolvedPrice | None,
    fx_rate: Decimal,
    *,
    replay_ratio: Decimal,
    model: str | None = None,
) -> PricedCosts:
    """receipt_costs under a resolved (possibly non-USD) price: the native cost is exact, converted to USD
    once; a replay bills ratio x the fresh native cost."""
    if served_mode == "refused":
        return PricedCosts(ReceiptCosts(_ZERO, _ZERO, _ZERO, _ZERO), _ZERO)
    if price is None:
        reason = f"no price for model {model}" if model else "no price for this model"
        return PricedCosts(ReceiptCosts(None, None, None, None, reason), None)
    if usage is None:
        return PricedCosts(ReceiptCosts(None, None, None, None, "no usage"), None)
    fresh_native = native_cost(usage, price)
    fresh = to_usd(fresh_native, fx_rate)
    if served_mode == "exact-cache":
        billed_native = replay_billed(fresh_native, replay_ratio)
        billed = to_usd(billed_native, fx_rate)
        return PricedCosts(ReceiptCosts(_ZERO, billed, fresh, fresh - billed), billed_native)
    return PricedCosts(ReceiptCosts(fresh, fresh, fresh, _ZERO), fresh_native)


@dataclass(frozen=True, slots=True)
class ReceiptCosts:
    """The four money fields of a receipt (exact USD); all None together when the cost is unknown."""

    upstream: Decimal | None
    billed: Decimal | None
    fresh: Decimal | None
    savings: Decimal | None
    reason: str | None = None


_ZERO = Decimal(0).quantize(PICO)


def receipt_costs(
    served_mode: str,
    usage: Usage | None,
    price: Price | None,
    *,
    replay_ratio: Decimal,
    model: str | None = None,
) -> ReceiptCosts:
    """What a request cost upstream, what it is billed, what a fresh call would have cost, and the saving.
    refused: nothing went upstream, all 0. exact-cache: upstream 0, billed = fresh x replay_ratio.
    fresh/error: billed = upstream = fresh. Unknown price or usage: all None with the reason."""
    if served_mode == "refused":
        return ReceiptCosts(_ZERO, _ZERO, _ZERO, _ZERO)
    fresh = cost(usage, price, model=model)
    if fresh.amount is None:
        return ReceiptCosts(None, None, None, None, fresh.reason)
    if served_mode == "exact-cache":
        billed = replay_billed(fresh.amount, replay_ratio)
        return ReceiptCosts(_ZERO, billed, fresh.amount, fresh.amount - billed)
    return ReceiptCosts(fresh.amount, fresh.amount, fresh.amount, _ZERO)


def replay_billed(fresh: Decimal, ratio: Decimal) -> Decimal:
    """What a cache replay bills: the fresh cost times the configured ratio, at picodollar precision."""
    with localcontext(_EXACT):
        return (fresh * ratio).quantize(PICO, rounding=ROUND_HALF_EVEN)


def to_pusd(amount: Decimal) -> int:
    """USD -> integer picodollars (half-even at the 12th decimal)."""
    # Explicit context instead of localcontext(), and rounding only when needed: runs for every receipt stored.
    scaled = amount.scaleb(12, _EXACT)
    whole = int(scaled)
    if scaled == whole:
        return whole
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN, context=_EXACT))


def from_pusd(pusd: int) -> Decimal:
    """Integer picodollars -> exact USD with 12 decimal places."""
    return Decimal(pusd).scaleb(-12, context=_EXACT)


def to_pusd_ceiling(amount: Decimal) -> int:
    """USD -> integer picodollars rounded up (a worst case held against a budget never understates it)."""
    return int((amount * PUSD_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def pusd_in(rate: Decimal, pusd: int) -> Decimal:
    """Picodollars expressed exactly in a currency of `rate` units per USD (nothing is rounded)."""
    with localcontext(prec=100):
        return Decimal(pusd) * rate / PUSD_PER_USD


def plain_amount(amount: Decimal) -> str:
    """Shortest plain text of an amount: no exponent, no trailing zeros (0.0025, 3, 0)."""
    return f"{amount.normalize():f}"


def format_pusd(pusd: int) -> str:
    """format_usd(from_pusd(pusd)) with integer arithmetic only (the export's hot path)."""
    whole, frac = divmod(abs(pusd), PUSD_PER_USD)
    digits = f"{frac:012d}".rstrip("0").ljust(2, "0")
    return f"{'-' if pusd < 0 and (whole or frac) else ''}{whole}.{digits}"


def format_usd(amount: Decimal) -> str:
    """The canonical text of an amount: plain digits (never an exponent), trailing zeros dropped but at
    least 2 decimals: 0.00015, 1.50, 0.00, -0.000000000001. `Decimal(text) == amount` always holds."""
    text = format(amount, "f")
    if "." not in text:
        return f"{text}.00"
    whole, frac = text.split(".")
    frac = frac.rstrip("0").ljust(2, "0")
    if whole in ("-0", "-") and set(frac) == {"0"}:
        whole = "0"
    return f"{whole}.{frac}"


@functools.lru_cache(maxsize=1024)  # prices are frozen config values; this runs for every receipt
def price_version(price: Price | None) -> str | None:
    """12 hex of sha256 over a canonical text of the price entry, so any repricing is visible in receipts."""
    if price is None:
        return None
    parts = []
    for name in ("input", "output", "cached_input", "cache_write"):
        value = getattr(price, name)
        parts.append(f"{name}={'' if value is None else format_usd(value)}")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:12]


def to_display(
    amount_usd: Decimal, currency: CurrencyConfig, code: str | None = None
) -> tuple[Decimal, str, Decimal]:
    """(amount in the display currency, its code, the rate used = units per USD); exact, unrounded."""
    code = code or currency.display
    try:
        rate = currency.rates[code]
    except KeyError:
        raise ValueError(f"no exchange rate for {code!r} in currency.rates") from None
    return convert(amount_usd, rate), code, rate


def convert(amount_usd: Decimal, rate: Decimal) -> Decimal:
    """USD times a rate (units per USD), exact."""
    return _EXACT.multiply(amount_usd, rate)


# --- estimation --------------------------------------------------------------------------------

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
