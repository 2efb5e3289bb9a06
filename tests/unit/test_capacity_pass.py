"""Why capacity is missing, as a pass reports it: `status.targets[].pendingReplicas` and `notReadyReason`,
CapacityReady with the cause and its details, one Warning per cause and target, and the unready metric."""

from __future__ import annotations

from typing import Any

import pytest

from campaign_autoscaler.handlers.runtime import EventMemory
from campaign_autoscaler.planning.capacity import PodState
from tests.unit.fakes import NAMESPACE, EventDriver, FakeKube, deployment_body
from tests.unit.test_passes import MINUTE, START, Env, raw_spec

SCHEDULER_MESSAGE = "0/3 nodes are available: 3 Insufficient cpu."
QUOTA_MESSAGE = (
    'pods "checkout-6f9d-abcde" is forbidden: exceeded quota: floor, requested: pods=1, used: pods=6'
)


@pytest.fixture
def env() -> Env:
    env = Env()
    env.kube = FakeKube(ready_follows=False)  # Pods become Ready when the test says so
    return env


def set_ready(env: Env, ready: int, **status: Any) -> None:
    env.kube.deployments[(NAMESPACE, "checkout")]["status"] = {"readyReplicas": ready, **status}


def capacity(status: dict[str, Any]) -> dict[str, Any]:
    return next(item for item in status["conditions"] if item["type"] == "CapacityReady")


def test_unschedulable_pods_make_capacity_not_ready_with_the_schedulers_message(env: Env) -> None:
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec(rampUp={"steps": 1}))  # 10 at START - 30m
    env.clock.set(START - 30 * MINUTE)
    driver.pods = {}
    driver.step()
    assert env.kube.replicas("checkout") == 10
    [entry] = driver.status["targets"]
    assert (entry["pendingReplicas"], entry["notReadyReason"]) == (6, "Starting")
    assert capacity(driver.status)["reason"] == "Starting"
    assert "Unschedulable" not in env.kube.posted_reasons()

    set_ready(env, 7)
    driver.pods = {"checkout": tuple(PodState(f"p{i}", unschedulable=SCHEDULER_MESSAGE) for i in range(3))}
    for _ in range(3):  # the cause lasts several passes: one Warning
        env.clock.advance(seconds=1)
        driver.step()
    [entry] = driver.status["targets"]
    assert (entry["pendingReplicas"], entry["notReadyReason"]) == (3, "Unschedulable")
    condition = capacity(driver.status)
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    assert condition["message"] == f"checkout: 7/10 Ready; 3 unschedulable: {SCHEDULER_MESSAGE}"
    warnings = [event for event in env.kube.posted if event.reason == "Unschedulable"]
    assert len(warnings) == 1
    assert warnings[0].event_type == "Warning"
    assert warnings[0].involved["kind"] == "CampaignEvent"
    assert SCHEDULER_MESSAGE in warnings[0].message and f"{NAMESPACE}/checkout" in warnings[0].message

    set_ready(env, 10)
    driver.pods = {}
    env.clock.advance(seconds=1)
    driver.step()
    [entry] = driver.status["targets"]
    assert entry["pendingReplicas"] == 0 and "notReadyReason" not in entry
    assert capacity(driver.status)["status"] == "True"


def test_a_quota_refusal_reads_as_quota_exceeded(env: Env) -> None:
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec(rampUp={"steps": 1}))
    env.clock.set(START - 30 * MINUTE)
    driver.pods = {}
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": QUOTA_MESSAGE}
    set_ready(env, 6, conditions=[failure])
    driver.step()
    [entry] = driver.status["targets"]
    assert (entry["pendingReplicas"], entry["notReadyReason"]) == (4, "QuotaExceeded")
    condition = capacity(driver.status)
    assert condition["reason"] == "QuotaExceeded"
    assert condition["message"] == f"checkout: 6/10 Ready; 4 not created: {QUOTA_MESSAGE}"
    assert env.kube.posted_reasons().count("QuotaExceeded") == 1


def test_the_unready_metric_follows_the_causes(env: Env) -> None:
    env.kube.add_deployment(deployment_body("checkout", 4))
    runtime = env.runtime()
    driver = EventDriver(runtime, env.kube, raw_spec(rampUp={"steps": 1}), name="sale", uid="uid-sale-1")
    env.clock.set(START - 30 * MINUTE)
    set_ready(env, 6)
    driver.pods = {
        "checkout": (
            PodState("a", unschedulable=SCHEDULER_MESSAGE),
            PodState("b", bound=True, waiting=(("ImagePullBackOff", "Back-off pulling image"),)),
        )
    }
    driver.step()
    labels = {"namespace": NAMESPACE, "event": "sale", "target": "checkout"}
    registry = runtime.telemetry.registry
    name = "campaign_autoscaler_target_unready_replicas"
    assert registry.get_sample_value(name, {**labels, "reason": "Unschedulable"}) == 1
    assert registry.get_sample_value(name, {**labels, "reason": "ImagePullBackOff"}) == 1
    assert registry.get_sample_value(name, {**labels, "reason": "Starting"}) == 2  # not created yet
    set_ready(env, 10)
    driver.pods = {}
    env.clock.advance(seconds=1)
    driver.step()
    for reason in ("Unschedulable", "ImagePullBackOff", "Starting"):
        assert registry.get_sample_value(name, {**labels, "reason": reason}) is None


def test_a_cause_the_status_already_shows_is_not_announced_again_after_a_restart(env: Env) -> None:
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec(rampUp={"steps": 1}))
    env.clock.set(START - 30 * MINUTE)
    set_ready(env, 7)
    driver.pods = {"checkout": tuple(PodState(f"p{i}", unschedulable=SCHEDULER_MESSAGE) for i in range(3))}
    driver.step()
    driver.memory = EventMemory()  # a restart: the status is what is left
    env.clock.advance(seconds=1)
    driver.step()
    assert env.kube.posted_reasons().count("Unschedulable") == 1
