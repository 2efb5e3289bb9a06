"""Traffic curves: requests per second, one value per minute.

A curve comes from a CSV file or from the built-in synthetic 9.9 profile.

CSV format (`--traffic FILE.csv`), one row per minute, two columns `minute_offset_or_timestamp,rps`:

    minute_offset_or_timestamp,rps      <- optional header
    # comment lines and blank lines are ignored
    -120,410.5                          <- minutes relative to the window opening (0 = `start`) ...
    2026-09-09T00:00:00+07:00,2500      <- ... or RFC 3339 timestamps on whole minutes (one form per file;
                                           no offset = wall-clock time in the event's timezone)

`rps` is the mean request rate during that minute (a number >= 0). Rows must be in increasing time order;
a minute missing between two rows keeps the rate of the row before it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from campaign_autoscaler.planning.instants import iso_utc

MINUTE = timedelta(minutes=1)
CSV_HEADER = ("minute_offset_or_timestamp", "rps")

# The synthetic 9.9 day. Publicly reported figure for the 9.9 2024 sale: order-tracking traffic +150 % at the
# opening, i.e. 2.5x a normal day's peak. Everything else about the shape is an assumption, documented here.
SYNTHETIC_NORMAL_PEAK_RPS = 1000.0
SYNTHETIC_SURGE = 2.5  # x the normal daily peak, from the opening for SURGE_HOLD
DIURNAL_PEAK_HOUR = 20.5  # local time of a normal day's busiest moment (evening shopping)
DIURNAL_LOW = 0.35  # a normal night's trough, as a share of the normal peak
WARM_UP = timedelta(minutes=15)  # shoppers gather before the opening ...
WARM_UP_LEVEL = 1.3  # ... up to this share of the normal peak just before it
SURGE_HOLD = timedelta(minutes=20)
SURGE_HALF_LIFE = timedelta(minutes=90)
CAMPAIGN_LEVEL = 0.9  # where the surge decays to for the rest of the window (a busy day, not a peak)
MARGIN_BEFORE = timedelta(hours=3)
MIN_SPAN_AFTER_START = timedelta(hours=21)  # with MARGIN_BEFORE: at least a whole day
MARGIN_AFTER = timedelta(hours=1)


class TrafficError(ValueError):
    """A traffic file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class TrafficCurve:
    """Mean requests per second during each minute, from `start` (UTC) on."""

    start: datetime
    rps: tuple[float, ...]
    source: str
    normal_peak_rps: float | None = None  # a normal day's peak when the curve knows it (synthetic profile)

    @property
    def end(self) -> datetime:
        return self.start + len(self.rps) * MINUTE

    def minutes(self) -> Iterator[tuple[datetime, float]]:
        for index, rps in enumerate(self.rps):
            yield self.start + index * MINUTE, rps


# --- the synthetic 9.9 profile ------------------------------------------------------------------------------
def synthetic_9_9(
    window_start: datetime,
    window_end: datetime,
    timezone: ZoneInfo,
    *,
    covers_from: datetime,
    covers_until: datetime,
    normal_peak_rps: float = SYNTHETIC_NORMAL_PEAK_RPS,
) -> TrafficCurve:
    """A SYNTHETIC campaign day around one window: a normal diurnal curve plus the 9.9 surge.

    Deterministic (no randomness). The normal day follows a cosine between DIURNAL_LOW and 1.0 x the normal
    peak, busiest at DIURNAL_PEAK_HOUR in the event's timezone. Shoppers gather over the WARM_UP before the
    opening (up to WARM_UP_LEVEL), demand jumps to SYNTHETIC_SURGE (2.5x, the reported +150 %) at `start`,
    holds SURGE_HOLD, then halves its excess over CAMPAIGN_LEVEL every SURGE_HALF_LIFE until `end`, where the
    normal curve resumes. The curve spans at least a day: from MARGIN_BEFORE before the opening (or earlier,
    to include `covers_from`) to MARGIN_AFTER after `covers_until`.
    """
    first = _floor_minute(min(window_start - MARGIN_BEFORE, covers_from))
    last = max(window_start + MIN_SPAN_AFTER_START, covers_until + MARGIN_AFTER)
    count = math.ceil((last - first) / MINUTE)
    rps = tuple(
        round(normal_peak_rps * _synthetic_share(first + i * MINUTE, window_start, window_end, timezone), 3)
        for i in range(count)
    )
    return TrafficCurve(start=first, rps=rps, source="synthetic 9.9 profile", normal_peak_rps=normal_peak_rps)


def synthetic_previous_9_9(
    window_start: datetime,
    window_end: datetime,
    timezone: ZoneInfo,
    *,
    offset: timedelta,
    covers_from: datetime,
    covers_until: datetime,
) -> TrafficCurve:
    """A SYNTHETIC previous campaign for `synthetic_9_9`: the same model run for the window `offset` earlier
    (same normal day, same surge), moved forward by `offset` into this window's time. With a 365d offset the
    local times of day match, so it equals this year's curve: a forecast that is exactly right (growth 1);
    the benchmarks also replay a year that beats it."""
    last = synthetic_9_9(
        window_start - offset,
        window_end - offset,
        timezone,
        covers_from=covers_from - offset,
        covers_until=covers_until - offset,
    )
    return shifted(last, offset, f"synthetic previous 9.9 profile ({_days(offset)} earlier)")


