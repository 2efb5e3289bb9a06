import copy
import pickle
from datetime import UTC, datetime, timedelta

import pytest

from campaign_autoscaler.planning import (
    LabelExpression,
    SpecError,
    parse_spec,
)

ONE_OFF = {
    "timezone": "Asia/Jakarta",
    "start": "2026-09-09T00:00:00",
    "end": "2026-09-10T02:00:00",
    "targets": [{"name": "order-tracking"}],
}
RECURRING = {
    "timezone": "Asia/Jakarta",
    "schedule": {"cron": "0 0 9 9 *", "duration": "26h"},
    "targets": [{"name": "order-tracking"}],
}
FULL = {
    "timezone": "Asia/Jakarta",
    "start": "2026-09-09T00:00:00",
    "end": "2026-09-10T02:00:00",
    "leadTime": "30m",
    "rampUp": {"steps": 3},
    "rampDown": {"duration": "1h", "steps": 4},
    "trafficMultiplier": 2.5,
    "targets": [
        {"name": "order-tracking"},
        {
            "selector": {"matchLabels": {"campaign.tier": "checkout"}},
            "multiplier": 3,
            "replicas": 20,
            "minReplicas": 4,
            "maxReplicas": 60,
            "metric": {
                "query": 'sum(rate(http_requests_total{app="checkout"}[2m]))',
                "targetPerReplica": 80,
                "forecast": {"offset": "365d", "growth": 1.2},
            },
        },
    ],
    "dryRun": False,
}


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def with_changes(base, **changes):
    raw = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def test_contract_example_parses_completely():
    spec = parse_spec(FULL)
    assert spec.timezone_name == "Asia/Jakarta"
    assert spec.timezone.key == "Asia/Jakarta"
    assert spec.start == utc(2026, 9, 8, 17)
    assert spec.end == utc(2026, 9, 9, 19)
    assert spec.schedule is None
    assert not spec.recurring
    assert spec.lead_time == timedelta(minutes=30)
    assert spec.ramp_up_steps == 3
    assert spec.ramp_down_duration == timedelta(hours=1)
    assert spec.ramp_down_steps == 4
    assert spec.traffic_multiplier == 2.5
    assert spec.dry_run is False
    by_name, by_selector = spec.targets
    assert (by_name.index, by_name.name, by_name.match_labels, by_name.metric) == (
        0,
        "order-tracking",
        None,
        None,
    )
    assert by_selector.index == 1
    assert by_selector.name is None
    assert dict(by_selector.match_labels) == {"campaign.tier": "checkout"}
    assert (by_selector.multiplier, by_selector.replicas) == (3, 20)
    assert (by_selector.min_replicas, by_selector.max_replicas) == (4, 60)
    metric = by_selector.metric
    assert metric.target_per_replica == 80
    assert metric.query.startswith("sum(rate(")
    assert metric.forecast.offset == timedelta(days=365)
    assert metric.forecast.offset_text == "365d"
    assert metric.forecast.growth == 1.2


def test_defaults():
    spec = parse_spec(
        {"start": "2026-09-09T00:00:00Z", "end": "2026-09-09T06:00:00Z", "targets": [{"name": "a"}]}
    )
    assert spec.timezone_name == "UTC"
    assert spec.lead_time == timedelta(minutes=15)
    assert spec.ramp_up_steps == 1
    assert spec.ramp_down_duration == timedelta(minutes=30)
    assert spec.ramp_down_steps == 3
    assert spec.traffic_multiplier == 2.0
    assert spec.dry_run is False
    target = spec.targets[0]
    assert (target.multiplier, target.replicas, target.min_replicas, target.max_replicas) == (None,) * 4


def test_forecast_growth_defaults_to_one():
    raw = copy.deepcopy(FULL)
    del raw["targets"][1]["metric"]["forecast"]["growth"]
    assert parse_spec(raw).targets[1].metric.forecast.growth == 1.0


def test_null_optional_fields_mean_absent():
    spec = parse_spec(
        with_changes(ONE_OFF, leadTime="0s") | {"rampUp": None, "dryRun": None, "schedule": None}
    )
    assert spec.ramp_up_steps == 1
    assert spec.dry_run is False


