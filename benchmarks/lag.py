"""Transition lag: 100 events x 3 Deployments whose transitions all fall due in the same second, one operator.

`run_hanging()` is the same with a live metric on every target (one distinct query per event) and a
Prometheus that never answers: the operator's `--prometheus-url` points at a proxy that holds every query
for the whole run, and `--prometheus-timeout` is longer than the run: every request the samplers send hangs.

Every event pre-scales its three Deployments (1 -> 2 replicas) at the same instant and restores them (2 -> 1)
at the same later instant. A watch on the Deployments stamps each replica change as the API server publishes
it; the lag of a transition is that stamp minus its due time. Pods are real objects, made Ready by the pod
simulator one second after they appear, as a kubelet would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.integration.faultproxy import DeploymentRecorder, lag_after, replica_changes
from tests.integration.harness import (
    OperatorProcess,
    campaign_spec,
    deployment_body,
    ensure_crd,
    seconds_from_now,
)
from tests.integration.promproxy import SLOW, FaultyPrometheusProxy

from benchmarks.common import (
    BenchmarkResult,
    Measurement,
    ProcessUsage,
    admin_client,
    create_deployments,
    create_events,
    create_namespace,
    event_phases,
    local_control_plane,
    percentile,
    process_usage,
    seconds,
    sleep_until,
    wait_for,
    work_dir,
)

EVENTS = 100
TARGETS_PER_EVENT = 3
BASELINE, FLOOR = 1, 2
NAMESPACE = "bench-lag"
SETTLE_SECONDS = 45  # from creating the events to the shared pre-scale instant
LEAD_SECONDS = 10
WINDOW_SECONDS = 30
GOAL_P99_SECONDS = 1.0
POD_READY_AFTER = 1.0
HOLD_SECONDS = 600  # longer than the run: a query sent is never answered
HANGING_SETUP = (
    " Every target also has a live metric (one distinct query per event, 100 in all); `--prometheus-url` "
    f"points at a proxy that holds every query {HOLD_SECONDS} s and `--prometheus-timeout` is as long: no "
    "query is ever answered. Default `--metrics-concurrency` (4)."
)


@dataclass(frozen=True)
class Timeline:
    pre_scale: datetime
    start: datetime
    end: datetime  # the restore: rampDown 0s, 1 step


def _timeline() -> Timeline:
    pre_scale = seconds_from_now(SETTLE_SECONDS)
    start = pre_scale + timedelta(seconds=LEAD_SECONDS)
    return Timeline(pre_scale, start, start + timedelta(seconds=WINDOW_SECONDS))


def target_name(event: int, target: int) -> str:
    return f"shop-{event:03d}-{target}"


def _metric(event: int) -> dict[str, Any]:
    return {"query": f'sum(bench_requests_per_second{{event="sale-{event:03d}"}})', "targetPerReplica": 10}


def _specs(timeline: Timeline, with_metric: bool = False) -> dict[str, dict[str, Any]]:
    return {
        f"sale-{event:03d}": campaign_spec(
            start=timeline.start,
            end=timeline.end,
            lead_time=f"{LEAD_SECONDS}s",
            ramp_up_steps=1,
            ramp_down={"duration": "0s", "steps": 1},
            multiplier=FLOOR / BASELINE,
            targets=[
                {"name": target_name(event, k), **({"metric": _metric(event)} if with_metric else {})}
                for k in range(TARGETS_PER_EVENT)
            ],
        )
        for event in range(EVENTS)
    }


def run() -> BenchmarkResult:
    return _run(hanging=False)


def run_hanging() -> BenchmarkResult:
    return _run(hanging=True)


def _run(hanging: bool) -> BenchmarkResult:
    directory = work_dir("lag-hanging" if hanging else "lag")
    args = ["--namespace", NAMESPACE]
    proxy = None
    if hanging:
        # Nothing listens upstream: no answer would come even after the hold.
        proxy = FaultyPrometheusProxy("http://127.0.0.1:9", slow_seconds=HOLD_SECONDS).start()
        proxy.mode = SLOW
        args += ["--prometheus-url", proxy.url, "--prometheus-timeout", f"{HOLD_SECONDS}s"]
    try:
        result = _measure(directory, args, hanging)
    finally:
        if proxy is not None:
            queries = proxy.queries
            proxy.stop()
    if proxy is None:
        return result
    rows = (*result.measurements, Measurement("Prometheus queries received (none answered)", str(queries)))
    return BenchmarkResult(
        "Transition lag while every Prometheus query hangs", result.setup + HANGING_SETUP, rows, result.notes
    )


def _measure(directory: Path, args: list[str], hanging: bool) -> BenchmarkResult:
    with local_control_plane(pod_ready_after=POD_READY_AFTER) as plane:
        api = admin_client(plane)
        ensure_crd(api)
        create_namespace(api, NAMESPACE)
        bodies = [
            deployment_body(target_name(event, k), BASELINE)
            for event in range(EVENTS)
            for k in range(TARGETS_PER_EVENT)
        ]
        create_deployments(api, NAMESPACE, bodies)
        operator = OperatorProcess(str(plane.kubeconfig_path), directory / "operator.log", args).start()
        assert operator.process is not None
        with DeploymentRecorder(api, namespace=NAMESPACE) as recorder:
            timeline = _timeline()
            create_events(api, NAMESPACE, _specs(timeline, with_metric=hanging))
            settled = wait_for(
                lambda: set(event_phases(api, NAMESPACE).values()) == {"Pending"}, timeout=SETTLE_SECONDS - 5
            )
            before = process_usage(operator.process.pid)
            sleep_until(timeline.end + timedelta(seconds=8))
            after = process_usage(operator.process.pid)
            versions = recorder.versions()
        operator.stop()
    changes = replica_changes(versions)
    up = [lag_after(history, timeline.pre_scale.timestamp(), FLOOR) for history in changes.values()]
    down = [lag_after(history, timeline.end.timestamp(), BASELINE) for history in changes.values()]
    early = sum(
        1 for history in changes.values() for seen, _ in history[1:] if seen < timeline.pre_scale.timestamp()
    )
    return _result(up, down, early, settled, before, after, directory)


def _lag_rows(label: str, lags: list[float | None]) -> list[Measurement]:
    seen = [lag for lag in lags if lag is not None]
    rows = [
        Measurement(
            f"{label}: transitions seen", f"{len(seen)} of {len(lags)}", "all", len(seen) == len(lags)
        )
    ]
    if not seen:
        return rows
    p99 = percentile(seen, 0.99)
    return [
        *rows,
        Measurement(f"{label}: lag p50", seconds(percentile(seen, 0.5))),
        Measurement(
            f"{label}: lag p99", seconds(p99), f"<= {GOAL_P99_SECONDS:.0f} s", p99 <= GOAL_P99_SECONDS
        ),
        Measurement(f"{label}: lag min / max", f"{seconds(min(seen))} / {seconds(max(seen))}"),
    ]


def _result(
    up: list[float | None],
    down: list[float | None],
    early: int,
    settled: float | None,
    before: ProcessUsage,
    after: ProcessUsage,
    directory: Path,
) -> BenchmarkResult:
    rows = [
        *_lag_rows(f"pre-scale ({BASELINE} -> {FLOOR})", up),
        *_lag_rows(f"restore ({FLOOR} -> {BASELINE})", down),
        Measurement("replica changes before their due time", str(early), "0", early == 0),
        Measurement(
            f"{EVENTS} events reported Pending", seconds(settled), "before the pre-scale", settled is not None
        ),
        Measurement("operator peak RSS (VmHWM)", f"{after.peak_rss_mib:.0f} MiB"),
        Measurement(
            "operator CPU, start-up and first reconcile of every event", f"{before.cpu_seconds:.1f} s"
        ),
        Measurement(
            "operator CPU, both transitions and the resyncs between", f"{(after - before).cpu_seconds:.1f} s"
        ),
    ]
    setup = (
        f"{EVENTS} CampaignEvents x {TARGETS_PER_EVENT} Deployments (baseline {BASELINE}, floor {FLOOR}) in "
        f"one namespace; every pre-scale due in the same second, every restore "
        f"{LEAD_SECONDS + WINDOW_SECONDS} s later; one operator (`run --namespace {NAMESPACE}`, default "
        f"flags); pods Ready {POD_READY_AFTER:.0f} s after they appear. "
        "Lag = watch-observed replica change - due time."
    )
    return BenchmarkResult("Transition lag", setup, tuple(rows), (f"Operator log: {directory}/operator.log",))
