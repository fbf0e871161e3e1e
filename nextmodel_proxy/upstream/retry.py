"""When to retry an upstream attempt or move to the next candidate, and how long to wait (pure)."""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import math
import random
from dataclasses import dataclass

from nextmodel_proxy.config import ProviderConfig

# Our own transport error codes (upstream/base.py) that mean "nothing came back": safe to try again.
TRANSIENT_CODES = frozenset({"upstream_unreachable", "upstream_timeout"})
# Errors that retrying the same provider cannot fix but another candidate can.
FALLBACK_ONLY_CODES = frozenset({"provider_key_missing"})
RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries per candidate and the bounds on waiting between them."""

    max_retries: int = 2
    base_s: float = 0.2
    cap_s: float = 5.0
    # A Retry-After longer than this is not waited out: the next candidate is tried instead.
    max_retry_after_s: float = 30.0

    @classmethod
    def for_provider(cls, provider: ProviderConfig) -> RetryPolicy:
        return _policy(cls, provider.max_retries)

    def delay(
        self,
        attempt: int,
        retry_after_header: str | None,
        *,
        now: dt.datetime | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before retry number `attempt` (1-based); None means give up on this candidate."""
        if attempt > self.max_retries:
            return None
        wanted = retry_after_seconds(retry_after_header, now=now)
        if wanted is not None and wanted > self.max_retry_after_s:
            return None
        return backoff_delay(attempt, retry_after_header, base=self.base_s, cap=self.cap_s, now=now, rng=rng)


@functools.lru_cache(maxsize=64)  # immutable, and asked for on every upstream attempt
def _policy(cls: type[RetryPolicy], max_retries: int) -> RetryPolicy:
    return cls(max_retries=max_retries)


def _transient(status: int | None, error_code: str | None) -> bool:
    if error_code in TRANSIENT_CODES:
        return True
    return status is not None and (status in RETRYABLE_STATUSES or 500 <= status <= 599)


def should_retry(status: int | None, error_code: str | None, first_byte_sent: bool) -> bool:
    """Retry the same candidate? Connect errors, timeouts, 408/429/5xx; never once the client got a byte."""
    if first_byte_sent or error_code in FALLBACK_ONLY_CODES:
        return False
    return _transient(status, error_code)


def should_fall_back(status: int | None, error_code: str | None, first_byte_sent: bool) -> bool:
    """Move on to the next candidate? Whenever a retry would be allowed, and also for a missing key."""
    if first_byte_sent:
        return False
    return error_code in FALLBACK_ONLY_CODES or _transient(status, error_code)


def retry_after_seconds(header: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date; None if absent or unreadable."""
    if header is None or not header.strip():
        return None
    text = header.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(
    attempt: int,
    retry_after_header: str | None,
    *,
    base: float = 0.2,
    cap: float = 5.0,
    now: dt.datetime | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds before retry `attempt` (1-based): Retry-After if given, else base x 2^(attempt-1); <= cap."""
    wanted = retry_after_seconds(retry_after_header, now=now)
    if wanted is None:
        wanted = base * (2 ** min(max(0, attempt - 1), 32))
        if rng is not None:
            # Jitter spreads retries from many clients so they do not hit a recovering upstream together.
            wanted *= 0.5 + rng.random() / 2
    return min(cap, max(0.0, wanted))
