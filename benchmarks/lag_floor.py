"""The machine's floor under `lag`: the same replica changes, written with no operator at all.

`lag` times 300 replica changes that fall due in the same second (100 events x 3 Deployments). Part of each
lag is the operator's; the rest is how fast the local API server (on the same cores as etcd, the controller
manager and the pod simulator) takes 300 writes and publishes them. This benchmark measures that rest: on a
control plane set up exactly as `lag` sets up its own, it writes the 300 changes at the due instant itself,
in the operator's shape (one worker per event writing its three Deployments in turn, as many workers as the
urgent pass lane has, each write the operator's own first claim through `KubeAdapter.set_claim`: the claim
and baseline annotations and the replicas in one JSON Patch guarded by the replicas read), and times them
with the same watch. Whatever `lag` measures above this is the operator's own.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from tests.integration.faultproxy import DeploymentRecorder, lag_after, replica_changes
from tests.integration.harness import deployment_body, seconds_from_now

from benchmarks.common import (
    BenchmarkResult,
    Measurement,
    admin_client,
    create_deployments,
    create_namespace,
    local_control_plane,
    percentile,
    seconds,
    sleep_until,
)
from benchmarks.lag import BASELINE, EVENTS, FLOOR, POD_READY_AFTER, TARGETS_PER_EVENT, target_name
from campaign_autoscaler.adapters.kube import KubeAdapter
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.cli.run import WORKER_THREADS
from campaign_autoscaler.handlers.lanes import URGENT_WORKERS

NAMESPACE = "bench-lag-floor"
SETTLE_SECONDS = 15  # the Deployments' first Pods created and Ready before the writes
SEEN_WITHIN = 10  # seconds after the due instant


def run() -> BenchmarkResult:
    with local_control_plane(pod_ready_after=POD_READY_AFTER) as plane:
        api = admin_client(plane)
        create_namespace(api, NAMESPACE)
        names = [target_name(event, k) for event in range(EVENTS) for k in range(TARGETS_PER_EVENT)]
        create_deployments(api, NAMESPACE, [deployment_body(name, BASELINE) for name in names])
        # As many pooled connections as the operator keeps (`run`'s worker threads).
        kube = KubeAdapter(admin_client(plane, pool_size=WORKER_THREADS))
        time.sleep(SETTLE_SECONDS)
        # What the operator's watch shows at the due instant: the writes are decided on it, as a pass's are.
        snapshot = NamespaceSnapshot.of(kube.list_deployments(NAMESPACE), namespace=NAMESPACE)
        with DeploymentRecorder(api, namespace=NAMESPACE) as recorder:
            due = seconds_from_now(2)

            def write(event: int, name: str) -> None:
                kube.set_claim(snapshot, name, f"{NAMESPACE}/event-{event}", FLOOR, owner_uid=f"uid-{event}")

            def one_event(event: int) -> None:
                for k in range(TARGETS_PER_EVENT):
                    write(event, target_name(event, k))

            sleep_until(due)
            with ThreadPoolExecutor(URGENT_WORKERS) as workers:
                list(workers.map(one_event, range(EVENTS)))
            sleep_until(due + timedelta(seconds=SEEN_WITHIN))
            versions = recorder.versions()
    changes = replica_changes(versions)
    lags = [lag_after(history, due.timestamp(), FLOOR) for history in changes.values()]
    seen = [lag for lag in lags if lag is not None]
    rows = [Measurement("changes seen", f"{len(seen)} of {len(names)}", "all", len(seen) == len(names))]
    if seen:
        rows += [
            Measurement("lag p50", seconds(percentile(seen, 0.5))),
            Measurement("lag p99", seconds(percentile(seen, 0.99))),
            Measurement("lag min / max", f"{seconds(min(seen))} / {seconds(max(seen))}"),
        ]
    setup = (
        f"No operator. {EVENTS * TARGETS_PER_EVENT} Deployments (baseline {BASELINE}) in one namespace of a "
        f"control plane set up as `lag`'s; at one instant, {URGENT_WORKERS} threads (the urgent pass lane's "
        f"size) write the {EVENTS * TARGETS_PER_EVENT} changes to {FLOOR}, one thread per event's "
        f"{TARGETS_PER_EVENT} Deployments in turn, each the operator's own first claim "
        "(`KubeAdapter.set_claim`: annotations and replicas in one guarded JSON Patch). Lag = "
        "watch-observed replica change - that instant: what the API server alone allows on this machine, the "
        "floor under `lag`'s numbers."
    )
    return BenchmarkResult("Transition lag floor (no operator)", setup, tuple(rows))
