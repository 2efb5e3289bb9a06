"""The CampaignEvent spec, parsed and validated once into frozen dataclasses.

Every problem raises a SpecError naming the field by its path in the contract (`spec.targets[1].replicas`).

Local times: `start`/`end` without an offset are wall-clock times in `spec.timezone`. A wall-clock time
skipped by a daylight-saving change (02:30 on a spring-forward day) is an error; a repeated one (01:30 on
a fall-back day) means its first occurrence, before the clocks go back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .cron import cron_matches, validate_cron
from .durations import format_duration, parse_duration
from .errors import SpecError
from .instants import iso_utc
from .promql import MetricsScope, scope_query

DEFAULT_TIMEZONE = "UTC"
DEFAULT_LEAD_TIME = timedelta(minutes=15)
DEFAULT_RAMP_UP_STEPS = 1
DEFAULT_RAMP_DOWN_DURATION = timedelta(minutes=30)
DEFAULT_RAMP_DOWN_STEPS = 3
DEFAULT_TRAFFIC_MULTIPLIER = 2.0
DEFAULT_FORECAST_GROWTH = 1.0
FORECAST_MODES = ("peak", "curve")

MAX_STEPS = 1000
MAX_TARGETS = 50  # the CRD's maxItems: the API server refuses more
MAX_QUERY_LENGTH = 2000  # the CRD's maxLength of metric.query
MAX_REPLICAS = 2**31 - 1  # the scale subresource is an int32
EARLIEST_YEAR, LATEST_YEAR = 1970, 9000  # leaves room for the longest lead time / ramp-down around a window
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# Where the check for overlapping recurring windows starts looking: a fixed instant keeps parsing pure.
_OVERLAP_CHECK_FROM = datetime(2025, 1, 1, tzinfo=UTC)
_OVERLAP_CHECK_MATCHES = 400
_OVERLAP_CHECK_SPAN = timedelta(days=2 * 366)

_SPEC_KEYS = (
    "timezone",
    "start",
    "end",
    "schedule",
    "leadTime",
    "rampUp",
    "rampDown",
    "trafficMultiplier",
    "targets",
    "nodeHeadroom",
    "dryRun",
)
_TARGET_KEYS = (
    "name",
    "selector",
    "kind",
    "apiVersion",
    "multiplier",
    "replicas",
    "minReplicas",
    "maxReplicas",
    "metric",
)

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}:\d{2})(?P<fraction>\.\d+)?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})?"
)
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_KIND = re.compile(r"[A-Z][A-Za-z0-9]{0,62}")
_API_VERSION = re.compile(rf"({_DNS_LABEL}(\.{_DNS_LABEL})*/)?v[0-9]+((alpha|beta)[0-9]+)?")
DEFAULT_KIND = "Deployment"
DEFAULT_API_VERSION = "apps/v1"
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


@dataclass(frozen=True)
class Schedule:
    cron: str
    duration: timedelta


@dataclass(frozen=True)
class NodeHeadroom:
    lead_time: timedelta  # placeholders from start - leadTime - this


@dataclass(frozen=True)
class Forecast:
    offset: timedelta
    offset_text: str
    growth: float = DEFAULT_FORECAST_GROWTH
    mode: str = "peak"  # peak: one floor from the previous window's peak; curve: a floor over time
    lookahead: timedelta | None = None  # curve only; None: leadTime / rampUp.steps

    @property
    def follows_curve(self) -> bool:
        return self.mode == "curve"


@dataclass(frozen=True)
class MetricSpec:
    query: str
    target_per_replica: float
    forecast: Forecast | None = None


@dataclass(frozen=True)
class LabelExpression:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()

    def selector_term(self) -> str:
        values = ",".join(sorted(self.values))
        return {
            "In": f"{self.key} in ({values})",
            "NotIn": f"{self.key} notin ({values})",
            "Exists": self.key,
            "DoesNotExist": f"!{self.key}",
        }[self.operator]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True)
class TargetSpec:
    index: int
    name: str | None = None
    match_labels: Mapping[str, str] | None = field(default=None, hash=False)
    match_expressions: tuple[LabelExpression, ...] = ()
    multiplier: float | None = None
    replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    metric: MetricSpec | None = None
    kind: str = DEFAULT_KIND
    api_version: str = DEFAULT_API_VERSION
    kind_given: bool = False  # `kind` was set in the spec (a selector without it may not match other kinds)

    def field(self, name: str = "") -> str:
        path = f"spec.targets[{self.index}]"
        return f"{path}.{name}" if name else path

    @property
    def by_name(self) -> bool:
        return self.name is not None

    def label_selector(self) -> str | None:
        """The selector as a Kubernetes label-selector string; None for a target by name."""
        if self.by_name:
            return None
        labels = self.match_labels or {}
        terms = [f"{key}={labels[key]}" for key in sorted(labels)]
        terms += [expression.selector_term() for expression in self.match_expressions]
        return ",".join(terms)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a workload with these labels is selected (always False for a target by name)."""
        if self.by_name:
            return False
        wanted = self.match_labels or {}
        return all(labels.get(key) == value for key, value in wanted.items()) and all(
            expression.matches(labels) for expression in self.match_expressions
        )

    @property
    def display(self) -> str:
        what = self.name if self.name is not None else f"selector {self.label_selector()}"
        return what if self.kind == DEFAULT_KIND else f"{self.kind} {what}"


