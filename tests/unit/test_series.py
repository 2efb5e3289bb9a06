"""Series tables: exposed exactly as prometheus-client's labelled Gauge exposes the same series."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from campaign_autoscaler.adapters.series import SeriesTable

LABELS = ("namespace", "event", "target")


def test_a_table_is_exposed_as_a_gauge_with_the_same_series_would_be() -> None:
    with_gauge, with_table = CollectorRegistry(), CollectorRegistry()
    gauge = Gauge("x_replicas", "Replicas of a target", LABELS, registry=with_gauge)
    table = SeriesTable("x_replicas", "Replicas of a target", LABELS, with_table)
    for labels, value in ((("shop", "sale", "checkout"), 4), (("shop", "sale", "cart"), 2.5)):
        gauge.labels(*labels).set(value)
        table.set(labels, value)
    gauge.labels("shop", "sale", "gone").set(1)
    table.set(("shop", "sale", "gone"), 1)
    gauge.remove("shop", "sale", "gone")
    table.remove("shop", "sale", "gone")
    assert generate_latest(with_table) == generate_latest(with_gauge)
    assert table.value("shop", "sale", "checkout") == 4.0 and len(table) == 2


def test_removing_a_series_that_is_not_there_says_so_as_a_gauge_does() -> None:
    table = SeriesTable("x_replicas", "Replicas", LABELS, CollectorRegistry())
    with pytest.raises(KeyError):
        table.remove("shop", "sale", "checkout")


def test_a_series_with_the_wrong_labels_is_refused() -> None:
    table = SeriesTable("x_replicas", "Replicas", LABELS, CollectorRegistry())
    with pytest.raises(ValueError, match="takes labels"):
        table.set(("shop", "sale"), 1)
