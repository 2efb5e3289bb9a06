"""`simulate` with the last campaign's curve: `--history`, the synthetic previous year, the curve policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from campaign_autoscaler import cli
from campaign_autoscaler.planning import parse_spec
from campaign_autoscaler.simulation import (
    CURVE_POLICY,
    ON_HPA,
    SimulationSetup,
    TrafficCurve,
    curve_target,
    shifted,
    simulate,
    summaries,
    synthetic_9_9,
    synthetic_previous_9_9,
)

JAKARTA = ZoneInfo("Asia/Jakarta")
YEAR = timedelta(days=365)
MINUTE = timedelta(minutes=1)

SALE = """\
apiVersion: autoscaling.campaigns.dev/v1alpha1
kind: CampaignEvent
metadata: {name: sale, namespace: shop}
spec:
  start: "2026-09-09T00:00:00Z"
  end: "2026-09-09T02:00:00Z"
  leadTime: 30m
  rampUp: {steps: 3}
  rampDown: {duration: 1h, steps: 4}
  trafficMultiplier: 2.5
  targets:
    - name: checkout
"""


@pytest.fixture
def sale_file(tmp_path: Path) -> Path:
    path = tmp_path / "sale.yaml"
    path.write_text(SALE)
    return path


def campaign_csv(path: Path, level: float, surge: float, surge_minutes: int = 30) -> Path:
    """Minute offsets from the opening: `level` from 3 h before to 5 h after, `surge` at first."""
    rows = ["minute_offset_or_timestamp,rps"]
    rows += [f"{m},{surge if 0 <= m < surge_minutes else level}" for m in range(-180, 300)]
    path.write_text("\n".join(rows) + "\n")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert cli.main(["simulate", *argv, "--output", "json", "--now", "2026-09-01T00:00:00Z"]) == 0
    return json.loads(capsys.readouterr().out)


def rows(report: dict) -> dict[str, dict]:
    return {row["policy"]: row for row in report["policies"]}


def test_the_built_in_9_9_replays_the_curve_policy_against_a_synthetic_previous_year(capsys):
    report = run(
        capsys, "-f", "examples/sale-9-9.yaml", "--traffic", "9.9", "--baseline", "order-tracking=10"
    )
    by_policy = rows(report)
    assert list(by_policy) == [
        "static baseline",
        "reactive HPA",
        "cron at start",
        "campaign-autoscaler",
        CURVE_POLICY,
        "oracle",
    ]
    curve = by_policy[CURVE_POLICY]
    assert curve["underProvisionedMinutes"] == 0
    assert curve["podHours"] < by_policy["campaign-autoscaler"]["podHours"] / 1.5
    assert any("previous campaign's curve is SYNTHETIC" in note for note in report["notes"])


def test_history_csv_in_minute_offsets_is_followed(capsys, sale_file, tmp_path):
    traffic = campaign_csv(tmp_path / "this.csv", level=300, surge=1500)
    history = campaign_csv(tmp_path / "last.csv", level=300, surge=1500)
    by_policy = rows(
        run(
            capsys,
            "-f",
            str(sale_file),
            "--traffic",
            str(traffic),
            "--history",
            str(history),
            "--baseline",
            "checkout=4",
            "--capacity-per-pod",
            "100",
        )
    )
    curve = by_policy[CURVE_POLICY]
    assert curve["underProvisionedMinutes"] == 0
    assert curve["podHours"] < by_policy["campaign-autoscaler"]["podHours"]
    assert curve["replicaChanges"] <= 6


def test_history_csv_in_last_years_timestamps_is_moved_by_the_offset(capsys, sale_file, tmp_path):
    traffic = campaign_csv(tmp_path / "this.csv", level=300, surge=1500)
    opening = datetime(2026, 9, 9, tzinfo=UTC) - YEAR
    lines = ["minute_offset_or_timestamp,rps"]
    for m in range(-180, 300):
        at = (opening + m * MINUTE).isoformat()
        lines.append(f"{at},{1500 if 0 <= m < 30 else 300}")
    history = tmp_path / "last.csv"
    history.write_text("\n".join(lines) + "\n")
    argv = ["-f", str(sale_file), "--traffic", str(traffic), "--baseline", "checkout=4"]
    argv += ["--capacity-per-pod", "100"]
    by_offsets = rows(
        run(capsys, *argv, "--history", str(campaign_csv(tmp_path / "o.csv", level=300, surge=1500)))
    )
    by_stamps = rows(run(capsys, *argv, "--history", str(history)))
    assert by_stamps[CURVE_POLICY] == by_offsets[CURVE_POLICY]


def test_a_history_that_misses_the_surge_leaves_it_to_the_live_metric(capsys, sale_file, tmp_path):
    traffic = campaign_csv(tmp_path / "this.csv", level=300, surge=1500)
    quiet = campaign_csv(tmp_path / "last.csv", level=300, surge=300)
    argv = ["-f", str(sale_file), "--traffic", str(traffic), "--baseline", "checkout=4"]
    by_policy = rows(run(capsys, *argv, "--capacity-per-pod", "100", "--history", str(quiet)))
    assert by_policy[CURVE_POLICY]["underProvisionedMinutes"] > 0  # the curve did not know


def test_without_history_a_csv_replay_has_no_curve_policy_and_says_so(capsys, sale_file, tmp_path):
    traffic = campaign_csv(tmp_path / "this.csv", level=300, surge=1500)
    report = run(capsys, "-f", str(sale_file), "--traffic", str(traffic), "--baseline", "checkout=4")
    assert CURVE_POLICY not in rows(report)
    assert any("No --history" in note for note in report["notes"])


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("minute_offset_or_timestamp,rps\n0,abc\n", "rps 'abc' is not a number"),
        ("", "no traffic rows"),
    ],
)
def test_a_bad_history_file_is_one_line_and_exit_2(capsys, sale_file, tmp_path, content, words):
    history = tmp_path / "bad.csv"
    history.write_text(content)
    argv = ["simulate", "-f", str(sale_file), "--traffic", "9.9", "--history", str(history)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and str(history) in err


def test_a_missing_history_file_is_exit_2(capsys, sale_file, tmp_path):
    argv = ["simulate", "-f", str(sale_file), "--traffic", "9.9", "--history", str(tmp_path / "none.csv")]
    assert cli.main(argv) == 2
    assert "no such history file" in capsys.readouterr().err


def test_the_synthetic_previous_year_is_this_years_model_a_year_earlier():
    start, end = datetime(2026, 9, 8, 17, tzinfo=UTC), datetime(2026, 9, 9, 19, tzinfo=UTC)
    this_year = synthetic_9_9(start, end, JAKARTA, covers_from=start, covers_until=end)
    last_year = synthetic_previous_9_9(start, end, JAKARTA, offset=YEAR, covers_from=start, covers_until=end)
    assert last_year.start == this_year.start
    assert last_year.rps == this_year.rps
    assert last_year.source == "synthetic previous 9.9 profile (365d earlier)"


def test_shifted_moves_a_curve_in_time():
    curve = TrafficCurve(datetime(2025, 9, 9, tzinfo=UTC), (1.0, 2.0), "x")
    moved = shifted(curve, YEAR)
    assert moved.start == datetime(2026, 9, 9, tzinfo=UTC) and moved.rps == (1.0, 2.0)


def test_curve_target_keeps_a_curve_forecast_and_derives_one_otherwise():
    raw = {
        "start": "2026-09-09T00:00:00Z",
        "end": "2026-09-09T02:00:00Z",
        "targets": [
            {"name": "a"},
            {
                "name": "b",
                "metric": {"query": "q", "targetPerReplica": 5, "forecast": {"offset": "7d", "growth": 1.5}},
            },
            {
                "name": "c",
                "metric": {
                    "query": "q",
                    "targetPerReplica": 5,
                    "forecast": {"offset": "7d", "mode": "curve"},
                },
            },
        ],
    }
    a, b, c = parse_spec(raw).targets
    derived = curve_target(a, 100.0).metric
    assert (derived.target_per_replica, derived.forecast.mode, derived.forecast.offset) == (
        100.0,
        "curve",
        YEAR,
    )
    from_peak = curve_target(b, 100.0).metric.forecast
    assert (from_peak.offset, from_peak.growth, from_peak.mode) == (timedelta(days=7), 1.5, "curve")
    assert curve_target(c, 100.0) is c


def year_above(growth_error: float) -> dict[str, dict[str, float]]:
    """The built-in pair with this year `growth_error` above what the curve forecasts: per policy, the
    under-provisioned minutes over the whole replay and inside the campaign's lifecycle."""
    spec = parse_spec(
        {
            "timezone": "Asia/Jakarta",
            "start": "2026-09-09T00:00:00",
            "end": "2026-09-10T02:00:00",
            "leadTime": "30m",
            "rampUp": {"steps": 3},
            "rampDown": {"duration": "1h", "steps": 4},
            "trafficMultiplier": 2.5,
            "targets": [{"name": "order-tracking"}],
        }
    )
    assert spec.start is not None and spec.end is not None
    begin, finish = spec.start - spec.lead_time, spec.end + spec.ramp_down_duration
    curve = synthetic_9_9(spec.start, spec.end, JAKARTA, covers_from=begin, covers_until=finish)
    history = synthetic_previous_9_9(
        spec.start, spec.end, JAKARTA, offset=YEAR, covers_from=begin, covers_until=finish
    )
    traffic = TrafficCurve(curve.start, tuple(r * growth_error for r in curve.rps), "above", 1000.0)
    setup = SimulationSetup(
        spec, spec.targets[0], "order-tracking", 10, 100.0, timedelta(seconds=90), history=history
    )
    result = simulate(setup, traffic)
    whole = {s.policy: float(s.under_provisioned_minutes) for s in summaries(result)}
    return {
        trace.policy: {
            "whole": whole[trace.policy],
            "lifecycle": sum(1 for s in trace.slots if begin <= s.at < finish and s.ready < s.needed) / 4,
        }
        for trace in result.traces
    }


