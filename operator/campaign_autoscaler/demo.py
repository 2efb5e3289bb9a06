"""`campaign-autoscaler demo`: the 9.9 sale, compressed to about two minutes, on a throw-away local cluster.

Everything is real except the pace of time and the traffic: a local kube-apiserver + etcd +
kube-controller-manager (Pods made Ready by the readiness simulator), a real Prometheus scraping a synthetic
exporter that replays the synthetic 9.9 traffic curve at 60x speed (1 s of the demo = 1 min of the sale), and
the operator itself, `python -m campaign_autoscaler run`, in its own process. The demo only creates the
Deployments and the CampaignEvent, then watches: it never scales anything itself.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text
from urllib3.exceptions import HTTPError

from campaign_autoscaler import API_GROUP, API_VERSION, KIND, PLURAL
from campaign_autoscaler.devenv.controlplane import (
    ASSETS_ENV_VAR,
    KUBERNETES_VERSION,
    ControlPlane,
    ControlPlaneError,
    ManagedProcess,
    default_assets_dir,
    find_assets,
)
from campaign_autoscaler.devenv.prometheus import (
    PrometheusError,
    PrometheusServer,
    Sample,
    SyntheticExporter,
    find_prometheus,
    selector,
)
from campaign_autoscaler.planning import (
    CAMPAIGN_ANNOTATIONS,
    Floor,
    Phase,
    TargetSpec,
    Transition,
    Window,
    compute_floor,
    format_duration,
    lifecycle_end,
    lifecycle_start,
    parse_spec,
    ramp_replicas,
    transitions,
)
from campaign_autoscaler.simulation import TrafficCurve, synthetic_9_9

NAMESPACE = "shop"
EVENT_NAME = "sale-9-9"
TRAFFIC_SERIES = "shop_http_requests_per_second"
# The namespace label, as Prometheus' Kubernetes discovery sets it: the operator holds every query to its
# event's namespace (--metrics-namespace-label namespace).
TRAFFIC_LABELS = MappingProxyType({"app": "checkout", "namespace": NAMESPACE})
TRAFFIC_SELECTOR = selector(TRAFFIC_SERIES, TRAFFIC_LABELS)
TRAFFIC_QUERY = f"sum({TRAFFIC_SELECTOR})"
# req/s one checkout Pod serves: its 3 baseline Pods carry a normal day's peak (1,000 req/s); the 2.5x
# surge (2,500 req/s) wants 8, more than the 2x checkout's team planned: the live metric adds the rest.
TARGET_PER_REPLICA = 320
TRAFFIC_MULTIPLIER = 2.5
CHECKOUT_MULTIPLIER = 2
CHECKOUT_MIN_REPLICAS = 4
CHECKOUT_MAX_REPLICAS = 60
MAX_SCALE_FACTOR = 10.0  # the operator's default --max-scale-factor
OPERATOR_INTERVAL = "2s"  # --resync-interval and --metrics-interval
STABILIZATION_IN_THE_SALE = timedelta(minutes=5)  # the operator's default --scale-down-stabilization
SALE_TIMEZONE = ZoneInfo("Asia/Jakarta")
SALE_OPENING = datetime(2026, 9, 9, tzinfo=SALE_TIMEZONE)
MINUTE = timedelta(minutes=1)
CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "campaignevents.autoscaling.campaigns.dev.yaml"
DEFAULT_PLOT_PATH = "campaign-demo.png"

SAMPLE_SECONDS = 0.25
REFRESH_SECONDS = 0.5
REQUEST_TIMEOUT_SECONDS = 5
MAX_FAILED_SAMPLES = 40  # 10 s of an unreachable API server ends the demo
SETTLE_SECONDS = 2.0  # keep watching this long after the end state is reached, so it is seen
OVERRUN = timedelta(seconds=30)  # give up this long after the planned completion
EARLY_TOLERANCE = timedelta(seconds=1)
PROMISED_LAG_SECONDS = 1.0
READY_TIMEOUT_SECONDS = 60.0
RECENT_EVENTS = 5
LAG_COLUMN_WIDTH = len("✗ not seen")
PLOT_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple")


class DemoError(RuntimeError):
    """The demo could not run: a component failed to start, or the operator died."""


# --- the compressed timeline (pure) ---------------------------------------------------------------------
@dataclass(frozen=True)
class DemoTimeline:
    """How the 9.9 sale is compressed. `speedup` seconds of the sale pass in one second of the demo."""

    title: str
    lead_in: timedelta  # from applying the event to the first ramp-up step (phase Pending)
    lead_time: timedelta
    ramp_up_steps: int
    window: timedelta
    ramp_down: timedelta
    ramp_down_steps: int
    pod_ready_after: float  # seconds from a Pod's creation to Ready
    speedup: float

    @property
    def total(self) -> timedelta:
        return self.lead_in + self.lead_time + self.window + self.ramp_down

    @property
    def scale_down_stabilization(self) -> timedelta:
        return STABILIZATION_IN_THE_SALE / self.speedup

    def pace(self) -> str:
        minutes = self.speedup / 60
        return f"1 s = {minutes:g} min of the sale"


FULL_TIMELINE = DemoTimeline(
    title="about two minutes",
    lead_in=timedelta(seconds=10),
    lead_time=timedelta(seconds=30),
    ramp_up_steps=3,
    window=timedelta(seconds=45),
    ramp_down=timedelta(seconds=30),
    ramp_down_steps=3,
    pod_ready_after=3.0,
    speedup=60.0,
)
SHORT_TIMELINE = DemoTimeline(
    title="under a minute",
    lead_in=timedelta(seconds=6),
    lead_time=timedelta(seconds=12),
    ramp_up_steps=2,
    window=timedelta(seconds=15),
    ramp_down=timedelta(seconds=10),
    ramp_down_steps=2,
    pod_ready_after=2.0,
    speedup=150.0,
)


@dataclass(frozen=True)
class DemoDeployment:
    name: str
    replicas: int
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def pod_selector(self) -> dict[str, str]:
        return {"app": self.name}

    @property
    def all_labels(self) -> dict[str, str]:
        return {**self.pod_selector, **self.labels}


DEPLOYMENTS = (
    DemoDeployment("order-tracking", 4),
    DemoDeployment("checkout", 3, MappingProxyType({"campaign.tier": "checkout"})),
)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def opening_time(now: datetime, timeline: DemoTimeline) -> datetime:
    """When the demo's window opens if the event is applied at `now`: after the lead-in and lead time."""
    opening = now + timeline.lead_in + timeline.lead_time
    return opening.replace(microsecond=0) + timedelta(seconds=1)