def test_recurring_form():
    spec = parse_spec(RECURRING)
    assert spec.recurring
    assert spec.start is None and spec.end is None
    assert spec.schedule.cron == "0 0 9 9 *"
    assert spec.schedule.duration == timedelta(hours=26)


def test_parsed_spec_is_immutable_and_hashable():
    spec = parse_spec(FULL)
    with pytest.raises(AttributeError):
        spec.lead_time = timedelta(0)
    with pytest.raises(TypeError):
        spec.targets[1].match_labels["campaign.tier"] = "other"
    assert hash(spec) == hash(parse_spec(FULL))
    assert spec == parse_spec(FULL)


# -- local times -------------------------------------------------------------------------------------


def test_jakarta_midnight_is_the_previous_evening_in_utc():
    spec = parse_spec(ONE_OFF)
    assert spec.start == utc(2026, 9, 8, 17)
    assert spec.start.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-09-09T00:00:00+07:00", utc(2026, 9, 8, 17)),
        ("2026-09-09T00:00:00Z", utc(2026, 9, 9)),
        ("2026-09-09T00:00:00z", utc(2026, 9, 9)),
        ("2026-09-09t00:00:00-05:30", utc(2026, 9, 9, 5, 30)),
        ("2026-09-09T00:00:00.25Z", utc(2026, 9, 9, 0, 0, 0, 250000)),
        ("2026-09-09T00:00:00.123456789Z", utc(2026, 9, 9, 0, 0, 0, 123456)),
    ],
)
def test_explicit_offsets_win_over_the_timezone(text, expected):
    spec = parse_spec(with_changes(ONE_OFF, start=text, end="2026-12-31T00:00:00"))
    assert spec.start == expected


def test_yaml_timestamps_are_accepted():
    naive = datetime(2026, 9, 9)
    spec = parse_spec(with_changes(ONE_OFF, start=naive, end=datetime(2026, 9, 9, 3, tzinfo=UTC)))
    assert spec.start == utc(2026, 9, 8, 17)
    assert spec.end == utc(2026, 9, 9, 3)


def test_new_york_local_times_across_spring_forward():
    # 2026-03-08: 02:00 EST becomes 03:00 EDT.
    spec = parse_spec(
        with_changes(
            ONE_OFF, timezone="America/New_York", start="2026-03-08T01:30:00", end="2026-03-08T03:30:00"
        )
    )
    assert spec.start == utc(2026, 3, 8, 6, 30)  # EST, -05:00
    assert spec.end == utc(2026, 3, 8, 7, 30)  # EDT, -04:00
    assert spec.end - spec.start == timedelta(hours=1)


def test_new_york_local_time_in_the_spring_forward_gap_is_an_error():
    with pytest.raises(SpecError) as caught:
        parse_spec(
            with_changes(
                ONE_OFF, timezone="America/New_York", start="2026-03-08T02:30:00", end="2026-03-08T05:00:00"
            )
        )
    assert caught.value.field == "spec.start"
    assert "does not exist in America/New_York" in caught.value.message


def test_new_york_ambiguous_local_time_takes_the_first_occurrence():
    # 2026-11-01: 02:00 EDT becomes 01:00 EST, so 01:30 happens twice; the first is 01:30 EDT (-04:00).
    spec = parse_spec(
        with_changes(
            ONE_OFF, timezone="America/New_York", start="2026-11-01T01:30:00", end="2026-11-01T02:30:00"
        )
    )
    assert spec.start == utc(2026, 11, 1, 5, 30)
    assert spec.end == utc(2026, 11, 1, 7, 30)
    assert spec.end - spec.start == timedelta(hours=2)


def test_second_occurrence_needs_an_explicit_offset():
    spec = parse_spec(
        with_changes(
            ONE_OFF, timezone="America/New_York", start="2026-11-01T01:30:00-05:00", end="2026-11-01T02:30:00"
        )
    )
    assert spec.start == utc(2026, 11, 1, 6, 30)


