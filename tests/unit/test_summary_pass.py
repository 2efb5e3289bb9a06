"""The pass's summary step: the tally in `status.targets[].windowSoFar`, kept across a restart, and
`status.summary` with its one Normal Event once the window is over (one-off and recurring)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from campaign_autoscaler.handlers.runtime import EventMemory
from tests.unit.fakes import NAMESPACE, FakeKube, ScriptedMetrics, deployment_body
from tests.unit.test_passes import END, MINUTE, QUERY, START, Env, metric, raw_spec, recurring_spec


@pytest.fixture
def env() -> Env:
    env = Env()
    env.kube = FakeKube(ready_follows=False)  # pods become Ready when the test says so
    env.metrics = ScriptedMetrics()
    return env


def set_ready(env: Env, name: str, ready: int) -> None:
    env.kube.deployments[(NAMESPACE, name)]["status"]["readyReplicas"] = ready


def so_far(status: dict[str, Any]) -> dict[str, Any]:
    return status["targets"][0].get("windowSoFar", {})


def run_the_sale(env: Env, *, restart_mid_shortfall: bool = False) -> Any:
    """Floor 10 (4 x 2.5), 30m lead in 3 steps; Ready 5 minutes before the start; one hour in, the metric
    wants 15 and the pods take 30 s to be Ready."""
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 500.0
    driver = env.driver(raw_spec({"name": "checkout", "metric": metric()}))
    for at, ready in [(-30, 4), (-20, 6), (-10, 8), (-5, 10), (0, 10), (30, 10)]:
        env.clock.set(START + at * MINUTE)
        set_ready(env, "checkout", ready)
        driver.step()
    status = driver.status
    assert status["phase"] == "Active"
    assert so_far(status) == {
        "peakDesiredReplicas": 10,
        "peakReadyReplicas": 10,
        "peakMetricValue": "500",
        "floorReplicas": 10,
        "shortSeconds": 0.0,
        "readyAtStart": True,
    }
    env.metrics.values[QUERY] = 1500.0
    env.clock.set(START + timedelta(hours=1))
    driver.step()
    assert env.kube.replicas("checkout") == 15
    assert so_far(driver.status)["shortSince"] == "2026-09-09T01:00:00Z"
    if restart_mid_shortfall:
        driver.memory = EventMemory()
    env.clock.advance(seconds=30)
    set_ready(env, "checkout", 15)
    driver.step()
    assert "shortSince" not in so_far(driver.status)
    assert so_far(driver.status)["shortSeconds"] == 30.0
    env.metrics.values[QUERY] = 500.0
    for at in [END - MINUTE, END + 15 * MINUTE, END + 60 * MINUTE]:
        env.clock.set(at)
        driver.step()
    return driver


@pytest.mark.parametrize("restart", [False, True], ids=["one-process", "restart-mid-shortfall"])
def test_a_completed_event_gets_its_summary_and_one_event(env, restart):
    driver = run_the_sale(env, restart_mid_shortfall=restart)
    status = driver.status
    assert status["phase"] == "Completed"
    summary = status["summary"]
    assert summary["window"] == {"start": "2026-09-09T00:00:00Z", "end": "2026-09-09T10:00:00Z"}
    assert summary["targets"] == [
        {
            "name": "checkout",
            "peakDesiredReplicas": 15,
            "peakReadyReplicas": 15,
            "peakMetricValue": "1500",
            "shortSeconds": 30.0,
            "readyAtStart": True,
            "observedReadySeconds": 1500.0,
            "recommendation": "leadTime 30m was enough: pods took 25m to be Ready; "
            "floor 10 is below this peak (1500) x 1.2: set replicas >= 18",
        }
    ]
    assert summary["headline"] == (
        "Window of CampaignEvent sale completed: 1/1 target(s) Ready at start, "
        "1 short in the window (worst checkout: 30s below the demand)"
    )
    [posted] = [event for event in env.kube.posted if event.reason == "CampaignSummary"]
    assert (posted.event_type, posted.message) == ("Normal", summary["headline"])
    # Later passes keep it and say nothing more.
    env.clock.advance(hours=3)
    driver.step()
    assert driver.status["summary"] == summary
    assert env.kube.posted_reasons().count("CampaignSummary") == 1


def test_a_recurring_event_summarizes_the_window_it_left(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    env.metrics.values[QUERY] = 500.0
    env.metrics.peaks[QUERY] = 1600.0
    driver = env.driver(recurring_spec())  # daily 2h window, 30m lead in 1 step, forecast floor 16
    env.clock.set(START - 30 * MINUTE)
    driver.step()
    env.clock.set(START - 25 * MINUTE)
    set_ready(env, "checkout", 16)
    driver.step()
    env.clock.set(START)  # the pass that opens the window
    driver.step()
    env.clock.set(START + 3 * timedelta(hours=1))  # past the ramp-down: Pending for the next window
    result = driver.step()
    assert result.status["phase"] == "Pending"
    assert result.status["window"]["start"] == "2026-09-10T00:00:00Z"
    summary = result.status["summary"]
    assert summary["window"] == {"start": "2026-09-09T00:00:00Z", "end": "2026-09-09T02:00:00Z"}
    [entry] = summary["targets"]
    assert entry["peakDesiredReplicas"] == 16
    assert entry["readyAtStart"] is True
    assert entry["shortSeconds"] == 0.0
    assert entry["observedReadySeconds"] == 300.0
    assert entry["recommendation"] == (
        "leadTime 30m was enough: pods took 5m to be Ready; floor 16 covers this peak (500) x 1"
    )
    assert env.kube.posted_reasons().count("CampaignSummary") == 1
    assert "windowSoFar" not in result.status["targets"][0]  # the next window has seen nothing yet


def test_an_event_first_seen_after_its_window_gets_no_summary(env):
    env.kube.add_deployment(deployment_body("checkout", 4))
    driver = env.driver(raw_spec())
    env.clock.set(END + timedelta(hours=2))
    result = driver.step()
    assert result.status["phase"] == "Completed"
    assert "summary" not in result.status
    assert "CampaignSummary" not in env.kube.posted_reasons()
