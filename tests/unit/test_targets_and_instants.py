"""The one target resolution, the one step plan and the one way to write an instant, shared by the operator's
pass, `plan`, `simulate` and the demo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from campaign_autoscaler.planning import (
    compute_floor,
    parse_spec,
    planned_steps,
    ramp_replicas,
    resolve_targets,
    transitions,
)
from campaign_autoscaler.planning.instants import human_utc, iso_utc, kube_time, local_time, parse_kube_time
from campaign_autoscaler.planning.windows import Window

SPEC = {
    "start": "2026-09-09T00:00:00Z",
    "end": "2026-09-09T02:00:00Z",
    "leadTime": "30m",
    "rampUp": {"steps": 3},
    "trafficMultiplier": 2.5,
    "targets": [
        {"name": "checkout"},
        {"selector": {"matchLabels": {"tier": "web"}}, "multiplier": 2},
        {"name": "search"},
        {"selector": {"matchLabels": {"tier": "web"}}},
    ],
}
LABELS = {"checkout": {"tier": "web"}, "search": {"tier": "web"}, "cart": {"tier": "web"}, "db": {}}


def _selected(target):
    return [name for name, labels in LABELS.items() if target.matches(labels)]


def test_a_deployment_belongs_to_the_first_target_naming_or_selecting_it():
    spec = parse_spec(SPEC)
    resolved = resolve_targets(spec.targets, _selected)
    assert [(target.index, name) for target, name in resolved] == [
        (0, "checkout"),
        (1, "search"),
        (1, "cart"),
    ]


def test_a_target_selecting_nothing_takes_nothing():
    spec = parse_spec({**SPEC, "targets": [{"selector": {"matchLabels": {"tier": "none"}}}, {"name": "db"}]})
    assert [name for _, name in resolve_targets(spec.targets, _selected)] == ["db"]


def test_the_planned_steps_are_each_transition_with_each_workloads_ramp():
    spec = parse_spec(SPEC)
    window = Window(spec.start, spec.end)
    baselines = {"checkout": 4, "cart": 2}
    floors = {
        "checkout": compute_floor(spec.targets[0], 4, spec.traffic_multiplier, 10),
        "cart": compute_floor(spec.targets[1], 2, spec.traffic_multiplier, 10),
    }
    steps = planned_steps(spec, window, baselines, floors)
    assert [step.transition for step in steps] == transitions(spec, window)
    for step in steps:
        assert list(step.replicas) == ["checkout", "cart"]  # the workloads' order
        for name, replicas in step.replicas.items():
            assert replicas == ramp_replicas(baselines[name], floors[name].replicas, step.transition.fraction)
    assert [step.replicas["checkout"] for step in steps][:4] == [6, 8, 10, 10]


def test_instants_are_written_the_same_way_everywhere():
    moment = datetime(2026, 9, 9, 7, 0, 0, 250000, tzinfo=timezone(timedelta(hours=7)))
    assert iso_utc(moment) == "2026-09-09T00:00:00.250000Z"
    assert iso_utc(moment.replace(microsecond=0)) == "2026-09-09T00:00:00Z"
    assert kube_time(moment) == "2026-09-09T00:00:00Z"
    assert human_utc(moment) == "2026-09-09 00:00:00 UTC"
    assert local_time(moment, ZoneInfo("Asia/Jakarta")) == "2026-09-09 07:00:00 WIB"
    assert parse_kube_time("2026-09-09T00:00:00Z") == datetime(2026, 9, 9, tzinfo=UTC)
    assert parse_kube_time(kube_time(moment)) == moment.replace(microsecond=0)
