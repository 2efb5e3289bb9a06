"""Drift re-assert latency: a person (or a `kubectl apply` of the application) scales targets below their
floor mid-window; how long until the operator has raised each one again.

50 events x 1 Deployment (baseline 2, floor 6), all in their window. Five rounds: every target is scaled to 1
at once (50 writes in parallel), then, after they are all back, once more. The latency of one drift is the
time a watch on the Deployments (in the benchmark process) sees the raise minus the time it saw the drop.
The operator runs with `--resync-interval 60s`, so the resync cannot be what raises them. Afterwards every
target is scaled above its floor and must be left there.
"""

from __future__ import annotations

import time
from pathlib import Path

from kubernetes import client
from tests.integration.faultproxy import DeploymentRecorder, replica_changes
from tests.integration.harness import OperatorProcess, active_soon, deployment_body, ensure_crd

from benchmarks.common import (
    BenchmarkResult,
    Measurement,
    admin_client,
    create_deployments,
    create_events,
    create_namespace,
    in_parallel,
    local_control_plane,
    percentile,
    seconds,
    wait_for,
    work_dir,
)

EVENTS = 50
BASELINE, FLOOR, DRIFTED, ABOVE = 2, 6, 1, 9
ROUNDS = 5
NAMESPACE = "bench-drift"
GOAL_P99_SECONDS = 1.0


def _name(event: int) -> str:
    return f"shop-{event:03d}"


def _scale_all(apps: client.AppsV1Api, replicas: int) -> None:
    body = {"spec": {"replicas": replicas}}
    names = [_name(event) for event in range(EVENTS)]
    in_parallel(
        lambda name=name: apps.patch_namespaced_deployment_scale(name, NAMESPACE, body) for name in names
    )


def run() -> BenchmarkResult:
    directory = work_dir("drift")
    with local_control_plane() as plane:
        api = admin_client(plane)
        ensure_crd(api)
        create_namespace(api, NAMESPACE)
        apps = client.AppsV1Api(api)
        create_deployments(api, NAMESPACE, [deployment_body(_name(e), BASELINE) for e in range(EVENTS)])
        args = ["--namespace", NAMESPACE, "--resync-interval", "60s"]
        operator = OperatorProcess(str(plane.kubeconfig_path), directory / "operator.log", args).start()

        def all_at(replicas: int) -> bool:
            items = apps.list_namespaced_deployment(NAMESPACE).items
            return all(d.spec.replicas == replicas for d in items if d.metadata.name.startswith("shop-"))

        with DeploymentRecorder(api, namespace=NAMESPACE) as recorder:
            specs = {
                f"sale-{e:03d}": active_soon([{"name": _name(e), "replicas": FLOOR}]) for e in range(EVENTS)
            }
            create_events(api, NAMESPACE, specs)
            wait_for(lambda: all_at(FLOOR), timeout=60)
            raised_all = []
            for _ in range(ROUNDS):
                _scale_all(apps, DRIFTED)
                raised_all.append(wait_for(lambda: all_at(FLOOR), timeout=30, interval=0.1))
                time.sleep(1)
            _scale_all(apps, ABOVE)
            time.sleep(5)
            left_above = all_at(ABOVE)
            versions = recorder.versions()
        operator.stop()
    return _result(versions, raised_all, left_above, directory)


def _result(
    versions: list, raised_all: list[float | None], left_above: bool, directory: Path
) -> BenchmarkResult:
    latencies: list[float] = []
    extra_changes = 0
    for history in replica_changes(versions).values():
        values = [replicas for _, replicas in history]
        expected = [BASELINE, FLOOR] + [DRIFTED, FLOOR] * ROUNDS + [ABOVE]
        if values != expected:
            extra_changes += 1
        for i in range(2, len(history) - 1):
            if history[i][1] == DRIFTED and history[i + 1][1] == FLOOR:
                latencies.append(history[i + 1][0] - history[i][0])
    expected_count = EVENTS * ROUNDS
    p99 = percentile(latencies, 0.99) if latencies else None
    rows = [
        Measurement(
            "drifts raised again",
            f"{len(latencies)} of {expected_count}",
            "all",
            len(latencies) == expected_count,
        ),
        Measurement("re-assert latency p50", seconds(percentile(latencies, 0.5)) if latencies else "-"),
        Measurement(
            "re-assert latency p99",
            seconds(p99),
            f"<= {GOAL_P99_SECONDS:.0f} s",
            p99 is not None and p99 <= GOAL_P99_SECONDS,
        ),
        Measurement("re-assert latency max", seconds(max(latencies)) if latencies else "-"),
        Measurement(
            "targets whose replica history is not exactly one raise per drift",
            str(extra_changes),
            "0",
            extra_changes == 0,
        ),
        Measurement(
            f"scaled above the floor ({ABOVE}) and left there",
            "yes" if left_above else "no",
            "yes",
            left_above,
        ),
    ]
    setup = (
        f"{EVENTS} CampaignEvents x 1 Deployment (baseline {BASELINE}, floor {FLOOR}), all in their window; "
        f"{ROUNDS} rounds of scaling every target to {DRIFTED} at once (parallel /scale writes); one "
        f"operator (`run --namespace {NAMESPACE} --resync-interval 60s`). Latency = watch-observed raise - "
        "watch-observed drop."
    )
    return BenchmarkResult(
        "Drift re-assert latency", setup, tuple(rows), (f"Operator log: {directory}/operator.log",)
    )
