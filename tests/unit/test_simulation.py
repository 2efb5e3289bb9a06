"""`campaign-autoscaler simulate`: the traffic curves, the four policies, the replay and its report."""

from __future__ import annotations

import json
import math
import struct
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from campaign_autoscaler import cli
from campaign_autoscaler.planning import parse_spec
from campaign_autoscaler.simulation import (
    TICK,
    CampaignAutoscaler,
    CapacityError,
    CronAtStart,
    Observation,
    PodPool,
    ReactiveHpa,
    Slot,
    Trace,
    TrafficCurve,
    TrafficError,
    campaign_windows,
    ceil_ratio,
    default_capacity_per_pod,
    parse_traffic_csv,
    pods_needed,
    replay,
    summarize,
    synthetic_9_9,
)

REPO = Path(__file__).resolve().parents[2]
JAKARTA = ZoneInfo("Asia/Jakarta")
T0 = datetime(2026, 9, 8, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

# The 9.9 sale as the contract describes it: baseline 4 x 2.5 -> floor 10, 30m lead in 3 steps.
SALE_9_9 = """\
apiVersion: autoscaling.campaigns.dev/v1alpha1
kind: CampaignEvent
metadata: {name: sale-9-9, namespace: shop}
spec:
  timezone: Asia/Jakarta
  start: "2026-09-09T00:00:00"
  end: "2026-09-10T02:00:00"
  leadTime: 30m
  rampUp: {steps: 3}
  rampDown: {duration: 1h, steps: 4}
  trafficMultiplier: 2.5
  targets:
    - name: order-tracking
    - name: checkout
      multiplier: 3
      metric: {query: 'sum(rate(http_requests_total{app="checkout"}[2m]))', targetPerReplica: 80}
"""


@pytest.fixture
def sale_file(tmp_path: Path) -> Path:
    path = tmp_path / "sale-9-9.yaml"
    path.write_text(SALE_9_9)
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert cli.main(["simulate", *argv, "--output", "json", "--now", "2026-09-01T00:00:00Z"]) == 0
    return json.loads(capsys.readouterr().out)


def by_policy(report: dict) -> dict[str, dict]:
    return {row["policy"]: row for row in report["policies"]}


# --- the invariants on the 9.9 profile ------------------------------------------------------------------
# The guarantee is for pods that are Ready within one ramp step (leadTime / rampUp.steps = 10m here): the last
# step is taken that long before the opening.
@pytest.mark.parametrize("pod_startup", ["0s", "90s", "5m", "10m"])
def test_our_policy_is_never_short_on_the_9_9_profile(
    capsys: pytest.CaptureFixture[str], sale_file: Path, pod_startup: str
) -> None:
    report = run_json(
        capsys,
        "-f",
        str(sale_file),
        "--traffic",
        "9.9",
        "--baseline",
        "order-tracking=4",
        "--pod-startup",
        pod_startup,
    )
    rows = by_policy(report)
    assert rows["campaign-autoscaler"]["underProvisionedMinutes"] == 0
    assert rows["campaign-autoscaler"]["worstShortfallPods"] == 0
    if pod_startup != "0s":  # with instant pods a reactive policy is short for only a few seconds
        assert rows["reactive HPA"]["underProvisionedMinutes"] > 0
        assert rows["cron at start"]["underProvisionedMinutes"] > 0
    assert (
        rows["static baseline"]["underProvisionedMinutes"] > rows["reactive HPA"]["underProvisionedMinutes"]
    )
    assert rows["oracle"]["underProvisionedMinutes"] == 0
    assert rows["oracle"]["costVsOracle"] == 1


def test_pods_slower_than_one_ramp_step_are_short_at_the_opening(
    capsys: pytest.CaptureFixture[str], sale_file: Path
) -> None:
    """15m > leadTime / rampUp.steps: the pods of the last step (23:50) are Ready only at 00:05."""
    rows = by_policy(
        run_json(
            capsys,
            "-f",
            str(sale_file),
            "--traffic",
            "9.9",
            "--baseline",
            "order-tracking=4",
            "--pod-startup",
            "15m",
        )
    )
    assert rows["campaign-autoscaler"]["underProvisionedMinutes"] == 5
    assert rows["campaign-autoscaler"]["worstShortfallPods"] == 2  # 8 of 10 Ready


def test_the_9_9_profile_is_aligned_to_the_window(
    capsys: pytest.CaptureFixture[str], sale_file: Path
) -> None:
    report = run_json(capsys, "-f", str(sale_file), "--traffic", "9.9", "--baseline", "order-tracking=4")
    assert report["floor"]["replicas"] == 10
    assert report["capacityPerPod"] == 250  # the synthetic normal peak 1000 rps / baseline 4
    assert report["windows"] == [{"start": "2026-09-08T17:00:00Z", "end": "2026-09-09T19:00:00Z"}]


def test_same_input_gives_the_same_table(capsys: pytest.CaptureFixture[str], sale_file: Path) -> None:
    argv = ["simulate", "-f", str(sale_file), "--traffic", "9.9", "--baseline", "order-tracking=4"]
    outputs = []
    for _ in range(2):
        assert cli.main(argv) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    for policy in ("static baseline", "reactive HPA", "cron at start", "campaign-autoscaler", "oracle"):
        assert policy in outputs[0]
    assert "SYNTHETIC" in outputs[0]


def test_plot_writes_a_png(capsys: pytest.CaptureFixture[str], sale_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "replay.png"
    argv = ["simulate", "-f", str(sale_file), "--traffic", "9.9", "--baseline", "order-tracking=4", "--plot"]
    assert cli.main([*argv, str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1300, 900)
    assert len(data) > 50_000
    assert str(out) in capsys.readouterr().out


def test_a_metric_target_adds_replicas_above_its_floor(
    capsys: pytest.CaptureFixture[str], sale_file: Path
) -> None:
    report = run_json(
        capsys, "-f", str(sale_file), "--traffic", "9.9", "--target", "checkout", "--baseline", "checkout=4"
    )
    rows = by_policy(report)
    assert report["floor"]["replicas"] == 12  # ceil(3 x 4)
    assert rows["campaign-autoscaler"]["underProvisionedMinutes"] == 0
    # 80 rps per replica asks for up to ceil(2500 / 80) = 32 pods where cron holds the floor of 12.
    assert rows["campaign-autoscaler"]["podHours"] > rows["cron at start"]["podHours"] + 20


def test_the_sample_csv_replays(capsys: pytest.CaptureFixture[str], sale_file: Path) -> None:
    rows = by_policy(
        run_json(
            capsys,
            "-f",
            str(sale_file),
            "--traffic",
            str(REPO / "examples/traffic-9-9.csv"),
            "--baseline",
            "order-tracking=4",
        )
    )
    assert rows["campaign-autoscaler"]["underProvisionedMinutes"] == 0
    assert rows["reactive HPA"]["underProvisionedMinutes"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "nope"], "--target nope"),
        (["--baseline", "nope=3"], "--baseline nope"),
        (["--event", "other"], "--event other"),
        (["--traffic", "/nonexistent/traffic.csv"], "/nonexistent/traffic.csv"),
    ],
)
def test_bad_simulate_input_is_an_error(
    capsys: pytest.CaptureFixture[str], sale_file: Path, extra: list[str], message: str
) -> None:
    argv = ["simulate", "-f", str(sale_file), "--traffic", "9.9", *extra]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err


