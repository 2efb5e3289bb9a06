"""Cron matches as UTC instants, evaluated in the event's timezone.

The arithmetic is cronsim's (Debian cron semantics). For an expression with a fixed minute and hour
(`30 1 * * *`) cronsim walks local wall-clock time:

- a local time skipped by a spring-forward change fires at the first valid minute after the gap
  (`0 2 * * *` in America/New_York fires at 03:00 EDT on that day);
- a local time repeated by a fall-back change fires once, at its first occurrence
  (`30 1 * * *` fires at 01:30 EDT, not again at 01:30 EST).

Expressions with a wildcard minute or hour (`*/15 * * * *`) step through real time and fire in both
repeated hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from .errors import SpecError


def cron_matches(expr: str, timezone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """The matches of `expr` strictly after the aware instant `after`, as increasing UTC datetimes.

    Ends when cronsim finds no match within 50 years.
    """
    latest = after.astimezone(UTC)
    for match in CronSim(expr, after.astimezone(timezone)):
        match_utc = match.astimezone(UTC)
        # Wall-clock iteration forgets which of two repeated hours `after` was in; skip what lies behind it.
        if match_utc > latest:
            latest = match_utc
            yield match_utc


def validate_cron(expr: object, field: str, timezone: ZoneInfo, reference: datetime) -> str:
    """Return `expr` if it is a 5-field cron expression with at least one match after `reference`."""
    if not isinstance(expr, str) or not expr.strip():
        raise SpecError(field, f"must be a 5-field cron expression such as '0 0 9 9 *', got {expr!r}")
    if len(expr.split()) != 5:
        raise SpecError(field, f"must have exactly 5 fields (minute hour day month weekday), got {expr!r}")
    try:
        first = next(cron_matches(expr, timezone, reference), None)
    except (CronSimError, ValueError, IndexError, AssertionError) as error:
        raise SpecError(field, f"invalid cron expression {expr!r}: {error or type(error).__name__}") from None
    if first is None:
        raise SpecError(field, f"cron expression {expr!r} never matches")
    return expr
