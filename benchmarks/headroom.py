"""Node headroom against a slow cluster autoscaler: replica-seconds short in the first minute of the window.

A control plane with the real kube-scheduler, one simulated Node of 2 CPU (room for the baseline only) and the
node provisioner (the cluster autoscaler's stand-in) adding Nodes of 2 CPU 60 s after Pods have been
unschedulable for 3 s. Deployment web: 2 Pods of 1 CPU, floor 6 (four more Pods: two more Nodes); the event's
leadTime is 30 s (ramp-up in 2 steps). It runs twice, each time in a fresh control plane: without
nodeHeadroom, and with `nodeHeadroom.leadTime: 90s`. The shortfall is the sum over targets of
(floor - Ready replicas) integrated over [start, start + 60 s], Ready replicas as a watch on the Deployment
(in the benchmark process) saw them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from kubernetes import client
from tests.integration.faultproxy import DeploymentRecorder, DeploymentVersion
from tests.integration.harness import (
    OperatorProcess,
    campaign_spec,
    deployment_body,
    ensure_crd,
    install_from_manifests,
    seconds_from_now,
)

from benchmarks.common import (
    BenchmarkResult,
    Measurement,
    admin_client,
    create_events,
    create_namespace,
    local_control_plane,
    sleep_until,
    wait_for,
    work_dir,
)
from campaign_autoscaler.devenv.controlplane import SchedulingWorld
from campaign_autoscaler.devenv.nodes import NodeShape
from campaign_autoscaler.devenv.provisioner import ProvisionerConfig

NAMESPACE = "bench-headroom"
TARGET = "web"
SHAPE = NodeShape(cpu="2", memory="8Gi", pods=30)
POD_REQUESTS = {"cpu": "1"}  # two Pods a Node
INITIAL_NODES = 1
BASELINE, FLOOR = 2, 6
PROVISIONING_DELAY = 60.0
UNSCHEDULABLE_AFTER = 3.0
POD_READY_AFTER = 2.0  # a bound Pod's start-up
LEAD_TIME = timedelta(seconds=30)
RAMP_UP_STEPS = 2
HEADROOM_LEAD_TIME = timedelta(seconds=90)
FIRST_MINUTE = 60.0
SETTLE = timedelta(seconds=10)  # from the event's creation to the first thing it does


@dataclass(frozen=True)
class Run:
    headroom: timedelta | None
    short_replica_seconds: float
    ready_at_start: int
    floor_ready_after: float | None  # seconds from start until the floor was first Ready (< 0: before it)
    nodes_added: int
    preempted: int  # placeholders the scheduler preempted
    log: Path

    @property
    def label(self) -> str:
        if self.headroom is None:
            return "without nodeHeadroom"
        return f"nodeHeadroom.leadTime {self.headroom.total_seconds():.0f}s"


def run() -> BenchmarkResult:
    return _result([_run_once(None), _run_once(HEADROOM_LEAD_TIME)])


def _run_once(headroom: timedelta | None) -> Run:
    directory = work_dir("headroom")
    provisioner = ProvisionerConfig(
        shape=SHAPE, provisioning_delay=PROVISIONING_DELAY, unschedulable_after=UNSCHEDULABLE_AFTER
    )
    world = SchedulingWorld(nodes=INITIAL_NODES, shape=SHAPE, provisioner=provisioner)
    with local_control_plane(scheduling=world, pod_ready_after=POD_READY_AFTER) as plane:
        api = admin_client(plane)
        ensure_crd(api)
        install_from_manifests(api, ("PriorityClass",))  # the chart's, for the placeholders
        create_namespace(api, NAMESPACE)
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        apps.create_namespaced_deployment(NAMESPACE, deployment_body(TARGET, BASELINE, requests=POD_REQUESTS))

        def baseline_ready() -> bool:
            return (apps.read_namespaced_deployment(TARGET, NAMESPACE).status.ready_replicas or 0) == BASELINE

        if wait_for(baseline_ready, timeout=60) is None:
            raise RuntimeError(f"The baseline of Deployment {NAMESPACE}/{TARGET} was not Ready within 60 s")
        log = directory / "operator.log"
        operator = OperatorProcess(str(plane.kubeconfig_path), log, ["--namespace", NAMESPACE]).start()
        # Not joined: its watch would hold stop() up to 30 s; the thread ends with the control plane.
        recorder = DeploymentRecorder(api, namespace=NAMESPACE).start()
        try:
            start = seconds_from_now((SETTLE + LEAD_TIME + (headroom or timedelta())).total_seconds())
            create_events(api, NAMESPACE, {"sale": _spec(start, headroom)})
            sleep_until(start + timedelta(seconds=FIRST_MINUTE + 1))
            versions = recorder.versions()
            events = core.list_namespaced_event(NAMESPACE).items
        finally:
            recorder.request_stop()
            operator.stop()
        assert plane.provisioner is not None
        nodes_added = plane.provisioner.added
    history = ready_history(versions, TARGET)
    at = start.timestamp()
    return Run(
        headroom=headroom,
        short_replica_seconds=shortfall(history, FLOOR, at, at + FIRST_MINUTE),
        ready_at_start=ready_at(history, at),
        floor_ready_after=next((seen - at for seen, ready in history if ready >= FLOOR), None),
        nodes_added=nodes_added,
        preempted=sum(1 for e in events if e.reason == "Preempted" and e.involved_object.kind == "Pod"),
        log=log,
    )


def _spec(start: datetime, headroom: timedelta | None) -> dict[str, object]:
    extra = {} if headroom is None else {"nodeHeadroom": {"leadTime": f"{headroom.total_seconds():.0f}s"}}
    return campaign_spec(
        start=start,
        end=start + timedelta(minutes=3),
        targets=[{"name": TARGET, "replicas": FLOOR}],
        lead_time=f"{LEAD_TIME.total_seconds():.0f}s",
        ramp_up_steps=RAMP_UP_STEPS,
        **extra,
    )


def ready_history(versions: Sequence[DeploymentVersion], name: str) -> list[tuple[float, int]]:
    """(seen at, Ready replicas) of Deployment `name` each time its Ready replicas changed."""
    history: list[tuple[float, int]] = []
    for version in versions:
        if version.name == name and (not history or history[-1][1] != version.ready_replicas):
            history.append((version.seen_at, version.ready_replicas))
    return history


def ready_at(history: Sequence[tuple[float, int]], moment: float) -> int:
    """The Ready replicas last seen at or before `moment` (0 before the first)."""
    return next((ready for seen, ready in reversed(history) if seen <= moment), 0)


def shortfall(history: Sequence[tuple[float, int]], floor: int, begin: float, end: float) -> float:
    """Replica-seconds short: max(0, floor - Ready replicas) integrated over [begin, end]."""
    changes = [(begin, ready_at(history, begin))] + [(s, r) for s, r in history if begin < s < end]
    bounds = [seen for seen, _ in changes[1:]] + [end]
    return sum(
        max(0, floor - ready) * (until - seen) for (seen, ready), until in zip(changes, bounds, strict=True)
    )


def _result(runs: Sequence[Run]) -> BenchmarkResult:
    rows = []
    for run_ in runs:
        with_headroom = run_.headroom is not None
        ready = run_.ready_at_start >= FLOOR
        rows += [
            Measurement(
                f"{run_.label}: replica-seconds short in [start, start + 60 s]",
                f"{run_.short_replica_seconds:.1f}",
                "0" if with_headroom else "",
                (run_.short_replica_seconds == 0) if with_headroom else None,
            ),
            Measurement(
                f"{run_.label}: floor Ready at start",
                f"{'yes' if ready else 'no'} ({run_.ready_at_start}/{FLOOR})",
                "yes" if with_headroom else "",
                ready if with_headroom else None,
            ),
            Measurement(f"{run_.label}: floor Ready at", _relative(run_.floor_ready_after)),
            Measurement(
                f"{run_.label}: Nodes added / placeholders preempted",
                f"{run_.nodes_added} / {run_.preempted}",
            ),
        ]
    setup = (
        f"Real kube-scheduler, {INITIAL_NODES} simulated Node of {SHAPE.describe()} (room for the baseline "
        f"only), node provisioner adding Nodes of the same shape {PROVISIONING_DELAY:.0f} s after Pods are "
        f"unschedulable for {UNSCHEDULABLE_AFTER:.0f} s; bound Pods Ready {POD_READY_AFTER:.0f} s after "
        "binding. "
        f"Deployment {TARGET}: {BASELINE} Pods of {POD_REQUESTS['cpu']} CPU, floor {FLOOR}; event leadTime "
        f"{LEAD_TIME.total_seconds():.0f} s, rampUp {RAMP_UP_STEPS} steps. One fresh control plane per run. "
        "Shortfall = (floor - Ready replicas, as a watch saw them) integrated over the window's first minute."
    )
    notes = tuple(f"Operator log ({run_.label}): {run_.log}" for run_ in runs)
    return BenchmarkResult("Node headroom: the first minute of the window", setup, tuple(rows), notes)


def _relative(offset: float | None) -> str:
    if offset is None:
        return "not within the first minute"
    return f"start {'-' if offset < 0 else '+'} {abs(offset):.1f} s"
