"""timespec: the one duration grammar and the one UTC text form, used by config, CLI and API alike."""

from __future__ import annotations

import datetime as dt

import pytest

from nextmodel_proxy.config import ConfigError, parse_config
from nextmodel_proxy.timespec import format_utc, parse_duration, parse_time, parse_utc

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), (90, 90), ("30s", 30), ("15m", 900), ("1.5h", 5400), ("7d", 7 * 86400), ("2w", 14 * 86400)],
)
def test_one_duration_grammar(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "1y", "-3s", "ten", True, -1, None])
def test_bad_durations_are_refused(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_config_durations_use_the_same_grammar():
    assert parse_config({"cache": {"ttl": "2w"}}).cache.ttl_s == 14 * 86400
    with pytest.raises(ConfigError) as info:
        parse_config({"cache": {"ttl": "soon"}})
    assert info.value.path == "cache.ttl"


def test_times_are_iso_or_a_duration_ago():
    assert parse_time("2w", NOW) == NOW - dt.timedelta(weeks=2)
    assert parse_time("1.5h", NOW) == NOW - dt.timedelta(minutes=90)
    assert parse_time("2026-11-01", NOW) == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert parse_time("2026-11-01T10:00:00+02:00", NOW) == dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)
    with pytest.raises(ValueError):
        parse_time("90", NOW)  # a bare number is not a time


def test_utc_text_is_fixed_width_and_round_trips():
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    text = format_utc(moment)
    assert text == "2026-01-02T02:04:05.000006Z"
    assert text == moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert parse_utc(text) == moment
    assert parse_utc(None) is None
