"""Random specs from valid and invalid fragments: parsed, or rejected with a SpecError naming a spec field.

For every parsed spec the timeline of its (resolved) window is checked: sorted, phases in contract order,
ramp replicas rising then falling and ending exactly at the baseline.
"""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_autoscaler.planning import (
    Phase,
    SpecError,
    claim_fraction,
    compute_floor,
    lifecycle_end,
    lifecycle_start,
    next_transition,
    next_window,
    parse_spec,
    phase_at,
    ramp_replicas,
    resolve_window,
    transitions,
)

PHASE_ORDER = [Phase.PENDING, Phase.PRE_SCALING, Phase.ACTIVE, Phase.RAMPING_DOWN, Phase.COMPLETED]
DELETE = object()

# -- valid fragments ---------------------------------------------------------------------------------

timezones = st.sampled_from(
    ["UTC", "Asia/Jakarta", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"]
)
go_durations = st.one_of(
    st.builds(lambda n, unit: f"{n}{unit}", st.integers(0, 90), st.sampled_from(["s", "m", "h"])),
    st.sampled_from(["1h30m", "26h", "1.5h", "0s", "500ms", "2h45m30.5s"]),
)
local_starts = st.one_of(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2029, 12, 31)).map(
        lambda moment: moment.replace(second=0, microsecond=0)
    ),
    # close to daylight-saving changes in New York, Berlin and Lord Howe (30 minutes)
    st.sampled_from(
        [datetime(2026, 3, 8, 1, 30), datetime(2026, 11, 1, 1, 30), datetime(2026, 10, 4, 1, 45)]
    ),
)
window_lengths = st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=3))
offsets = st.sampled_from(["", "", "Z", "+07:00", "-05:00"])


@st.composite
def one_off_windows(draw):
    start = draw(local_starts)
    end = start + draw(window_lengths)
    start_offset, end_offset = draw(offsets), draw(offsets)
    return {"start": start.isoformat() + start_offset, "end": end.isoformat() + end_offset}


crons = st.sampled_from(
    [
        "0 0 9 9 *",
        "0 2 * * *",
        "30 1 * * *",
        "*/30 * * * *",
        "0 9 * * 1-5",
        "0 20 31 12 *",
        "0 0 29 2 *",
        "15 10 L * *",
    ]
)
recurring_windows = st.fixed_dictionaries(
    {"schedule": st.fixed_dictionaries({"cron": crons, "duration": go_durations})}
)
names = st.sampled_from(["checkout", "order-tracking", "search.v2", "cart", "payments-api"])
label_keys = st.sampled_from(["app", "campaign.tier", "example.com/team"])
label_values = st.sampled_from(["checkout", "", "web", "batch"])
expressions = st.one_of(
    st.fixed_dictionaries(
        {
            "key": label_keys,
            "operator": st.sampled_from(["In", "NotIn"]),
            "values": st.lists(label_values, min_size=1, max_size=2),
        }
    ),
    st.fixed_dictionaries({"key": label_keys, "operator": st.sampled_from(["Exists", "DoesNotExist"])}),
)
selectors = st.one_of(
    st.fixed_dictionaries({"matchLabels": st.dictionaries(label_keys, label_values, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"matchExpressions": st.lists(expressions, min_size=1, max_size=2)}),
)
positive_numbers = st.one_of(st.floats(min_value=0.05, max_value=20), st.integers(1, 10))
metrics = st.fixed_dictionaries(
    {
        "query": st.just('sum(rate(http_requests_total{app="checkout"}[2m]))'),
        "targetPerReplica": positive_numbers,
    },
    optional={
        "forecast": st.fixed_dictionaries(
            {"offset": st.sampled_from(["365d", "1w", "2h", "1y"])}, optional={"growth": positive_numbers}
        )
    },
)
target_options = {
    "multiplier": positive_numbers,
    "replicas": st.integers(0, 60),
    "minReplicas": st.integers(0, 10),
    "maxReplicas": st.integers(10, 100),
    "metric": metrics,
}


@st.composite
def target_lists(draw):
    count = draw(st.integers(1, 3))
    target_names = draw(st.lists(names, min_size=count, max_size=count, unique=True))
    found = []
    for name in target_names:
        identity = draw(st.one_of(st.just({"name": name}), st.fixed_dictionaries({"selector": selectors})))
        found.append(identity | draw(st.fixed_dictionaries({}, optional=target_options)))
    return found


@st.composite
def valid_specs(draw):
    raw = draw(st.one_of(one_off_windows(), recurring_windows))
    raw["targets"] = draw(target_lists())
    raw |= draw(
        st.fixed_dictionaries(
            {},
            optional={
                "timezone": timezones,
                "leadTime": go_durations,
                "rampUp": st.fixed_dictionaries({}, optional={"steps": st.integers(1, 12)}),
                "rampDown": st.fixed_dictionaries(
                    {}, optional={"duration": go_durations, "steps": st.integers(1, 12)}
                ),
                "trafficMultiplier": positive_numbers,
                "dryRun": st.booleans(),
            },
        )
    )
    return raw


# -- invalid fragments: a known bad value at a path, or junk anywhere --------------------------------

BAD_FRAGMENTS = [
    (("leadtime",), "30m"),
    (("leadTime",), "-5m"),
    (("leadTime",), 30),
    (("leadTime",), "1d"),
    (("timezone",), "Mars/Olympus"),
    (("start",), "2026-02-30T00:00:00"),
    (("start",), "2026-03-08T02:30:00"),
    (("end",), DELETE),
    (("end",), "2020-01-01T00:00:00Z"),
    (("schedule",), {"cron": "0 0 9 9 *", "duration": "26h"}),
    (("schedule", "cron"), "0 25 * * *"),
    (("schedule", "cron"), "@daily"),
    (("schedule", "duration"), "0s"),
    (("schedule", "duration"), "200h"),
    (("rampUp", "steps"), 0),
    (("rampUp",), {"steps": True}),
    (("rampDown", "duration"), "soon"),
    (("trafficMultiplier",), True),
    (("trafficMultiplier",), float("nan")),
    (("dryRun",), "yes"),
    (("targets",), []),
    (("targets",), DELETE),
    (("targets", 0, "replicas"), -1),
    (("targets", 0, "selector"), {}),
    (("targets", 0, "name"), "Bad_Name"),
    (("targets", 0, "minReplicas"), 500),
    (("targets", 0, "metric"), {"query": "", "targetPerReplica": 1}),
    (("targets", 0, "metric", "forecast"), {"offset": "1.5d"}),
    (("targets", 1), {"name": "checkout"}),
    (("targets", 0, "selector", "matchLabels"), {"bad key": "x"}),
]
KNOWN_PATHS = [
    ("timezone",),
    ("start",),
    ("end",),
    ("schedule",),
    ("schedule", "cron"),
    ("schedule", "duration"),
    ("leadTime",),
    ("rampUp",),
    ("rampUp", "steps"),
    ("rampDown",),
    ("rampDown", "duration"),
    ("rampDown", "steps"),
    ("trafficMultiplier",),
    ("targets",),
    ("dryRun",),
    ("targets", 0),
    ("targets", 0, "name"),
    ("targets", 0, "selector"),
    ("targets", 0, "selector", "matchLabels"),
    ("targets", 0, "selector", "matchExpressions"),
    ("targets", 0, "multiplier"),
    ("targets", 0, "replicas"),
    ("targets", 0, "maxReplicas"),
    ("targets", 0, "metric"),
    ("targets", 0, "metric", "targetPerReplica"),
    ("targets", 0, "metric", "forecast"),
]
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
mutations = st.one_of(
    st.sampled_from(BAD_FRAGMENTS),
    st.tuples(st.sampled_from(KNOWN_PATHS), junk),
)


def mutate(raw, path, value):
    """Set (or delete) the value at `path` when the path leads somewhere; leave `raw` alone otherwise."""
    parent = raw
    for step in path[:-1]:
        if isinstance(step, int):
            if not isinstance(parent, list) or step >= len(parent):
                return
        elif not isinstance(parent, dict) or step not in parent:
            return
        parent = parent[step]
    last = path[-1]
    if isinstance(last, int):
        if isinstance(parent, list) and last <= len(parent):
            parent[last : last + 1] = [] if value is DELETE else [value]
    elif isinstance(parent, dict):
        if value is DELETE:
            parent.pop(last, None)
        else:
            parent[last] = value


@st.composite
def raw_specs(draw):
    raw = draw(valid_specs())
    for path, value in draw(st.lists(mutations, max_size=2)):
        mutate(raw, path, value)
    return raw


nows = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2031, 1, 1), timezones=st.just(UTC))