def event_manifest(timeline: DemoTimeline, opening: datetime, live_metric: bool) -> dict[str, Any]:
    """The CampaignEvent: examples/sale-9-9.yaml with its times compressed. Checkout plans for 2x only;
    with `live_metric` it follows the traffic series, which surges to 2.5x."""
    checkout: dict[str, Any] = {
        "selector": {"matchLabels": {"campaign.tier": "checkout"}},
        "multiplier": CHECKOUT_MULTIPLIER,
        "minReplicas": CHECKOUT_MIN_REPLICAS,
        "maxReplicas": CHECKOUT_MAX_REPLICAS,
    }
    if live_metric:
        checkout["metric"] = {"query": TRAFFIC_QUERY, "targetPerReplica": TARGET_PER_REPLICA}
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": EVENT_NAME, "namespace": NAMESPACE},
        "spec": {
            "timezone": "UTC",
            "start": _rfc3339(opening),
            "end": _rfc3339(opening + timeline.window),
            "leadTime": format_duration(timeline.lead_time),
            "rampUp": {"steps": timeline.ramp_up_steps},
            "rampDown": {"duration": format_duration(timeline.ramp_down), "steps": timeline.ramp_down_steps},
            "trafficMultiplier": TRAFFIC_MULTIPLIER,
            "targets": [{"name": "order-tracking"}, checkout],
        },
    }


@dataclass(frozen=True)
class PlannedStep:
    """One transition of the timeline and the replicas it should give each Deployment."""

    transition: Transition
    replicas: Mapping[str, int]


@dataclass(frozen=True)
class DemoPlan:
    """What the operator should do, computed with the same planning code it uses."""

    window: Window
    scaling_starts_at: datetime
    completes_at: datetime
    baselines: Mapping[str, int]
    floors: Mapping[str, Floor]
    metric_targets: frozenset[str]
    steps: tuple[PlannedStep, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.baselines)

    def step_due_at(self, moment: datetime) -> PlannedStep | None:
        return next((step for step in self.steps if step.transition.at == moment), None)


def _target_of(targets: Sequence[TargetSpec], deployment: DemoDeployment) -> TargetSpec:
    for target in targets:
        if target.name == deployment.name or target.matches(deployment.all_labels):
            return target
    raise ValueError(f"No target of the demo event selects Deployment {deployment.name}")


def build_plan(manifest: Mapping[str, Any], deployments: Sequence[DemoDeployment] = DEPLOYMENTS) -> DemoPlan:
    spec = parse_spec(manifest["spec"])
    if spec.start is None or spec.end is None:
        raise ValueError("The demo event is a one-off event with a start and an end")
    window = Window(spec.start, spec.end)
    targets = {deployment.name: _target_of(spec.targets, deployment) for deployment in deployments}
    baselines = {deployment.name: deployment.replicas for deployment in deployments}
    floors = {
        name: compute_floor(target, baselines[name], spec.traffic_multiplier, MAX_SCALE_FACTOR)
        for name, target in targets.items()
    }
    steps = tuple(
        PlannedStep(
            transition,
            {
                name: ramp_replicas(baselines[name], floors[name].replicas, transition.fraction)
                for name in targets
            },
        )
        for transition in transitions(spec, window)
    )
    return DemoPlan(
        window=window,
        scaling_starts_at=lifecycle_start(spec, window),
        completes_at=lifecycle_end(spec, window),
        baselines=baselines,
        floors=floors,
        metric_targets=frozenset(name for name, target in targets.items() if target.metric is not None),
        steps=steps,
    )


# --- the synthetic traffic, compressed in time (pure) ----------------------------------------------------
@dataclass(frozen=True)
class CompressedTraffic:
    """The synthetic 9.9 curve replayed `speedup` times faster, its opening aligned on the demo's window."""

    curve: TrafficCurve
    sale_opening: datetime
    opening: datetime
    speedup: float

    def rps_at(self, moment: datetime) -> float:
        sale_moment = self.sale_opening + (moment - self.opening) * self.speedup
        index = (sale_moment - self.curve.start) // MINUTE
        return self.curve.rps[min(max(index, 0), len(self.curve.rps) - 1)]


def compress_traffic(timeline: DemoTimeline, opening: datetime) -> CompressedTraffic:
    sale_end = SALE_OPENING + timeline.window * timeline.speedup
    curve = synthetic_9_9(
        SALE_OPENING,
        sale_end,
        SALE_TIMEZONE,
        covers_from=SALE_OPENING - (timeline.lead_in + timeline.lead_time) * timeline.speedup,
        covers_until=sale_end + (timeline.ramp_down + OVERRUN) * timeline.speedup,
    )
    return CompressedTraffic(curve, SALE_OPENING, opening, timeline.speedup)


# --- what the demo sees ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeploymentState:
    spec_replicas: int
    ready_replicas: int
    campaign_annotations: tuple[str, ...]


@dataclass(frozen=True)
class TargetStatus:
    """One entry of the event's status.targets, as the operator reported it."""

    baseline: int | None
    desired: int | None
    metric_value: str | None
    reason: str | None


@dataclass(frozen=True)
class ClusterSample:
    at: datetime
    phase: str | None
    next_transition: datetime | None
    deployments: Mapping[str, DeploymentState]
    targets: Mapping[str, TargetStatus]
    traffic_rps: float


@dataclass(frozen=True)
class EventLine:
    at: datetime
    kind: str  # Normal or Warning
    reason: str
    message: str


def _parse_instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _deployment_state(obj: Any) -> DeploymentState:
    annotations = obj.metadata.annotations or {}
    return DeploymentState(
        spec_replicas=obj.spec.replicas or 0,
        ready_replicas=(obj.status.ready_replicas if obj.status else None) or 0,
        campaign_annotations=tuple(key for key in CAMPAIGN_ANNOTATIONS if key in annotations),
    )


def _target_statuses(status: Mapping[str, Any]) -> dict[str, TargetStatus]:
    return {
        entry["name"]: TargetStatus(
            baseline=entry.get("baselineReplicas"),
            desired=entry.get("desiredReplicas"),
            metric_value=entry.get("metricValue"),
            reason=entry.get("reason"),
        )
        for entry in status.get("targets") or []
        if "name" in entry
    }


def _event_time(event: Any) -> datetime:
    moment = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
    return moment if moment is not None else datetime.min.replace(tzinfo=UTC)


def _event_order(event: Any) -> tuple[datetime, int]:
    """Timestamps have whole seconds; the resourceVersion (an etcd revision) orders Events within one."""
    revision = event.metadata.resource_version or ""
    return _event_time(event), int(revision) if revision.isdigit() else 0