def shifted(curve: TrafficCurve, offset: timedelta, source: str | None = None) -> TrafficCurve:
    """The same curve, `offset` later."""
    return TrafficCurve(
        curve.start + offset, curve.rps, source or curve.source, normal_peak_rps=curve.normal_peak_rps
    )


def _days(offset: timedelta) -> str:
    return f"{offset.days}d" if offset == timedelta(days=offset.days) else str(offset)


def _synthetic_share(at: datetime, start: datetime, end: datetime, timezone: ZoneInfo) -> float:
    """Demand at `at` as a share of a normal day's peak."""
    return max(_diurnal_share(at, timezone), _campaign_share(at, start, end))


def _diurnal_share(at: datetime, timezone: ZoneInfo) -> float:
    local = at.astimezone(timezone)
    hour = local.hour + local.minute / 60
    wave = (1 + math.cos(2 * math.pi * (hour - DIURNAL_PEAK_HOUR) / 24)) / 2
    return DIURNAL_LOW + (1 - DIURNAL_LOW) * wave


def _campaign_share(at: datetime, start: datetime, end: datetime) -> float:
    if start - WARM_UP <= at < start:
        return WARM_UP_LEVEL * ((at - (start - WARM_UP)) / WARM_UP)
    if start <= at < start + SURGE_HOLD:
        return SYNTHETIC_SURGE
    if start + SURGE_HOLD <= at < end:
        halvings = (at - start - SURGE_HOLD) / SURGE_HALF_LIFE
        return CAMPAIGN_LEVEL + (SYNTHETIC_SURGE - CAMPAIGN_LEVEL) * 0.5**halvings
    return 0.0


def _floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


# --- CSV ----------------------------------------------------------------------------------------------------
def parse_traffic_csv(text: str, source: str, *, zero: datetime, timezone: ZoneInfo) -> TrafficCurve:
    """Read the CSV format described in the module docstring; minute offsets count from `zero`."""
    samples = _csv_samples(text, source, zero, timezone)
    if not samples:
        raise TrafficError(f"{source}: no traffic rows (expected {','.join(CSV_HEADER)})")
    first_at = samples[0][1]
    rps: list[float] = []
    for line, at, value in samples:
        index = (at - first_at) // MINUTE
        if index < len(rps):
            raise TrafficError(f"{source}:{line}: {iso_utc(at)} is not after the row before it")
        if rps:  # a missing minute keeps the rate of the row before it
            rps.extend([rps[-1]] * (index - len(rps)))
        rps.append(value)
    return TrafficCurve(start=first_at, rps=tuple(rps), source=source)


def _csv_samples(
    text: str, source: str, zero: datetime, timezone: ZoneInfo
) -> list[tuple[int, datetime, float]]:
    samples: list[tuple[int, datetime, float]] = []
    forms: set[str] = set()
    for line, row in _csv_rows(text):
        if not samples and not forms and _is_header(row):
            forms.add("header")
            continue
        if len(row) != 2:
            raise TrafficError(f"{source}:{line}: expected 2 columns {','.join(CSV_HEADER)}, got {len(row)}")
        form, at = _row_instant(row[0].strip(), source, line, zero, timezone)
        forms.add(form)
        if {"offset", "timestamp"} <= forms:
            raise TrafficError(f"{source}:{line}: mixes minute offsets and timestamps; use one form per file")
        samples.append((line, at, _row_rps(row[1].strip(), source, line)))
    return samples


def _csv_rows(text: str) -> Iterator[tuple[int, Sequence[str]]]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if raw.strip() and not raw.lstrip().startswith("#"):
            yield line, next(csv.reader([raw]))


def _is_header(row: Sequence[str]) -> bool:
    """Column names: no number in the rps column and neither an offset nor a timestamp in the first."""
    return (
        len(row) == 2
        and not _parses(float, row[1])
        and not _parses(int, row[0])
        and not _parses(datetime.fromisoformat, row[0])
    )


def _parses(parse: Callable[[str], object], text: str) -> bool:
    try:
        parse(text.strip())
    except ValueError:
        return False
    return True


def _row_instant(
    text: str, source: str, line: int, zero: datetime, timezone: ZoneInfo
) -> tuple[str, datetime]:
    try:
        return "offset", zero + int(text) * MINUTE
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TrafficError(
            f"{source}:{line}: {text!r} is neither a whole minute offset nor an RFC 3339 timestamp"
        ) from None
    if parsed.second or parsed.microsecond:
        raise TrafficError(f"{source}:{line}: timestamp {text!r} is not on a whole minute")
    local = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone)
    return "timestamp", local.astimezone(UTC)


def _row_rps(text: str, source: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TrafficError(f"{source}:{line}: rps {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise TrafficError(f"{source}:{line}: rps must be a finite number >= 0, got {text!r}")
    return value
