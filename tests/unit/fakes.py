"""In-memory stand-ins for the outside world of a pass: the Kubernetes API (`KubeApi`) and Prometheus
(`MetricsSource`), a clock to hand to `Runtime`, and a driver that runs an event's passes the way its daemon
does (gather, run the pass, replace the status when it changed).

`FakeKube.set_claim` follows the real adapter's contract: it decides with `plan_claim` on the snapshot's
view (`fresh`: on the object as stored now), asks `only_if` of every version it decides on, and carries the
plan out guarded by what it was decided on (the campaign annotations, and the replicas of a plain
Deployment; the bounds of an HPA). A guard that fails is a refused write (422): the plan is made again on
the stored object. Every write, status replacement and posted Event is recorded, in one sequence.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from campaign_autoscaler.adapters.kube import (
    MAX_CONFLICT_RETRIES,
    STALE_WRITE,
    ClaimOutcome,
    CorruptAnnotationError,
    TargetConflictError,
    claim_outcome,
    target_state,
)
from campaign_autoscaler.adapters.prometheus import MetricsUnavailableError
from campaign_autoscaler.adapters.sampler import MetricSampler
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.adapters.views import DeploymentView, HpaView, ScalerView, deployment_view, hpa_view
from campaign_autoscaler.adapters.workloads import KindDirectory
from campaign_autoscaler.handlers.passes import (
    EventWorld,
    PassResult,
    release_event,
    run_pass,
    wanted_probes,
)
from campaign_autoscaler.handlers.runtime import EventMemory, Runtime
from campaign_autoscaler.planning.capacity import PodState
from campaign_autoscaler.planning.claims import CAMPAIGN_ANNOTATIONS, ClaimPlan, plan_claim

NAMESPACE = "shop"


# --- object bodies, as the API server serves them ----------------------------------------------------------
def deployment_body(
    name: str,
    replicas: int,
    *,
    namespace: str = NAMESPACE,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    ready: int | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-deploy-{name}"}
    if labels is not None:
        meta["labels"] = dict(labels)
    if annotations is not None:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": replicas if ready is None else ready},
    }


def hpa_body(
    name: str,
    target: str,
    min_replicas: int,
    max_replicas: int,
    *,
    namespace: str = NAMESPACE,
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
        },
    }


def event_body(name: str, uid: str, *, namespace: str = NAMESPACE, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid, "generation": 1}
    if deleting:
        meta["deletionTimestamp"] = "2026-09-09T00:00:00Z"
    return {"apiVersion": "autoscaling.campaigns.dev/v1alpha1", "kind": "CampaignEvent", "metadata": meta}


# --- what the fake records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Write:
    """One write that reached the (fake) API server."""

    seq: int
    kind: str  # "Deployment" or "HorizontalPodAutoscaler"
    namespace: str
    name: str
    event_key: str  # the claim whose setting made it
    annotations: Mapping[str, str | None] | None = None
    replicas: int | None = None
    hpa_bounds: tuple[int, int] | None = None


@dataclass(frozen=True)
class ClaimCall:
    """One call of `set_claim`, whatever it wrote."""

    seq: int
    name: str
    event_key: str
    wanted: int | None
    owner_uid: str | None
    dry_run: bool
    fresh: bool
    guarded: bool  # an `only_if` was given
    outcome: ClaimOutcome | None


@dataclass(frozen=True)
class StatusWrite:
    seq: int
    namespace: str
    name: str
    uid: str  # the event the write is guarded to
    status: dict[str, Any]


@dataclass(frozen=True)
class PostedEvent:
    seq: int
    namespace: str
    involved: Mapping[str, str]
    event_type: str
    reason: str
    message: str
    now: datetime
    name: str = ""  # the name the Event was given


@dataclass(frozen=True)
class EventPatch:
    seq: int
    namespace: str
    name: str
    count: int
    message: str
    now: datetime


@dataclass(frozen=True)
class ClaimAttempt:
    """What `FakeKube.before_write` is told: a claim decided, about to be carried out."""

    name: str
    event_key: str
    wanted: int | None
    plan: ClaimPlan


class FakeKube:
    """`KubeApi` on plain dict bodies kept in memory.

    `ready_follows`: a Deployment's readyReplicas follow every replicas write at once (pods start in 0 s).
    `before_write`: called (outside the fake's own lock) after a claim is decided and before it is carried
    out, so that a test can hold a pass mid-write.
    """

    def __init__(self, *, ready_follows: bool = True) -> None:
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self.ready_follows = ready_follows
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.hpas: dict[tuple[str, str], dict[str, Any]] = {}
        self.campaign_events: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[Write] = []
        self.claim_calls: list[ClaimCall] = []
        self.statuses: list[StatusWrite] = []
        self.posted: list[PostedEvent] = []
        self.event_patches: list[EventPatch] = []
        self.expired_events: set[tuple[str, str]] = set()  # (namespace, name) of Events the server let go
        self.event_reads: list[tuple[str, str]] = []
        self.refused = 0  # writes refused because what they were decided on had changed
        self.before_write: Callable[[ClaimAttempt], None] | None = None
        self.kinds = KindDirectory(lambda _api_version: None)  # serves only the apps/v1 kinds

    # --- the world, as a test sets it up and changes it behind the operator's back ----------------------
    def add_deployment(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        with self._lock:
            self.deployments[(meta.get("namespace", NAMESPACE), meta["name"])] = copy.deepcopy(dict(body))

    def add_hpa(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        with self._lock:
            self.hpas[(meta.get("namespace", NAMESPACE), meta["name"])] = copy.deepcopy(dict(body))

    def add_event(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        with self._lock:
            self.campaign_events[(meta.get("namespace", NAMESPACE), meta["name"])] = copy.deepcopy(dict(body))

    def remove_deployment(self, name: str, namespace: str = NAMESPACE) -> None:
        with self._lock:
            del self.deployments[(namespace, name)]

    def set_labels(self, name: str, labels: Mapping[str, str], namespace: str = NAMESPACE) -> None:
        with self._lock:
            self.deployments[(namespace, name)]["metadata"]["labels"] = dict(labels)

    def scale(self, name: str, replicas: int, namespace: str = NAMESPACE) -> None:
        """Someone else (a person, an HPA) sets the replicas."""
        with self._lock:
            body = self.deployments[(namespace, name)]
            body["spec"]["replicas"] = replicas
            if self.ready_follows:
                body["status"]["readyReplicas"] = replicas

    def set_annotation(self, name: str, key: str, value: str | None, namespace: str = NAMESPACE) -> None:
        """Someone else writes (None: removes) an annotation."""
        with self._lock:
            meta = self.deployments[(namespace, name)]["metadata"]
            annotations = meta.setdefault("annotations", {})
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value

    # --- reading it back --------------------------------------------------------------------------------
    def body(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.deployments[(namespace, name)])

    def view(self, name: str, namespace: str = NAMESPACE) -> DeploymentView:
        return deployment_view(self.body(name, namespace))

    def replicas(self, name: str, namespace: str = NAMESPACE) -> int:
        return self.view(name, namespace).replicas

    def annotations(self, name: str, namespace: str = NAMESPACE) -> dict[str, str]:
        return dict(self.body(name, namespace)["metadata"].get("annotations") or {})

    def campaign_annotations(self, name: str, namespace: str = NAMESPACE) -> dict[str, str]:
        annotations = self.annotations(name, namespace)
        return {key: annotations[key] for key in CAMPAIGN_ANNOTATIONS if key in annotations}

    def hpa(self, name: str, namespace: str = NAMESPACE) -> HpaView:
        with self._lock:
            return hpa_view(copy.deepcopy(self.hpas[(namespace, name)]))

    def snapshot(self, namespace: str = NAMESPACE) -> NamespaceSnapshot:
        """The namespace as a watch that is up to date shows it."""
        with self._lock:
            deployments = [
                deployment_view(copy.deepcopy(b))
                for (ns, _), b in self.deployments.items()
                if ns == namespace
            ]
            hpas = [hpa_view(copy.deepcopy(b)) for (ns, _), b in self.hpas.items() if ns == namespace]
        return NamespaceSnapshot.of(deployments, hpas, namespace)

    def writes_to(self, name: str) -> list[Write]:
        return [write for write in self.writes if write.name == name]

    def posted_reasons(self) -> list[str]:
        return [event.reason for event in self.posted]

    # --- KubeApi ----------------------------------------------------------------------------------------
    def set_claim(
        self,
        snapshot: NamespaceSnapshot,
        name: str,
        event_key: str,
        wanted: int | None,
        *,
        owner_uid: str | None = None,
        dry_run: bool = False,
        fresh: bool = False,
        only_if: Callable[[DeploymentView], bool] | None = None,
    ) -> ClaimOutcome | None:
        namespace = snapshot.namespace
        hpas: NamespaceSnapshot | None = None if fresh else snapshot
        deployment = self._stored(namespace, name) if fresh else snapshot.deployment(name)
        for _attempt in range(MAX_CONFLICT_RETRIES):
            if deployment is None or (only_if is not None and not only_if(deployment)):
                return self._called(name, event_key, wanted, owner_uid, dry_run, fresh, only_if, None)
            if deployment.annotation_error:
                raise CorruptAnnotationError(deployment.annotation_error)
            hpa = self.hpa_for(deployment, hpas)
            plan = plan_claim(target_state(deployment, hpa), event_key, wanted, owner_uid)
            if self.before_write is not None:
                self.before_write(ClaimAttempt(name, event_key, wanted, plan))
            try:
                written = False if dry_run else self._carry_out(deployment, plan, event_key)
            except ApiException as err:
                if err.status not in STALE_WRITE:
                    raise
                self.refused += 1
                deployment = self._stored(namespace, name)
                hpas = None
                continue
            outcome = claim_outcome(deployment, plan, hpa, written)
            return self._called(name, event_key, wanted, owner_uid, dry_run, fresh, only_if, outcome)
        raise TargetConflictError(f"Deployment {name} changed on every attempt to claim it")

    def get_event(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            self.event_reads.append((namespace, name))
            body = self.campaign_events.get((namespace, name))
            return copy.deepcopy(body) if body is not None else None

    def replace_event_status(self, namespace: str, name: str, uid: str, status: Mapping[str, Any]) -> None:
        with self._lock:
            self.statuses.append(
                StatusWrite(next(self._seq), namespace, name, uid, copy.deepcopy(dict(status)))
            )

    def post_event(
        self,
        *,
        namespace: str,
        involved: Mapping[str, str],
        event_type: str,
        reason: str,
        message: str,
        now: datetime,
    ) -> str | None:
        with self._lock:
            seq = next(self._seq)
            name = f"{involved['name']}.{seq}"
            self.posted.append(
                PostedEvent(seq, namespace, dict(involved), event_type, reason, message, now, name)
            )
            return name

    def patch_event(self, namespace: str, name: str, *, count: int, message: str, now: datetime) -> bool:
        with self._lock:
            if (namespace, name) in self.expired_events or name not in {e.name for e in self.posted}:
                return False
            self.event_patches.append(EventPatch(next(self._seq), namespace, name, count, message, now))
            return True

    # --- the adapter's contract, in memory --------------------------------------------------------------
    def _stored(self, namespace: str, name: str) -> DeploymentView | None:
        with self._lock:
            body = self.deployments.get((namespace, name))
            return deployment_view(copy.deepcopy(body)) if body is not None else None

    def hpa_for(self, deployment: DeploymentView, snapshot: NamespaceSnapshot | None) -> ScalerView | None:
        """As the adapter: fixed by the baseline once claimed; from the snapshot, or as stored now."""
        source = snapshot if snapshot is not None else self.snapshot(deployment.namespace)
        if deployment.baseline is not None:
            if deployment.baseline.hpa_name is None:
                return None
            return source.hpa(deployment.baseline.hpa_name, deployment.baseline.scaler_kind)
        return source.hpa_for(deployment.key)

    def _called(
        self,
        name: str,
        event_key: str,
        wanted: int | None,
        owner_uid: str | None,
        dry_run: bool,
        fresh: bool,
        only_if: object,
        outcome: ClaimOutcome | None,
    ) -> ClaimOutcome | None:
        with self._lock:
            self.claim_calls.append(
                ClaimCall(
                    next(self._seq),
                    name,
                    event_key,
                    wanted,
                    owner_uid,
                    dry_run,
                    fresh,
                    only_if is not None,
                    outcome,
                )
            )
        return outcome

    def _carry_out(self, seen: DeploymentView, plan: ClaimPlan, event_key: str) -> bool:
        """The writes `plan` asks for, each refused (422) when what it was decided on changed."""
        with self._lock:
            key = (seen.namespace, seen.name)
            body = self.deployments.get(key)
            if body is None:
                raise ApiException(status=404, reason="Not Found")
            if plan.hpa is None:
                if not plan.writes:
                    return False
                self._test_annotations(body, seen)
                if body["spec"].get("replicas", 1) != seen.replicas:
                    raise ApiException(status=422, reason="test failed: /spec/replicas")
                self._apply_annotations(body, plan.annotations or {})
                if plan.replicas is not None:
                    body["spec"]["replicas"] = plan.replicas
                    if self.ready_follows:
                        body.setdefault("status", {})["readyReplicas"] = plan.replicas
                self._record(
                    "Deployment", seen.namespace, seen.name, event_key, plan.annotations, plan.replicas
                )
                return True
            # HPA-backed: record first, then raise; restore first, then forget (as the adapter does).
            if plan.annotations is not None and not plan.released:
                self._test_annotations(body, seen)
                self._apply_annotations(body, plan.annotations)
                self._record("Deployment", seen.namespace, seen.name, event_key, plan.annotations)
            if plan.hpa_bounds is not None:
                hpa = self.hpas.get((seen.namespace, plan.hpa.name))
                if hpa is None:
                    raise ApiException(status=404, reason="Not Found")
                spec = hpa["spec"]
                if (spec.get("minReplicas", 1), spec.get("maxReplicas")) != (
                    plan.hpa.min_replicas,
                    plan.hpa.max_replicas,
                ):
                    raise ApiException(status=422, reason="test failed: HPA bounds")
                spec["minReplicas"], spec["maxReplicas"] = plan.hpa_bounds
                self._record(
                    "HorizontalPodAutoscaler",
                    seen.namespace,
                    plan.hpa.name,
                    event_key,
                    bounds=plan.hpa_bounds,
                )
            if plan.annotations is not None and plan.released:
                self._test_annotations(body, seen)
                self._apply_annotations(body, plan.annotations)
                self._record("Deployment", seen.namespace, seen.name, event_key, plan.annotations)
            return plan.writes

    @staticmethod
    def _test_annotations(body: dict[str, Any], seen: DeploymentView) -> None:
        stored = body["metadata"].get("annotations")
        if not seen.has_annotations:
            if stored is not None:
                raise ApiException(status=422, reason="test failed: /metadata/annotations")
            return
        stored = stored or {}
        for key in CAMPAIGN_ANNOTATIONS:
            if stored.get(key) != seen.campaign_texts.get(key):
                raise ApiException(status=422, reason=f"test failed: annotation {key}")

    @staticmethod
    def _apply_annotations(body: dict[str, Any], annotations: Mapping[str, str | None]) -> None:
        stored = body["metadata"].setdefault("annotations", {})
        for key, value in annotations.items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = value

    def _record(
        self,
        kind: str,
        namespace: str,
        name: str,
        event_key: str,
        annotations: Mapping[str, str | None] | None = None,
        replicas: int | None = None,
        bounds: tuple[int, int] | None = None,
    ) -> None:
        copied = dict(annotations) if annotations is not None else None
        self.writes.append(Write(next(self._seq), kind, namespace, name, event_key, copied, replicas, bounds))


# --- Prometheus --------------------------------------------------------------------------------------------
# An answer: a number, None (a value query: no series; a peak: no data), an exception to raise, or a callable
# giving one of those when asked. A list is answered in turn, its last answer repeated.
Answer = Any


class ScriptedMetrics:
    """`MetricsSource` answering from a script per query, counting every call."""

    def __init__(
        self, values: Mapping[str, Answer] | None = None, peaks: Mapping[str, Answer] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, Answer] = dict(values or {})
        self.peaks: dict[str, Answer] = dict(peaks or {})
        self.value_calls: Counter[str] = Counter()
        self.peak_calls: list[tuple[str, datetime, datetime]] = []
        # A curve's answer: a function of (start, end, step) giving the points, or an exception to raise.
        self.curves: dict[str, Answer] = {}
        self.series_calls: list[tuple[str, datetime, datetime, float]] = []

    def value(self, query: str) -> float:
        with self._lock:
            self.value_calls[query] += 1
            answer = self._next(self.values, query)
        if answer is None:
            raise MetricsUnavailableError("NoSeries", f"query {query!r} returned an empty vector")
        return float(answer)

    def peak(self, query: str, start: datetime, end: datetime) -> float | None:
        with self._lock:
            self.peak_calls.append((query, start, end))
            answer = self._next(self.peaks, query)
        return None if answer is None else float(answer)

    def series(self, query: str, start: datetime, end: datetime, step: float) -> list[tuple[datetime, float]]:
        with self._lock:
            self.series_calls.append((query, start, end, step))
            answer = self.curves.get(query)
        if isinstance(answer, BaseException):
            raise answer
        return [] if answer is None else list(answer(start, end, step))

    def peaks_asked(self, query: str) -> int:
        return sum(1 for asked, _, _ in self.peak_calls if asked == query)

    @staticmethod
    def _next(script: dict[str, Answer], query: str) -> Answer:
        answer = script.get(query)
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if callable(answer) and not isinstance(answer, BaseException):
            answer = answer()
        if isinstance(answer, BaseException):
            raise answer
        return answer


# --- time, and an event's daemon in miniature --------------------------------------------------------------
class Clock:
    """A clock a test moves by hand; `Runtime(clock=...)` reads it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, at: datetime) -> datetime:
        self.now = at
        return at


