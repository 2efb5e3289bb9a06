"""Fuzzing `parse_spec` past the known bad fragments: any JSON value at any depth, and valid specs at the very
limits the contract allows. Whatever arrives, the answer is a parsed spec or a SpecError that names a spec
field; never another exception, which would crash an event's daemon instead of marking it Invalid.

For every spec that parses, the timeline functions hold at any `now` of the next years, and a target's
replicas stay within [0, 2**31 - 1] (the scale subresource is an int32) for any baseline.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_autoscaler.planning import (
    CampaignSpec,
    SpecError,
    claim_fraction,
    compute_floor,
    next_transition,
    parse_spec,
    phase_at,
    ramp_replicas,
    resolve_window,
    transitions,
)
from campaign_autoscaler.planning.spec import MAX_REPLICAS
from tests.unit.test_spec_properties import KNOWN_PATHS, mutate, valid_specs

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
DEEP_PATHS = [
    *KNOWN_PATHS,
    ("targets", 0, "minReplicas"),
    ("targets", 0, "selector", "matchLabels", "app"),
    ("targets", 0, "selector", "matchExpressions", 0),
    ("targets", 0, "selector", "matchExpressions", 0, "key"),
    ("targets", 0, "selector", "matchExpressions", 0, "operator"),
    ("targets", 0, "selector", "matchExpressions", 0, "values"),
    ("targets", 0, "metric", "query"),
    ("targets", 0, "metric", "forecast", "offset"),
    ("targets", 0, "metric", "forecast", "growth"),
    ("targets", 1),
    ("targets", 2, "name"),
    ("unknownField",),
]


@st.composite
def junk_specs(draw: st.DrawFn) -> Any:
    """A valid spec with junk at one to three paths; now and then junk for the whole spec."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    raw = draw(valid_specs())
    for _ in range(draw(st.integers(1, 3))):
        mutate(raw, draw(st.sampled_from(DEEP_PATHS)), copy.deepcopy(draw(json_values)))
    return raw


# Valid values at the edges: the first and last years a window may use, the longest durations (Go's int64
# nanoseconds), the most steps, the biggest replica counts.
EXTREME_EDITS = [
    (("leadTime",), "2562047h"),
    (("rampDown", "duration"), "2562047h"),
    (("rampUp", "steps"), 1000),
    (("rampDown", "steps"), 1000),
    (("start",), "1970-01-01T00:00:00Z"),
    (("end",), "9000-12-31T23:59:59.999999Z"),
    (("trafficMultiplier",), 1e300),
    (("trafficMultiplier",), 1e-300),
    (("targets", 0, "replicas"), MAX_REPLICAS),
    (("targets", 0, "maxReplicas"), MAX_REPLICAS),
    (("targets", 0, "minReplicas"), 0),
    (("targets", 0, "multiplier"), 1e308),
    (("schedule", "duration"), "1ms"),
    (("timezone",), "Pacific/Kiritimati"),
    (("timezone",), "Pacific/Pago_Pago"),
]


@st.composite
def extreme_specs(draw: st.DrawFn) -> dict[str, Any]:
    raw = draw(valid_specs())
    for path, value in draw(st.lists(st.sampled_from(EXTREME_EDITS), min_size=1, max_size=4)):
        mutate(raw, path, value)
    return raw


def parsed_or_rejected(raw: Any) -> CampaignSpec | None:
    """The spec, or None after checking that the rejection names a spec field the way the contract says."""
    try:
        return parse_spec(raw)
    except SpecError as error:
        assert error.field == "spec" or error.field.startswith("spec."), error.field
        assert str(error) == f"{error.field}: {error.message}"
        return None


nows = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))
baselines = st.integers(0, MAX_REPLICAS)


@settings(max_examples=1500, deadline=None)
@given(raw=junk_specs())
def test_any_json_is_parsed_or_rejected_naming_a_field(raw: Any):
    parsed_or_rejected(raw)


@settings(max_examples=400, deadline=None)
@given(raw=extreme_specs(), now=nows, baseline=baselines)
def test_specs_at_the_limits_plan_without_overflow(raw: dict[str, Any], now: datetime, baseline: int):
    spec = parsed_or_rejected(raw)
    if spec is None:
        return
    window = resolve_window(spec, now)
    timeline = transitions(spec, window)
    assert timeline == sorted(timeline, key=lambda transition: transition.at)
    phase_at(spec, window, now)
    following = next_transition(spec, window, now)
    assert following is None or following > now
    for probe in (now, window.start, window.end, window.end + timedelta(microseconds=1)):
        claim_fraction(spec, window, probe)
    for target in spec.targets:
        floor = compute_floor(target, baseline, spec.traffic_multiplier, max_scale_factor=10)
        assert 0 <= floor.replicas <= MAX_REPLICAS, floor
        for transition in timeline:
            replicas = ramp_replicas(baseline, floor.replicas, transition.fraction)
            assert min(baseline, floor.replicas) <= replicas <= max(baseline, floor.replicas)


def test_a_floor_never_leaves_the_int32_range():
    """The case the fuzzing above first found: ceil(10 x 214748365) is past 2**31 - 1."""
    spec = parse_spec(
        {"start": "2026-09-09T00:00:00Z", "end": "2026-09-10T00:00:00Z", "targets": [{"name": "checkout"}]}
    )
    floor = compute_floor(spec.targets[0], 214_748_365, traffic_multiplier=10, max_scale_factor=10)
    assert floor.replicas <= MAX_REPLICAS, floor