# --- the reactive HPA model ---------------------------------------------------------------------------
def step_curve(*pods_per_minute: float, capacity: float = 100.0) -> TrafficCurve:
    return TrafficCurve(start=T0, rps=tuple(p * capacity for p in pods_per_minute), source="test")


def replicas_at(trace: Trace, seconds: int) -> int:
    at = T0 + timedelta(seconds=seconds)
    return next(slot.replicas for slot in trace.slots if slot.at == at)


@pytest.mark.parametrize("startup", [timedelta(0), timedelta(seconds=90)])
def test_hpa_scale_up_is_limited_to_double_or_four_pods_per_sync(startup: timedelta) -> None:
    hpa = ReactiveHpa(capacity_per_pod=100.0, min_replicas=4, max_replicas=100)
    trace = replay(hpa, step_curve(4, 40, 40), capacity_per_pod=100.0, initial_replicas=4, startup=startup)
    assert [replicas_at(trace, s) for s in (0, 45, 60, 75, 90, 105, 120)] == [4, 4, 8, 16, 32, 40, 40]


def test_hpa_adds_four_pods_when_that_is_more_than_doubling() -> None:
    hpa = ReactiveHpa(capacity_per_pod=100.0, min_replicas=1, max_replicas=100)
    trace = replay(hpa, step_curve(1, 20), capacity_per_pod=100.0, initial_replicas=1, startup=timedelta(0))
    assert [replicas_at(trace, s) for s in (60, 75, 90, 105)] == [5, 10, 20, 20]


