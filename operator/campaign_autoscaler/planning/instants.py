"""How instants are written: in status fields and Events, in JSON output, and for people."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def iso_utc(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, sub-second digits kept: `2026-09-08T17:00:00Z` (JSON output, errors)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def kube_time(moment: datetime) -> str:
    """Kubernetes' `Time` format: RFC 3339 in UTC to the second, `2026-09-08T17:00:00Z` (status, Events)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_kube_time(text: str) -> datetime:
    """An RFC 3339 instant as the API server writes it (`...Z`), as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def human_utc(moment: datetime) -> str:
    """`2026-09-08 17:00:00 UTC`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """`2026-09-09 00:00:00 WIB`: the wall-clock time in `zone` with its abbreviation."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
