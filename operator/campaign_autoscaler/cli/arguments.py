"""Argument types and the flags several commands share."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from campaign_autoscaler.planning import SpecError, parse_duration

# Prometheus' label names (its data model, not PromQL).
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

T = TypeVar("T")


def _positive_seconds(text: str) -> float:
    """A duration flag: Go-style (`15s`, `1m30s`) or plain seconds (`15`, `0.5`)."""
    try:
        value = float(text)
    except ValueError:
        try:
            value = parse_duration(text, "flag").total_seconds()
        except SpecError as err:
            raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 15s, 1m, 0.5)") from err
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _converted(text: str, convert: Callable[[str], T], what: str) -> T:
    """`convert(text)`, or the argparse error that names what was expected."""
    try:
        return convert(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from err


def _scale_factor(text: str) -> float:
    value = _converted(text, float, "a number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _prometheus_label_name(text: str) -> str:
    """A Prometheus label name, or empty (no namespace scoping)."""
    if text and not _LABEL_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a Prometheus label name: {text!r} (letters, digits, _)")
    return text


def _instant(text: str) -> datetime:
    """`--now`: an RFC 3339 instant with its offset (`2026-09-08T16:00:00Z`)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 date-time: {text!r}") from err
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset or Z: {text!r}")
    return moment.astimezone(UTC)


def _non_negative_duration(text: str) -> timedelta:
    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"must be a duration >= 0, got {text!r} (use e.g. 90s, 2m)")
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        pass
    try:
        return parse_duration(text, "flag")
    except SpecError as err:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90s, 2m)") from err


def _positive_number(text: str) -> float:
    value = _converted(text, float, "a number")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = _converted(text, int, "a whole number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _add_event_input_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        required=True,
        help="CampaignEvent manifest (YAML, several documents allowed; - for stdin)",
    )
    parser.add_argument(
        "--baseline",
        action="append",
        dest="baselines",
        default=[],
        metavar="NAME=N",
        help="baseline replicas of a Deployment (or targets[i] for a selector target); repeatable",
    )
    parser.add_argument(
        "--max-scale-factor",
        type=_scale_factor,
        default=10.0,
        help="default maxReplicas = max(replicas, baseline x this), as the operator's flag (10)",
    )
    _add_metrics_namespace_label(parser)
    parser.add_argument(
        "--now", type=_instant, help="plan as of this RFC 3339 instant (default: the current time)"
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")


def _add_metrics_namespace_label(parser: argparse.ArgumentParser) -> None:
    """The operator's tenancy flag; `plan`, `simulate` and `report` take it too, to ask what it asks."""
    parser.add_argument(
        "--metrics-namespace-label",
        type=_prometheus_label_name,
        default="namespace",
        help="the Prometheus label holding a series' namespace: every metric.query is held to its event's "
        'namespace with LABEL="<namespace>" (default namespace; empty: queries see every namespace)',
    )