class ClusterReader:
    """Reads the Deployments, the CampaignEvent and the operator's Events of the demo namespace."""

    def __init__(self, api_client: client.ApiClient, clock: Callable[[], datetime]) -> None:
        self._apps = client.AppsV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._clock = clock

    def sample(self, traffic: CompressedTraffic) -> ClusterSample:
        listing = self._apps.list_namespaced_deployment(NAMESPACE, _request_timeout=REQUEST_TIMEOUT_SECONDS)
        event = self._campaign_event()
        at = self._clock()  # after both answers: a change is seen no earlier than it happened
        status = (event or {}).get("status") or {}
        return ClusterSample(
            at=at,
            phase=status.get("phase"),
            next_transition=_parse_instant(status.get("nextTransition")),
            deployments={obj.metadata.name: _deployment_state(obj) for obj in listing.items},
            targets=_target_statuses(status),
            traffic_rps=traffic.rps_at(at),
        )

    def operator_events(self, limit: int = RECENT_EVENTS) -> tuple[EventLine, ...]:
        """The latest Events about the CampaignEvent: the operator posts each change there too."""
        items = self._core.list_namespaced_event(
            NAMESPACE, field_selector=f"involvedObject.kind={KIND}", _request_timeout=REQUEST_TIMEOUT_SECONDS
        ).items
        latest = sorted(items, key=_event_order)[-limit:]
        return tuple(EventLine(_event_time(e), e.type or "", e.reason or "", e.message or "") for e in latest)

    def _campaign_event(self) -> dict[str, Any] | None:
        try:
            return self._custom.get_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                NAMESPACE,
                PLURAL,
                EVENT_NAME,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise


# --- what the samples say (pure) -------------------------------------------------------------------------
@dataclass(frozen=True)
class StepObservation:
    step: PlannedStep
    observed_at: datetime | None  # the first sample showing the step's phase and replicas

    @property
    def lag_seconds(self) -> float | None:
        if self.observed_at is None:
            return None
        return (self.observed_at - self.step.transition.at).total_seconds()


@dataclass(frozen=True)
class ReadyAtOpening:
    name: str
    floor: int
    ready: int | None  # Ready replicas in the last sample before the window opened

    @property
    def ok(self) -> bool:
        return self.ready is not None and self.ready >= self.floor


@dataclass(frozen=True)
class EndState:
    name: str
    baseline: int
    replicas: int | None
    leftover_annotations: tuple[str, ...]

    @property
    def exact(self) -> bool:
        return self.replicas == self.baseline and not self.leftover_annotations


@dataclass(frozen=True)
class DemoOutcome:
    steps: tuple[StepObservation, ...]
    ready_at_opening: tuple[ReadyAtOpening, ...]
    end_states: tuple[EndState, ...]
    window_peaks: Mapping[str, int]  # the most replicas each metric target had during the window
    traffic_peak: float

    @property
    def all_steps_observed(self) -> bool:
        return all(observation.observed_at is not None for observation in self.steps)

    @property
    def capacity_ready(self) -> bool:
        return bool(self.ready_at_opening) and all(item.ok for item in self.ready_at_opening)

    @property
    def end_state_exact(self) -> bool:
        return bool(self.end_states) and all(item.exact for item in self.end_states)

    @property
    def succeeded(self) -> bool:
        return self.all_steps_observed and self.capacity_ready and self.end_state_exact


def step_reached(plan: DemoPlan, step: PlannedStep, sample: ClusterSample) -> bool:
    """Whether `sample` shows the step: its phase and each Deployment's replicas. A metric target may be
    above its step's replicas (the live metric raises it) until the event completes."""
    if sample.phase != str(step.transition.phase):
        return False
    for name, wanted in step.replicas.items():
        state = sample.deployments.get(name)
        if state is None:
            return False
        may_be_raised = name in plan.metric_targets and step.transition.phase != Phase.COMPLETED
        if state.spec_replicas < wanted or (not may_be_raised and state.spec_replicas != wanted):
            return False
    return True


def observe_steps(plan: DemoPlan, samples: Sequence[ClusterSample]) -> tuple[StepObservation, ...]:
    observations: list[StepObservation] = []
    searched_from = samples[0].at if samples else plan.scaling_starts_at
    for step in plan.steps:
        earliest = max(searched_from, step.transition.at - EARLY_TOLERANCE)
        seen = next((s.at for s in samples if s.at >= earliest and step_reached(plan, step, s)), None)
        observations.append(StepObservation(step, seen))
        searched_from = seen or searched_from
    return tuple(observations)


def ready_at_opening(plan: DemoPlan, samples: Sequence[ClusterSample]) -> tuple[ReadyAtOpening, ...]:
    before = [sample for sample in samples if sample.at <= plan.window.start]
    last = before[-1] if before else None
    return tuple(
        ReadyAtOpening(
            name,
            plan.floors[name].replicas,
            last.deployments[name].ready_replicas if last and name in last.deployments else None,
        )
        for name in plan.names
    )


def end_states(plan: DemoPlan, sample: ClusterSample | None) -> tuple[EndState, ...]:
    states = []
    for name, baseline in plan.baselines.items():
        state = sample.deployments.get(name) if sample else None
        states.append(
            EndState(
                name,
                baseline,
                state.spec_replicas if state else None,
                state.campaign_annotations if state else (),
            )
        )
    return tuple(states)


def settled(plan: DemoPlan, sample: ClusterSample) -> bool:
    """Completed, every Deployment back at its baseline, Ready, and without the operator's annotations."""
    if sample.phase != str(Phase.COMPLETED) or sample.at < plan.completes_at:
        return False
    return all(state.exact for state in end_states(plan, sample)) and all(
        sample.deployments[name].ready_replicas == baseline for name, baseline in plan.baselines.items()
    )


def summarize(plan: DemoPlan, samples: Sequence[ClusterSample]) -> DemoOutcome:
    in_window = [s for s in samples if plan.window.start <= s.at < plan.window.end]
    peaks = {
        name: max((s.deployments[name].spec_replicas for s in in_window if name in s.deployments), default=0)
        for name in sorted(plan.metric_targets)
    }
    return DemoOutcome(
        steps=observe_steps(plan, samples),
        ready_at_opening=ready_at_opening(plan, samples),
        end_states=end_states(plan, samples[-1] if samples else None),
        window_peaks=peaks,
        traffic_peak=max((s.traffic_rps for s in samples), default=0.0),
    )


# --- rendering --------------------------------------------------------------------------------------------
def relative(moment: datetime, plan: DemoPlan) -> str:
    """`T-30s`: seconds from the window opening."""
    return f"T{(moment - plan.window.start).total_seconds():+.0f}s"