@pytest.mark.parametrize(("rise", "expected"), [(1.05, 4), (1.09, 4), (1.20, 5)])
def test_hpa_tolerance(rise: float, expected: int) -> None:
    hpa = ReactiveHpa(capacity_per_pod=100.0, min_replicas=1, max_replicas=100)
    trace = replay(hpa, step_curve(4, 4 * rise, 4 * rise), 100.0, initial_replicas=4, startup=timedelta(0))
    assert {slot.replicas for slot in trace.slots if slot.at >= T0 + MINUTE} == {expected}


def test_hpa_scale_down_waits_for_the_300s_stabilization_window() -> None:
    hpa = ReactiveHpa(capacity_per_pod=100.0, min_replicas=4, max_replicas=100)
    trace = replay(hpa, step_curve(40, 40, *[4] * 8), 100.0, initial_replicas=40, startup=timedelta(0))
    last_high = 105  # the last sync that saw 40 pods' worth of demand
    for slot in trace.slots:
        seconds = (slot.at - T0).total_seconds()
        assert slot.replicas == (40 if seconds < last_high + 300 else 4), seconds


def test_hpa_counts_starting_pods_as_idle_when_scaling_up() -> None:
    hpa = ReactiveHpa(capacity_per_pod=100.0, min_replicas=1, max_replicas=100)
    # 8 asked for, 4 Ready, demand for 8: the scale-up in flight is enough, no new recommendation.
    assert hpa.recommendation(Observation(at=T0, demand_rps=800.0, replicas=8, ready=4)) == 8
    assert hpa.recommendation(Observation(at=T0, demand_rps=1600.0, replicas=8, ready=4)) == 16


# --- cron at start and campaign-autoscaler ---------------------------------------------------------------
def test_cron_applies_the_floor_at_the_first_poll_after_start() -> None:
    spec = parse_spec(
        {"start": "2026-09-08T12:02:15Z", "end": "2026-09-08T12:05:00Z", "targets": [{"name": "web"}]}
    )
    windows = campaign_windows(spec, T0, T0 + 10 * MINUTE)
    cron = CronAtStart(windows=windows, baseline=2, floor=6)
    trace = replay(cron, step_curve(*[1] * 8), 100.0, initial_replicas=2, startup=timedelta(0))
    first_at_floor = next(slot.at for slot in trace.slots if slot.replicas == 6)
    assert first_at_floor == T0 + timedelta(minutes=2, seconds=30)  # polls at :00 and :30
    back = next(slot.at for slot in trace.slots if slot.at > first_at_floor and slot.replicas == 2)
    assert back == T0 + timedelta(minutes=5)


