from datetime import UTC, datetime, timedelta, timezone

import pytest

from campaign_autoscaler.planning import (
    Window,
    lifecycle_end,
    lifecycle_start,
    next_window,
    parse_spec,
    resolve_window,
    windows_between,
)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def recurring(cron, duration, *, tz="UTC", lead="15m", ramp_down="30m"):
    return parse_spec(
        {
            "timezone": tz,
            "schedule": {"cron": cron, "duration": duration},
            "leadTime": lead,
            "rampDown": {"duration": ramp_down},
            "targets": [{"name": "checkout"}],
        }
    )


def one_off(start, end, *, tz="UTC", lead="15m", ramp_down="30m"):
    return parse_spec(
        {
            "timezone": tz,
            "start": start,
            "end": end,
            "leadTime": lead,
            "rampDown": {"duration": ramp_down},
            "targets": [{"name": "checkout"}],
        }
    )


def test_one_off_window_whatever_now_is():
    spec = one_off("2026-09-09T00:00:00", "2026-09-10T02:00:00", tz="Asia/Jakarta")
    expected = Window(utc(2026, 9, 8, 17), utc(2026, 9, 9, 19))
    for now in (utc(2020, 1, 1), utc(2026, 9, 9), utc(2030, 1, 1)):
        assert resolve_window(spec, now) == expected
    assert lifecycle_start(spec, expected) == utc(2026, 9, 8, 16, 45)
    assert lifecycle_end(spec, expected) == utc(2026, 9, 9, 19, 30)
    assert next_window(spec, expected) is None


def test_one_off_window_across_midnight():
    spec = one_off("2026-11-10T22:00:00+08:00", "2026-11-11T02:00:00+08:00", lead="1h")
    window = resolve_window(spec, utc(2026, 11, 10))
    assert window == Window(utc(2026, 11, 10, 14), utc(2026, 11, 10, 18))
    assert window.end - window.start == timedelta(hours=4)


def test_recurring_window_in_jakarta():
    spec = recurring("0 0 9 9 *", "26h", tz="Asia/Jakarta")
    window = resolve_window(spec, utc(2026, 6, 1))
    assert window == Window(utc(2026, 9, 8, 17), utc(2026, 9, 9, 19))
    assert window.start.tzinfo is UTC


def test_recurring_window_containing_now_from_lead_time_to_end_of_ramp_down():
    spec = recurring("0 0 9 9 *", "26h", tz="Asia/Jakarta", lead="30m", ramp_down="1h")
    this_year = Window(utc(2026, 9, 8, 17), utc(2026, 9, 9, 19))
    next_year = Window(utc(2027, 9, 8, 17), utc(2027, 9, 9, 19))
    assert resolve_window(spec, utc(2026, 9, 8, 16, 29, 59)) == this_year  # pending: the next one
    assert resolve_window(spec, utc(2026, 9, 8, 16, 30)) == this_year  # lifecycle starts
    assert resolve_window(spec, utc(2026, 9, 9, 12)) == this_year  # active
    assert resolve_window(spec, utc(2026, 9, 9, 19, 59, 59)) == this_year  # still ramping down
    assert resolve_window(spec, utc(2026, 9, 9, 20)) == next_year  # lifecycle over
    assert next_window(spec, this_year) == next_year


def test_next_occurrence_crosses_into_next_year():
    spec = recurring("0 0 11 11 *", "24h", tz="Asia/Shanghai")
    window = resolve_window(spec, utc(2026, 12, 1))
    assert window.start == utc(2027, 11, 10, 16)
    december = recurring("0 20 12 12 *", "6h")
    assert resolve_window(december, utc(2026, 12, 31, 23)).start == utc(2027, 12, 12, 20)


def test_december_window_running_over_new_year():
    spec = recurring("0 20 31 12 *", "8h", tz="Asia/Jakarta")
    window = resolve_window(spec, utc(2026, 12, 31, 20))  # 03:00 on Jan 1 in Jakarta
    assert window == Window(utc(2026, 12, 31, 13), utc(2026, 12, 31, 21))
    assert window.end.astimezone(spec.timezone).date().isoformat() == "2027-01-01"
    assert resolve_window(spec, utc(2026, 12, 31, 21, 29)) == window  # ramping down
    assert resolve_window(spec, utc(2026, 12, 31, 21, 30)).start == utc(2027, 12, 31, 13)