def _clock_time(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


@dataclass(frozen=True)
class Frame:
    """Everything one refresh of the live view shows."""

    plan: DemoPlan
    timeline: DemoTimeline
    samples: tuple[ClusterSample, ...]
    events: tuple[EventLine, ...]
    live_metric: bool

    @property
    def latest(self) -> ClusterSample:
        return self.samples[-1]


def _headline(frame: Frame) -> Text:
    sample, plan = frame.latest, frame.plan
    text = Text()
    text.append(f"{NAMESPACE}/{EVENT_NAME}", style="bold")
    text.append(f"  {_clock_time(sample.at)}  {relative(sample.at, plan)}  ")
    text.append(sample.phase or "(no status yet)", style="bold cyan")
    text.append(f"  next: {_next_step_text(plan, sample)}\n")
    text.append(f"Traffic on checkout {sample.traffic_rps:,.0f} req/s", style="bold")
    source = "via Prometheus" if frame.live_metric else "not scraped: no Prometheus"
    text.append(f"  (synthetic 9.9 curve, {frame.timeline.pace()}; {source})")
    return text


def _next_step_text(plan: DemoPlan, sample: ClusterSample) -> str:
    if sample.phase is None:
        return "waiting for the operator"
    if sample.next_transition is None:
        return "nothing: the event is complete"
    step = plan.step_due_at(sample.next_transition)
    label = step.transition.label if step else "resync"
    wait = (sample.next_transition - sample.at).total_seconds()
    return f"{label} at {relative(sample.next_transition, plan)} (in {max(0.0, wait):.0f}s)"


def _lag_text(observation: StepObservation, now: datetime) -> Text:
    lag = observation.lag_seconds
    if lag is not None:
        style = "green" if lag <= PROMISED_LAG_SECONDS else "yellow"
        return Text(f"✓ {lag:+.2f}s", style=style)
    if now < observation.step.transition.at + OVERRUN:
        return Text("…", style="dim")
    return Text("✗ not seen", style="bold red")


def _wanted_text(plan: DemoPlan, step: PlannedStep, name: str) -> str:
    replicas = step.replicas[name]
    may_be_raised = name in plan.metric_targets and step.transition.phase != Phase.COMPLETED
    return f"≥{replicas}" if may_be_raised else str(replicas)


def _table(title: str, expand: bool) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        expand=expand,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )


def timeline_table(plan: DemoPlan, observations: Sequence[StepObservation], now: datetime) -> Table:
    table = _table("Timeline: due, planned replicas, observed lag", expand=False)
    for column in ("due", "step", "phase", *plan.names):
        table.add_column(column, justify="right" if column in plan.names else "left", no_wrap=True)
    table.add_column("lag", no_wrap=True, min_width=LAG_COLUMN_WIDTH)  # a steady width as lags come in
    for observation in observations:
        step = observation.step
        table.add_row(
            relative(step.transition.at, plan),
            step.transition.label,
            str(step.transition.phase),
            *(_wanted_text(plan, step, name) for name in plan.names),
            _lag_text(observation, now),
        )
    return table


def _ready_text(state: DeploymentState | None) -> Text:
    if state is None:
        return Text("-")
    style = "green" if state.ready_replicas >= state.spec_replicas else "yellow"
    return Text(str(state.ready_replicas), style=style)


def _metric_text(value: str | None) -> str:
    try:
        return f"{float(value or 'nan'):,.0f}"
    except ValueError:
        return value or "-"


def deployments_table(frame: Frame) -> Table:
    table = _table(f"Deployments in namespace {NAMESPACE}", expand=True)
    for column in ("Deployment", "baseline", "desired", "spec", "ready", "metric"):
        table.add_column(column, justify="left" if column == "Deployment" else "right", no_wrap=True)
    table.add_column("operator's reason", no_wrap=True, overflow="ellipsis", ratio=1)
    sample = frame.latest
    for name in frame.plan.names:
        state = sample.deployments.get(name)
        target = sample.targets.get(name, TargetStatus(None, None, None, None))
        table.add_row(
            name,
            str(frame.plan.baselines[name]),
            "-" if target.desired is None else str(target.desired),
            "-" if state is None else str(state.spec_replicas),
            _ready_text(state),
            _metric_text(target.metric_value),
            target.reason or "",
        )
    return table


def events_table(plan: DemoPlan, events: Sequence[EventLine]) -> Table:
    table = _table("Latest Kubernetes Events of the CampaignEvent", expand=True)
    table.add_column("when", no_wrap=True)
    table.add_column("reason", no_wrap=True)
    table.add_column("message", no_wrap=True, overflow="ellipsis", ratio=1)
    for event in events:
        style = "yellow" if event.kind == "Warning" else ""
        table.add_row(relative(event.at, plan), Text(event.reason, style=style), event.message)
    if not events:
        table.add_row("", "", Text("(none yet)", style="dim"))
    return table


def render_dashboard(frame: Frame) -> RenderableType:
    observations = observe_steps(frame.plan, frame.samples)
    return Group(
        _headline(frame),
        timeline_table(frame.plan, observations, frame.latest.at),
        deployments_table(frame),
        events_table(frame.plan, frame.events),
    )


def progress_line(plan: DemoPlan, sample: ClusterSample) -> str:
    """One line of the plain log used when the output is not a terminal."""
    states = "  ".join(
        f"{name} {state.spec_replicas} ({state.ready_replicas} Ready)"
        for name in plan.names
        if (state := sample.deployments.get(name)) is not None
    )
    return (
        f"{relative(sample.at, plan):>6}  {sample.phase or '(no status)':<12} {states}  "
        f"traffic {sample.traffic_rps:,.0f} req/s"
    )


