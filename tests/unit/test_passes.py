"""An event's passes against the in-memory Kubernetes API and a scripted Prometheus, with a clock moved by
hand: the phases, targets coming and going, invalid edits, the release and its fence, what Prometheus is
asked and how often, per-window memory, and the operator's decisions against the simulation's."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import campaign_autoscaler.handlers.runtime as runtime_module
from campaign_autoscaler.adapters.prometheus import BadQueryError, MetricsUnavailableError
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.handlers.passes import release_event, release_gone_event, run_pass
from campaign_autoscaler.handlers.runtime import OperatorConfig, OperatorStoppingError, Runtime
from campaign_autoscaler.planning import parse_spec
from campaign_autoscaler.planning.claims import (
    BASELINE_ANNOTATION,
    CLAIMS_ANNOTATION,
    OWNERS_ANNOTATION,
)
from campaign_autoscaler.planning.decision import MetricMemory
from campaign_autoscaler.planning.windows import Window
from campaign_autoscaler.simulation import CampaignAutoscaler, TrafficCurve, replay
from tests.unit.fakes import (
    NAMESPACE,
    ClaimAttempt,
    Clock,
    EventDriver,
    FakeKube,
    ScriptedMetrics,
    deployment_body,
    hpa_body,
)

START = datetime(2026, 9, 9, 0, 0, tzinfo=UTC)
END = datetime(2026, 9, 9, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
QUERY = 'sum(rate(http_requests_total{app="checkout"}[2m]))'
KEY = f"{NAMESPACE}/sale"
UID = "uid-sale-1"


def raw_spec(*targets: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Baseline 4 x 2.5 = floor 10; 30m lead in 3 steps (6, 8, 10); 1h ramp-down in 4 steps (9, 7, 6, 4)."""
    spec: dict[str, Any] = {
        "start": "2026-09-09T00:00:00Z",
        "end": "2026-09-09T10:00:00Z",
        "leadTime": "30m",
        "rampUp": {"steps": 3},
        "rampDown": {"duration": "1h", "steps": 4},
        "trafficMultiplier": 2.5,
        "targets": list(targets) or [{"name": "checkout"}],
    }
    spec.update(fields)
    return spec


def metric(query: str = QUERY, **extra: Any) -> dict[str, Any]:
    return {"query": query, "targetPerReplica": 100, **extra}


def selector(tier: str = "checkout", **extra: Any) -> dict[str, Any]:
    return {"selector": {"matchLabels": {"tier": tier}}, **extra}


class Env:
    def __init__(self) -> None:
        self.clock = Clock(START - timedelta(hours=1))
        self.kube = FakeKube()
        self.metrics = ScriptedMetrics()

    def runtime(self, **config: Any) -> Runtime:
        return Runtime(
            config=OperatorConfig(**config), kube=self.kube, metrics=self.metrics, clock=self.clock
        )

    def driver(self, spec: dict[str, Any], **config: Any) -> EventDriver:
        return EventDriver(self.runtime(**config), self.kube, spec, name="sale", uid=UID)


@pytest.fixture
def env() -> Env:
    return Env()


def campaign_annotations(env: Env, name: str) -> dict[str, Any]:
    return {key: json.loads(value) for key, value in env.kube.campaign_annotations(name).items()}


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(item for item in status["conditions"] if item["type"] == kind)


# --- the lifecycle ---------------------------------------------------------------------------------------
def test_every_phase_over_a_timeline(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec())
    timeline = [
        (START - timedelta(hours=1), "Pending", 4, "2026-09-08T23:30:00Z"),
        (START - 30 * MINUTE, "PreScaling", 6, "2026-09-08T23:40:00Z"),
        (START - 20 * MINUTE, "PreScaling", 8, "2026-09-08T23:50:00Z"),
        (START - 10 * MINUTE, "PreScaling", 10, "2026-09-09T00:00:00Z"),
        (START, "Active", 10, "2026-09-09T10:00:00Z"),
        (END - timedelta(seconds=1), "Active", 10, "2026-09-09T10:00:00Z"),
        (END, "RampingDown", 10, "2026-09-09T10:15:00Z"),
        (END + 15 * MINUTE, "RampingDown", 9, "2026-09-09T10:30:00Z"),
        (END + 30 * MINUTE, "RampingDown", 7, "2026-09-09T10:45:00Z"),
        (END + 45 * MINUTE, "RampingDown", 6, "2026-09-09T11:00:00Z"),
        (END + 60 * MINUTE, "Completed", 4, None),
    ]
    for at, phase, replicas, upcoming in timeline:
        env.clock.set(at)
        result = driver.step()
        assert result is not None
        status = result.status
        assert (status["phase"], env.kube.replicas("checkout")) == (phase, replicas), at
        assert status.get("nextTransition") == upcoming, at
        assert status["window"] == {"start": "2026-09-09T00:00:00Z", "end": "2026-09-09T10:00:00Z"}
        [entry] = status["targets"]
        assert entry["name"] == "checkout"
        assert entry["baselineReplicas"] == 4
        assert entry["desiredReplicas"] == replicas
        assert env.kube.statuses[-1].status == status
        if phase == "Pending":
            assert env.kube.writes == []
            assert env.kube.campaign_annotations("checkout") == {}
        elif phase == "Completed":
            assert env.kube.campaign_annotations("checkout") == {}
        else:
            assert campaign_annotations(env, "checkout") == {
                BASELINE_ANNOTATION: {"replicas": 4},
                CLAIMS_ANNOTATION: {KEY: replicas},
                OWNERS_ANNOTATION: {KEY: UID},
            }
    # One write per step; the Events tell each change.
    assert [write.replicas for write in env.kube.writes] == [6, 8, 10, 9, 7, 6, 4]
    reasons = env.kube.posted_reasons()
    assert reasons.count("Scaled") == 2 * 6  # on the Deployment and on the event
    assert reasons.count("Restored") == 2
    # Once the status has seen the restored replicas Ready, a pass that changes nothing writes nothing and
    # the same status is not replaced again.
    env.clock.advance(seconds=15)
    assert driver.step().status["targets"][0]["readyReplicas"] == 4
    writes, statuses = len(env.kube.writes), len(env.kube.statuses)
    env.clock.advance(hours=2)
    assert driver.step().status["phase"] == "Completed"
    assert (len(env.kube.writes), len(env.kube.statuses)) == (writes, statuses)