def test_daily_window_across_midnight():
    spec = recurring("0 22 * * *", "4h", tz="Europe/Berlin", lead="0s", ramp_down="0s")
    window = resolve_window(spec, utc(2026, 7, 2, 23))  # 01:00 on July 3 in Berlin (CEST, +02:00)
    assert window == Window(utc(2026, 7, 2, 20), utc(2026, 7, 3, 0))


def test_spring_forward_cron_at_two_fires_at_three():
    # America/New_York, 2026-03-08: 02:00 EST -> 03:00 EDT; like Debian cron the job runs at 03:00 EDT.
    spec = recurring("0 2 * * *", "1h", tz="America/New_York", lead="0s", ramp_down="0s")
    windows = windows_between(spec, utc(2026, 3, 7), utc(2026, 3, 10))
    assert [w.start for w in windows] == [utc(2026, 3, 7, 7), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6)]
    assert [w.start.astimezone(spec.timezone).hour for w in windows] == [2, 3, 2]
    assert all(w.end - w.start == timedelta(hours=1) for w in windows)


def test_fall_back_cron_in_repeated_hour_fires_once():
    # 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens twice, the window opens at the first (EDT).
    spec = recurring("30 1 * * *", "2h", tz="America/New_York", lead="0s", ramp_down="0s")
    windows = windows_between(spec, utc(2026, 10, 31), utc(2026, 11, 3))
    assert [w.start for w in windows] == [
        utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
    ]


def test_fall_back_resolution_from_inside_the_repeated_hour():
    spec = recurring("30 1 * * *", "20m", tz="America/New_York", lead="0s", ramp_down="0s")
    # 01:40 EST, after the window (01:30-01:50 EDT) has long closed: the next is tomorrow's.
    now = datetime(2026, 11, 1, 1, 40, tzinfo=timezone(timedelta(hours=-5)))
    assert resolve_window(spec, now).start == utc(2026, 11, 2, 6, 30)
    # 01:25 EST, the second 01:25 of the day: the 01:30 EDT window was an hour ago.
    now = datetime(2026, 11, 1, 1, 25, tzinfo=timezone(timedelta(hours=-5)))
    assert resolve_window(spec, now).start == utc(2026, 11, 2, 6, 30)


def test_window_duration_is_elapsed_time_across_dst():
    spec = recurring("0 0 8 3 *", "26h", tz="America/New_York", lead="0s", ramp_down="0s")
    window = resolve_window(spec, utc(2026, 1, 1))
    assert window.end - window.start == timedelta(hours=26)
    assert window.end.astimezone(spec.timezone).hour == 3  # wall clock moved an hour forward


def test_wildcard_hour_cron_fires_in_both_repeated_hours():
    spec = recurring("*/30 * * * *", "10m", tz="America/New_York", lead="0s", ramp_down="0s")
    windows = windows_between(spec, utc(2026, 11, 1, 5), utc(2026, 11, 1, 7))
    assert [w.start for w in windows] == [
        utc(2026, 11, 1, 5),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 6),
        utc(2026, 11, 1, 6, 30),
    ]


def test_windows_between_includes_partially_overlapping_lifecycles():
    spec = recurring("0 10 * * *", "2h", lead="1h", ramp_down="1h")
    windows = windows_between(spec, utc(2026, 5, 1, 12, 30), utc(2026, 5, 3, 9))
    # May 1: lifecycle 09:00-13:00 overlaps; May 2: inside; May 3: lifecycle starts 09:00, not before the end.
    assert [w.start for w in windows] == [utc(2026, 5, 1, 10), utc(2026, 5, 2, 10)]


def test_windows_between_one_off():
    spec = one_off("2026-09-09T00:00:00Z", "2026-09-09T06:00:00Z")
    assert windows_between(spec, utc(2026, 9, 8), utc(2026, 9, 10)) == [
        Window(utc(2026, 9, 9), utc(2026, 9, 9, 6))
    ]
    assert windows_between(spec, utc(2026, 9, 9, 6, 30), utc(2026, 9, 10)) == []
    assert windows_between(spec, utc(2026, 9, 1), utc(2026, 9, 8, 23, 45)) == []
    assert len(windows_between(spec, utc(2026, 9, 1), utc(2026, 9, 8, 23, 45, 1))) == 1


def test_naive_now_is_rejected():
    spec = recurring("0 0 9 9 *", "26h")
    with pytest.raises(ValueError, match="timezone-aware"):
        resolve_window(spec, datetime(2026, 1, 1))