class LiveView:
    """A `rich.live.Live` table refreshed in place (on a terminal)."""

    def __init__(self, console: Console) -> None:
        self._live = Live(console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.stop()

    def show(self, frame: Frame) -> None:
        self._live.update(render_dashboard(frame), refresh=True)


def _visible_state(sample: ClusterSample) -> tuple[object, ...]:
    return (sample.phase, tuple(sorted(sample.deployments.items())))


class ProgressLog:
    """Plain lines, one per visible change, for logs and CI (output not a terminal)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._last_state: tuple[object, ...] | None = None
        self._printed_events: set[tuple[datetime, str]] = set()

    def __enter__(self) -> ProgressLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def show(self, frame: Frame) -> None:
        state = _visible_state(frame.latest)
        if state != self._last_state:
            self._console.print(progress_line(frame.plan, frame.latest), markup=False)
            self._last_state = state
        for event in frame.events:
            if (event.at, event.message) not in self._printed_events:
                self._printed_events.add((event.at, event.message))
                self._console.print(f"{'':>6}  Event {event.reason}: {event.message}", markup=False)


def _check(ok: bool) -> str:
    return "[green]✓[/]" if ok else "[bold red]✗[/]"


def render_summary(console: Console, plan: DemoPlan, outcome: DemoOutcome, live_metric: bool) -> None:
    console.print()
    console.rule("[bold]Summary")
    console.print(timeline_table(plan, outcome.steps, plan.completes_at + OVERRUN))
    observed = sum(1 for item in outcome.steps if item.observed_at is not None)
    console.print(
        f"{_check(outcome.all_steps_observed)} Transitions observed: {observed} of {len(outcome.steps)} "
        f"(lag = first sample showing the step - due time; samples every {SAMPLE_SECONDS}s; "
        f"the operator aims at < {PROMISED_LAG_SECONDS:g}s)"
    )
    ready = ", ".join(f"{item.name} {item.ready}/{item.floor}" for item in outcome.ready_at_opening)
    verdict = "yes, every planned floor was Ready" if outcome.capacity_ready else "NO"
    console.print(
        f"{_check(outcome.capacity_ready)} Capacity Ready when the window opened: {verdict} "
        f"(Ready/floor: {ready})"
    )
    _print_metric_line(console, plan, outcome, live_metric)
    for state in outcome.end_states:
        _print_end_state(console, state)


def _print_metric_line(console: Console, plan: DemoPlan, outcome: DemoOutcome, live_metric: bool) -> None:
    if not live_metric:
        floors = ", ".join(f"{name} {floor.replicas}" for name, floor in plan.floors.items())
        console.print(f"  Live metric: off (no Prometheus); the plain floors held: {floors}.")
        return
    wanted = math.ceil(outcome.traffic_peak / TARGET_PER_REPLICA)
    for name, peak in outcome.window_peaks.items():
        floor = plan.floors[name].replicas
        effect = f"raised {name} from its floor of {floor} to {peak}"
        if peak <= floor:
            effect = f"kept {name} at its floor of {floor}"
        console.print(
            f"  Live metric: traffic peaked at {outcome.traffic_peak:,.0f} req/s, {wanted} Pods of "
            f"{TARGET_PER_REPLICA} req/s; it {effect} replicas during the window."
        )


def _print_end_state(console: Console, state: EndState) -> None:
    relation = "=" if state.replicas == state.baseline else "≠"
    annotations = (
        "annotations removed"
        if not state.leftover_annotations
        else f"annotations LEFT: {', '.join(state.leftover_annotations)}"
    )
    console.print(
        f"{_check(state.exact)} End state: {state.name} {state.replicas} replicas {relation} "
        f"baseline {state.baseline}, {annotations}"
    )


# --- the plot ---------------------------------------------------------------------------------------------
def write_demo_plot(
    plan: DemoPlan, samples: Sequence[ClusterSample], path: Path, timeline: DemoTimeline, live_metric: bool
) -> None:
    """A PNG: replicas and Ready per Deployment, and the traffic, over time, with the phases shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 8), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg backend, without touching pyplot's global state
    replicas_axes, traffic_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    seconds = [(sample.at - plan.window.start).total_seconds() for sample in samples]
    _draw_replicas(replicas_axes, plan, samples, seconds)
    _draw_traffic(traffic_axes, samples, seconds, live_metric)
    for axes in (replicas_axes, traffic_axes):
        _shade_phases(axes, plan)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", fontsize="small")
    traffic_axes.set_xlabel("seconds from the window opening")
    figure.suptitle(
        f"campaign-autoscaler demo: CampaignEvent {NAMESPACE}/{EVENT_NAME}, the 9.9 sale compressed "
        f"({timeline.pace()})"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100, metadata={"Software": None})


def _series(
    samples: Sequence[ClusterSample], name: str, read: Callable[[DeploymentState], int]
) -> list[float]:
    return [read(s.deployments[name]) if name in s.deployments else math.nan for s in samples]


def _draw_replicas(axes: Any, plan: DemoPlan, samples: Sequence[ClusterSample], seconds: list[float]) -> None:
    for color, name in zip(PLOT_COLORS, plan.names, strict=False):
        spec = _series(samples, name, lambda state: state.spec_replicas)
        ready = _series(samples, name, lambda state: state.ready_replicas)
        axes.step(seconds, spec, where="post", color=color, linewidth=2, label=f"{name}: spec.replicas")
        axes.step(seconds, ready, where="post", color=color, linestyle="--", label=f"{name}: Ready")
        axes.axhline(plan.baselines[name], color=color, linestyle=":", linewidth=1, alpha=0.6)
    axes.set_ylabel("replicas")
    axes.set_ylim(bottom=0)
    axes.set_title("Replicas per Deployment (dotted: baseline)", loc="left", fontsize="medium")


def _draw_traffic(
    axes: Any, samples: Sequence[ClusterSample], seconds: list[float], live_metric: bool
) -> None:
    traffic = [sample.traffic_rps for sample in samples]
    axes.step(seconds, traffic, where="post", color="black", label="checkout traffic (synthetic 9.9)")
    capacity = [rps * TARGET_PER_REPLICA for rps in _series(samples, "checkout", lambda s: s.ready_replicas)]
    axes.step(
        seconds,
        capacity,
        where="post",
        color="tab:green",
        label=f"checkout Ready capacity (Ready x {TARGET_PER_REPLICA:g} req/s)",
    )
    if live_metric:
        seen = [
            (x, float(s.targets["checkout"].metric_value or "nan"))
            for x, s in zip(seconds, samples, strict=True)
            if "checkout" in s.targets
        ]
        axes.plot(
            [x for x, _ in seen],
            [v for _, v in seen],
            ".",
            color="tab:orange",
            markersize=3,
            label="metric value the operator read",
        )
    axes.set_ylabel("requests/s")
    axes.set_ylim(bottom=0)
    axes.set_title("Traffic and checkout capacity", loc="left", fontsize="medium")


def _shade_phases(axes: Any, plan: DemoPlan) -> None:
    spans = (
        (plan.scaling_starts_at, plan.window.start, "tab:green", "lead time (PreScaling)"),
        (plan.window.start, plan.window.end, "tab:blue", "window (Active)"),
        (plan.window.end, plan.completes_at, "tab:orange", "ramp-down"),
    )
    for start, end, color, label in spans:
        axes.axvspan(
            (start - plan.window.start).total_seconds(),
            (end - plan.window.start).total_seconds(),
            color=color,
            alpha=0.08,
            label=label,
        )
    for step in plan.steps:
        axes.axvline(
            (step.transition.at - plan.window.start).total_seconds(),
            color="gray",
            linestyle=":",
            linewidth=0.8,
        )


