"""`plan` with curve targets: the steps each curve plans, from a history read by the CLI."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta

from campaign_autoscaler import cli, planview
from campaign_autoscaler.cli.console import _stdout_console
from campaign_autoscaler.planning import parse_spec
from campaign_autoscaler.planning.curve import History

MANIFEST = """\
apiVersion: autoscaling.campaigns.dev/v1alpha1
kind: CampaignEvent
metadata: {name: sale, namespace: shop}
spec:
  start: "2026-09-09T00:00:00Z"
  end: "2026-09-09T02:00:00Z"
  leadTime: 30m
  rampUp: {steps: 3}
  targets:
    - name: checkout
      metric:
        query: 'sum(rate(http_requests_total{app="checkout"}[2m]))'
        targetPerReplica: 100
        forecast: {offset: 365d, mode: curve}
"""
START = datetime(2026, 9, 9, tzinfo=UTC)
BEGIN = START - timedelta(minutes=30)
FINISH = START + timedelta(hours=2, minutes=30)
MINUTE = timedelta(minutes=1)
NOW = datetime(2026, 9, 1, tzinfo=UTC)


def surge_history() -> History:
    """300 all along, 1500 for the first half hour of the window."""
    count = math.floor((FINISH - BEGIN) / MINUTE) + 1
    values = tuple(1500.0 if 30 <= k < 60 else 300.0 for k in range(count))
    return History(BEGIN, values)


def plan_with(history: History | None):
    [event] = planview.load_event_manifests(MANIFEST, "sale.yaml")
    spec = parse_spec(event.raw_spec)
    workloads, notes = planview.plan_workloads(spec, {"checkout": 4}, None)
    histories = {"checkout": history} if history is not None else None
    return planview.build_plan(event, spec, workloads, notes, NOW, histories)


def test_the_plan_lists_the_steps_the_curve_plans():
    plan = plan_with(surge_history())
    [(label, changes)] = plan.curves
    assert label == "checkout"
    assert changes == (
        (BEGIN, 4),  # 300 / 100 = 3, never below the baseline 4
        (START - timedelta(minutes=10, seconds=15), 15),  # the surge enters the 10m lookahead
        (START + timedelta(minutes=35), 4),  # the surge left a whole stabilization window ago
    )
    data = planview.plan_to_json(plan)
    assert data["curves"]["checkout"][1] == {"at": "2026-09-08T23:49:45Z", "replicas": 15}


def test_without_a_history_the_plan_says_what_it_falls_back_on():
    plan = plan_with(None)
    assert plan.curves == ()
    assert any("needs Prometheus (--prometheus-url)" in note for note in plan.notes)


def test_gaps_are_noted():
    history = surge_history()
    gappy = History(history.start, (None, *history.values[1:]))
    plan = plan_with(gappy)
    assert any("1 of 181 minutes of history missing" in note for note in plan.notes)


def test_the_curve_table_is_printed(capsys):
    planview.render_plan(plan_with(surge_history()), _stdout_console())
    out = capsys.readouterr().out
    assert "Curve of checkout" in out and "23:49:45" in out


def test_an_unreachable_prometheus_is_a_note_not_a_failure(capsys, tmp_path):
    manifest = tmp_path / "sale.yaml"
    manifest.write_text(MANIFEST)
    argv = ["plan", "-f", str(manifest), "--baseline", "checkout=4", "--now", "2026-09-01T00:00:00Z"]
    assert cli.main([*argv, "--prometheus-url", "http://127.0.0.1:9", "-o", "json"]) == 0
    notes = json.loads(capsys.readouterr().out)["events"][0]["notes"]
    assert any("could not be read (ConnectionFailed" in note for note in notes)
    assert not any("needs Prometheus" in note for note in notes)  # it was asked: one note, not two


def test_consecutive_planned_changes_differ():
    replicas = [r for _, r in plan_with(surge_history()).curves[0][1]]
    assert len(replicas) == 3
    assert all(a != b for a, b in itertools.pairwise(replicas))
