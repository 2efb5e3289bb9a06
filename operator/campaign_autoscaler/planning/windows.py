"""Campaign windows: the one window of a one-off event, or the cron-opened windows of a recurring one.

A recurring window opens at a cron match computed in the event's timezone (see `cron` for the
daylight-saving rules) and lasts `schedule.duration` of elapsed time, so a 26h window is 26 real hours
even across a clock change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from .cron import cron_matches
from .spec import CampaignSpec


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def lifecycle_start(spec: CampaignSpec, window: Window) -> datetime:
    """When scaling begins: the window start minus the lead time."""
    return window.start - spec.lead_time


def lifecycle_end(spec: CampaignSpec, window: Window) -> datetime:
    """When the baseline is back: the window end plus the ramp-down duration."""
    return window.end + spec.ramp_down_duration


def resolve_window(spec: CampaignSpec, now: datetime) -> Window:
    """The window to act on at `now`.

    One-off: its window, whatever `now` is. Recurring: the window whose lifecycle
    `[start - leadTime, end + rampDown.duration)` contains `now`, else the next one whose lifecycle starts
    after `now`.
    """
    _require_aware(now)
    if spec.start is not None and spec.end is not None:
        return Window(spec.start, spec.end)
    window = next(_recurring_windows(spec, _earliest_start_still_running(spec, now)), None)
    if window is None:
        raise ValueError(f"spec.schedule.cron has no match after {now.isoformat()}")
    return window


def windows_between(spec: CampaignSpec, start: datetime, end: datetime) -> list[Window]:
    """Every window whose lifecycle overlaps `[start, end)`, in time order."""
    _require_aware(start)
    _require_aware(end)
    if spec.start is not None and spec.end is not None:
        window = Window(spec.start, spec.end)
        return [window] if _lifecycle_overlaps(spec, window, start, end) else []
    found = []
    for window in _recurring_windows(spec, _earliest_start_still_running(spec, start)):
        if lifecycle_start(spec, window) >= end:
            break
        found.append(window)
    return found


def next_window(spec: CampaignSpec, window: Window) -> Window | None:
    """The recurring window after `window` (None for a one-off event)."""
    if spec.schedule is None:
        return None
    return next(_recurring_windows(spec, window.start), None)


def _recurring_windows(spec: CampaignSpec, after: datetime) -> Iterator[Window]:
    """Windows opening strictly after `after`."""
    assert spec.schedule is not None
    duration = spec.schedule.duration
    for opening in cron_matches(spec.schedule.cron, spec.timezone, after):
        yield Window(opening, opening + duration)


def _earliest_start_still_running(spec: CampaignSpec, now: datetime) -> datetime:
    """A window opening strictly after this instant has a lifecycle that ends strictly after `now`."""
    assert spec.schedule is not None
    return now - spec.schedule.duration - spec.ramp_down_duration


def _lifecycle_overlaps(spec: CampaignSpec, window: Window, start: datetime, end: datetime) -> bool:
    return lifecycle_start(spec, window) < end and lifecycle_end(spec, window) > start


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got {instant!r}")
