import re
from datetime import timedelta

import pytest

from campaign_autoscaler.planning import (
    GO_DURATION_PATTERN,
    PROMETHEUS_DURATION_PATTERN,
    SpecError,
    format_duration,
    parse_duration,
)


def test_patterns_are_the_crd_text():
    assert GO_DURATION_PATTERN == r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
    assert PROMETHEUS_DURATION_PATTERN == r"^([0-9]+(ms|s|m|h|d|w|y))+$"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("26h", timedelta(hours=26)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("0s", timedelta(0)),
        ("1h1h", timedelta(hours=2)),
        ("0.001s", timedelta(milliseconds=1)),
        ("2h45m30.5s", timedelta(hours=2, minutes=45, seconds=30.5)),
    ],
)
def test_go_durations(text, expected):
    assert parse_duration(text, "spec.leadTime") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("365d", timedelta(days=365)),
        ("1w", timedelta(weeks=1)),
        ("1y", timedelta(days=365)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("30m", timedelta(minutes=30)),
    ],
)
def test_prometheus_durations(text, expected):
    assert parse_duration(text, "spec.targets[0].metric.forecast.offset", prometheus=True) == expected


@pytest.mark.parametrize(
    ("text", "prometheus", "fragment"),
    [
        ("", False, "must not be empty"),
        ("-5m", False, "must not be negative"),
        ("15", False, "invalid duration"),
        ("0", False, "invalid duration"),
        ("15 m", False, "invalid duration"),
        ("1d", False, "invalid duration"),
        ("1.5d", True, "invalid duration"),
        ("h", False, "invalid duration"),
        ("1.h", False, "invalid duration"),
        ("15m\n", False, "invalid duration"),
        ("P1D", True, "invalid duration"),
        ("9999999999h", False, "too long"),
    ],
)
def test_rejected_durations_name_the_field_and_value(text, prometheus, fragment):
    with pytest.raises(SpecError) as caught:
        parse_duration(text, "spec.rampDown.duration", prometheus=prometheus)
    assert caught.value.field == "spec.rampDown.duration"
    assert fragment in caught.value.message
    assert str(caught.value).startswith("spec.rampDown.duration: ")


@pytest.mark.parametrize("value", [15, 1.5, None, True, ["15m"]])
def test_non_string_durations_are_rejected(value):
    with pytest.raises(SpecError, match=r"^spec.leadTime: must be a duration string") as caught:
        parse_duration(value, "spec.leadTime")
    assert type(value).__name__ in caught.value.message


def test_parsers_accept_exactly_the_patterns():
    samples = ["1h", "1.5h", "1d", "1.5d", "10ms", "1m1s", "1e3s", "01h", "1H", "1h ", " 1h", "5y", "1w2d"]
    for prometheus, pattern in ((False, GO_DURATION_PATTERN), (True, PROMETHEUS_DURATION_PATTERN)):
        for text in samples:
            accepted = True
            try:
                parse_duration(text, "spec.leadTime", prometheus=prometheus)
            except SpecError:
                accepted = False
            assert accepted == bool(re.fullmatch(pattern, text)), (text, prometheus)


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(hours=26), "26h"),
        (timedelta(hours=1, seconds=5), "1h5s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(microseconds=1), "0.001ms"),
        (timedelta(0), "0s"),
        (timedelta(days=365), "8760h"),
        (-timedelta(minutes=5), "-5m"),
    ],
)
def test_format_duration(td, text):
    assert format_duration(td) == text


@pytest.mark.parametrize(
    "td",
    [
        timedelta(hours=1, minutes=30, seconds=1.25),
        timedelta(microseconds=7),
        timedelta(days=3, microseconds=10),
    ],
)
def test_format_then_parse_round_trips(td):
    assert parse_duration(format_duration(td), "spec.leadTime") == td
