"""Following the last campaign's curve with the real operator, API server and Prometheus, compressed in time.

The previous campaign is backfilled an hour ago with promtool (`tsdb create-blocks-from openmetrics`); the
operator reads it with one range query at `--curve-step 2s` (a "minute" of the curve lasts 2 s), and the
Deployment's replicas over the window are compared with the changes the pure formula plans
(`planning.decision.planned_changes`, the function the pass itself calls).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from campaign_autoscaler.devenv.prometheus import PrometheusServer
from campaign_autoscaler.planning import lifecycle_end, lifecycle_start, parse_spec
from campaign_autoscaler.planning.curve import history_from_points
from campaign_autoscaler.planning.decision import TargetInputs, planned_changes
from campaign_autoscaler.planning.instants import kube_time
from campaign_autoscaler.planning.windows import Window
from tests.integration.harness import (
    Cluster,
    OperatorProcess,
    campaign_spec,
    seconds_from_now,
    utc_now,
    wait_until,
)

METRIC = "shop_curve_rps"
STEP = 2.0  # seconds: one point of the curve
STABILIZATION = 6.0
OFFSET = timedelta(hours=1)
SURGE = (timedelta(seconds=4), timedelta(seconds=12))  # after the opening, the last campaign's busy stretch
LATE = 2.5  # seconds a change may land after its planned instant (a pass, a write, the watch)


@pytest.fixture
def operator(
    kubeconfig: str, namespace: str, tmp_path: Path, prometheus: PrometheusServer, campaignevent_crd: object
) -> Iterator[OperatorProcess]:
    args = [
        "--namespace", namespace,
        "--resync-interval", "2s",
        "--prometheus-url", prometheus.url,
        "--prometheus-timeout", "1s",
        "--metrics-namespace-label", "",
        "--metrics-interval", "1s",
        "--scale-down-stabilization", f"{STABILIZATION:g}s",
        "--curve-step", f"{STEP:g}s",
    ]  # fmt: skip
    process = OperatorProcess(kubeconfig, tmp_path / "operator.log", args).start()
    yield process
    code = process.stop()
    print(process.log()[-4000:])
    assert code == 0


def last_campaign(opening: datetime, at: datetime) -> float:
    """The previous campaign's rate at `at` (its own time): 20, and 150 through the busy stretch."""
    return 150.0 if opening + SURGE[0] <= at < opening + SURGE[1] else 20.0


def backfill(prometheus: PrometheusServer, series: str, opening: datetime, begin: datetime, finish: datetime):
    """One sample a second over the previous campaign's lifecycle (and a margin), `OFFSET` ago."""
    lines = [f"# TYPE {METRIC} gauge"]
    first, last = int((begin - OFFSET).timestamp()) - 30, int((finish - OFFSET).timestamp()) + 30
    for second in range(first, last + 1):
        at = datetime.fromtimestamp(second, opening.tzinfo)
        lines.append(f"{series} {last_campaign(opening - OFFSET, at)} {second}")
    prometheus.backfill_openmetrics("\n".join(lines) + "\n# EOF\n")


def observe(cluster: Cluster, until: datetime) -> tuple[list[tuple[datetime, int]], list[dict]]:
    """Every 0.2 s until `until`: the Deployment's replicas (each change, when first seen), and each
    different `nextPlannedChange` the event's status showed."""
    seen: list[tuple[datetime, int]] = []
    announced: list[dict] = []
    while utc_now() < until:
        replicas = cluster.replicas("checkout")
        if not seen or seen[-1][1] != replicas:
            seen.append((utc_now(), replicas))
        entry = next(iter(cluster.status("sale").get("targets") or []), {})
        change = entry.get("nextPlannedChange")
        if change and change not in announced:
            announced.append(change)
        time.sleep(0.2)
    return seen, announced


def test_the_replica_timeline_follows_the_last_campaigns_curve(
    cluster: Cluster, prometheus: PrometheusServer, operator: OperatorProcess
):
    start = seconds_from_now(25)
    end = start + timedelta(seconds=24)
    query = f'sum({METRIC}{{test="{cluster.namespace}"}})'
    target = {
        "name": "checkout",
        "maxReplicas": 20,
        "metric": {
            "query": query,
            "targetPerReplica": 10,
            "forecast": {"offset": "1h", "mode": "curve"},
        },
    }
    raw = campaign_spec(
        start=start,
        end=end,
        lead_time="8s",
        ramp_up_steps=2,  # lookahead 8s / 2 = 4s
        ramp_down={"duration": "4s", "steps": 2},
        multiplier=2,  # the plain floor ceil(2 x 2) = 4 where the curve has no say
        targets=[target],
    )
    spec = parse_spec(raw)
    window = Window(start, end)
    begin, finish = lifecycle_start(spec, window), lifecycle_end(spec, window)
    backfill(prometheus, f'{METRIC}{{test="{cluster.namespace}"}}', start, begin, finish)
    wait_until(prometheus.is_running, timeout=15, message="Prometheus back after the backfill")
    cluster.create_deployment("checkout", replicas=2)
    cluster.create_event("sale", raw)

    # What the formula plans: the same history, read at the same instants as the range query reads it.
    count = math.floor((finish - begin).total_seconds() / STEP) + 1
    stamps = [begin - OFFSET + timedelta(seconds=STEP * k) for k in range(count)]
    points = [(at, last_campaign(start - OFFSET, at)) for at in stamps]
    history = history_from_points(points, begin, finish, OFFSET, timedelta(seconds=STEP))
    inputs = TargetInputs(
        spec=spec,
        target=spec.targets[0],
        window=window,
        now=begin,
        baseline=2,
        max_scale_factor=10.0,
        stabilization=timedelta(seconds=STABILIZATION),
        history=history,
        raise_every=timedelta(seconds=1),
    )
    planned = planned_changes(inputs)
    assert [replicas for _, replicas in planned] == [2, 15, 2]  # 20 -> baseline 2, 150 / 10 = 15, back
    (_, _), (rise_at, _), (fall_at, _) = planned
    assert rise_at == start + SURGE[0] - timedelta(seconds=5)  # 4 s of lookahead, a 1 s metrics grid

    wait_until(lambda: utc_now() >= begin - timedelta(seconds=1), timeout=40, message="the lead time")
    seen, announced = observe(cluster, finish + timedelta(seconds=3))
    print("observed", [(at.isoformat(), r) for at, r in seen], "planned", planned, "announced", announced)
    first_15 = next(at for at, replicas in seen if replicas == 15)
    assert rise_at - timedelta(seconds=0.3) <= first_15 <= rise_at + timedelta(seconds=LATE)
    back = next(at for at, replicas in seen if at > first_15 and replicas == 2)
    assert fall_at - timedelta(seconds=0.3) <= back <= fall_at + timedelta(seconds=LATE)
    # The curve was read before the lead time: from the pre-scale to the rise the curve's 2 (the baseline),
    # never the plain floor's first ramp step 3; nothing above 15; the baseline again at the end.
    assert all(replicas == 2 for at, replicas in seen if at < first_15)
    assert max(replicas for _, replicas in seen) == 15
    assert seen[-1][1] == 2
    # Before the rise the status said what came next.
    assert {"at": kube_time(rise_at), "replicas": 15} in announced
    forecast = cluster.condition("sale", "ForecastAvailable")
    assert forecast is not None and (forecast["status"], forecast["reason"]) == ("True", "HistoryRead")