# -- selectors ---------------------------------------------------------------------------------------


def selector_target(selector):
    return parse_spec(with_changes(ONE_OFF, targets=[{"selector": selector}])).targets[0]


def test_match_labels_selector():
    target = selector_target({"matchLabels": {"campaign.tier": "checkout", "app": "shop"}})
    assert target.label_selector() == "app=shop,campaign.tier=checkout"
    assert target.display == "selector app=shop,campaign.tier=checkout"
    assert target.matches({"campaign.tier": "checkout", "app": "shop", "extra": "x"})
    assert not target.matches({"campaign.tier": "checkout"})
    assert not target.matches({"campaign.tier": "search", "app": "shop"})


def test_match_expressions_selector():
    target = selector_target(
        {
            "matchLabels": {"a": "b"},
            "matchExpressions": [
                {"key": "c", "operator": "In", "values": ["y", "x"]},
                {"key": "tier", "operator": "NotIn", "values": ["batch"]},
                {"key": "example.com/team", "operator": "Exists"},
                {"key": "d", "operator": "DoesNotExist", "values": []},
            ],
        }
    )
    assert target.match_expressions[0] == LabelExpression("c", "In", ("y", "x"))
    assert target.label_selector() == "a=b,c in (x,y),tier notin (batch),example.com/team,!d"
    base = {"a": "b", "c": "x", "example.com/team": "core"}
    assert target.matches(base)
    assert target.matches(base | {"tier": "web"})
    assert not target.matches(base | {"tier": "batch"})
    assert not target.matches(base | {"c": "z"})
    assert not target.matches(base | {"d": ""})
    assert not target.matches({k: v for k, v in base.items() if k != "example.com/team"})


def test_by_name_target_has_no_selector():
    target = parse_spec(ONE_OFF).targets[0]
    assert target.label_selector() is None
    assert target.display == "order-tracking"
    assert not target.matches({"app": "order-tracking"})
    assert target.field() == "spec.targets[0]"
    assert target.field("replicas") == "spec.targets[0].replicas"


# -- invalid specs: every field named ----------------------------------------------------------------


def target_with(**fields):
    return with_changes(ONE_OFF, targets=[{"name": "order-tracking", **fields}])


def selector_with(selector):
    return with_changes(ONE_OFF, targets=[{"selector": selector}])


def metric_with(**metric):
    return target_with(metric={"query": "up", "targetPerReplica": 80, **metric})


