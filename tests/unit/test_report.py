"""The report's pure parts: range answers read as points, the fold of Prometheus samples into the same
summary the passes make, and the page, the Markdown and their partial forms."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from campaign_autoscaler.adapters.prometheus import MetricsUnavailableError, range_points
from campaign_autoscaler.planning import Window, parse_spec, transitions
from campaign_autoscaler.report.collect import ReportData, TargetReportData, TransitionRow, _summarize_series
from campaign_autoscaler.report.render import to_html, to_markdown

T0 = datetime(2026, 9, 9, tzinfo=UTC)
SPEC = parse_spec(
    {
        "start": "2026-09-09T00:00:00Z",
        "end": "2026-09-09T00:01:00Z",
        "leadTime": "10s",
        "rampDown": {"duration": "10s", "steps": 1},
        "trafficMultiplier": 2,
        "targets": [{"name": "checkout", "metric": {"query": "sum(rps)", "targetPerReplica": 10}}],
    }
)
WINDOW = Window(T0, T0 + timedelta(minutes=1))


def every_second(values: list[float], first: int = -10) -> list[tuple[datetime, float]]:
    return [(T0 + timedelta(seconds=first + index), value) for index, value in enumerate(values)]


def test_range_points_reads_one_series_and_drops_nan():
    result = [{"metric": {}, "values": [[1788912000, "4"], [1788912001, "NaN"], [1788912002, "5.5"]]}]
    assert range_points(result, "q") == [
        (datetime.fromtimestamp(1788912000, UTC), 4.0),
        (datetime.fromtimestamp(1788912002, UTC), 5.5),
    ]
    assert range_points([], "q") == []
    with pytest.raises(MetricsUnavailableError, match="2 series"):
        range_points([{"values": []}, {"values": []}], "q")


def test_samples_fold_into_the_summary_the_passes_make():
    # Pre-scale from -10 s: floor 4 Ready at -7 s; at +20 s the metric asks 8 and Ready follows at +23 s.
    desired = every_second([4] * 30 + [8] * 15 + [4] * 26)
    ready = every_second([2] * 3 + [4] * 30 + [8] * 38)
    metric = every_second([30.0] * 30 + [80.0] * 15 + [30.0] * 26)
    demand = [(at, -(-value // 10)) for at, value in metric]
    entry = {"windowSoFar": {"floorReplicas": 4}}
    summary, stretches = _summarize_series(
        SPEC, WINDOW, "checkout", SPEC.targets[0], entry, desired, ready, metric, demand
    )
    assert (summary.peak_desired, summary.peak_ready, summary.peak_metric) == (8, 8, 80.0)
    assert summary.ready_at_start is True
    assert summary.short_seconds == 3.0
    assert stretches == [(T0 + timedelta(seconds=20), T0 + timedelta(seconds=23))]
    assert summary.observed_ready_seconds == 3.0  # the floor was first all Ready 3 s into the pre-scale
    assert summary.recommendation.endswith("floor 4 is below this peak (80) x 1.2: set replicas >= 10")


def report_data(
    targets: list[TargetReportData], problems: list[str], summary: dict | None = None
) -> ReportData:
    rows = [TransitionRow(step, step.at, 0.0) for step in transitions(SPEC, WINDOW)]
    return ReportData(
        namespace="shop",
        event="sale",
        phase="Completed",
        spec=SPEC,
        window=WINDOW,
        begin=T0 - timedelta(seconds=10),
        until=T0 + timedelta(seconds=70),
        live=False,
        generated_at=T0 + timedelta(minutes=5),
        step_seconds=1.0,
        targets=targets,
        transitions=rows,
        status_summary=summary,
        problems=problems,
    )


def test_a_report_without_series_says_so_and_shows_what_the_status_holds():
    target = TargetReportData(
        "checkout", SPEC.targets[0], [], [], [], [], [], None, {"ready": 0, "desired": 0}
    )
    recorded = {
        "window": {"start": "2026-09-09T00:00:00Z", "end": "2026-09-09T00:01:00Z"},
        "headline": "Window of CampaignEvent sale completed: 1/1 target(s) Ready at start, no shortfall",
        "targets": [
            {
                "name": "checkout",
                "peakDesiredReplicas": 8,
                "peakReadyReplicas": 8,
                "shortSeconds": 3.1,
                "readyAtStart": True,
                "recommendation": "leadTime 10s was enough: pods took 3s to be Ready; floor 4 <covers>",
            }
        ],
    }
    problem = "Prometheus could not be read (ConnectionFailed: refused)"
    data = report_data([target], [problem], recorded)
    page = to_html(data, {}, None)
    assert "<img" not in page
    assert problem in page
    assert recorded["headline"] in page
    assert "floor 4 &lt;covers&gt;" in page  # escaped
    assert "<td>8 (status)</td>" in page
    assert "<td>3.1 (status)</td>" in page
    markdown = to_markdown(data)
    assert f"- {problem}" in markdown
    assert "| checkout | 8 (status) | 8 (status) | - | 3.1 (status) | yes | never |" in markdown
    assert "| 00:01:10 | completed | Completed | 00:01:10 | 0 |" in markdown


def test_range_points_can_keep_nan_for_a_curve():
    result = [{"values": [[1.0, "2"], [61.0, "NaN"], [121.0, "+Inf"]]}]
    points = range_points(result, "q", keep_nan=True)
    assert points[0][1] == 2.0
    assert math.isnan(points[1][1]) and math.isinf(points[2][1])
