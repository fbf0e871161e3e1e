"""Per-key RPM/TPM over a sliding minute, with Retry-After that says the real wait."""

from __future__ import annotations

import pytest

from nextmodel_proxy.access.auth import Principal
from nextmodel_proxy.access.ratelimit import RateLimiter
from nextmodel_proxy.errors import ProxyError


def _key(rpm: int | None = None, tpm: int | None = None, key_id: str = "key_a") -> Principal:
    return Principal(key_id, None, "web", None, None, rpm=rpm, tpm=tpm)


def _limited(limiter: RateLimiter, principal: Principal, tokens: int, now: float) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        limiter.check(principal, tokens, now)
    err = info.value
    assert (err.status, err.code, err.type) == (429, "rate_limit_exceeded", "rate_limit_error")
    return err


def test_requests_per_minute_refuse_with_retry_after_until_the_oldest_leaves() -> None:
    limiter, key = RateLimiter(), _key(rpm=2)
    limiter.check(key, 10, now=100.0)
    limiter.check(key, 10, now=130.2)
    err = _limited(limiter, key, 10, now=140.0)
    assert err.headers == {"Retry-After": "20"}  # the request at 100.0 leaves at 160.0
    assert "requests per minute (RPM): Limit 2, Used 2" in err.message
    limiter.check(key, 10, now=160.0)
    assert _limited(limiter, key, 10, now=160.5).headers["Retry-After"] == "30"  # ceil(190.2 - 160.5)


def test_retry_after_is_at_least_one_second() -> None:
    limiter, key = RateLimiter(), _key(rpm=1)
    limiter.check(key, 1, now=0.0)
    assert _limited(limiter, key, 1, now=59.9).headers["Retry-After"] == "1"


def test_tokens_per_minute_count_estimates_and_wait_for_enough_to_leave() -> None:
    limiter, key = RateLimiter(), _key(tpm=1000)
    limiter.check(key, 400, now=0.0)
    limiter.check(key, 400, now=10.0)
    err = _limited(limiter, key, 300, now=20.0)  # 1100 > 1000; once the first 400 leave (t=60) it fits
    assert err.headers["Retry-After"] == "40"
    assert "tokens per minute (TPM): Limit 1000, Used 800, Requested 300" in err.message
    limiter.check(key, 200, now=20.0)


def test_real_usage_corrects_the_admission_estimate() -> None:
    limiter, key = RateLimiter(), _key(tpm=1000)
    admission = limiter.check(key, 900, now=0.0)  # worst case estimate
    _limited(limiter, key, 200, now=1.0)
    limiter.correct(admission, 150)  # the answer was short
    limiter.check(key, 800, now=2.0)
    _limited(limiter, key, 100, now=3.0)


def test_a_correction_after_the_window_moved_on_is_ignored() -> None:
    limiter, key = RateLimiter(), _key(tpm=1000)
    old = limiter.check(key, 500, now=0.0)
    limiter.check(key, 1000, now=61.0)  # prunes the first admission
    limiter.correct(old, 5)
    _limited(limiter, key, 1, now=62.0)


def test_a_request_larger_than_the_whole_limit_says_so() -> None:
    limiter = RateLimiter()
    err = _limited(limiter, _key(tpm=100), 500, now=0.0)
    assert "larger than the limit" in err.message
    assert err.headers == {"Retry-After": "60", "x-should-retry": "false"}


def test_keys_are_limited_separately_and_unlimited_keys_are_not_tracked() -> None:
    limiter = RateLimiter()
    limiter.check(_key(rpm=1, key_id="key_a"), 1, now=0.0)
    limiter.check(_key(rpm=1, key_id="key_b"), 1, now=0.0)
    assert limiter.check(_key(), 10**9, now=0.0) is None
    assert limiter.check(None, 10**9, now=0.0) is None
    _limited(limiter, _key(rpm=1, key_id="key_a"), 1, now=1.0)
