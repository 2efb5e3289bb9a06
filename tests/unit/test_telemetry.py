"""The operator's own metrics that the alerting rules, the dashboard and the tests read: one phase series
per event, the lead time, how long each target took to be Ready, and the passes per event."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from campaign_autoscaler.adapters.telemetry import Telemetry


def value(telemetry: Telemetry, name: str, **labels: str) -> float | None:
    return telemetry.registry.get_sample_value(name, labels)


def target(name: str, ready_seconds: float | None = None) -> dict[str, object]:
    entry: dict[str, object] = {"name": name, "baselineReplicas": 2, "desiredReplicas": 5, "readyReplicas": 4}
    if ready_seconds is not None:
        entry["observedReadySeconds"] = ready_seconds
    return entry


def test_one_phase_series_per_event_follows_its_phase() -> None:
    telemetry = Telemetry()
    telemetry.observe_event("shop", "sale", "PreScaling", [target("checkout")], 1800.0)
    assert (
        value(
            telemetry, "campaign_autoscaler_event_phase", namespace="shop", event="sale", phase="PreScaling"
        )
        == 1
    )
    telemetry.observe_event("shop", "sale", "Active", [target("checkout")], 1800.0)
    assert (
        value(telemetry, "campaign_autoscaler_event_phase", namespace="shop", event="sale", phase="Active")
        == 1
    )
    assert (
        value(
            telemetry, "campaign_autoscaler_event_phase", namespace="shop", event="sale", phase="PreScaling"
        )
        is None
    )
    telemetry.forget_event("shop", "sale")
    assert (
        value(telemetry, "campaign_autoscaler_event_phase", namespace="shop", event="sale", phase="Active")
        is None
    )
    assert (
        value(telemetry, "campaign_autoscaler_event_lead_time_seconds", namespace="shop", event="sale")
        is None
    )


def test_lead_time_and_observed_ready_seconds() -> None:
    telemetry = Telemetry()
    labels = {"namespace": "shop", "event": "sale", "target": "checkout"}
    telemetry.observe_event("shop", "sale", "PreScaling", [target("checkout")], 1800.0)
    assert (
        value(telemetry, "campaign_autoscaler_event_lead_time_seconds", namespace="shop", event="sale")
        == 1800
    )
    assert (
        value(telemetry, "campaign_autoscaler_target_observed_ready_seconds", **labels) is None
    )  # not Ready yet
    telemetry.observe_event("shop", "sale", "Active", [target("checkout", 2400.5)], 1800.0)
    assert value(telemetry, "campaign_autoscaler_target_observed_ready_seconds", **labels) == 2400.5
    telemetry.observe_event("shop", "sale", "Active", [], 1800.0)  # the target was dropped from the spec
    assert value(telemetry, "campaign_autoscaler_target_observed_ready_seconds", **labels) is None
    telemetry.observe_event("shop", "sale", "Invalid", [])
    assert (
        value(telemetry, "campaign_autoscaler_event_lead_time_seconds", namespace="shop", event="sale")
        is None
    )
    assert value(telemetry, "campaign_autoscaler_events", phase="Invalid") == 1


def passes(telemetry: Telemetry) -> dict[tuple[str, str], float]:
    page = generate_latest(telemetry.registry).decode()
    return {
        (sample.labels["namespace"], sample.labels["event"]): sample.value
        for family in text_string_to_metric_families(page)
        if family.name == "campaign_autoscaler_event_passes"
        for sample in family.samples
        if sample.name == "campaign_autoscaler_event_passes_total"
    }


def test_passes_are_counted_per_event_and_forgotten_with_it():
    telemetry = Telemetry()
    telemetry.count_pass("shop", "sale")
    telemetry.count_pass("shop", "sale")
    telemetry.count_pass("shop", "payday")
    assert passes(telemetry) == {("shop", "sale"): 2, ("shop", "payday"): 1}
    telemetry.forget_event("shop", "sale")
    telemetry.forget_event("shop", "never-seen")
    assert passes(telemetry) == {("shop", "payday"): 1}


def test_events_by_phase_count_each_event_once_as_phases_change_and_events_go() -> None:
    telemetry = Telemetry()
    for name in ("a", "b", "c"):
        telemetry.observe_event("shop", name, "Pending", [], 60.0)
    telemetry.observe_event("shop", "a", "Pending", [], 60.0)  # a resync in the same phase
    telemetry.observe_event("shop", "a", "PreScaling", [], 60.0)
    telemetry.observe_event("shop", "b", "Invalid", [])
    counts = {
        phase: value(telemetry, "campaign_autoscaler_events", phase=phase)
        for phase in ("Pending", "PreScaling", "Invalid", "Active")
    }
    assert counts == {"Pending": 1, "PreScaling": 1, "Invalid": 1, "Active": 0}
    telemetry.forget_event("shop", "a")
    telemetry.forget_event("shop", "a")  # forgotten twice: counted down once
    telemetry.forget_event("shop", "never-seen")
    assert value(telemetry, "campaign_autoscaler_events", phase="PreScaling") == 0
    assert value(telemetry, "campaign_autoscaler_events", phase="Pending") == 1