def test_a_year_above_the_forecast_is_short_less_than_a_reactive_hpa_inside_the_lifecycle():
    short = year_above(1.2)
    assert short[CURVE_POLICY]["lifecycle"] < short["reactive HPA"]["lifecycle"]
    # Before the pre-scale the operator claims nothing: the baseline, sized for last year, is short there for
    # both of its policies alike, and the reactive HPA is not.
    outside = short[CURVE_POLICY]["whole"] - short[CURVE_POLICY]["lifecycle"]
    assert outside == short["campaign-autoscaler"]["whole"] - short["campaign-autoscaler"]["lifecycle"] > 0


def test_a_year_as_forecast_is_never_short():
    short = year_above(1.0)
    assert short[CURVE_POLICY] == {"whole": 0, "lifecycle": 0}


def test_with_hpa_adds_each_operator_row_on_the_hpa(
    capsys: pytest.CaptureFixture[str], sale_file: Path, tmp_path: Path
) -> None:
    this_year = campaign_csv(tmp_path / "this.csv", level=600, surge=3000)
    last_year = campaign_csv(tmp_path / "last.csv", level=500, surge=2500)
    argv = ("-f", str(sale_file), "--traffic", str(this_year), "--history", str(last_year))
    argv += ("--baseline", "checkout=5", "--capacity-per-pod", "100")
    plain = rows(run(capsys, *argv))
    assert not any(name.endswith(ON_HPA) for name in plain)
    with_hpa = rows(run(capsys, *argv, "--with-hpa"))
    on_hpa = [f"campaign-autoscaler{ON_HPA}", f"{CURVE_POLICY}{ON_HPA}"]
    assert list(with_hpa) == [*list(plain)[:-1], *on_hpa, "oracle"]
    assert {name: with_hpa[name] for name in plain} == plain  # the other rows are the same replay
    # This year's normal level (6 pods) is above the baseline (5): before the lead time only the HPA serves
    # it, and on an HPA-backed target it still does.
    for name in on_hpa:
        short = with_hpa[name]["underProvisionedMinutes"]
        assert short < plain[name.removesuffix(ON_HPA)]["underProvisionedMinutes"]
        assert short <= with_hpa["reactive HPA"]["underProvisionedMinutes"]