def test_campaign_policy_follows_the_plan_without_a_metric() -> None:
    spec = parse_spec(
        {
            "start": "2026-09-08T12:30:00Z",
            "end": "2026-09-08T13:00:00Z",
            "leadTime": "30m",
            "rampUp": {"steps": 3},
            "rampDown": {"duration": "1h", "steps": 4},
            "trafficMultiplier": 2.5,
            "targets": [{"name": "order-tracking"}],
        }
    )
    policy = CampaignAutoscaler(spec, campaign_windows(spec, T0, T0 + 3 * 60 * MINUTE), 4, spec.targets[0])
    trace = replay(policy, step_curve(*[1] * 180), 100.0, initial_replicas=4, startup=timedelta(0))
    expected = {0: 6, 10: 8, 20: 10, 30: 10, 60: 10, 75: 9, 90: 7, 105: 6, 120: 4}
    assert {minute: replicas_at(trace, minute * 60) for minute in expected} == expected
    assert replicas_at(trace, 119 * 60 + 45) == 6


def test_campaign_policy_with_a_metric_holds_a_decrease_for_five_minutes() -> None:
    spec = parse_spec(
        {
            "start": "2026-09-08T12:00:00Z",
            "end": "2026-09-08T14:00:00Z",
            "leadTime": "0s",
            "trafficMultiplier": 2,
            "targets": [{"name": "checkout", "metric": {"query": "q", "targetPerReplica": 100}}],
        }
    )
    policy = CampaignAutoscaler(spec, campaign_windows(spec, T0, T0 + 60 * MINUTE), 4, spec.targets[0])
    trace = replay(policy, step_curve(15, 15, *[1] * 10), 100.0, initial_replicas=4, startup=timedelta(0))
    assert replicas_at(trace, 0) == 15  # ceil(1500 / 100), above the floor 8
    assert replicas_at(trace, 120) == 15  # demand fell at 120 s; the last high sample is at 105 s
    assert replicas_at(trace, 105 + 300) == 15
    assert replicas_at(trace, 105 + 315) == 8  # back to the floor, not below it


# --- pods, curves, capacity, the report ----------------------------------------------------------------
def test_pod_pool_scales_down_starting_pods_first() -> None:
    pool = PodPool((T0,) * 3).scaled(6, T0 + MINUTE, timedelta(seconds=90))
    assert (pool.replicas, pool.ready(T0 + MINUTE)) == (6, 3)
    assert pool.ready(T0 + timedelta(seconds=150)) == 6
    smaller = pool.scaled(4, T0 + 2 * MINUTE, timedelta(seconds=90))
    assert (smaller.replicas, smaller.ready(T0 + 2 * MINUTE)) == (4, 3)


def test_pods_needed_guards_float_noise() -> None:
    assert pods_needed(2500.0, 250.0) == 10
    assert pods_needed(0.3, 0.1) == 3  # 0.3 / 0.1 is 2.9999999999999996 in binary floats
    assert pods_needed(2500.1, 250.0) == 11
    assert ceil_ratio(4.000001) == 5


def test_synthetic_profile_is_deterministic_and_shaped_around_the_window() -> None:
    start = datetime(2026, 9, 8, 17, 0, tzinfo=UTC)
    end = start + timedelta(hours=26)

    def make() -> TrafficCurve:
        return synthetic_9_9(
            start, end, JAKARTA, covers_from=start - 30 * MINUTE, covers_until=end + 60 * MINUTE
        )

    curve = make()
    assert curve == make()
    rates = dict(curve.minutes())
    assert curve.start == start - timedelta(hours=3)
    assert curve.end >= end + timedelta(hours=2)
    assert rates[start] == 2.5 * curve.normal_peak_rps
    assert max(curve.rps) == rates[start]
    # Shoppers gather before the opening, above a normal day's peak: a policy that starts at `start` is late.
    assert rates[start - 20 * MINUTE] < curve.normal_peak_rps < rates[start - MINUTE] < rates[start]
    assert min(curve.rps) > 0.3 * curve.normal_peak_rps
    normal_day = [rates[at] for at in rates if at < start - 15 * MINUTE or at >= end]
    assert max(normal_day) <= curve.normal_peak_rps


