"""`simulate --node-startup`: nodes that take time to come, and what node headroom buys against them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from campaign_autoscaler import cli
from campaign_autoscaler.simulation import PodPool
from campaign_autoscaler.simulation.nodes import UNNEEDED_AFTER, NodeRoom

T0 = datetime(2026, 9, 8, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

# Floor 10 from baseline 4, one step 3 minutes before the opening: too late when nodes take 3 minutes and
# pods 90 s, unless placeholders asked for the nodes 3 minutes earlier still.
SHORT_LEAD = """\
apiVersion: autoscaling.campaigns.dev/v1alpha1
kind: CampaignEvent
metadata: {name: flash, namespace: shop}
spec:
  start: "2026-09-09T00:00:00Z"
  end: "2026-09-09T02:00:00Z"
  leadTime: 3m
  trafficMultiplier: 2.5
  targets: [{name: checkout}]
"""


def test_new_slots_come_after_the_node_startup_and_unneeded_ones_go_after_ten_minutes() -> None:
    room = NodeRoom.of(4, T0)
    grown = room.fit(6, T0 + MINUTE, timedelta(minutes=3))
    assert grown.ready_at == (T0,) * 4 + (T0 + 4 * MINUTE,) * 2
    assert grown.fit(6, T0 + 2 * MINUTE, timedelta(minutes=3)) == grown  # asked again: nothing more
    idle = grown.fit(4, T0 + 10 * MINUTE, timedelta(minutes=3))
    assert idle.ready_at == grown.ready_at and idle.unneeded_since == T0 + 10 * MINUTE
    assert idle.fit(4, T0 + 10 * MINUTE + UNNEEDED_AFTER, timedelta(minutes=3)).ready_at == (T0,) * 4
    assert idle.fit(6, T0 + 12 * MINUTE, timedelta(minutes=3)).unneeded_since is None  # needed again


def test_a_pod_is_ready_after_its_slot_and_its_own_startup() -> None:
    pool = PodPool((T0,) * 2)
    room = (T0, T0, T0 + 5 * MINUTE)
    scaled = pool.scaled(3, T0 + MINUTE, timedelta(seconds=90), room)
    assert scaled.ready_at[-1] == T0 + 5 * MINUTE + timedelta(seconds=90)  # waited for its node
    early = pool.scaled(3, T0 + MINUTE, timedelta(seconds=90), (T0, T0, T0))
    assert early.ready_at[-1] == T0 + MINUTE + timedelta(seconds=90)  # the room was there


# 100 rps (4 pods of 25) for an hour, 250 rps (10 pods) from the opening for two hours, then 100 again.
STEP_TRAFFIC = "\n".join(
    ["minute_offset_or_timestamp,rps"]
    + [f"{minute},{250 if 0 <= minute < 120 else 100}" for minute in range(-60, 180)]
)


def simulate_json(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> dict[str, dict]:
    traffic = path.parent / "step.csv"
    traffic.write_text(STEP_TRAFFIC)
    argv = ["simulate", "-f", str(path), "--traffic", str(traffic), "--baseline", "checkout=4"]
    argv += ["--pod-startup", "90s", "--capacity-per-pod", "25"]
    assert cli.main([*argv, *extra, "--output", "json", "--now", "2026-09-01T00:00:00Z"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ours_pays_for_slow_nodes_without_node_headroom_and_not_with_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "flash.yaml"
    path.write_text(SHORT_LEAD)
    fast = {row["policy"]: row for row in simulate_json(capsys, path)["policies"]}
    assert fast["campaign-autoscaler"]["underProvisionedMinutes"] == 0
    assert "campaign-autoscaler + nodeHeadroom 3m" not in fast  # nodes always have room: nothing to compare

    report = simulate_json(capsys, path, "--node-startup", "3m")
    assert report["nodeStartup"] == "3m"
    slow = {row["policy"]: row for row in report["policies"]}
    # Without headroom: asked 3 minutes before the opening, the pods wait 3 minutes for their node, then 90 s.
    assert slow["campaign-autoscaler"]["underProvisionedMinutes"] == 1.5
    assert slow["campaign-autoscaler"]["missingPodMinutes"] == 6 * 1.5
    assert slow["campaign-autoscaler"]["placeholderPodHours"] == 0
    # With it: 6 placeholders from 6 minutes before, their nodes Ready when the pods come.
    with_headroom = slow["campaign-autoscaler + nodeHeadroom 3m"]
    assert with_headroom["underProvisionedMinutes"] == 0
    assert with_headroom["placeholderPodHours"] == pytest.approx(6 * 3 / 60, abs=1e-3)
    # The others pay too: the cron trigger's pods wait for nodes as well.
    assert slow["cron at start"]["missingPodMinutes"] > fast["cron at start"]["missingPodMinutes"]


def test_a_spec_with_node_headroom_is_compared_with_one_without(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "flash.yaml"
    path.write_text(
        SHORT_LEAD.replace("  leadTime: 3m\n", "  leadTime: 3m\n  nodeHeadroom: {leadTime: 4m}\n")
    )
    slow = {row["policy"]: row for row in simulate_json(capsys, path, "--node-startup", "3m")["policies"]}
    assert slow["campaign-autoscaler"]["underProvisionedMinutes"] == 0
    assert slow["campaign-autoscaler without nodeHeadroom"]["underProvisionedMinutes"] == 1.5


def test_the_plot_draws_both_runs_of_ours(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "flash.yaml"
    path.write_text(SHORT_LEAD)
    plot = tmp_path / "flash.png"
    argv = [
        "simulate",
        "-f",
        str(path),
        "--traffic",
        "9.9",
        "--baseline",
        "checkout=4",
        "--node-startup",
        "3m",
    ]
    assert cli.main([*argv, "--plot", str(plot), "--now", "2026-09-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "campaign-autoscaler + nodeHeadroom 3m" in out and "of them placeholders" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