# --- the environment --------------------------------------------------------------------------------------
def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DemoOptions:
    timeline: DemoTimeline = FULL_TIMELINE
    plot_path: Path = Path(DEFAULT_PLOT_PATH)
    use_prometheus: bool = True


@dataclass(frozen=True)
class LiveMetric:
    exporter: SyntheticExporter
    server: PrometheusServer


@dataclass(frozen=True)
class DemoReport:
    plan: DemoPlan
    outcome: DemoOutcome
    live_metric: bool
    plot_path: Path | None
    plot_problem: str | None


class Stopwatch:
    """How long each stage of the demo took."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}

    @contextlib.contextmanager
    def lap(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.laps[name] = time.monotonic() - started


@contextlib.contextmanager
def _step(console: Console, stopwatch: Stopwatch, name: str, doing: str, done: str) -> Iterator[None]:
    """A spinner while the step runs, then one line saying what is now up and how long it took."""
    with console.status(f"{doing}…"), stopwatch.lap(name):
        yield
    console.print(f"[green]✓[/] {done} [dim]({stopwatch.laps[name]:.1f}s)[/]")


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signal_handlers(handler: Any, *signals: signal.Signals) -> Iterator[None]:
    """Install `handler` for `signals` (only the main thread may), restoring the previous ones after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, handler) for number in signals}
    try:
        yield
    finally:
        for number, old_handler in previous.items():
            signal.signal(number, old_handler)


@contextlib.contextmanager
def _background_logs_to(path: Path) -> Iterator[None]:
    """Warnings of the background threads (Pod simulator, HTTP retries) go to a file, not over the table."""
    handler = logging.FileHandler(path)
    loggers = [logging.getLogger(name) for name in ("campaign_autoscaler.devenv", "urllib3", "kubernetes")]
    previous = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in zip(loggers, previous, strict=True):
            logger.removeHandler(handler)
            logger.propagate = propagate
        handler.close()


def _wait_for(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise DemoError(f"Timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def _start_control_plane(stack: contextlib.ExitStack, assets: Path, timeline: DemoTimeline) -> ControlPlane:
    plane = ControlPlane(assets, pod_ready_after=timeline.pod_ready_after)
    stack.callback(plane.stop)
    try:
        return plane.start()
    except ControlPlaneError as err:
        raise DemoError(str(err)) from err


def _prometheus_scrapes(server: PrometheusServer) -> None:
    def exporter_is_up(samples: list[Sample]) -> bool:
        return any(sample.value == 1 for sample in samples)

    server.wait_for("up", exporter_is_up, timeout=30)


def _start_live_metric(stack: contextlib.ExitStack) -> LiveMetric:
    exporter = stack.enter_context(SyntheticExporter())
    server = PrometheusServer([exporter.address], scrape_interval="1s")
    stack.callback(server.close)
    server.start()
    _prometheus_scrapes(server)
    return LiveMetric(exporter, server)


def _say_without_metric(console: Console, why: str) -> None:
    console.print(
        f"[yellow]![/] {why}\n  Continuing without the live metric: checkout holds its plain floor "
        f"({CHECKOUT_MULTIPLIER:g} x its baseline, at least {CHECKOUT_MIN_REPLICAS}) "
        "instead of following the traffic."
    )


def _live_metric_or_none(
    stack: contextlib.ExitStack, console: Console, stopwatch: Stopwatch, wanted: bool
) -> LiveMetric | None:
    if not wanted:
        _say_without_metric(console, "Prometheus is off (--no-prometheus).")
        return None
    if find_prometheus() is None:
        _say_without_metric(
            console,
            "The prometheus binary was not found: install it with `apt-get install -y prometheus` "
            "(the packaged service need not run) to see the live metric.",
        )
        return None
    try:
        with _step(
            console,
            stopwatch,
            "Prometheus",
            "Starting Prometheus and the synthetic traffic exporter",
            f"Prometheus up, scraping {TRAFFIC_SELECTOR} every second",
        ):
            return _start_live_metric(stack)
    except (PrometheusError, TimeoutError) as err:
        _say_without_metric(console, f"Prometheus did not start: {err}")
        return None


class TrafficFeed:
    """Sets the synthetic traffic series on the exporter once a second, from a background thread."""

    def __init__(
        self, exporter: SyntheticExporter, traffic: CompressedTraffic, clock: Callable[[], datetime]
    ) -> None:
        self._exporter = exporter
        self._traffic = traffic
        self._clock = clock
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def __enter__(self) -> TrafficFeed:
        self._set_now()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.wait(1.0):
            self._set_now()

    def _set_now(self) -> None:
        rps = self._traffic.rps_at(self._clock())
        self._exporter.set(TRAFFIC_SERIES, rps, dict(TRAFFIC_LABELS))


# --- the cluster ------------------------------------------------------------------------------------------
def deployment_manifest(deployment: DemoDeployment) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment.name, "labels": deployment.all_labels},
        "spec": {
            "replicas": deployment.replicas,
            "selector": {"matchLabels": deployment.pod_selector},
            "template": {
                "metadata": {"labels": deployment.pod_selector},
                # Never pulled: there is no kubelet; the Pod readiness simulator reports the Pods Ready.
                "spec": {
                    "containers": [{"name": "app", "image": f"registry.invalid/shop/{deployment.name}:1"}]
                },
            },
        },
    }


def _serves_campaign_events(custom: client.CustomObjectsApi) -> bool:
    try:
        custom.list_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL)
    except ApiException:
        return False
    return True


def _install_crd_and_namespace(api_client: client.ApiClient) -> None:
    if not CRD_PATH.is_file():
        raise DemoError(f"The CRD {CRD_PATH} is missing: run the demo from a checkout of the repository")
    crd = yaml.safe_load(CRD_PATH.read_text())
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(crd)
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": NAMESPACE}})
    custom = client.CustomObjectsApi(api_client)
    _wait_for(lambda: _serves_campaign_events(custom), READY_TIMEOUT_SECONDS, "the CampaignEvent CRD")


def _ready_at_baseline(apps: client.AppsV1Api) -> bool:
    listing = apps.list_namespaced_deployment(NAMESPACE, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    ready = {obj.metadata.name: (obj.status.ready_replicas or 0) for obj in listing.items}
    return all(ready.get(deployment.name) == deployment.replicas for deployment in DEPLOYMENTS)


def _create_deployments(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    for deployment in DEPLOYMENTS:
        apps.create_namespaced_deployment(NAMESPACE, deployment_manifest(deployment))
    _wait_for(lambda: _ready_at_baseline(apps), READY_TIMEOUT_SECONDS, "the Deployments to be Ready")


def _create_event(api_client: client.ApiClient, manifest: Mapping[str, Any]) -> None:
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        API_GROUP, API_VERSION, NAMESPACE, PLURAL, dict(manifest)
    )


@contextlib.contextmanager
def _api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(kubeconfig), persist_config=False)
    try:
        yield api_client
    finally:
        api_client.close()