CSV_TEXT = """\
# the 9.9 opening, measured
minute_offset_or_timestamp,rps
-2,100
-1,110.5

1,400
"""


def test_csv_with_offsets_fills_a_missing_minute_with_the_previous_rate() -> None:
    zero = datetime(2026, 9, 8, 17, 0, tzinfo=UTC)
    curve = parse_traffic_csv(CSV_TEXT, "t.csv", zero=zero, timezone=JAKARTA)
    assert curve.start == zero - 2 * MINUTE
    assert curve.rps == (100.0, 110.5, 110.5, 400.0)


def test_csv_with_timestamps_reads_local_times_in_the_event_timezone() -> None:
    text = "2026-09-09T00:00:00,10\n2026-09-08T17:01:00Z,20\n"
    curve = parse_traffic_csv(text, "t.csv", zero=T0, timezone=JAKARTA)
    assert curve.start == datetime(2026, 9, 8, 17, 0, tzinfo=UTC)
    assert curve.rps == (10.0, 20.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,1\n0,2\n", "t.csv:2: "),
        ("1,1\n0,2\n", "t.csv:2: "),
        ("0,1\n2026-09-08T17:01:00Z,2\n", "t.csv:2: mixes"),
        ("0,-1\n", "t.csv:1: rps must be"),
        ("0,abc\n1,2\n", "t.csv:1: "),
        ("x,1\n", "t.csv:1: 'x'"),
        ("0,1,2\n", "t.csv:1: expected 2 columns"),
        ("2026-09-08T17:00:30Z,1\n", "whole minute"),
        ("minute_offset_or_timestamp,rps\n", "no traffic rows"),
    ],
)
def test_bad_csv_names_the_line(text: str, message: str) -> None:
    with pytest.raises(TrafficError) as caught:
        parse_traffic_csv(text, "t.csv", zero=T0, timezone=JAKARTA)
    assert message in str(caught.value)


def test_default_capacity_is_the_normal_peak_over_the_baseline() -> None:
    spec = parse_spec(
        {
            "start": "2026-09-08T12:05:00Z",
            "end": "2026-09-08T12:10:00Z",
            "leadTime": "1m",
            "rampDown": {"duration": "1m"},
            "targets": [{"name": "web"}],
        }
    )
    curve = step_curve(3, 4, 2, 2, 9, 9, 9, 9, 9, 9, 9, 1, 1)  # the lifecycle is [12:04, 12:11)
    assert default_capacity_per_pod(curve, spec, baseline=2) == 200.0  # 400 rps at 12:01 / 2
    inside = TrafficCurve(start=T0 + 5 * MINUTE, rps=(9.0, 9.0), source="inside.csv")
    with pytest.raises(CapacityError, match=r"inside\.csv"):
        default_capacity_per_pod(inside, spec, baseline=2)
    with pytest.raises(CapacityError, match="--capacity-per-pod"):
        default_capacity_per_pod(curve, spec, baseline=0)


def test_summary_counts_quarter_minutes_and_pod_hours_exactly() -> None:
    def slots(*rows: tuple[int, int, int]) -> tuple[Slot, ...]:
        return tuple(
            Slot(T0 + i * TICK, 0.0, needed=needed, replicas=replicas, ready=ready)
            for i, (needed, replicas, ready) in enumerate(rows)
        )

    oracle = Trace("oracle", slots((4, 4, 4), (10, 10, 10), (10, 10, 10), (4, 4, 4)))
    policy = Trace("p", slots((4, 4, 4), (10, 10, 6), (10, 10, 9), (4, 10, 10)))
    summary = summarize(policy, oracle)
    assert summary.under_provisioned_minutes == Fraction(2, 4)
    assert summary.missing_pod_minutes == Fraction(5, 4)
    assert summary.worst_shortfall_pods == 4
    assert summary.pod_hours == Fraction(34, 240)
    assert summary.cost_vs_oracle == Fraction(34, 28)
    assert math.isclose(float(summary.pod_hours), 34 * 15 / 3600)