@dataclass
class EventDriver:
    """One CampaignEvent's passes, as its daemon runs them: tell the sampler what is wanted (which asks what
    is due, here in the test's thread and time), run the pass on what it holds, replace the status when it
    changed, and carry the status into the next pass's world."""

    runtime: Runtime
    kube: FakeKube
    spec: dict[str, Any]
    name: str = "sale"
    namespace: str = NAMESPACE
    uid: str = "uid-sale-1"
    generation: int = 1
    memory: EventMemory = field(default_factory=EventMemory)
    status: dict[str, Any] = field(default_factory=dict)
    deleting: bool = False
    sampler: MetricSampler | None = None
    pods: dict[str, tuple[PodState, ...]] | None = None  # what the Pod watch holds (None: not listed)

    def __post_init__(self) -> None:
        if self.sampler is None:
            config = self.runtime.config
            self.sampler = MetricSampler(
                self.runtime.metrics, self.runtime.clock, config.metrics_interval, jitter=lambda: 1.0
            )

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def world(self, snapshot: NamespaceSnapshot | None = None) -> EventWorld:
        return EventWorld(
            name=self.name,
            namespace=self.namespace,
            uid=self.uid,
            generation=self.generation,
            raw_spec=copy.deepcopy(self.spec),
            old_status=copy.deepcopy(self.status),
            snapshot=snapshot if snapshot is not None else self.kube.snapshot(self.namespace),
            deleting=self.deleting,
            pods=copy.deepcopy(self.pods),
        )

    def edit(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.generation += 1

    def step(self, snapshot: NamespaceSnapshot | None = None) -> PassResult | None:
        assert self.sampler is not None
        world = self.world(snapshot)
        probes = wanted_probes(self.runtime, self.memory, world)
        self.sampler.want(self.uid, probes)
        self.sampler.ask_due()
        world = dataclasses.replace(world, samples=self.sampler.samples(probes))
        result = run_pass(self.runtime, self.memory, world)
        self.sampler.want(self.uid, wanted_probes(self.runtime, self.memory, world))
        if result is not None and result.status != world.old_status:
            self.kube.replace_event_status(self.namespace, self.name, self.uid, result.status)
            self.status = result.status
        return result

    def release(self, snapshot: NamespaceSnapshot | None = None) -> list[ClaimOutcome]:
        return release_event(self.runtime, self.memory, self.world(snapshot))
