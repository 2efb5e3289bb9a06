"""Pure planning: spec parsing and validation, windows, timeline, floors, ramps, claims and metric math.

No Kubernetes, Kopf, Prometheus or HTTP library here, and no clock: `now` is always an argument.
"""

from .claims import (
    BASELINE_ANNOTATION,
    CAMPAIGN_ANNOTATIONS,
    CLAIMS_ANNOTATION,
    OWNERS_ANNOTATION,
    Baseline,
    claim_key,
    dump_baseline,
    dump_claims,
    effective_replicas,
    hpa_bounds,
    parse_baseline,
    parse_claims,
    replicas_to_apply,
)
from .durations import GO_DURATION_PATTERN, PROMETHEUS_DURATION_PATTERN, format_duration, parse_duration
from .errors import SpecError
from .floors import Floor, clamp, compute_floor
from .metrics import Stabilizer, forecast_replicas, replicas_for_metric
from .promql import MetricsScope, scope_query
from .spec import (
    CampaignSpec,
    Forecast,
    LabelExpression,
    MetricSpec,
    Schedule,
    TargetSpec,
    parse_instant,
    parse_label_equalities,
    parse_spec,
)
from .targets import PlannedStep, planned_steps, resolve_targets
from .timeline import (
    Phase,
    Transition,
    claim_fraction,
    next_transition,
    phase_at,
    ramp_replicas,
    transitions,
)
from .windows import Window, lifecycle_end, lifecycle_start, next_window, resolve_window, windows_between

__all__ = [
    "BASELINE_ANNOTATION",
    "CAMPAIGN_ANNOTATIONS",
    "CLAIMS_ANNOTATION",
    "GO_DURATION_PATTERN",
    "OWNERS_ANNOTATION",
    "PROMETHEUS_DURATION_PATTERN",
    "Baseline",
    "CampaignSpec",
    "Floor",
    "Forecast",
    "LabelExpression",
    "MetricSpec",
    "MetricsScope",
    "Phase",
    "PlannedStep",
    "Schedule",
    "SpecError",
    "Stabilizer",
    "TargetSpec",
    "Transition",
    "Window",
    "claim_fraction",
    "claim_key",
    "clamp",
    "compute_floor",
    "dump_baseline",
    "dump_claims",
    "effective_replicas",
    "forecast_replicas",
    "format_duration",
    "hpa_bounds",
    "lifecycle_end",
    "lifecycle_start",
    "next_transition",
    "next_window",
    "parse_baseline",
    "parse_claims",
    "parse_duration",
    "parse_instant",
    "parse_label_equalities",
    "parse_spec",
    "phase_at",
    "planned_steps",
    "ramp_replicas",
    "replicas_for_metric",
    "replicas_to_apply",
    "resolve_targets",
    "resolve_window",
    "scope_query",
    "transitions",
    "windows_between",
]
