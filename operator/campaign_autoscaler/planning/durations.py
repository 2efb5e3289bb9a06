"""Go-style and Prometheus-style duration strings."""

from __future__ import annotations

import re
from datetime import timedelta
from fractions import Fraction

from .errors import SpecError

# The CRD validates with the very same text; tests compare them.
GO_DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
PROMETHEUS_DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d|w|y))+$"

_GO_DURATION = re.compile(GO_DURATION_PATTERN)
_PROMETHEUS_DURATION = re.compile(PROMETHEUS_DURATION_PATTERN)
_TERM = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w|y)")

_UNIT_SECONDS = {
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
    "d": Fraction(86400),
    "w": Fraction(7 * 86400),
    "y": Fraction(365 * 86400),
}
# Go's time.Duration is an int64 of nanoseconds: nothing longer is a duration anywhere else either.
MAX_DURATION = timedelta(microseconds=(2**63 - 1) // 1000)


def parse_duration(text: str, field: str, *, prometheus: bool = False) -> timedelta:
    """Parse `90s`, `1h30m`, `1.5h` (or with `prometheus=True`: `365d`, `1w`, `1y`, no fractions)."""
    examples = "30s, 15m, 365d, 1w" if prometheus else "90s, 15m, 1h30m"
    if isinstance(text, bool) or not isinstance(text, str):
        raise SpecError(
            field, f"must be a duration string such as {examples}, got {type(text).__name__} {text!r}"
        )
    if not text:
        raise SpecError(field, f"must not be empty (a duration such as {examples})")
    if text.startswith("-"):
        raise SpecError(field, f"must not be negative, got {text!r}")
    pattern = _PROMETHEUS_DURATION if prometheus else _GO_DURATION
    if not pattern.fullmatch(text):
        raise SpecError(field, f"invalid duration {text!r} (use units such as {examples})")
    seconds = sum(Fraction(number) * _UNIT_SECONDS[unit] for number, unit in _TERM.findall(text))
    microseconds = round(seconds * 1_000_000)
    if microseconds > MAX_DURATION // timedelta(microseconds=1):
        raise SpecError(field, f"duration {text!r} is too long (at most {format_duration(MAX_DURATION)})")
    return timedelta(microseconds=microseconds)


def format_duration(td: timedelta) -> str:
    """Render a timedelta the Go way, without zero parts: `1h30m`, `45s`, `26h`, `1.5s`, `500ms`, `0s`."""
    total_us = td // timedelta(microseconds=1)
    if total_us < 0:
        return "-" + format_duration(-td)
    if total_us == 0:
        return "0s"
    if total_us < 1_000_000:
        return _decimal(Fraction(total_us, 1000)) + "ms"
    hours, rest_us = divmod(total_us, 3_600_000_000)
    minutes, rest_us = divmod(rest_us, 60_000_000)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    if rest_us:
        parts.append(_decimal(Fraction(rest_us, 1_000_000)) + "s")
    return "".join(parts)


def _decimal(value: Fraction) -> str:
    """A terminating decimal without trailing zeros (the denominators here divide a power of ten)."""
    whole, fraction = divmod(value, 1)
    if not fraction:
        return str(whole)
    digits = f"{fraction.numerator * 10**6 // fraction.denominator:06d}".rstrip("0")
    return f"{whole}.{digits}"