def test_a_target_pushed_below_its_floor_is_raised_again(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec())
    env.clock.set(START + MINUTE)
    driver.step()
    env.kube.scale("checkout", 3)
    env.clock.advance(seconds=15)
    driver.step()
    assert env.kube.replicas("checkout") == 10


def test_replicas_raised_above_the_floor_are_left_alone_and_restored_afterwards(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec())
    env.clock.set(START + MINUTE)
    driver.step()
    env.kube.scale("checkout", 25)
    env.clock.advance(seconds=15)
    driver.step()
    assert env.kube.replicas("checkout") == 25
    env.clock.set(END + timedelta(hours=1))
    driver.step()
    assert env.kube.replicas("checkout") == 4


def test_an_hpa_backed_target_gets_its_bounds_raised_and_restored(env):
    env.kube.add_deployment(deployment_body("checkout", 3))
    env.kube.add_hpa(hpa_body("checkout", "checkout", 2, 8))
    driver = env.driver(raw_spec({"name": "checkout", "replicas": 12}))
    env.clock.set(START + MINUTE)
    result = driver.step()
    assert result.status["targets"][0]["via"] == "HorizontalPodAutoscaler/checkout"
    hpa = env.kube.hpa("checkout")
    assert (hpa.min_replicas, hpa.max_replicas) == (12, 12)
    assert env.kube.replicas("checkout") == 3  # the HPA moves the replicas, not the operator
    env.clock.set(END + timedelta(hours=1))
    driver.step()
    hpa = env.kube.hpa("checkout")
    assert (hpa.min_replicas, hpa.max_replicas) == (2, 8)
    assert env.kube.campaign_annotations("checkout") == {}