# --- the operator -----------------------------------------------------------------------------------------
def operator_argv(kubeconfig: Path, timeline: DemoTimeline, prometheus_url: str | None) -> list[str]:
    """The real operator's command line: `run`, watching the demo namespace, with compressed intervals."""
    stabilization = timeline.scale_down_stabilization.total_seconds()
    argv = [
        sys.executable, "-m", "campaign_autoscaler", "run",
        "--kubeconfig", str(kubeconfig),
        "--namespace", NAMESPACE,
        "--resync-interval", OPERATOR_INTERVAL,
        "--metrics-interval", OPERATOR_INTERVAL,
        "--scale-down-stabilization", f"{stabilization:g}s",
    ]  # fmt: skip
    if prometheus_url:
        argv += ["--prometheus-url", prometheus_url]
    return argv


def _start_operator(stack: contextlib.ExitStack, argv: Sequence[str], log_path: Path) -> ManagedProcess:
    operator = ManagedProcess("operator", argv, log_path)
    stack.callback(operator.stop)
    operator.start()
    return operator


def _shown_command(argv: Sequence[str]) -> str:
    return " ".join(["python", *argv[1:]])


class CampaignFollower:
    """Samples the cluster until the event completed and settled (or overran), refreshing the view."""

    def __init__(
        self,
        reader: ClusterReader,
        traffic: CompressedTraffic,
        operator: ManagedProcess,
        view: LiveView | ProgressLog,
        frame: Frame,
    ) -> None:
        self._reader = reader
        self._traffic = traffic
        self._operator = operator
        self._view = view
        self._frame = frame  # plan, timeline and metric mode; samples and events are filled in
        self._samples: list[ClusterSample] = []
        self._events: tuple[EventLine, ...] = ()
        self._failures = 0
        self._shown_at = 0.0
        self._settled_at: datetime | None = None

    def run(self) -> list[ClusterSample]:
        while not self._done():
            self._sample()
            if time.monotonic() - self._shown_at >= REFRESH_SECONDS:
                self._show()
            self._check_operator()
            time.sleep(SAMPLE_SECONDS)
        self._show()
        return self._samples

    def _done(self) -> bool:
        if not self._samples:
            return False
        plan, latest = self._frame.plan, self._samples[-1]
        if self._settled_at is None and settled(plan, latest):
            self._settled_at = latest.at
        if self._settled_at is not None:
            return (latest.at - self._settled_at).total_seconds() >= SETTLE_SECONDS
        return latest.at > plan.completes_at + OVERRUN

    def _sample(self) -> None:
        try:
            self._samples.append(self._reader.sample(self._traffic))
            self._failures = 0
        except (ApiException, HTTPError, OSError) as err:
            self._failures += 1
            if self._failures >= MAX_FAILED_SAMPLES:
                raise DemoError(f"The API server stopped answering: {err}") from err

    def _show(self) -> None:
        if not self._samples:
            return
        with contextlib.suppress(ApiException, HTTPError, OSError):
            self._events = self._reader.operator_events()
        self._view.show(
            Frame(
                self._frame.plan,
                self._frame.timeline,
                tuple(self._samples),
                self._events,
                self._frame.live_metric,
            )
        )
        self._shown_at = time.monotonic()

    def _check_operator(self) -> None:
        if not self._operator.is_running():
            raise DemoError(str(self._operator.failure("exited while the event was running")))


# --- the whole demo ---------------------------------------------------------------------------------------
def _print_intro(console: Console, timeline: DemoTimeline) -> None:
    console.rule("[bold]campaign-autoscaler demo")
    console.print(
        f"The 9.9 sale, compressed to {timeline.title} ({timeline.pace()}), on a throw-away local cluster.\n"
        "The operator below is the real one, in its own process; the demo only creates the Deployments and "
        "the CampaignEvent, then watches.\n"
    )


def _print_event(console: Console, plan: DemoPlan, manifest: Mapping[str, Any]) -> None:
    from rich.syntax import Syntax

    console.print(f"[green]✓[/] Applied CampaignEvent {NAMESPACE}/{EVENT_NAME}:")
    text = yaml.safe_dump({"spec": manifest["spec"]}, sort_keys=False).rstrip()
    console.print(Syntax(text, "yaml", background_color="default"))
    window = plan.window
    console.print(
        f"  Scaling starts at {_clock_time(plan.scaling_starts_at)}, the window is open "
        f"{_clock_time(window.start)} to {_clock_time(window.end)}, baselines are back by "
        f"{_clock_time(plan.completes_at)}. Planned floors:"
    )
    for name, floor in plan.floors.items():
        raised = " (the live metric may raise it)" if name in plan.metric_targets else ""
        console.print(f"    {name}: {plan.baselines[name]} -> {floor.replicas}  ({floor.reason}){raised}")
    console.print()


def _write_plot(
    plan: DemoPlan, samples: Sequence[ClusterSample], options: DemoOptions, live_metric: bool
) -> str | None:
    """Write the PNG; returns why it could not be written, or None."""
    try:
        write_demo_plot(plan, samples, options.plot_path, options.timeline, live_metric)
    except ImportError:
        return "matplotlib is not installed: pip install 'campaign-autoscaler[demo]'"
    except OSError as err:
        return f"could not write {options.plot_path}: {err}"
    return None


@dataclass(frozen=True)
class Environment:
    """What the set-up started: the cluster's client, the operator, and Prometheus when it runs."""

    api_client: client.ApiClient
    operator: ManagedProcess
    metric: LiveMetric | None