@settings(max_examples=500, deadline=None)
@given(raw=raw_specs(), now=nows, baseline=st.integers(0, 50))
def test_random_specs_parse_or_name_a_spec_field(raw, now, baseline):
    try:
        spec = parse_spec(raw)
    except SpecError as error:
        assert error.field.startswith("spec.")
        assert str(error) == f"{error.field}: {error.message}"
        return
    window = resolve_window(spec, now)
    timeline = transitions(spec, window)
    instants_ = [transition.at for transition in timeline]
    assert instants_ == sorted(set(instants_))
    assert all(instant.tzinfo is not None and instant.utcoffset() == timedelta(0) for instant in instants_)
    assert timeline[0].at == lifecycle_start(spec, window)
    assert timeline[-1].at == lifecycle_end(spec, window)
    assert timeline[-1].phase == Phase.COMPLETED

    phases = [transition.phase for transition in timeline]
    assert [PHASE_ORDER.index(phase) for phase in phases] == sorted(
        PHASE_ORDER.index(phase) for phase in phases
    )
    probes = [
        lifecycle_start(spec, window) - timedelta(seconds=1),
        *instants_,
        instants_[-1] + timedelta(days=1),
    ]
    probes += [instant + timedelta(microseconds=1) for instant in instants_]
    observed = [PHASE_ORDER.index(phase_at(spec, window, probe)) for probe in sorted(probes)]
    assert observed == sorted(observed)
    assert observed[0] == 0 and observed[-1] == PHASE_ORDER.index(Phase.COMPLETED)

    for transition in timeline:
        expected = None if transition.phase == Phase.COMPLETED else transition.fraction
        assert claim_fraction(spec, window, transition.at) == expected

    floor = compute_floor(spec.targets[0], baseline, spec.traffic_multiplier, max_scale_factor=10)
    replicas = [ramp_replicas(baseline, floor.replicas, transition.fraction) for transition in timeline]
    peak = replicas.index(max(replicas))
    assert replicas[: peak + 1] == sorted(replicas[: peak + 1])
    assert replicas[peak:] == sorted(replicas[peak:], reverse=True)
    assert replicas[-1] == baseline
    assert max(replicas) == max(baseline, floor.replicas)

    following = next_transition(spec, window, now)
    if spec.recurring:
        assert following is not None and following > now
        later = next_window(spec, window)
        assert lifecycle_start(spec, later) >= lifecycle_end(spec, window)
    elif now >= lifecycle_end(spec, window):
        assert following is None
    else:
        assert following > now
