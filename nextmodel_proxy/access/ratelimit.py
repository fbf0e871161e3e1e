"""Per-key requests and tokens per minute over a sliding 60-second window (a log of admissions, not buckets)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from nextmodel_proxy.errors import ProxyError

WINDOW_S = 60.0


class Limited(Protocol):
    """What check() reads from a principal (auth.Principal fits)."""

    @property
    def key_id(self) -> str: ...
    @property
    def rpm(self) -> int | None: ...
    @property
    def tpm(self) -> int | None: ...


@dataclass(slots=True)
class _Use:
    """One admitted request; `tokens` starts as the estimate and is corrected from real usage."""

    at: float
    tokens: int
    live: bool = True


@dataclass(slots=True)
class _KeyWindow:
    uses: deque[_Use] = field(default_factory=deque)
    tokens: int = 0

    def prune(self, now: float) -> None:
        while self.uses and self.uses[0].at <= now - WINDOW_S:
            use = self.uses.popleft()
            use.live = False
            self.tokens -= use.tokens


@dataclass(frozen=True, slots=True)
class Admission:
    """Handle for correcting a request's token count once its usage is known."""

    key_id: str
    use: _Use


class RateLimiter:
    """A sliding window is exact (no burst of 2x at a bucket edge) and Retry-After is the real wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, _KeyWindow] = {}

    def check(
        self, principal: Limited | None, tokens_estimate: int, now: float | None = None
    ) -> Admission | None:
        """Admit and count the request, or raise 429 rate_limit_exceeded with Retry-After; None if unlimited."""
        if principal is None or (principal.rpm is None and principal.tpm is None):
            return None
        key_id, rpm, tpm = principal.key_id, principal.rpm, principal.tpm
        now = time.monotonic() if now is None else now
        with self._lock:
            window = self._windows.setdefault(key_id, _KeyWindow())
            window.prune(now)
            if rpm is not None and len(window.uses) + 1 > rpm:
                wait = window.uses[len(window.uses) - rpm].at + WINDOW_S - now if rpm else WINDOW_S
                raise _limited(key_id, "requests per minute (RPM)", rpm, len(window.uses), 1, wait)
            if tpm is not None and window.tokens + tokens_estimate > tpm:
                raise _limited(
                    key_id,
                    "tokens per minute (TPM)",
                    tpm,
                    window.tokens,
                    tokens_estimate,
                    _token_wait(window, tokens_estimate, tpm, now),
                )
            use = _Use(now, tokens_estimate)
            window.uses.append(use)
            window.tokens += tokens_estimate
        return Admission(key_id, use)

    def correct(self, admission: Admission | None, actual_tokens: int) -> None:
        """Replace the admission's estimate by the real token count (ignored once it left the window)."""
        if admission is None:
            return
        with self._lock:
            use = admission.use
            if use.live:
                self._windows[admission.key_id].tokens += actual_tokens - use.tokens
                use.tokens = actual_tokens


def _token_wait(window: _KeyWindow, needed: int, tpm: int, now: float) -> float:
    """Seconds until enough counted tokens leave the window; a full minute if the request alone is too big."""
    excess = window.tokens + needed - tpm
    for use in window.uses:
        excess -= use.tokens
        if excess <= 0:
            return use.at + WINDOW_S - now
    return WINDOW_S


def _limited(key_id: str, what: str, limit: int, used: int, requested: int, wait_s: float) -> ProxyError:
    retry = max(1, math.ceil(wait_s))
    hint = " This request alone is larger than the limit." if requested > limit else ""
    message = (
        f"Rate limit reached for key {key_id} on {what}: Limit {limit}, Used {used}, "
        f"Requested {requested}. Please try again in {retry}s.{hint}"
    )
    headers = {"Retry-After": str(retry)}
    if requested > limit:
        headers["x-should-retry"] = "false"  # waiting cannot make it fit
    return ProxyError(429, message, "rate_limit_exceeded", headers=headers)