@dataclass(frozen=True)
class CampaignSpec:
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    timezone_name: str = DEFAULT_TIMEZONE
    start: datetime | None = None  # one-off form, aware UTC
    end: datetime | None = None
    schedule: Schedule | None = None  # recurring form
    lead_time: timedelta = DEFAULT_LEAD_TIME
    ramp_up_steps: int = DEFAULT_RAMP_UP_STEPS
    ramp_down_duration: timedelta = DEFAULT_RAMP_DOWN_DURATION
    ramp_down_steps: int = DEFAULT_RAMP_DOWN_STEPS
    traffic_multiplier: float = DEFAULT_TRAFFIC_MULTIPLIER
    targets: tuple[TargetSpec, ...] = ()
    dry_run: bool = False
    node_headroom: NodeHeadroom | None = None

    @property
    def recurring(self) -> bool:
        return self.schedule is not None


def parse_spec(raw: Mapping[str, Any], metrics_scope: MetricsScope | None = None) -> CampaignSpec:
    """Validate the raw `spec` mapping (camelCase keys, as the API server stores it) and parse it.

    With `metrics_scope`, every target's `metric.query` is held to the event's namespace (`promql.py`):
    the parsed spec carries the scoped query, the one Prometheus is asked.
    """
    spec = _mapping(raw, "spec", _SPEC_KEYS)
    timezone_name, zone = _parse_timezone(spec.get("timezone"))
    lead_time = _duration(spec, "leadTime", "spec", DEFAULT_LEAD_TIME)
    ramp_up = _mapping(spec.get("rampUp", {}), "spec.rampUp", ("steps",))
    ramp_down = _mapping(spec.get("rampDown", {}), "spec.rampDown", ("duration", "steps"))
    ramp_down_duration = _duration(ramp_down, "duration", "spec.rampDown", DEFAULT_RAMP_DOWN_DURATION)
    start, end, schedule = _parse_window(spec, zone)
    node_headroom = _parse_node_headroom(spec["nodeHeadroom"]) if "nodeHeadroom" in spec else None
    if schedule is not None:
        # Placeholders come before the lead time: they must not overlap the previous window either.
        lifecycle = lead_time + schedule.duration + ramp_down_duration
        terms = "leadTime + duration + rampDown.duration"
        if node_headroom is not None:
            lifecycle, terms = lifecycle + node_headroom.lead_time, f"nodeHeadroom.leadTime + {terms}"
        _check_windows_do_not_overlap(schedule, zone, lifecycle, terms)
    targets = _parse_targets(spec.get("targets"), metrics_scope)
    if schedule is not None:
        _check_lookaheads(targets, schedule.duration)
    elif start is not None and end is not None:
        _check_lookaheads(targets, end - start)
    return CampaignSpec(
        timezone=zone,
        timezone_name=timezone_name,
        start=start,
        end=end,
        schedule=schedule,
        lead_time=lead_time,
        ramp_up_steps=_steps(ramp_up, "spec.rampUp", DEFAULT_RAMP_UP_STEPS),
        ramp_down_duration=ramp_down_duration,
        ramp_down_steps=_steps(ramp_down, "spec.rampDown", DEFAULT_RAMP_DOWN_STEPS),
        traffic_multiplier=_positive_number(spec, "trafficMultiplier", "spec", DEFAULT_TRAFFIC_MULTIPLIER),
        targets=targets,
        dry_run=_boolean(spec, "dryRun", "spec", False),
        node_headroom=node_headroom,
    )