def _set_up(
    stack: contextlib.ExitStack,
    options: DemoOptions,
    console: Console,
    assets: Path,
    workdir: Path,
    stopwatch: Stopwatch,
) -> Environment:
    ready_after = options.timeline.pod_ready_after
    with _step(
        console,
        stopwatch,
        "control plane",
        "Starting a local control plane",
        f"Control plane up: etcd, kube-apiserver, kube-controller-manager v{KUBERNETES_VERSION}; "
        f"Pods turn Ready {ready_after:g}s after they appear",
    ):
        plane = _start_control_plane(stack, assets, options.timeline)
    metric = _live_metric_or_none(stack, console, stopwatch, options.use_prometheus)
    api_client = stack.enter_context(_api_client(plane.kubeconfig_path))
    with _step(
        console, stopwatch, "CRD", "Installing the CRD", f"CRD installed from crds/, namespace {NAMESPACE}"
    ):
        _install_crd_and_namespace(api_client)
    argv = operator_argv(plane.kubeconfig_path, options.timeline, metric.server.url if metric else None)
    operator = _start_operator(stack, argv, workdir / "operator.log")
    console.print(f"[green]✓[/] Operator started, its log in {workdir / 'operator.log'}:")
    console.print(f"    [bold]{_shown_command(argv)}[/]")
    baselines = ", ".join(f"{d.name} {d.replicas} replicas" for d in DEPLOYMENTS)
    with _step(
        console,
        stopwatch,
        "Deployments",
        "Creating the Deployments",
        f"Deployments Ready at their baselines: {baselines} (checkout labelled campaign.tier=checkout)",
    ):
        _create_deployments(api_client)
    return Environment(api_client, operator, metric)


def _run_campaign(
    stack: contextlib.ExitStack,
    options: DemoOptions,
    console: Console,
    clock: Callable[[], datetime],
    environment: Environment,
    stopwatch: Stopwatch,
) -> DemoReport:
    """Apply the event, follow it to the end, write the plot."""
    live_metric = environment.metric is not None
    opening = opening_time(clock(), options.timeline)
    manifest = event_manifest(options.timeline, opening, live_metric)
    plan = build_plan(manifest)
    traffic = compress_traffic(options.timeline, opening)
    if environment.metric is not None:
        stack.enter_context(TrafficFeed(environment.metric.exporter, traffic, clock))
    _create_event(environment.api_client, manifest)
    _print_event(console, plan, manifest)
    frame = Frame(plan, options.timeline, (), (), live_metric)
    reader = ClusterReader(environment.api_client, clock)
    view = LiveView(console) if console.is_terminal else ProgressLog(console)
    with stopwatch.lap("campaign"), view:
        samples = CampaignFollower(reader, traffic, environment.operator, view, frame).run()
    problem = _write_plot(plan, samples, options, live_metric)
    plot_path = None if problem else options.plot_path
    return DemoReport(plan, summarize(plan, samples), live_metric, plot_path, problem)


def _clean_up(stack: contextlib.ExitStack, console: Console, stopwatch: Stopwatch) -> None:
    """Stop everything, newest first; a second Ctrl-C must not leave half of it running."""
    with (
        _signal_handlers(signal.SIG_IGN, signal.SIGINT, signal.SIGTERM),
        stopwatch.lap("clean-up"),
        console.status("Stopping the operator, Prometheus and the control plane…"),
    ):
        stack.close()
    console.print(
        f"[green]✓[/] Stopped everything the demo started [dim]({stopwatch.laps['clean-up']:.1f}s)[/]"
    )


def _timings(stopwatch: Stopwatch, total: float) -> str:
    laps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in stopwatch.laps.items())
    return f"Timings: {laps}; total {total:.1f}s"


def _finish(console: Console, report: DemoReport, stopwatch: Stopwatch, total: float) -> bool:
    render_summary(console, report.plan, report.outcome, report.live_metric)
    if report.plot_path is not None:
        console.print(f"[green]✓[/] Plot: {report.plot_path}")
    else:
        console.print(f"[yellow]![/] No plot: {report.plot_problem}")
    console.print(_timings(stopwatch, total))
    outcome = report.outcome
    if outcome.succeeded:
        console.print(
            "[bold green]Result: PASS[/] - every transition happened, capacity was Ready when the window "
            "opened, and every Deployment is back exactly at its baseline."
        )
        return True
    failed = [
        what
        for what, ok in (
            ("a transition was not observed", outcome.all_steps_observed),
            ("capacity was not Ready when the window opened", outcome.capacity_ready),
            ("the end state is not the baseline", outcome.end_state_exact),
        )
        if not ok
    ]
    console.print(f"[bold red]Result: FAILED[/] - {'; '.join(failed)}.")
    return False


def run_demo(options: DemoOptions, console: Console, clock: Callable[[], datetime] = _utc_now) -> int:
    """Run the whole demo; 0 only if it ended exactly at the baselines (see DemoOutcome.succeeded)."""
    started = time.monotonic()
    _print_intro(console, options.timeline)
    assets = _assets_or_say_how(console)
    if assets is None:
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="campaign-demo-"))
    stopwatch = Stopwatch()
    stack = contextlib.ExitStack()
    try:
        with (
            _signal_handlers(_raise_interrupt, signal.SIGTERM),
            _background_logs_to(workdir / "environment.log"),
        ):
            try:
                environment = _set_up(stack, options, console, assets, workdir, stopwatch)
                report = _run_campaign(stack, options, console, clock, environment, stopwatch)
            finally:
                _clean_up(stack, console, stopwatch)
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted[/]: everything the demo started has been stopped.")
        _remove(workdir)
        return 130
    except (DemoError, ApiException, HTTPError, OSError) as err:
        console.print(f"[bold red]✗ The demo failed:[/] {_describe(err)}")
        console.print(f"  Logs kept in {workdir}")
        return 1
    passed = _finish(console, report, stopwatch, time.monotonic() - started)
    if passed:
        _remove(workdir)
    else:
        console.print(f"  The operator's log is kept in {workdir / 'operator.log'}")
    return 0 if passed else 1


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiException):  # its str() carries the whole HTTP response
        return f"the API server answered {error.status} {error.reason}: {error.body}"
    return str(error)


def _assets_or_say_how(console: Console) -> Path | None:
    """The control plane binaries, or None after saying how to get them."""
    assets = find_assets()
    if assets is None:
        override = os.environ.get(ASSETS_ENV_VAR)
        looked_in = f"${ASSETS_ENV_VAR}={override}" if override else str(default_assets_dir())
        console.print(
            "[bold red]✗[/] The local control plane binaries (etcd, kube-apiserver, kube-controller-manager "
            f"v{KUBERNETES_VERSION}) are missing (looked in {looked_in}).\n"
            "  Get them with [bold]make testenv[/] (a few minutes, once; cached), then run the demo again."
        )
    return assets


def _remove(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)


def run_demo_command(args: argparse.Namespace) -> int:
    """`campaign-autoscaler demo` with its parsed flags."""
    options = DemoOptions(
        timeline=SHORT_TIMELINE if args.short else FULL_TIMELINE,
        plot_path=Path(args.plot),
        use_prometheus=not args.no_prometheus,
    )
    terminal = sys.stdout.isatty()
    # Piped output (CI logs) keeps each line whole; tables get a fixed, readable width.
    console = Console(highlight=False, width=None if terminal else 120, soft_wrap=not terminal)
    return run_demo(options, console)
