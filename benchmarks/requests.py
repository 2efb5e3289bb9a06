"""Requests per useful write: how many Events and status patches the operator sends for each replica write.

40 events x 2 Deployments in one namespace, each ramping 1 -> 4 replicas in 3 steps over its lead time and
back in 3 steps after a short window: 12 replica changes per event, 480 in all, the Events and status patches
around them counted by a counting proxy in front of the API server (the operator's only way to it). A watch on
the Deployments counts the replica changes that landed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from tests.integration.faultproxy import (
    DeploymentRecorder,
    FaultProxy,
    ServingCertificate,
    TrafficSnapshot,
    proxied_kubeconfig,
    replica_changes,
)
from tests.integration.harness import (
    OperatorProcess,
    campaign_spec,
    deployment_body,
    ensure_crd,
    seconds_from_now,
)

from benchmarks.common import (
    BenchmarkResult,
    Measurement,
    admin_client,
    create_deployments,
    create_events,
    create_namespace,
    event_phases,
    local_control_plane,
    sleep_until,
    wait_for,
    work_dir,
)

EVENTS = 40
TARGETS_PER_EVENT = 2
BASELINE, FLOOR = 1, 4
STEPS = 3
NAMESPACE = "bench-requests"
SETTLE_SECONDS = 40
LEAD_SECONDS = 12
WINDOW_SECONDS = 12
RAMP_DOWN_SECONDS = 12


def _target_name(event: int, target: int) -> str:
    return f"shop-{event:03d}-{target}"


def run() -> BenchmarkResult:
    directory = work_dir("requests")
    with local_control_plane(pod_ready_after=1.0) as plane:
        api = admin_client(plane)
        ensure_crd(api)
        create_namespace(api, NAMESPACE)
        create_deployments(
            api,
            NAMESPACE,
            [
                deployment_body(_target_name(event, k), BASELINE)
                for event in range(EVENTS)
                for k in range(TARGETS_PER_EVENT)
            ],
        )
        certificate = ServingCertificate(directory / "proxy-cert")
        with (
            FaultProxy(plane.url, seed=0, upstream_ca=plane.ca_path, certificate=certificate) as proxy,
            DeploymentRecorder(api, namespace=NAMESPACE) as recorder,
        ):
            kubeconfig = proxied_kubeconfig(plane.kubeconfig_path, proxy, directory / "proxied.kubeconfig")
            operator = OperatorProcess(
                str(kubeconfig), directory / "operator.log", ["--namespace", NAMESPACE]
            )
            operator.start()
            pre_scale = seconds_from_now(SETTLE_SECONDS)
            start = pre_scale + timedelta(seconds=LEAD_SECONDS)
            end = start + timedelta(seconds=WINDOW_SECONDS)
            specs = {
                f"sale-{event:03d}": campaign_spec(
                    start=start,
                    end=end,
                    lead_time=f"{LEAD_SECONDS}s",
                    ramp_up_steps=STEPS,
                    ramp_down={"duration": f"{RAMP_DOWN_SECONDS}s", "steps": STEPS},
                    multiplier=FLOOR / BASELINE,
                    targets=[{"name": _target_name(event, k)} for k in range(TARGETS_PER_EVENT)],
                )
                for event in range(EVENTS)
            }
            create_events(api, NAMESPACE, specs)
            wait_for(
                lambda: set(event_phases(api, NAMESPACE).values()) == {"Pending"}, timeout=SETTLE_SECONDS
            )
            settled = proxy.snapshot()
            sleep_until(end + timedelta(seconds=RAMP_DOWN_SECONDS + 5))
            wait_for(lambda: set(event_phases(api, NAMESPACE).values()) == {"Completed"}, timeout=30)
            traffic = proxy.snapshot()
            versions = recorder.versions()
            operator.stop()
    changes = sum(len(history) - 1 for history in replica_changes(versions).values())
    return _result(settled, traffic, changes, directory, pre_scale)


def _count(traffic: TrafficSnapshot, settled: TrafficSnapshot, key: str) -> int:
    return traffic.count(key) - settled.count(key)


def _result(
    settled: TrafficSnapshot, traffic: TrafficSnapshot, changes: int, directory: Path, pre_scale: datetime
) -> BenchmarkResult:
    created = _count(traffic, settled, "create events")
    patched = _count(traffic, settled, "patch events")
    status = _count(traffic, settled, "patch campaignevents/status")
    replica_writes = _count(traffic, settled, "patch deployments")
    planned = EVENTS * TARGETS_PER_EVENT * 2 * STEPS
    bookkeeping = created + patched + status
    per_write = bookkeeping / replica_writes if replica_writes else float("nan")
    per_change = bookkeeping / changes if changes else float("nan")
    rows = (
        Measurement(
            "replica changes seen by the watch", f"{changes} of {planned}", "all", changes == planned
        ),
        Measurement("replica writes (PATCH deployments)", str(replica_writes)),
        Measurement("Events created (POST events)", str(created)),
        Measurement("Events updated (PATCH events)", str(patched)),
        Measurement("status patches (PATCH campaignevents/status)", str(status)),
        Measurement("Events + status patches per PATCH of a Deployment", f"{per_write:.2f}"),
        Measurement("Events + status patches per replica change", f"{per_change:.2f}"),
    )
    setup = (
        f"{EVENTS} events x {TARGETS_PER_EVENT} Deployments, {BASELINE} -> {FLOOR} replicas in {STEPS} steps "
        f"over a {LEAD_SECONDS} s lead time and back in {STEPS} steps over {RAMP_DOWN_SECONDS} s after a "
        f"{WINDOW_SECONDS} s window; requests counted by a proxy from the moment every event is Pending "
        f"(pre-scale at {pre_scale:%H:%M:%S}) to the moment every one is Completed; default flags."
    )
    return BenchmarkResult(
        "Requests per useful write", setup, rows, (f"Operator log: {directory / 'operator.log'}",)
    )
