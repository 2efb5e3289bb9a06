"""The operator's own metrics: the passes per event, counted and forgotten with the event."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from campaign_autoscaler.adapters.telemetry import Telemetry


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