INVALID = [
    # shape and unknown fields
    ("not a mapping", ["timezone"], "spec"),
    ("unknown top-level", with_changes(ONE_OFF, leadtime="30m"), "spec.leadtime"),
    ("unknown in rampUp", with_changes(ONE_OFF, rampUp={"step": 3}), "spec.rampUp.step"),
    (
        "unknown in rampDown",
        with_changes(ONE_OFF, rampDown={"duration": "1h", "step": 2}),
        "spec.rampDown.step",
    ),
    (
        "unknown in schedule",
        with_changes(RECURRING, schedule={"cron": "0 0 9 9 *", "duration": "1h", "tz": 1}),
        "spec.schedule.tz",
    ),
    ("unknown in target", target_with(replica=3), "spec.targets[0].replica"),
    ("unknown in selector", selector_with({"matchLabel": {"a": "b"}}), "spec.targets[0].selector.matchLabel"),
    (
        "unknown in expression",
        selector_with({"matchExpressions": [{"key": "a", "operator": "Exists", "value": 1}]}),
        "spec.targets[0].selector.matchExpressions[0].value",
    ),
    ("unknown in metric", metric_with(target=5), "spec.targets[0].metric.target"),
    (
        "unknown in forecast",
        metric_with(forecast={"offset": "1w", "grow": 2}),
        "spec.targets[0].metric.forecast.grow",
    ),
    ("rampUp not an object", with_changes(ONE_OFF, rampUp=3), "spec.rampUp"),
    ("rampDown not an object", with_changes(ONE_OFF, rampDown="1h"), "spec.rampDown"),
    ("schedule not an object", with_changes(RECURRING, schedule="0 0 9 9 *"), "spec.schedule"),
    # window forms
    ("neither form", with_changes(ONE_OFF, start=None, end=None), "spec.start"),
    ("start without end", with_changes(ONE_OFF, end=None), "spec.end"),
    ("end without start", with_changes(ONE_OFF, start=None), "spec.start"),
    ("both forms", with_changes(ONE_OFF, schedule=RECURRING["schedule"]), "spec.schedule"),
    ("end equals start", with_changes(ONE_OFF, end="2026-09-09T00:00:00"), "spec.end"),
    ("end before start", with_changes(ONE_OFF, end="2026-09-08T23:00:00"), "spec.end"),
    ("end before start via offset", with_changes(ONE_OFF, end="2026-09-08T18:00:00+02:00"), "spec.end"),
    ("start not a date", with_changes(ONE_OFF, start="tomorrow"), "spec.start"),
    ("start date only", with_changes(ONE_OFF, start="2026-09-09"), "spec.start"),
    ("start impossible date", with_changes(ONE_OFF, start="2026-02-30T00:00:00"), "spec.start"),
    ("start hour 24", with_changes(ONE_OFF, start="2026-09-09T24:00:00"), "spec.start"),
    ("start bad offset", with_changes(ONE_OFF, start="2026-09-09T00:00:00+25:00"), "spec.start"),
    ("start number", with_changes(ONE_OFF, start=1788886800), "spec.start"),
    ("end year out of range", with_changes(ONE_OFF, end="9999-12-31T23:59:59Z"), "spec.end"),
    (
        "start in a DST gap",
        with_changes(ONE_OFF, timezone="America/New_York", start="2026-03-08T02:00:00"),
        "spec.start",
    ),
    (
        "end in a DST gap",
        with_changes(
            ONE_OFF, timezone="America/New_York", start="2026-03-07T00:00:00", end="2026-03-08T02:59:59"
        ),
        "spec.end",
    ),
    # timezone
    ("unknown timezone", with_changes(ONE_OFF, timezone="Mars/Olympus"), "spec.timezone"),
    ("timezone not a name", with_changes(ONE_OFF, timezone=7), "spec.timezone"),
    ("timezone empty", with_changes(ONE_OFF, timezone=""), "spec.timezone"),
    ("timezone a path", with_changes(ONE_OFF, timezone="/etc/passwd"), "spec.timezone"),
    # schedule
    ("cron missing", with_changes(RECURRING, schedule={"duration": "1h"}), "spec.schedule.cron"),
    ("duration missing", with_changes(RECURRING, schedule={"cron": "0 0 9 9 *"}), "spec.schedule.duration"),
    (
        "cron garbage",
        with_changes(RECURRING, schedule={"cron": "every day", "duration": "1h"}),
        "spec.schedule.cron",
    ),
    (
        "cron six fields",
        with_changes(RECURRING, schedule={"cron": "0 0 0 9 9 *", "duration": "1h"}),
        "spec.schedule.cron",
    ),
    (
        "cron out of range",
        with_changes(RECURRING, schedule={"cron": "0 25 * * *", "duration": "1h"}),
        "spec.schedule.cron",
    ),
    (
        "cron impossible day",
        with_changes(RECURRING, schedule={"cron": "0 0 31 2 *", "duration": "1h"}),
        "spec.schedule.cron",
    ),
    (
        "cron macro",
        with_changes(RECURRING, schedule={"cron": "@daily", "duration": "1h"}),
        "spec.schedule.cron",
    ),
    (
        "cron not a string",
        with_changes(RECURRING, schedule={"cron": 5, "duration": "1h"}),
        "spec.schedule.cron",
    ),
    (
        "schedule duration zero",
        with_changes(RECURRING, schedule={"cron": "0 0 9 9 *", "duration": "0s"}),
        "spec.schedule.duration",
    ),
    (
        "schedule duration bad",
        with_changes(RECURRING, schedule={"cron": "0 0 9 9 *", "duration": "1 day"}),
        "spec.schedule.duration",
    ),
    (
        "windows overlap",
        with_changes(RECURRING, schedule={"cron": "0 * * * *", "duration": "50m"}),
        "spec.schedule.duration",
    ),
    (
        "windows overlap with lead and ramp-down",
        with_changes(
            RECURRING,
            schedule={"cron": "0 0 * * *", "duration": "23h"},
            leadTime="30m",
            rampDown={"duration": "31m"},
        ),
        "spec.schedule.duration",
    ),
    # durations and steps
    ("leadTime int", with_changes(ONE_OFF, leadTime=30), "spec.leadTime"),
    ("leadTime negative", with_changes(ONE_OFF, leadTime="-30m"), "spec.leadTime"),
    ("leadTime empty", with_changes(ONE_OFF, leadTime=""), "spec.leadTime"),
    ("leadTime days", with_changes(ONE_OFF, leadTime="1d"), "spec.leadTime"),
    ("rampDown duration bad", with_changes(ONE_OFF, rampDown={"duration": "soon"}), "spec.rampDown.duration"),
    ("rampUp steps zero", with_changes(ONE_OFF, rampUp={"steps": 0}), "spec.rampUp.steps"),
    ("rampUp steps float", with_changes(ONE_OFF, rampUp={"steps": 2.5}), "spec.rampUp.steps"),
    ("rampUp steps bool", with_changes(ONE_OFF, rampUp={"steps": True}), "spec.rampUp.steps"),
    ("rampUp steps string", with_changes(ONE_OFF, rampUp={"steps": "3"}), "spec.rampUp.steps"),
    ("rampUp steps huge", with_changes(ONE_OFF, rampUp={"steps": 10**6}), "spec.rampUp.steps"),
    ("rampDown steps negative", with_changes(ONE_OFF, rampDown={"steps": -1}), "spec.rampDown.steps"),
    # multipliers and flags
    ("trafficMultiplier zero", with_changes(ONE_OFF, trafficMultiplier=0), "spec.trafficMultiplier"),
    ("trafficMultiplier negative", with_changes(ONE_OFF, trafficMultiplier=-2), "spec.trafficMultiplier"),
    ("trafficMultiplier bool", with_changes(ONE_OFF, trafficMultiplier=True), "spec.trafficMultiplier"),
    ("trafficMultiplier string", with_changes(ONE_OFF, trafficMultiplier="2.5"), "spec.trafficMultiplier"),
    (
        "trafficMultiplier nan",
        with_changes(ONE_OFF, trafficMultiplier=float("nan")),
        "spec.trafficMultiplier",
    ),
    (
        "trafficMultiplier inf",
        with_changes(ONE_OFF, trafficMultiplier=float("inf")),
        "spec.trafficMultiplier",
    ),
    ("dryRun string", with_changes(ONE_OFF, dryRun="true"), "spec.dryRun"),
    ("dryRun int", with_changes(ONE_OFF, dryRun=1), "spec.dryRun"),
    # targets
    ("targets missing", with_changes(ONE_OFF, targets=None), "spec.targets"),
    ("targets empty", with_changes(ONE_OFF, targets=[]), "spec.targets"),
    ("targets not a list", with_changes(ONE_OFF, targets={"name": "a"}), "spec.targets"),
    ("target not an object", with_changes(ONE_OFF, targets=["order-tracking"]), "spec.targets[0]"),
    ("target without name or selector", with_changes(ONE_OFF, targets=[{"replicas": 3}]), "spec.targets[0]"),
    ("target with name and selector", target_with(selector={"matchLabels": {"a": "b"}}), "spec.targets[0]"),
    ("name uppercase", with_changes(ONE_OFF, targets=[{"name": "Order"}]), "spec.targets[0].name"),
    ("name underscore", with_changes(ONE_OFF, targets=[{"name": "order_tracking"}]), "spec.targets[0].name"),
    ("name trailing dash", with_changes(ONE_OFF, targets=[{"name": "order-"}]), "spec.targets[0].name"),
    ("name too long", with_changes(ONE_OFF, targets=[{"name": "a" * 254}]), "spec.targets[0].name"),
    ("name empty", with_changes(ONE_OFF, targets=[{"name": ""}]), "spec.targets[0].name"),
    ("name number", with_changes(ONE_OFF, targets=[{"name": 5}]), "spec.targets[0].name"),
    (
        "duplicate name",
        with_changes(ONE_OFF, targets=[{"name": "a"}, {"name": "b"}, {"name": "a"}]),
        "spec.targets[2].name",
    ),
    (
        "second target bad",
        with_changes(ONE_OFF, targets=[{"name": "a"}, {"name": "b", "replicas": -1}]),
        "spec.targets[1].replicas",
    ),
    ("multiplier zero", target_with(multiplier=0), "spec.targets[0].multiplier"),
    ("multiplier bool", target_with(multiplier=False), "spec.targets[0].multiplier"),
    ("multiplier string", target_with(multiplier="3"), "spec.targets[0].multiplier"),
    ("replicas negative", target_with(replicas=-1), "spec.targets[0].replicas"),
    ("replicas float", target_with(replicas=2.0), "spec.targets[0].replicas"),
    ("replicas bool", target_with(replicas=True), "spec.targets[0].replicas"),
    ("replicas beyond int32", target_with(replicas=2**31), "spec.targets[0].replicas"),
    ("minReplicas negative", target_with(minReplicas=-1), "spec.targets[0].minReplicas"),
    ("maxReplicas string", target_with(maxReplicas="10"), "spec.targets[0].maxReplicas"),
    ("min above max", target_with(minReplicas=5, maxReplicas=4), "spec.targets[0].minReplicas"),
    ("replicas above max", target_with(replicas=20, maxReplicas=10), "spec.targets[0].replicas"),
    # selectors
    ("selector empty", selector_with({}), "spec.targets[0].selector"),
    ("selector empty labels", selector_with({"matchLabels": {}}), "spec.targets[0].selector"),
    ("selector not an object", selector_with("app=shop"), "spec.targets[0].selector"),
    (
        "matchLabels not an object",
        selector_with({"matchLabels": ["a"]}),
        "spec.targets[0].selector.matchLabels",
    ),
    (
        "label key invalid",
        selector_with({"matchLabels": {"bad key": "x"}}),
        "spec.targets[0].selector.matchLabels.bad key",
    ),
    (
        "label key empty name",
        selector_with({"matchLabels": {"example.com/": "x"}}),
        "spec.targets[0].selector.matchLabels.example.com/",
    ),
    (
        "label key bad prefix",
        selector_with({"matchLabels": {"Example.com/app": "x"}}),
        "spec.targets[0].selector.matchLabels.Example.com/app",
    ),
    (
        "label value invalid",
        selector_with({"matchLabels": {"app": "-shop"}}),
        "spec.targets[0].selector.matchLabels.app",
    ),
    (
        "label value too long",
        selector_with({"matchLabels": {"app": "a" * 64}}),
        "spec.targets[0].selector.matchLabels.app",
    ),
    (
        "label value number",
        selector_with({"matchLabels": {"tier": 1}}),
        "spec.targets[0].selector.matchLabels.tier",
    ),
    (
        "expressions not a list",
        selector_with({"matchExpressions": {"key": "a"}}),
        "spec.targets[0].selector.matchExpressions",
    ),
    (
        "expression operator",
        selector_with({"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]}),
        "spec.targets[0].selector.matchExpressions[0].operator",
    ),
    (
        "expression key missing",
        selector_with({"matchExpressions": [{"operator": "Exists"}]}),
        "spec.targets[0].selector.matchExpressions[0].key",
    ),
    (
        "expression In without values",
        selector_with({"matchExpressions": [{"key": "a", "operator": "In"}]}),
        "spec.targets[0].selector.matchExpressions[0].values",
    ),
    (
        "expression Exists with values",
        selector_with({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
        "spec.targets[0].selector.matchExpressions[0].values",
    ),
    (
        "expression bad value",
        selector_with({"matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "not ok"]}]}),
        "spec.targets[0].selector.matchExpressions[0].values[1]",
    ),
    (
        "expression values not a list",
        selector_with({"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]}),
        "spec.targets[0].selector.matchExpressions[0].values",
    ),
    # metric and forecast
    ("metric not an object", target_with(metric="up"), "spec.targets[0].metric"),
    ("metric query missing", target_with(metric={"targetPerReplica": 80}), "spec.targets[0].metric.query"),
    ("metric query empty", metric_with(query="  "), "spec.targets[0].metric.query"),
    ("metric query not a string", metric_with(query=5), "spec.targets[0].metric.query"),
    (
        "targetPerReplica missing",
        target_with(metric={"query": "up"}),
        "spec.targets[0].metric.targetPerReplica",
    ),
    ("targetPerReplica zero", metric_with(targetPerReplica=0), "spec.targets[0].metric.targetPerReplica"),
    (
        "targetPerReplica string",
        metric_with(targetPerReplica="80"),
        "spec.targets[0].metric.targetPerReplica",
    ),
    (
        "forecast offset missing",
        metric_with(forecast={"growth": 1.2}),
        "spec.targets[0].metric.forecast.offset",
    ),
    (
        "forecast offset zero",
        metric_with(forecast={"offset": "0d"}),
        "spec.targets[0].metric.forecast.offset",
    ),
    (
        "forecast offset fraction",
        metric_with(forecast={"offset": "1.5d"}),
        "spec.targets[0].metric.forecast.offset",
    ),
    ("forecast offset int", metric_with(forecast={"offset": 365}), "spec.targets[0].metric.forecast.offset"),
    (
        "forecast growth zero",
        metric_with(forecast={"offset": "1w", "growth": 0}),
        "spec.targets[0].metric.forecast.growth",
    ),
    (
        "forecast growth bool",
        metric_with(forecast={"offset": "1w", "growth": True}),
        "spec.targets[0].metric.forecast.growth",
    ),
    ("forecast not an object", metric_with(forecast="365d"), "spec.targets[0].metric.forecast"),
]


@pytest.mark.parametrize(("raw", "field"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_spec_names_the_field(raw, field):
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    assert caught.value.field == field
    assert str(caught.value) == f"{field}: {caught.value.message}"
    assert caught.value.message


def test_error_messages_read_well():
    cases = [
        (with_changes(ONE_OFF, leadtime="30m"), "spec.leadtime: unknown field"),
        (target_with(replicas=-1), "spec.targets[0].replicas: must be >= 0, got -1"),
        (with_changes(ONE_OFF, timezone="Mars/Olympus"), "spec.timezone: unknown timezone 'Mars/Olympus'"),
        (with_changes(ONE_OFF, leadTime="15 m"), "spec.leadTime: invalid duration '15 m'"),
    ]
    for raw, expected in cases:
        with pytest.raises(SpecError) as caught:
            parse_spec(raw)
        assert str(caught.value).startswith(expected)


def test_spec_error_is_a_value_error_and_pickles():
    error = SpecError("spec.targets[1].replicas", "must be >= 0")
    assert isinstance(error, ValueError)
    assert str(error) == "spec.targets[1].replicas: must be >= 0"
    copy_ = pickle.loads(pickle.dumps(error))
    assert (copy_.field, copy_.message) == (error.field, error.message)


def test_recurring_windows_that_just_touch_are_valid():
    # Daily window of 23h + 30m lead + 30m ramp-down fills the day exactly; only DST days are shorter,
    # and a UTC schedule has none.
    spec = parse_spec(
        with_changes(
            RECURRING,
            timezone="UTC",
            schedule={"cron": "0 0 * * *", "duration": "23h"},
            leadTime="30m",
            rampDown={"duration": "30m"},
        )
    )
    assert spec.schedule.duration == timedelta(hours=23)


def test_daily_window_filling_the_day_overlaps_on_the_short_dst_day():
    raw = with_changes(
        RECURRING,
        timezone="America/New_York",
        schedule={"cron": "0 12 * * *", "duration": "23h"},
        leadTime="30m",
        rampDown={"duration": "30m"},
    )
    with pytest.raises(SpecError, match="windows overlap") as caught:
        parse_spec(raw)
    assert caught.value.field == "spec.schedule.duration"