def test_a_claim_decided_on_a_stale_snapshot_is_decided_again_and_loses_no_other_claim(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.clock.set(START + MINUTE)
    stale = env.kube.snapshot()
    other = env.driver(raw_spec({"name": "checkout", "replicas": 12}))
    other.name, other.uid = "flash", "uid-flash"
    other.step()  # another event claims the target after the watch's snapshot
    driver = env.driver(raw_spec())
    driver.step(stale)
    assert env.kube.refused == 1
    assert campaign_annotations(env, "checkout") == {
        BASELINE_ANNOTATION: {"replicas": 4},
        CLAIMS_ANNOTATION: {"shop/flash": 12, KEY: 10},
        OWNERS_ANNOTATION: {"shop/flash": "uid-flash", KEY: UID},
    }
    assert env.kube.replicas("checkout") == 12


def test_a_dry_run_writes_nothing_and_tells_the_plan_once(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec(dryRun=True))
    env.clock.set(START + MINUTE)
    result = driver.step()
    env.clock.advance(seconds=15)
    driver.step()
    assert env.kube.writes == []
    assert env.kube.replicas("checkout") == 4
    assert result.status["targets"][0]["desiredReplicas"] == 10
    assert env.kube.posted_reasons().count("DryRun") == 2  # on the Deployment and the event, once


def test_after_a_restart_in_the_ramp_down_the_next_step_lands_on_time(env):
    # The previous operator process left the event's claim of 10 (the floor, held from `end` until the first
    # step); this one starts, with an empty memory, a minute before the first ramp-down step. The metric
    # wants 2 replicas throughout.
    annotations = {
        BASELINE_ANNOTATION: json.dumps({"replicas": 4}),
        CLAIMS_ANNOTATION: json.dumps({KEY: 10}),
        OWNERS_ANNOTATION: json.dumps({KEY: UID}),
    }
    env.kube.add_deployment(deployment_body("checkout", 10, annotations=annotations))
    env.metrics.values[QUERY] = 200.0
    driver = env.driver(raw_spec({"name": "checkout", "metric": metric()}))
    env.clock.set(END + 14 * MINUTE)
    while env.clock.now < END + 15 * MINUTE:
        driver.step()
        assert env.kube.replicas("checkout") == 10
        env.clock.advance(seconds=15)
    driver.step()
    assert env.kube.replicas("checkout") == 9  # ramp-down 1/4, at its instant


def test_an_operator_dry_run_does_not_release_a_dropped_target(env):
    # `--dry-run`: "plan and report in status and Events; patch nothing". A claim left by an earlier run of
    # the operator on a Deployment the event no longer selects is reported, not released.
    annotations = {
        BASELINE_ANNOTATION: json.dumps({"replicas": 2}),
        CLAIMS_ANNOTATION: json.dumps({KEY: 5}),
        OWNERS_ANNOTATION: json.dumps({KEY: UID}),
    }
    env.kube.add_deployment(deployment_body("web", 5, labels={"tier": "frontend"}, annotations=annotations))
    env.kube.add_deployment(deployment_body("api", 4, labels={"tier": "checkout"}))
    driver = env.driver(raw_spec(selector()), dry_run=True)
    env.clock.set(START + MINUTE)
    driver.step()
    assert env.kube.writes == []
    assert env.kube.replicas("web") == 5


# --- targets coming and going ------------------------------------------------------------------------------
def test_a_selector_target_that_stops_matching_is_released_in_the_next_pass(env):
    env.kube.add_deployment(deployment_body("api", 4, labels={"tier": "checkout"}))
    env.kube.add_deployment(deployment_body("web", 2, labels={"tier": "checkout"}))
    env.kube.add_deployment(deployment_body("batch", 3, labels={"tier": "batch"}))
    driver = env.driver(raw_spec(selector()))
    env.clock.set(START + timedelta(hours=1))
    driver.step()
    assert [env.kube.replicas(n) for n in ("api", "web", "batch")] == [10, 5, 3]

    env.kube.set_labels("web", {"tier": "frontend"})
    env.clock.advance(seconds=15)
    result = driver.step()

    assert driver.generation == 1  # the spec did not change
    assert env.kube.replicas("web") == 2
    assert env.kube.campaign_annotations("web") == {}
    assert env.kube.replicas("api") == 10
    assert [entry["name"] for entry in result.status["targets"]] == ["api"]
    assert any(event.reason == "Restored" and event.involved["name"] == "web" for event in env.kube.posted)


def test_a_named_target_removed_from_the_spec_is_released(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.kube.add_deployment(deployment_body("cart", 2))
    driver = env.driver(raw_spec({"name": "checkout"}, {"name": "cart"}))
    env.clock.set(START + timedelta(hours=1))
    driver.step()
    assert (env.kube.replicas("checkout"), env.kube.replicas("cart")) == (10, 5)

    driver.edit(raw_spec({"name": "checkout"}))
    env.clock.advance(seconds=15)
    result = driver.step()

    assert env.kube.replicas("cart") == 2
    assert env.kube.campaign_annotations("cart") == {}
    assert env.kube.replicas("checkout") == 10
    assert [entry["name"] for entry in result.status["targets"]] == ["checkout"]
    assert driver.memory.touched == {"checkout"}


def test_a_named_target_that_does_not_exist_is_reported(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec({"name": "checkout"}, {"name": "missing"}))
    env.clock.set(START + MINUTE)
    result = driver.step()
    valid = condition(result.status, "Valid")
    assert (valid["status"], valid["reason"]) == ("True", "TargetsMissing")
    assert "missing" in valid["message"]
    assert env.kube.replicas("checkout") == 10


# --- invalid edits -----------------------------------------------------------------------------------------
def test_valid_then_invalid_then_valid_again(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec())
    env.clock.set(START + timedelta(hours=1))
    driver.step()
    assert env.kube.replicas("checkout") == 10
    writes, calls = len(env.kube.writes), len(env.kube.claim_calls)

    driver.edit(raw_spec(end="2026-09-08T00:00:00Z"))
    env.clock.advance(seconds=15)
    result = driver.step()

    status = result.status
    assert set(status) == {"phase", "observedGeneration", "conditions"}
    assert status["phase"] == "Invalid"
    assert status["observedGeneration"] == 2
    [valid] = status["conditions"]
    assert (valid["type"], valid["status"], valid["reason"]) == ("Valid", "False", "InvalidSpec")
    assert valid["message"].startswith("spec.end: must be after spec.start")
    assert env.kube.statuses[-1].status == status  # replaced whole: nothing of the valid status is left
    assert len(env.kube.writes) == writes
    assert len(env.kube.claim_calls) == calls  # no target is even looked at
    assert env.kube.replicas("checkout") == 10  # the claim made under the valid spec is held
    assert env.kube.posted_reasons().count("InvalidSpec") == 1

    env.clock.advance(seconds=15)
    driver.step()
    assert env.kube.posted_reasons().count("InvalidSpec") == 1  # announced once per generation
    assert len(env.kube.writes) == writes

    driver.edit(raw_spec(trafficMultiplier=3))  # floor 12
    env.clock.advance(seconds=15)
    result = driver.step()
    assert result.status["phase"] == "Active"
    assert {"window", "targets", "nextTransition"} <= set(result.status)
    assert condition(result.status, "Valid")["status"] == "True"
    assert env.kube.replicas("checkout") == 12


# --- the release and its fence -----------------------------------------------------------------------------
def test_no_pass_writes_after_the_release(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 1500.0
    driver = env.driver(raw_spec({"name": "checkout", "metric": metric()}))
    env.clock.set(START + timedelta(hours=1))
    driver.step()
    assert env.kube.replicas("checkout") == 15

    released = driver.release()
    assert [outcome.deployment.name for outcome in released] == ["checkout"]
    assert env.kube.replicas("checkout") == 4
    assert env.kube.campaign_annotations("checkout") == {}
    writes, calls, statuses = len(env.kube.writes), len(env.kube.claim_calls), len(env.kube.statuses)
    asked = sum(env.metrics.value_calls.values())

    env.clock.advance(seconds=15)
    assert driver.step() is None
    assert (len(env.kube.writes), len(env.kube.claim_calls), len(env.kube.statuses)) == (
        writes,
        calls,
        statuses,
    )
    assert sum(env.metrics.value_calls.values()) == asked  # nor is Prometheus asked for it
    assert env.kube.replicas("checkout") == 4


def test_a_pass_of_an_event_being_deleted_writes_nothing(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec())
    driver.deleting = True
    env.clock.set(START + MINUTE)
    assert driver.step() is None
    assert env.kube.claim_calls == []


def hold_the_first_claim(env: Env) -> tuple[threading.Event, threading.Event]:
    """The first claim write of a pass waits, once `inside` is set, until the test sets `go_on`."""
    inside, go_on = threading.Event(), threading.Event()

    def hold_the_pass(attempt: ClaimAttempt) -> None:
        if attempt.wanted is not None and not inside.is_set():
            inside.set()
            assert go_on.wait(10)

    env.kube.before_write = hold_the_pass
    return inside, go_on


def test_the_release_waits_for_the_pass_in_flight(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec())
    env.clock.set(START + MINUTE)
    inside, go_on = hold_the_first_claim(env)
    results: list[Any] = []
    passing = threading.Thread(target=lambda: results.append(driver.step()))
    passing.start()
    assert inside.wait(10)
    # The finalizer comes while the pass is mid-write; its world is read now (no claim shows yet).
    world = driver.world()
    released: list[Any] = []
    releasing = threading.Thread(
        target=lambda: released.extend(release_event(driver.runtime, driver.memory, world))
    )
    releasing.start()
    releasing.join(0.5)
    assert releasing.is_alive(), "the release did not wait for the pass holding the fence"
    assert env.kube.writes == []
    go_on.set()
    passing.join(10)
    releasing.join(10)
    assert not passing.is_alive() and not releasing.is_alive()

    pass_writes = [w for w in env.kube.writes if w.annotations and w.annotations[CLAIMS_ANNOTATION]]
    release_writes = [
        w for w in env.kube.writes if w.annotations and w.annotations[CLAIMS_ANNOTATION] is None
    ]
    assert [w.replicas for w in pass_writes] == [10]
    assert [w.replicas for w in release_writes] == [4]
    assert max(w.seq for w in pass_writes) < min(w.seq for w in release_writes)
    assert results[0] is not None  # the pass in flight finished
    assert [outcome.deployment.name for outcome in released] == ["checkout"]
    assert env.kube.replicas("checkout") == 4
    assert env.kube.campaign_annotations("checkout") == {}
    # ... and no pass after it writes.
    env.clock.advance(seconds=15)
    assert driver.step() is None
    assert len(env.kube.writes) == 2


def test_a_gone_event_reported_twice_at_once_is_released_once(env):
    """The watch's DELETED and the daemon's refused status write can report the same deletion in the same
    instant: both wait for the fence, the first releases, the second writes nothing and says so (None)."""
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec())
    env.clock.set(START + MINUTE)
    driver.step()
    assert env.kube.replicas("checkout") == 10
    writes_before = len(env.kube.writes)
    world = driver.world()
    answers: list[Any] = []
    with driver.memory.fence.lock:  # both reporters are in before either can release
        reporters = [
            threading.Thread(
                target=lambda: answers.append(release_gone_event(driver.runtime, driver.memory, world))
            )
            for _ in range(2)
        ]
        for reporter in reporters:
            reporter.start()
        for reporter in reporters:
            reporter.join(0.2)
        assert all(reporter.is_alive() for reporter in reporters), "a reporter did not wait for the fence"
    for reporter in reporters:
        reporter.join(10)
    released = [answer for answer in answers if answer is not None]
    assert len(answers) == 2 and len(released) == 1
    assert [outcome.deployment.name for outcome in released[0]] == ["checkout"]
    assert [w.replicas for w in env.kube.writes[writes_before:]] == [4]
    assert env.kube.replicas("checkout") == 4
    # After the finalizer's own release, a late report is None too.
    assert release_gone_event(driver.runtime, driver.memory, world) is None


def test_the_release_covers_a_claim_the_snapshot_does_not_show_yet(env):
    # The pass claims `checkout`; before the watch shows that claim, the spec is edited to another target and
    # the event deleted. Neither the snapshot nor the spec names `checkout` any more: the process remembers.
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.kube.add_deployment(deployment_body("cart", 2))
    driver = env.driver(raw_spec({"name": "checkout"}))
    env.clock.set(START + MINUTE)
    lagging = env.kube.snapshot()
    driver.step()
    assert env.kube.replicas("checkout") == 10
    assert driver.memory.touched == {"checkout"}

    driver.edit(raw_spec({"name": "cart"}))
    released = driver.release(lagging)

    assert "checkout" in [outcome.deployment.name for outcome in released]
    assert env.kube.replicas("checkout") == 4
    assert env.kube.campaign_annotations("checkout") == {}
    assert driver.memory.touched == set()
    release = next(c for c in env.kube.claim_calls if c.name == "checkout" and c.wanted is None)
    assert release.fresh  # read afresh, not from the lagging snapshot


def test_the_release_covers_a_selected_target_the_snapshot_has_lost(env):
    env.kube.add_deployment(deployment_body("api", 4, labels={"tier": "checkout"}))
    driver = env.driver(raw_spec(selector()))
    env.clock.set(START + MINUTE)
    driver.step()
    assert env.kube.replicas("api") == 10
    # The watch is re-listing: the snapshot holds no Deployment at all.
    driver.release(NamespaceSnapshot.of([], namespace=NAMESPACE))
    assert env.kube.replicas("api") == 4
    assert env.kube.campaign_annotations("api") == {}


def test_the_release_restores_the_other_events_claim(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    other = env.driver(raw_spec({"name": "checkout", "replicas": 7}))
    other.name, other.uid = "flash", "uid-flash"
    driver = env.driver(raw_spec())
    env.clock.set(START + MINUTE)
    other.step()
    driver.step()
    assert env.kube.replicas("checkout") == 10
    driver.release()
    assert env.kube.replicas("checkout") == 7
    assert campaign_annotations(env, "checkout") == {
        BASELINE_ANNOTATION: {"replicas": 4},
        CLAIMS_ANNOTATION: {"shop/flash": 7},
        OWNERS_ANNOTATION: {"shop/flash": "uid-flash"},
    }


# --- what Prometheus is asked, and how often ---------------------------------------------------------------
def test_a_query_shared_by_a_selector_is_sent_once_per_metrics_interval(env):
    for name in ("api", "cart", "web"):
        env.kube.add_deployment(deployment_body(name, 4, labels={"tier": "checkout"}))
    env.metrics.values[QUERY] = 1500.0
    driver = env.driver(raw_spec(selector(metric=metric(), maxReplicas=30)), metrics_interval=15)
    env.clock.set(START - 30 * MINUTE)
    driver.step()
    assert env.metrics.value_calls[QUERY] == 1  # one reading serves the validation and the decision
    for _ in range(12):  # a pass every 5 s for a minute
        env.clock.advance(seconds=5)
        driver.step()
    assert env.metrics.value_calls[QUERY] == 5  # readings at 0, 15, 30, 45 and 60 s
    assert [env.kube.replicas(n) for n in ("api", "cart", "web")] == [15, 15, 15]
    assert [entry["metricValue"] for entry in driver.status["targets"]] == ["1500"] * 3


def test_a_failing_forecast_is_asked_again_after_a_growing_backoff(env):
    for name in ("api", "cart", "web"):
        env.kube.add_deployment(deployment_body(name, 4, labels={"tier": "checkout"}))
    env.metrics.values[QUERY] = 100.0
    env.metrics.peaks[QUERY] = MetricsUnavailableError("Timeout", "no answer within 5s")
    target = selector(metric=metric(forecast={"offset": "365d"}))
    driver = env.driver(raw_spec(target), metrics_interval=15)
    env.clock.set(START - 30 * MINUTE)
    driver.step()
    assert env.metrics.peaks_asked(QUERY) == 1
    asked = [env.metrics.peaks_asked(QUERY)]
    for _ in range(9):  # a pass every 5 s
        env.clock.advance(seconds=5)
        driver.step()
        asked.append(env.metrics.peaks_asked(QUERY))
    assert asked == [1, 1, 1, 2, 2, 2, 2, 2, 2, 3]  # at 0 s, then 15 s and 30 s later
    forecast = condition(driver.status, "ForecastAvailable")
    assert (forecast["status"], forecast["reason"]) == ("False", "Timeout")
    [(_, start, end)] = set(env.metrics.peak_calls)
    assert (start, end) == (START - timedelta(days=365), END - timedelta(days=365))

    # Prometheus answers again: the forecast is found at the next try (60 s later, the backoff's cap of four
    # intervals), and then kept for the window.
    env.metrics.peaks[QUERY] = 1600.0
    for _ in range(24):
        env.clock.advance(seconds=5)
        driver.step()
    assert env.metrics.peaks_asked(QUERY) == 4
    assert [entry.get("forecastReplicas") for entry in driver.status["targets"]] == [16] * 3
    assert env.kube.replicas("api") == 8  # ramp-up 1/3 of a floor raised to 16: 4 + ceil(12 / 3)


def test_a_forecast_without_data_is_not_asked_again_in_the_window(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 100.0
    env.metrics.peaks[QUERY] = None
    driver = env.driver(raw_spec({"name": "checkout", "metric": metric(forecast={"offset": "7d"})}))
    env.clock.set(START - 30 * MINUTE)
    for _ in range(10):
        driver.step()
        env.clock.advance(seconds=15)
    assert env.metrics.peaks_asked(QUERY) == 1
    assert condition(driver.status, "ForecastAvailable")["reason"] == "NoData"


def test_a_query_prometheus_rejects_makes_the_event_invalid_naming_the_field(env):
    bad = "sum(rate(http_requests_total{app=cart[2m]))"
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.kube.add_deployment(deployment_body("cart", 2))
    env.metrics.values[QUERY] = 500.0
    env.metrics.values[bad] = BadQueryError('1:37: parse error: unexpected "[" in label matching')
    driver = env.driver(
        raw_spec({"name": "checkout", "metric": metric()}, {"name": "cart", "metric": metric(bad)})
    )
    env.clock.set(START + timedelta(hours=1))
    result = driver.step()

    assert result.status["phase"] == "Invalid"
    [valid] = result.status["conditions"]
    assert valid["status"] == "False"
    assert valid["message"] == (
        'spec.targets[1].metric.query: rejected by Prometheus: 1:37: parse error: unexpected "[" in '
        "label matching"
    )
    assert env.kube.claim_calls == []
    assert env.kube.replicas("checkout") == 4

    env.clock.advance(seconds=15)
    driver.step()
    assert env.metrics.value_calls[bad] == 1  # the verdict holds for the generation

    fixed = 'sum(rate(http_requests_total{app="cart"}[2m]))'
    env.metrics.values[fixed] = 500.0
    driver.edit(raw_spec({"name": "checkout", "metric": metric()}, {"name": "cart", "metric": metric(fixed)}))
    env.clock.advance(seconds=15)
    assert driver.step().status["phase"] == "Active"
    assert (env.kube.replicas("checkout"), env.kube.replicas("cart")) == (10, 5)


def test_an_unreachable_prometheus_does_not_make_the_event_invalid(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = MetricsUnavailableError("ConnectionFailed", "connection refused")
    driver = env.driver(raw_spec({"name": "checkout", "metric": metric()}))
    env.clock.set(START + MINUTE)
    result = driver.step()
    assert result.status["phase"] == "Active"
    metrics = condition(result.status, "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", "ConnectionFailed")
    assert env.kube.replicas("checkout") == 10


def test_a_metric_outage_holds_the_claim_and_warns_once(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    # The validation of the query, the first reading, then nothing.
    env.metrics.values[QUERY] = [2000.0, 2000.0, MetricsUnavailableError("Timeout", "no answer within 5s")]
    driver = env.driver(raw_spec({"name": "checkout", "metric": metric(), "maxReplicas": 30}))
    env.clock.set(START + MINUTE)
    driver.step()  # validation and first reading: 20
    assert env.kube.replicas("checkout") == 20
    for _ in range(40):  # ten minutes blind: longer than the stabilization
        env.clock.advance(seconds=15)
        driver.step()
    assert env.kube.replicas("checkout") == 20
    metrics = condition(driver.status, "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", "Timeout")
    assert env.kube.posted_reasons().count("MetricsUnavailable") == 1


# --- memory: per generation, per window --------------------------------------------------------------------
def test_the_spec_is_parsed_once_per_generation(env, monkeypatch):
    parsed: list[Any] = []
    real = runtime_module.parse_spec

    def counting(raw, *scope):
        parsed.append(raw)
        return real(raw, *scope)

    monkeypatch.setattr(runtime_module, "parse_spec", counting)
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 500.0
    driver = env.driver(raw_spec({"name": "checkout", "metric": metric()}))
    env.clock.set(START - 31 * MINUTE)
    for _ in range(6):
        driver.step()
        env.clock.advance(seconds=15)
    assert len(parsed) == 1

    driver.edit(raw_spec({"name": "checkout", "metric": metric()}, trafficMultiplier=3))
    for _ in range(4):
        driver.step()
        env.clock.advance(seconds=15)
    assert len(parsed) == 2

    driver.edit(raw_spec(end="2026-09-08T00:00:00Z"))
    for _ in range(4):
        driver.step()
        env.clock.advance(seconds=15)
    assert len(parsed) == 3  # an invalid spec too: its error is kept


def recurring_spec() -> dict[str, Any]:
    return {
        "schedule": {"cron": "0 0 * * *", "duration": "2h"},
        "leadTime": "30m",
        "rampUp": {"steps": 1},
        "rampDown": {"duration": "30m", "steps": 1},
        "trafficMultiplier": 2.5,
        "targets": [{"name": "checkout", "metric": metric(forecast={"offset": "7d"})}],
    }


def test_per_window_memory_is_dropped_when_a_recurring_event_moves_to_its_next_window(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 500.0
    env.metrics.peaks[QUERY] = 1600.0
    driver = env.driver(recurring_spec())
    memory = driver.memory

    env.clock.set(START + 10 * MINUTE)  # inside the window of 9 September
    driver.step()
    env.clock.advance(seconds=15)  # the pass after the scale-up sees the replicas Ready
    result = driver.step()
    assert result.status["phase"] == "Active"
    assert memory.window.key == "2026-09-09T00:00:00Z"
    assert len(memory.window.forecasts) == 1
    assert "checkout" in memory.window.ready_seconds
    assert set(memory.readings) == {QUERY}
    assert memory.metrics["checkout"].value == 500.0
    assert result.status["targets"][0]["forecastReplicas"] == 16
    assert env.kube.replicas("checkout") == 16

    env.clock.set(START + 3 * timedelta(hours=1))  # after that window's ramp-down: Pending for the next
    result = driver.step()
    assert result.status["phase"] == "Pending"
    assert result.status["window"]["start"] == "2026-09-10T00:00:00Z"
    assert memory.window.key == "2026-09-10T00:00:00Z"
    assert memory.window.forecasts == {}
    assert memory.window.ready_seconds == {}
    assert memory.window.announced == set()
    assert memory.readings == {}
    assert memory.metrics["checkout"] == MetricMemory()
    assert env.kube.replicas("checkout") == 4

    env.clock.set(datetime(2026, 9, 9, 23, 30, tzinfo=UTC))  # the next window's pre-scale
    result = driver.step()
    assert result.status["phase"] == "PreScaling"
    assert env.metrics.peaks_asked(QUERY) == 2
    next_start = datetime(2026, 9, 10, tzinfo=UTC)
    assert env.metrics.peak_calls[-1] == (
        QUERY,
        next_start - timedelta(days=7),
        next_start + timedelta(hours=2) - timedelta(days=7),
    )
    assert "observedReadySeconds" not in result.status["targets"][0] or (
        result.status["targets"][0]["observedReadySeconds"] == 0.0
    )


# --- the operator decides as the simulation does -----------------------------------------------------------
EQUIVALENCE_END = START + timedelta(hours=2)


def demand(minute: int) -> float:
    """Requests/s in the minute `minute` minutes after the window opens (100 rps per replica)."""
    if minute < -20:
        return 300.0
    if minute < -15:
        return 1150.0  # above the first ramp-up steps
    if minute < 0:
        return 500.0
    if minute < 10:
        return 1800.0  # a spike above the floor of 10
    if minute < 12:
        return 5000.0  # beyond maxReplicas 30
    if minute < 40:
        return 250.0  # a drop inside the window: stabilized, then the floor
    if minute < 120:
        return 900.0
    return 300.0  # the ramp-down and after


def test_the_operator_and_the_simulation_decide_the_same_replicas_tick_by_tick(env):
    spec_raw = raw_spec(
        {"name": "checkout", "maxReplicas": 30, "metric": metric()},
        end="2026-09-09T02:00:00Z",
    )
    spec = parse_spec(spec_raw)
    first_minute, last_minute = -45, 120 + 75
    curve = TrafficCurve(
        start=START + first_minute * MINUTE,
        rps=tuple(demand(m) for m in range(first_minute, last_minute)),
        source="scripted demand",
    )
    simulated = replay(
        CampaignAutoscaler(
            spec=spec, windows=(Window(START, EQUIVALENCE_END),), baseline=4, target=spec.targets[0]
        ),
        curve,
        capacity_per_pod=100.0,
        initial_replicas=4,
        startup=timedelta(0),
    )

    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = lambda: curve.rps[int((env.clock.now - curve.start) // MINUTE)]
    driver = env.driver(spec_raw, metrics_interval=15, scale_down_stabilization=300)
    operated = []
    for slot in simulated.slots:
        env.clock.set(slot.at)
        driver.step()
        operated.append((slot.at, env.kube.replicas("checkout")))

    assert operated == [(slot.at, slot.replicas) for slot in simulated.slots]
    # The lifecycle was all there: ramp-up steps, the metric above them, its spike clamped, the drop held
    # for the stabilization, the ramp-down steps and the baseline again.
    replicas = dict(operated)
    assert replicas[START - 30 * MINUTE] == 6
    assert replicas[START - 20 * MINUTE] == 12
    assert replicas[START + MINUTE] == 18
    assert replicas[START + 11 * MINUTE] == 30
    assert replicas[START + 16 * MINUTE] == 30
    assert replicas[START + 17 * MINUTE] == 10
    assert replicas[EQUIVALENCE_END + 15 * MINUTE] == 9
    assert replicas[EQUIVALENCE_END + 30 * MINUTE] == 7
    assert replicas[EQUIVALENCE_END + 45 * MINUTE] == 6
    assert replicas[EQUIVALENCE_END + 60 * MINUTE] == 4
    assert {value for _, value in operated} >= {4, 6, 7, 9, 10, 12, 18, 30}


# --- a graceful stop: the write gate ------------------------------------------------------------------------
def test_closing_the_gate_waits_for_the_pass_in_flight_and_admits_no_later_one(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec())
    env.clock.set(START + MINUTE)
    inside, go_on = hold_the_first_claim(env)
    passing = threading.Thread(target=driver.step)
    passing.start()
    assert inside.wait(10)
    closed: list[bool] = []
    closing = threading.Thread(target=lambda: closed.append(driver.runtime.gate.close(10)))
    closing.start()
    closing.join(0.5)
    assert closing.is_alive(), "the gate closed under a pass still writing"
    go_on.set()
    passing.join(10)
    closing.join(10)
    assert closed == [True]
    assert env.kube.replicas("checkout") == 10

    # After the close: no pass writes, no release either (the replica that takes over makes it).
    writes = len(env.kube.writes)
    env.kube.scale("checkout", 3)
    assert driver.step() is None
    with pytest.raises(OperatorStoppingError):
        driver.release()
    assert len(env.kube.writes) == writes
    assert env.kube.replicas("checkout") == 3  # left for the replica that takes over


def test_before_prometheus_first_answers_the_metric_is_awaited_not_reported_answered(env):
    """The samplers run beside the passes: a pass may come before the first answer. It holds the floor and
    says it is waiting, not that every query was answered."""
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 2000.0
    driver = env.driver(raw_spec({"name": "checkout", "metric": metric(), "maxReplicas": 30}))
    env.clock.set(START + MINUTE)
    result = run_pass(driver.runtime, driver.memory, driver.world())  # no sample yet
    assert result is not None and result.status["phase"] == "Active"
    metrics = condition(result.status, "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("Unknown", "AwaitingFirstAnswer")
    assert "checkout" in metrics["message"]
    assert "metricValue" not in result.status["targets"][0]
    assert env.kube.replicas("checkout") == 10
    driver.step()  # the first answer: 2000 / 100
    assert condition(driver.status, "MetricsAvailable")["reason"] == "QueriesAnswered"
    assert env.kube.replicas("checkout") == 20


# --- metric.forecast.mode: curve ----------------------------------------------------------------------------
def last_campaign(level: float, surge: float, surge_minutes: int = 60):
    """A previous campaign a year ago: `surge` from its opening for `surge_minutes`, `level` otherwise."""

    def points(start: datetime, end: datetime, step: float) -> list[tuple[datetime, float]]:
        opening = START - timedelta(days=365)
        count = int((end - start).total_seconds() // step) + 1
        stamps = [start + timedelta(seconds=step * k) for k in range(count)]
        return [
            (at, surge if opening <= at < opening + timedelta(minutes=surge_minutes) else level)
            for at in stamps
        ]

    return points


def curve_target(**forecast: Any) -> dict[str, Any]:
    return {
        "name": "checkout",
        "metric": metric(forecast={"offset": "365d", "mode": "curve", **forecast}),
        "maxReplicas": 40,
    }


def test_a_curve_is_read_once_over_the_lifecycle_a_year_ago_and_followed(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 100.0
    env.metrics.curves[QUERY] = last_campaign(level=300.0, surge=1500.0)
    driver = env.driver(raw_spec(curve_target()), metrics_interval=15)
    env.clock.set(START - 30 * MINUTE)
    driver.step()
    year = timedelta(days=365)
    assert env.metrics.series_calls == [
        (QUERY, START - 30 * MINUTE - year, END + timedelta(hours=1) - year, 60.0)
    ]
    assert env.kube.replicas("checkout") == 4  # 300 / 100 = 3: the baseline holds
    [entry] = driver.status["targets"]
    # The opening's surge enters the 10-minute lookahead at 23:50 minus one metrics interval.
    assert entry["nextPlannedChange"] == {"at": "2026-09-08T23:49:45Z", "replicas": 15}
    assert driver.status["nextTransition"] == "2026-09-08T23:40:00Z"  # a ramp step comes first
    assert condition(driver.status, "ForecastAvailable")["reason"] == "HistoryRead"
    env.clock.set(START - 10 * MINUTE - timedelta(seconds=15))
    driver.step()
    assert env.kube.replicas("checkout") == 15
    assert driver.status["targets"][0]["reason"].startswith("curve 15 = ceil(last campaign's 1500 / 100)")
    # Once a change is due, the next one is worked out: down after the surge and the stabilization.
    assert driver.status["targets"][0]["nextPlannedChange"] == {"at": "2026-09-09T01:05:00Z", "replicas": 4}
    assert driver.status["nextTransition"] == "2026-09-08T23:50:00Z"  # ramp step 3/3 comes first
    # Down after the surge, once the stabilization window has passed it.
    env.clock.set(START + 64 * MINUTE)
    driver.step()
    assert env.kube.replicas("checkout") == 15
    env.clock.set(START + 65 * MINUTE)
    driver.step()
    assert env.kube.replicas("checkout") == 4
    assert len(env.metrics.series_calls) == 1  # read once per window


def test_a_live_metric_above_the_curve_wins(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 2300.0
    env.metrics.curves[QUERY] = last_campaign(level=300.0, surge=1500.0)
    driver = env.driver(raw_spec(curve_target()))
    env.clock.set(START + 5 * MINUTE)
    driver.step()
    assert env.kube.replicas("checkout") == 23


def test_a_curve_with_several_series_falls_back_on_the_plain_floor(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 100.0
    env.metrics.curves[QUERY] = MetricsUnavailableError("MultipleSeries", "returned 2 series, not 1")
    driver = env.driver(raw_spec(curve_target()))
    env.clock.set(START)
    driver.step()
    assert env.kube.replicas("checkout") == 10  # the multiplier's floor: never a blind scale-down
    forecast = condition(driver.status, "ForecastAvailable")
    assert (forecast["status"], forecast["reason"]) == ("False", "MultipleSeries")
    assert "checkout: MultipleSeries: returned 2 series" in forecast["message"]
    assert "nextPlannedChange" not in driver.status["targets"][0]


def test_a_curve_of_nan_only_falls_back_on_the_plain_floor(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 100.0
    env.metrics.curves[QUERY] = last_campaign(level=float("nan"), surge=float("nan"))
    driver = env.driver(raw_spec(curve_target()))
    env.clock.set(START)
    driver.step()
    assert env.kube.replicas("checkout") == 10
    assert condition(driver.status, "ForecastAvailable")["reason"] == "NaN"


def test_gaps_in_the_curve_are_the_plain_floor_there_and_say_so(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 100.0
    whole = last_campaign(level=300.0, surge=1500.0)
    opening = START - timedelta(days=365)

    def gappy(start: datetime, end: datetime, step: float) -> list[tuple[datetime, float]]:
        hole = (opening + timedelta(hours=3), opening + timedelta(hours=4))
        return [(at, float("nan") if hole[0] <= at < hole[1] else v) for at, v in whole(start, end, step)]

    env.metrics.curves[QUERY] = gappy
    driver = env.driver(raw_spec(curve_target()))
    env.clock.set(START + timedelta(hours=2))
    driver.step()
    assert env.kube.replicas("checkout") == 4
    forecast = condition(driver.status, "ForecastAvailable")
    assert (forecast["status"], forecast["reason"]) == ("False", "HistoryIncomplete")
    assert "60 of 691 minutes of history missing (60 NaN)" in forecast["message"]
    env.clock.set(START + timedelta(hours=3, minutes=30))
    driver.step()
    assert env.kube.replicas("checkout") == 10
    assert "gap in the history: plain floor" in driver.status["targets"][0]["reason"]


def test_a_curve_without_data_is_not_asked_again_and_the_plain_floor_holds(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 100.0
    driver = env.driver(raw_spec(curve_target()))
    env.clock.set(START - 30 * MINUTE)
    for _ in range(10):
        driver.step()
        env.clock.advance(seconds=15)
    assert len(env.metrics.series_calls) == 1
    assert condition(driver.status, "ForecastAvailable")["reason"] == "NoData"
    assert env.kube.replicas("checkout") == 6  # ramp-up 1/3 of the plain floor 10
    assert env.metrics.peak_calls == []  # a curve asks no peak


def test_a_failing_curve_is_asked_again_with_the_backoff(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 100.0
    env.metrics.curves[QUERY] = MetricsUnavailableError("Timeout", "no answer within 5s")
    driver = env.driver(raw_spec(curve_target()), metrics_interval=15)
    env.clock.set(START - 30 * MINUTE)
    asked = []
    for _ in range(10):
        driver.step()
        asked.append(len(env.metrics.series_calls))
        env.clock.advance(seconds=5)
    assert asked == [1, 1, 1, 2, 2, 2, 2, 2, 2, 3]
    assert condition(driver.status, "ForecastAvailable")["reason"] == "Timeout"
    env.metrics.curves[QUERY] = last_campaign(level=300.0, surge=1500.0)
    for _ in range(24):
        driver.step()
        env.clock.advance(seconds=5)
    assert len(env.metrics.series_calls) == 4
    assert condition(driver.status, "ForecastAvailable")["status"] == "True"


def test_writes_following_a_curve_are_bounded(env):
    """A curve that changes every minute: at most one rise per metrics interval, one fall per stabilization
    window, whatever the number of passes."""
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 100.0

    def zigzag(start: datetime, end: datetime, step: float) -> list[tuple[datetime, float]]:
        count = int((end - start).total_seconds() // step) + 1
        return [(start + timedelta(seconds=step * k), 500.0 + 700.0 * (k % 13 == 0)) for k in range(count)]

    env.metrics.curves[QUERY] = zigzag
    driver = env.driver(raw_spec(curve_target(lookahead="1m")), metrics_interval=60)
    env.clock.set(START)
    changes = []
    previous = None
    for _ in range(4 * 40):  # 40 minutes, a pass every 15 s
        driver.step()
        replicas = env.kube.replicas("checkout")
        if previous is not None and replicas != previous:
            changes.append((env.clock.now, replicas > previous))
        previous = replicas
        env.clock.advance(seconds=15)
    falls = [at for at, up in changes if not up]
    rises = [at for at, up in changes if up]
    assert rises and falls
    assert all(b - a >= timedelta(minutes=5) for a, b in itertools.pairwise(falls))
    assert all(b - a >= timedelta(minutes=1) for a, b in itertools.pairwise(rises))


def test_a_curve_is_read_shortly_before_the_lead_time_so_the_first_step_follows_it(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 100.0
    env.metrics.curves[QUERY] = last_campaign(level=300.0, surge=1500.0)
    driver = env.driver(raw_spec(curve_target()))
    env.clock.set(START - 32 * MINUTE)
    driver.step()
    assert env.metrics.series_calls == []  # more than a minute before the lead time: nothing asked
    env.clock.set(START - 30 * MINUTE - timedelta(seconds=40))
    driver.step()
    assert len(env.metrics.series_calls) == 1
    assert env.metrics.value_calls[QUERY] <= 1  # the live metric waits for the lead time (bar validation)
    assert env.kube.replicas("checkout") == 4  # Pending: nothing claimed yet
    env.clock.set(START - 30 * MINUTE)
    driver.step()
    assert env.kube.replicas("checkout") == 4  # the curve's 3, held at the baseline; not the plain step 6
    assert len(env.metrics.series_calls) == 1


def test_a_target_kind_that_cannot_be_scaled_makes_the_event_invalid_and_touches_nothing(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.clock.set(START)
    driver = env.driver(raw_spec())
    driver.step()
    assert env.kube.replicas("checkout") == 10
    writes = len(env.kube.writes)
    driver.edit(
        raw_spec({"name": "checkout"}, {"name": "w", "kind": "Widget", "apiVersion": "example.com/v1"})
    )
    result = driver.step()
    assert result is not None and result.status["phase"] == "Invalid"
    valid = condition(result.status, "Valid")
    assert valid["status"] == "False"
    assert valid["message"] == (
        "spec.targets[1].kind: Widget is not a namespaced kind the API server serves under example.com/v1"
    )
    # The claim made under the valid spec is held, not guessed at; nothing is written.
    assert len(env.kube.writes) == writes and env.kube.replicas("checkout") == 10
