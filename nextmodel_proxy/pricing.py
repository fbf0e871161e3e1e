"""Usage + price -> cost in exact Decimal USD, picodollars, FX and display currency: the only place money is
computed (pure). Usage counts and their sanitizer are usage.py's; token estimates are estimate.py's."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal, localcontext

from nextmodel_proxy.config import CurrencyConfig, Price
from nextmodel_proxy.config.prices import Rates
from nextmodel_proxy.price_resolve import ResolvedPrice
from nextmodel_proxy.usage import Usage

PICO = Decimal("1e-12")  # the ledger stores money as integer picodollars
PUSD_PER_USD = 10**12  # picodollars in one US dollar
_PER_TOKENS = Decimal(1_000_000)  # prices are USD per 1M tokens
# Wide enough that no intermediate product is ever rounded; the only rounding is the final quantize.
_EXACT = Context(prec=60, rounding=ROUND_HALF_EVEN)
# One receipt's cost never goes past this: the ledger's 64-bit picodollar columns end near $9.2M.
MAX_RECEIPT_USD = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Cost:
    """`amount` is exact USD quantized to picodollars, or None with a `reason` (never a silent 0)."""

    amount: Decimal | None
    reason: str | None = None


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
