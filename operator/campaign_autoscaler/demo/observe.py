"""Observing the cluster: samples of the Deployments, the CampaignEvent's status and the operator's Events;
and what a run of samples says (pure): which step was seen when, the capacity at the opening, the end."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler import API_GROUP, API_VERSION, KIND, PLURAL
from campaign_autoscaler.planning import CAMPAIGN_ANNOTATIONS, Phase, PlannedStep
from campaign_autoscaler.planning.instants import parse_kube_time

from .scenario import EVENT_NAME, METRIC_TARGET, TARGET_PER_REPLICA, CompressedTraffic, DemoPlan

REQUEST_TIMEOUT_SECONDS = 5
RECENT_EVENTS = 5
EARLY_TOLERANCE = timedelta(seconds=1)


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
    nodes: int | None = None  # Nodes of the cluster (the embedded control plane only)


@dataclass(frozen=True)
class EventLine:
    at: datetime
    kind: str  # Normal or Warning
    reason: str
    message: str


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
    """Reads the Deployments, the CampaignEvent and the operator's Events of the demo's namespace."""

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        clock: Callable[[], datetime],
        *,
        count_nodes: bool = False,
    ) -> None:
        self._count_nodes = count_nodes  # the embedded control plane's Nodes; never an existing cluster's
        self._apps = client.AppsV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._namespace = namespace
        self._clock = clock

    def sample(self, traffic: CompressedTraffic) -> ClusterSample:
        listing = self._apps.list_namespaced_deployment(
            self._namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
        event = self._campaign_event()
        nodes = None
        if self._count_nodes:
            nodes = len(self._core.list_node(_request_timeout=REQUEST_TIMEOUT_SECONDS).items)
        at = self._clock()  # after the answers: a change is seen no earlier than it happened
        status = (event or {}).get("status") or {}
        next_transition = status.get("nextTransition")
        return ClusterSample(
            at=at,
            phase=status.get("phase"),
            next_transition=parse_kube_time(next_transition) if next_transition else None,
            deployments={obj.metadata.name: _deployment_state(obj) for obj in listing.items},
            targets=_target_statuses(status),
            traffic_rps=traffic.rps_at(at),
            nodes=nodes,
        )

    def operator_events(self, limit: int = RECENT_EVENTS) -> tuple[EventLine, ...]:
        """The latest Events about the CampaignEvent: the operator posts each change there too."""
        items = self._core.list_namespaced_event(
            self._namespace,
            field_selector=f"involvedObject.kind={KIND}",
            _request_timeout=REQUEST_TIMEOUT_SECONDS,
        ).items
        latest = sorted(items, key=_event_order)[-limit:]
        return tuple(EventLine(_event_time(e), e.type or "", e.reason or "", e.message or "") for e in latest)

    def summary(self) -> dict[str, Any] | None:
        """The event's `status.summary`, once the operator has written it."""
        status = (self._campaign_event() or {}).get("status") or {}
        return status.get("summary") or None

    def _campaign_event(self) -> dict[str, Any] | None:
        try:
            return self._custom.get_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                self._namespace,
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
class TrafficCover:
    """The checkout capacity Ready when the window opened against the traffic then, and how long in the
    window the Ready capacity was below the traffic."""

    ready: int | None  # Ready checkout replicas in the last sample before the opening
    traffic_rps: float  # the traffic in the first sample of the window
    short_seconds: float  # time in the window with Ready x TARGET_PER_REPLICA below the traffic

    @property
    def capacity_rps(self) -> float:
        return (self.ready or 0) * TARGET_PER_REPLICA

    @property
    def covered(self) -> bool:
        return self.ready is not None and self.capacity_rps >= self.traffic_rps and self.short_seconds == 0


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
    traffic_cover: TrafficCover
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
        return (
            self.all_steps_observed
            and self.capacity_ready
            and self.traffic_cover.covered
            and self.end_state_exact
        )


def may_be_raised(plan: DemoPlan, step: PlannedStep, name: str) -> bool:
    """A metric target may be above its step's replicas (the live metric raises it) until the event
    completes."""
    return name in plan.metric_targets and step.transition.phase != Phase.COMPLETED


def step_reached(plan: DemoPlan, step: PlannedStep, sample: ClusterSample) -> bool:
    """Whether `sample` shows the step: its phase and each Deployment's replicas."""
    if sample.phase != str(step.transition.phase):
        return False
    for name, wanted in step.replicas.items():
        state = sample.deployments.get(name)
        if state is None:
            return False
        if state.spec_replicas < wanted or (
            not may_be_raised(plan, step, name) and state.spec_replicas != wanted
        ):
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


def _last_before_opening(plan: DemoPlan, samples: Sequence[ClusterSample]) -> ClusterSample | None:
    before = [sample for sample in samples if sample.at <= plan.window.start]
    return before[-1] if before else None


def _ready(sample: ClusterSample | None, name: str) -> int | None:
    if sample is None or name not in sample.deployments:
        return None
    return sample.deployments[name].ready_replicas


def ready_at_opening(plan: DemoPlan, samples: Sequence[ClusterSample]) -> tuple[ReadyAtOpening, ...]:
    last = _last_before_opening(plan, samples)
    return tuple(ReadyAtOpening(name, plan.floors[name].replicas, _ready(last, name)) for name in plan.names)


def traffic_cover(plan: DemoPlan, samples: Sequence[ClusterSample]) -> TrafficCover:
    """Each sample holds until the next one: the time short is the part of those spans inside the window
    whose Ready checkout capacity was below the traffic."""
    short = 0.0
    for sample, following in itertools.pairwise(samples):
        start, end = max(sample.at, plan.window.start), min(following.at, plan.window.end)
        capacity = (_ready(sample, METRIC_TARGET) or 0) * TARGET_PER_REPLICA
        if end > start and capacity < sample.traffic_rps:
            short += (end - start).total_seconds()
    in_window = [s for s in samples if plan.window.start <= s.at < plan.window.end]
    return TrafficCover(
        ready=_ready(_last_before_opening(plan, samples), METRIC_TARGET),
        traffic_rps=in_window[0].traffic_rps if in_window else 0.0,
        short_seconds=short,
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
        traffic_cover=traffic_cover(plan, samples),
        end_states=end_states(plan, samples[-1] if samples else None),
        window_peaks=peaks,
        traffic_peak=max((s.traffic_rps for s in samples), default=0.0),
    )
