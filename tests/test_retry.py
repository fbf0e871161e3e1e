"""Retry and fallback decisions, and backoff delays honouring Retry-After."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from nextmodel_proxy.config import ProviderConfig
from nextmodel_proxy.upstream.retry import (
    RetryPolicy,
    backoff_delay,
    retry_after_seconds,
    should_fall_back,
    should_retry,
)

NOW = dt.datetime(2026, 11, 22, 8, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (None, "upstream_unreachable"),
        (504, "upstream_timeout"),
        (429, None),
        (500, None),
        (502, None),
        (503, "upstream_error"),
        (408, None),
    ],
)
def test_transient_failures_before_the_first_byte_are_retried(status, code):
    assert should_retry(status, code, first_byte_sent=False)
    assert should_fall_back(status, code, first_byte_sent=False)


@pytest.mark.parametrize(
    ("status", "code"), [(400, None), (401, None), (404, "model_not_found"), (422, None)]
)
def test_client_errors_are_neither_retried_nor_passed_to_the_next_candidate(status, code):
    assert not should_retry(status, code, first_byte_sent=False)
    assert not should_fall_back(status, code, first_byte_sent=False)


@pytest.mark.parametrize(("status", "code"), [(None, "upstream_unreachable"), (500, None), (429, None)])
def test_nothing_is_retried_after_the_first_streamed_byte(status, code):
    assert not should_retry(status, code, first_byte_sent=True)
    assert not should_fall_back(status, code, first_byte_sent=True)


def test_missing_provider_key_moves_to_the_next_candidate_without_retrying():
    assert not should_retry(503, "provider_key_missing", first_byte_sent=False)
    assert should_fall_back(503, "provider_key_missing", first_byte_sent=False)


def test_backoff_doubles_from_base_and_is_capped():
    assert [backoff_delay(n, None) for n in (1, 2, 3, 4)] == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert backoff_delay(10, None) == 5.0
    assert backoff_delay(10_000, None) == 5.0  # no overflow for absurd attempt numbers
    assert backoff_delay(1, None, base=1.0, cap=0.5) == 0.5


def test_backoff_jitter_stays_within_half_to_full_delay():
    rng = random.Random(3)
    delays = [backoff_delay(3, None, rng=rng) for _ in range(200)]
    assert all(0.4 <= d <= 0.8 for d in delays) and len(set(delays)) > 100


def test_retry_after_seconds_wins_over_backoff_and_is_bounded():
    assert backoff_delay(1, "2") == 2.0
    assert backoff_delay(1, "1.5") == 1.5
    assert backoff_delay(1, "120") == 5.0
    assert backoff_delay(1, "-3") == 0.0


def test_retry_after_http_date_is_seconds_from_now():
    header = "Sun, 22 Nov 2026 08:00:03 GMT"
    assert retry_after_seconds(header, now=NOW) == 3.0
    assert backoff_delay(1, header, now=NOW) == 3.0
    assert retry_after_seconds("Sun, 22 Nov 2026 07:59:00 GMT", now=NOW) == 0.0  # already past


@pytest.mark.parametrize("header", [None, "", "soon", "nan", "inf"])
def test_unreadable_retry_after_falls_back_to_backoff(header):
    assert retry_after_seconds(header, now=NOW) is None
    assert backoff_delay(2, header, now=NOW) == pytest.approx(0.4)


def test_policy_gives_up_after_max_retries_or_on_a_long_retry_after():
    policy = RetryPolicy(max_retries=2, max_retry_after_s=30)
    assert policy.delay(1, None) == pytest.approx(0.2)
    assert policy.delay(2, "1") == 1.0
    assert policy.delay(3, None) is None
    assert policy.delay(1, "3600") is None  # better to try the next candidate than wait an hour


def test_policy_takes_max_retries_from_the_provider():
    provider = ProviderConfig(name="p", kind="openai", base_url="https://p.example", max_retries=0)
    assert RetryPolicy.for_provider(provider).delay(1, None) is None