def _parse_node_headroom(value: object) -> NodeHeadroom:
    raw = _mapping(value, "spec.nodeHeadroom", ("leadTime",))
    if "leadTime" not in raw:
        raise SpecError("spec.nodeHeadroom.leadTime", "required (how long nodes take to come, e.g. 10m)")
    lead_time = parse_duration(raw["leadTime"], "spec.nodeHeadroom.leadTime")
    if lead_time <= timedelta(0):
        raise SpecError("spec.nodeHeadroom.leadTime", f"must be > 0, got {raw['leadTime']!r}")
    return NodeHeadroom(lead_time=lead_time)


# -- generic field readers ---------------------------------------------------------------------------


def _mapping(value: object, path: str, allowed_keys: tuple[str, ...]) -> Mapping[str, Any]:
    """An object whose keys are all known; `null` counts as an empty object."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(path, f"must be an object, got {type(value).__name__}")
    for key in value:
        if key not in allowed_keys:
            raise SpecError(f"{path}.{key}", "unknown field")
    # `null` values are treated as absent, like the API server's defaulting does.
    return {key: item for key, item in value.items() if item is not None}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_number(raw: Mapping[str, Any], key: str, path: str, default: float) -> float:
    value = raw.get(key, default)
    if not _is_number(value) or not math.isfinite(value):
        raise SpecError(f"{path}.{key}", f"must be a number, got {value!r}")
    if value <= 0:
        raise SpecError(f"{path}.{key}", f"must be > 0, got {value!r}")
    return value


def _optional_positive_number(raw: Mapping[str, Any], key: str, path: str) -> float | None:
    return _positive_number(raw, key, path, 1.0) if key in raw else None


def _integer(raw: Mapping[str, Any], key: str, path: str, *, minimum: int, maximum: int) -> int | None:
    if key not in raw:
        return None
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{path}.{key}", f"must be an integer, got {value!r}")
    if value < minimum:
        raise SpecError(f"{path}.{key}", f"must be >= {minimum}, got {value}")
    if value > maximum:
        raise SpecError(f"{path}.{key}", f"must be <= {maximum}, got {value}")
    return value


def _steps(raw: Mapping[str, Any], path: str, default: int) -> int:
    steps = _integer(raw, "steps", path, minimum=1, maximum=MAX_STEPS)
    return default if steps is None else steps


def _boolean(raw: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{path}.{key}", f"must be true or false, got {value!r}")
    return value


def _duration(raw: Mapping[str, Any], key: str, path: str, default: timedelta) -> timedelta:
    return parse_duration(raw[key], f"{path}.{key}") if key in raw else default


def _non_empty_string(raw: Mapping[str, Any], key: str, path: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{path}.{key}", f"must be a non-empty string, got {value!r}")
    return value


# -- timezone and window -----------------------------------------------------------------------------


def _parse_timezone(value: object) -> tuple[str, ZoneInfo]:
    name = DEFAULT_TIMEZONE if value is None else value
    if not isinstance(name, str) or not name:
        raise SpecError("spec.timezone", f"must be an IANA timezone name such as Asia/Jakarta, got {value!r}")
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise SpecError(
            "spec.timezone", f"unknown timezone {name!r} (use an IANA name such as Asia/Jakarta)"
        ) from None


def _parse_window(
    spec: Mapping[str, Any], zone: ZoneInfo
) -> tuple[datetime | None, datetime | None, Schedule | None]:
    has_start, has_end, has_schedule = "start" in spec, "end" in spec, "schedule" in spec
    if has_schedule and (has_start or has_end):
        raise SpecError(
            "spec.schedule", "set either start/end (one window) or schedule (recurring), not both"
        )
    if has_schedule:
        return None, None, _parse_schedule(spec["schedule"], zone)
    if not has_start and not has_end:
        raise SpecError("spec.start", "required: set start and end, or schedule")
    if not has_end:
        raise SpecError("spec.end", "required together with spec.start")
    if not has_start:
        raise SpecError("spec.start", "required together with spec.end")
    start = parse_instant(spec["start"], "spec.start", zone)
    end = parse_instant(spec["end"], "spec.end", zone)
    if end <= start:
        raise SpecError(
            "spec.end", f"must be after spec.start ({iso_utc(end)} is not after {iso_utc(start)})"
        )
    return start, end, None


def _parse_schedule(value: object, zone: ZoneInfo) -> Schedule:
    raw = _mapping(value, "spec.schedule", ("cron", "duration"))
    if "cron" not in raw:
        raise SpecError("spec.schedule.cron", "required")
    if "duration" not in raw:
        raise SpecError("spec.schedule.duration", "required")
    cron = validate_cron(raw["cron"], "spec.schedule.cron", zone, _OVERLAP_CHECK_FROM)
    duration = parse_duration(raw["duration"], "spec.schedule.duration")
    if duration <= timedelta(0):
        raise SpecError("spec.schedule.duration", f"must be > 0, got {raw['duration']!r}")
    return Schedule(cron=cron, duration=duration)


def _check_windows_do_not_overlap(
    schedule: Schedule, zone: ZoneInfo, lifecycle: timedelta, terms: str
) -> None:
    """Reject a schedule whose windows' lifecycles (`terms`: [nodeHeadroom.leadTime +] leadTime + duration +
    rampDown) would overlap.

    Looks at the gaps between the matches following a fixed instant: at least the first gap, then up to
    two years or 400 matches (a year of a daily schedule, so both daylight-saving changes are seen).
    """
    matches = cron_matches(schedule.cron, zone, _OVERLAP_CHECK_FROM)
    first = previous = next(matches)
    for count, match in enumerate(matches, start=1):
        if match - previous < lifecycle:
            raise SpecError(
                "spec.schedule.duration",
                f"windows overlap: {terms} = {format_duration(lifecycle)} "
                f"is longer than the {format_duration(match - previous)} between the windows opening at "
                f"{iso_utc(previous)} and {iso_utc(match)}",
            )
        if count >= _OVERLAP_CHECK_MATCHES or match - first > _OVERLAP_CHECK_SPAN:
            return
        previous = match


def parse_instant(value: object, field: str, zone: ZoneInfo) -> datetime:
    """An RFC 3339 date-time, offset optional (then wall-clock time in `zone`), as an aware UTC datetime."""
    if isinstance(value, datetime):  # YAML loaders turn unquoted timestamps into datetimes
        value = value.isoformat()
    if not isinstance(value, str):
        raise SpecError(field, f"must be an RFC 3339 date-time such as 2026-09-09T00:00:00, got {value!r}")
    parts = _RFC3339.fullmatch(value)
    if parts is None:
        raise SpecError(
            field, f"must be an RFC 3339 date-time such as 2026-09-09T00:00:00+07:00, got {value!r}"
        )
    try:
        fraction = (parts["fraction"] or "")[:7]  # microseconds: a datetime holds no finer digits
        local = datetime.fromisoformat(f"{parts['date']}T{parts['time']}{fraction}")
        offset = _offset(parts["offset"])
    except ValueError as error:
        raise SpecError(field, f"invalid date-time {value!r}: {error}") from None
    if not EARLIEST_YEAR <= local.year <= LATEST_YEAR:
        raise SpecError(field, f"year must be between {EARLIEST_YEAR} and {LATEST_YEAR}, got {value!r}")
    if offset is not None:
        return local.replace(tzinfo=offset).astimezone(UTC)
    return _wall_clock_to_utc(local, zone, field, value)


def _offset(text: str | None) -> timezone | None:
    if text is None:
        return None
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if minutes >= 60:
        raise ValueError(f"offset minutes out of range in {text!r}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _wall_clock_to_utc(local: datetime, zone: ZoneInfo, field: str, text: str) -> datetime:
    first_occurrence = local.replace(tzinfo=zone, fold=0)
    as_utc = first_occurrence.astimezone(UTC)
    if as_utc.astimezone(zone).replace(tzinfo=None) != local:
        raise SpecError(
            field, f"{text} does not exist in {zone.key} (the clocks skip it for daylight saving time)"
        )
    return as_utc


# -- targets -----------------------------------------------------------------------------------------


def _parse_targets(value: object, metrics_scope: MetricsScope | None) -> tuple[TargetSpec, ...]:
    if value is None:
        raise SpecError("spec.targets", "required: at least one target")
    if not isinstance(value, list | tuple):
        raise SpecError("spec.targets", f"must be a list, got {type(value).__name__}")
    if not value:
        raise SpecError("spec.targets", "must contain at least one target")
    if len(value) > MAX_TARGETS:
        raise SpecError("spec.targets", f"must contain at most {MAX_TARGETS} targets, got {len(value)}")
    targets = tuple(_parse_target(index, raw, metrics_scope) for index, raw in enumerate(value))
    first_index_of_name: dict[tuple[str, str], int] = {}
    for target in targets:
        if target.name is None:
            continue
        named = (target.kind, target.name)
        if named in first_index_of_name:
            earlier = first_index_of_name[named]
            raise SpecError(
                target.field("name"), f"{target.kind} {target.name!r} is already spec.targets[{earlier}]"
            )
        first_index_of_name[named] = target.index
    return targets


def _parse_target(index: int, value: object, metrics_scope: MetricsScope | None) -> TargetSpec:
    path = f"spec.targets[{index}]"
    raw = _mapping(value, path, _TARGET_KEYS)
    has_name, has_selector = "name" in raw, "selector" in raw
    if has_name == has_selector:
        raise SpecError(path, "set exactly one of name (a workload) or selector (matching workloads)")
    name = _deployment_name(raw["name"], f"{path}.name") if has_name else None
    kind = _pattern_text(raw, "kind", path, _KIND, "a kind such as Deployment, StatefulSet or Rollout")
    api_version = _pattern_text(
        raw, "apiVersion", path, _API_VERSION, "an apiVersion such as apps/v1 or argoproj.io/v1alpha1"
    )
    match_labels, match_expressions = (
        _parse_selector(raw["selector"], f"{path}.selector") if has_selector else (None, ())
    )
    replicas = _integer(raw, "replicas", path, minimum=0, maximum=MAX_REPLICAS)
    min_replicas = _integer(raw, "minReplicas", path, minimum=0, maximum=MAX_REPLICAS)
    max_replicas = _integer(raw, "maxReplicas", path, minimum=0, maximum=MAX_REPLICAS)
    if min_replicas is not None and max_replicas is not None and min_replicas > max_replicas:
        raise SpecError(f"{path}.minReplicas", f"must be <= maxReplicas ({min_replicas} > {max_replicas})")
    if replicas is not None and max_replicas is not None and replicas > max_replicas:
        raise SpecError(f"{path}.replicas", f"must be <= maxReplicas ({replicas} > {max_replicas})")
    return TargetSpec(
        index=index,
        name=name,
        match_labels=match_labels,
        match_expressions=match_expressions,
        multiplier=_optional_positive_number(raw, "multiplier", path),
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        metric=_parse_metric(raw["metric"], f"{path}.metric", metrics_scope) if "metric" in raw else None,
        kind=kind or DEFAULT_KIND,
        api_version=api_version or DEFAULT_API_VERSION,
        kind_given=kind is not None,
    )


def _pattern_text(
    raw: Mapping[str, Any], key: str, path: str, pattern: re.Pattern[str], what: str
) -> str | None:
    """An optional text field that must match `pattern` whole; None when it is not set."""
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise SpecError(f"{path}.{key}", f"must be {what}, got {value!r}")
    return value


def _deployment_name(value: object, path: str) -> str:
    if not isinstance(value, str) or len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise SpecError(path, f"must be a workload name (lowercase DNS-1123 subdomain), got {value!r}")
    return value


def _parse_selector(value: object, path: str) -> tuple[Mapping[str, str] | None, tuple[LabelExpression, ...]]:
    raw = _mapping(value, path, ("matchLabels", "matchExpressions"))
    labels = _parse_match_labels(raw["matchLabels"], f"{path}.matchLabels") if "matchLabels" in raw else None
    expressions = (
        _parse_match_expressions(raw["matchExpressions"], f"{path}.matchExpressions")
        if "matchExpressions" in raw
        else ()
    )
    if not labels and not expressions:
        raise SpecError(
            path, "needs matchLabels or matchExpressions (an empty selector would match everything)"
        )
    return labels, expressions


def parse_label_equalities(text: str, path: str) -> Mapping[str, str]:
    """An equality-based label selector `key=value[,key=value]` (`==` also accepted), as a mapping."""
    labels: dict[str, str] = {}
    for term in text.split(","):
        key, equals, value = term.replace("==", "=").partition("=")
        if not equals:
            raise SpecError(path, f"must be key=value terms separated by commas, got {text!r}")
        labels[_label_key(key.strip(), path)] = _label_value(value.strip(), path)
    return MappingProxyType(labels)


def _parse_match_labels(value: object, path: str) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise SpecError(path, f"must be an object of label key: value, got {type(value).__name__}")
    for key, label_value in value.items():
        _label_key(key, f"{path}.{key}")
        _label_value(label_value, f"{path}.{key}")
    return MappingProxyType(dict(value))


def _parse_match_expressions(value: object, path: str) -> tuple[LabelExpression, ...]:
    if not isinstance(value, list | tuple):
        raise SpecError(path, f"must be a list, got {type(value).__name__}")
    return tuple(_parse_match_expression(raw, f"{path}[{index}]") for index, raw in enumerate(value))


def _parse_match_expression(value: object, path: str) -> LabelExpression:
    raw = _mapping(value, path, ("key", "operator", "values"))
    key = _label_key(raw.get("key"), f"{path}.key")
    operator = raw.get("operator")
    if operator not in SELECTOR_OPERATORS:
        raise SpecError(
            f"{path}.operator", f"must be one of {', '.join(SELECTOR_OPERATORS)}, got {operator!r}"
        )
    values = raw.get("values", [])
    if not isinstance(values, list | tuple):
        raise SpecError(f"{path}.values", f"must be a list of strings, got {type(values).__name__}")
    for index, item in enumerate(values):
        _label_value(item, f"{path}.values[{index}]")
    if operator in ("In", "NotIn") and not values:
        raise SpecError(f"{path}.values", f"must not be empty for operator {operator}")
    if operator in ("Exists", "DoesNotExist") and values:
        raise SpecError(f"{path}.values", f"must be empty for operator {operator}")
    return LabelExpression(key=key, operator=operator, values=tuple(values))


def _label_key(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise SpecError(path, f"must be a label key, got {value!r}")
    prefix, _, name = value.rpartition("/")
    valid_prefix = not prefix or (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix))
    valid_name = len(name) <= 63 and _LABEL_NAME.fullmatch(name)
    if "/" in prefix or not valid_prefix or not valid_name:
        raise SpecError(path, f"invalid label key {value!r}")
    return value


def _label_value(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise SpecError(path, f"label value must be a string, got {value!r}")
    if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
        raise SpecError(path, f"invalid label value {value!r}")
    return value


def _parse_metric(value: object, path: str, metrics_scope: MetricsScope | None) -> MetricSpec:
    raw = _mapping(value, path, ("query", "targetPerReplica", "forecast"))
    query = _non_empty_string(raw, "query", path)
    if len(query) > MAX_QUERY_LENGTH:
        raise SpecError(f"{path}.query", f"must be at most {MAX_QUERY_LENGTH} characters, got {len(query)}")
    if metrics_scope is not None:
        query = scope_query(query, metrics_scope, f"{path}.query")
    if "targetPerReplica" not in raw:
        raise SpecError(f"{path}.targetPerReplica", "required")
    return MetricSpec(
        query=query,
        target_per_replica=_positive_number(raw, "targetPerReplica", path, 1.0),
        forecast=_parse_forecast(raw["forecast"], f"{path}.forecast") if "forecast" in raw else None,
    )


def _parse_forecast(value: object, path: str) -> Forecast:
    raw = _mapping(value, path, ("offset", "growth", "mode", "lookahead"))
    mode = raw.get("mode", "peak")
    if mode not in FORECAST_MODES:
        raise SpecError(f"{path}.mode", f"must be one of {', '.join(FORECAST_MODES)}, got {mode!r}")
    if "offset" not in raw:
        needed = f" with mode: {mode}" if "mode" in raw else ""
        raise SpecError(f"{path}.offset", f"required{needed} (a Prometheus duration such as 365d)")
    offset = parse_duration(raw["offset"], f"{path}.offset", prometheus=True)
    if offset <= timedelta(0):
        raise SpecError(f"{path}.offset", f"must be > 0, got {raw['offset']!r}")
    lookahead = None
    if "lookahead" in raw:
        if mode != "curve":
            raise SpecError(f"{path}.lookahead", "only with mode: curve (a peak is not read ahead)")
        lookahead = parse_duration(raw["lookahead"], f"{path}.lookahead")
        if lookahead <= timedelta(0):
            raise SpecError(f"{path}.lookahead", f"must be > 0, got {raw['lookahead']!r}")
    return Forecast(
        offset=offset,
        offset_text=raw["offset"],
        growth=_positive_number(raw, "growth", path, DEFAULT_FORECAST_GROWTH),
        mode=mode,
        lookahead=lookahead,
    )


def _check_lookaheads(targets: tuple[TargetSpec, ...], window_length: timedelta) -> None:
    """A curve read further ahead than the window lasts would hold the opening's peak the whole window."""
    for target in targets:
        forecast = target.metric.forecast if target.metric is not None else None
        if forecast is not None and forecast.lookahead is not None and forecast.lookahead > window_length:
            raise SpecError(
                target.field("metric.forecast.lookahead"),
                f"{format_duration(forecast.lookahead)} is longer than the window "
                f"({format_duration(window_length)})",
            )
