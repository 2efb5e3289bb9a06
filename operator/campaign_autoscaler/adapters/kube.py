"""Kubernetes behind one small interface: find targets and their HPAs, claim and restore, post Events.

The annotations on the Deployment are the source of truth (baseline + every event's claim). A claim on a plain
Deployment is one JSON Patch that carries the annotations *and* `spec.replicas`, guarded by `test` operations
on exactly what the decision was made on (the replicas and the two campaign annotations): the baseline can
never be written without the scale (or the other way round), and a concurrent change of any of them makes the
patch fail (422), after which the decision is made again on fresh data. A status update or someone else's
annotation does not make it fail, as a resourceVersion precondition would. For an HPA-backed Deployment the
HPA's bounds are derived from those annotations, so every write is idempotent and a crash between the two
writes converges on the next reconcile.

Requests go through the kubernetes client's ApiClient (configuration, credentials, TLS, connection pool) as
plain JSON: the typed API classes and models cost tens of MiB of memory and a validation per call, for
fields this module reads straight from the JSON anyway.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler import API_GROUP, API_VERSION, KIND, PLURAL
from campaign_autoscaler.planning.capacity import CreationFailure
from campaign_autoscaler.planning.claims import (
    BASELINE_ANNOTATION,
    CAMPAIGN_ANNOTATIONS,
    CLAIMS_ANNOTATION,
    OWNERS_ANNOTATION,
    Baseline,
    ClaimPlan,
    HpaBounds,
    TargetState,
    parse_baseline,
    parse_claims,
    parse_owners,
    plan_claim,
)
from campaign_autoscaler.planning.instants import kube_time

log = logging.getLogger(__name__)

FIELD_MANAGER = "campaign-autoscaler"
MAX_CONFLICT_RETRIES = 8
REQUEST_TIMEOUT = (5.0, 30.0)  # seconds to connect, seconds to wait for the response
JSON = "application/json"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
ANNOTATIONS = "/metadata/annotations"
# A write refused as made on stale data: 422 when a JSON Patch `test` failed (what the decision rests on
# changed); 409 when the API server reports a conflict of its own (the writes carry no resourceVersion).
STALE_WRITE = (409, 422)


class TargetConflictError(RuntimeError):
    """The target kept changing under us: every optimistic write attempt was refused as stale."""


class CorruptAnnotationError(RuntimeError):
    """A campaign annotation on a target cannot be read; the target is left alone rather than guessed at."""


@dataclass(frozen=True)
class HpaView:
    name: str
    min_replicas: int
    max_replicas: int
    target: str | None = None  # the Deployment its scaleTargetRef names
    created: str = ""


@dataclass(frozen=True)
class DeploymentView:
    namespace: str
    name: str
    uid: str
    replicas: int
    ready_replicas: int
    labels: Mapping[str, str]
    baseline: Baseline | None
    claims: Mapping[str, int]
    owners: Mapping[str, str] = field(default_factory=dict)  # the uid of each claim's event, where recorded
    annotation_error: str | None = None  # a campaign annotation that cannot be read
    # The campaign annotations as served (absent: None), and whether the object has annotations at all:
    # what a write tests before it changes anything.
    campaign_texts: Mapping[str, str | None] = field(default_factory=dict)
    has_annotations: bool = True
    creation_failure: CreationFailure | None = None  # Pods its ReplicaSet could not create (e.g. quota)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def baseline_replicas(self) -> int:
        """The replicas it returns to: the baseline the operator recorded on it, else its replicas now."""
        return self.baseline.replicas if self.baseline is not None else self.replicas


@dataclass(frozen=True)
class ClaimOutcome:
    """What a claim (or a release) left on one target."""

    deployment: DeploymentView
    via: str  # "Deployment" or "HorizontalPodAutoscaler/<name>"
    baseline: Baseline
    effective_replicas: int  # the floor the target holds now: max(baseline, all claims)
    replicas_before: int  # Deployment replicas or HPA minReplicas before the write
    replicas_after: int  # ... and after it (equal when nothing was written)
    hpa: HpaView | None
    written: bool
    released: bool  # no claim at all is left on the target: it is back at its baseline


def deployment_view(body: Mapping[str, Any]) -> DeploymentView:
    """A Deployment as the API serves it (camelCase JSON, e.g. a watch event's body)."""
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    annotations = meta.get("annotations")
    has_annotations = annotations is not None
    annotations = annotations or {}
    baseline, claims, owners, problem = None, {}, {}, None
    try:
        if BASELINE_ANNOTATION in annotations:
            baseline = parse_baseline(annotations[BASELINE_ANNOTATION])
        claims = parse_claims(annotations.get(CLAIMS_ANNOTATION))
        owners = parse_owners(annotations.get(OWNERS_ANNOTATION))
    except ValueError as err:
        problem = f"Deployment {meta.get('namespace')}/{meta.get('name')}: {err}"
    return DeploymentView(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        replicas=spec["replicas"] if spec.get("replicas") is not None else 1,
        ready_replicas=status.get("readyReplicas") or 0,
        labels=dict(meta.get("labels") or {}),
        baseline=baseline,
        claims=claims,
        owners=owners,
        annotation_error=problem,
        campaign_texts={key: annotations.get(key) for key in CAMPAIGN_ANNOTATIONS},
        has_annotations=has_annotations,
        creation_failure=creation_failure(status),
    )


def creation_failure(status: Mapping[str, Any]) -> CreationFailure | None:
    """The `ReplicaFailure` condition the Deployment controller copies from its new ReplicaSet, if set."""
    for item in status.get("conditions") or ():
        if item.get("type") == "ReplicaFailure" and item.get("status") == "True":
            return CreationFailure(str(item.get("reason") or ""), str(item.get("message") or ""))
    return None


def hpa_view(body: Mapping[str, Any]) -> HpaView:
    """An autoscaling/v1 HorizontalPodAutoscaler as the API serves it."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    scales_a_deployment = ref.get("kind") == "Deployment" and str(
        ref.get("apiVersion", "apps/v1")
    ).startswith("apps/")
    return HpaView(
        name=meta.get("name", ""),
        min_replicas=spec["minReplicas"] if spec.get("minReplicas") is not None else 1,
        max_replicas=spec.get("maxReplicas", 1),
        target=ref.get("name") if scales_a_deployment else None,
        created=str(meta.get("creationTimestamp", "")),
    )


@dataclass(frozen=True)
class NamespaceSnapshot:
    """The Deployments and HPAs of one namespace as the operator's watches last saw them.

    Reconciles read from here, not from LIST calls: the API server is asked only to write, and to re-read one
    object when a write was refused (which also says the snapshot was stale).
    """

    deployments: Mapping[str, DeploymentView]
    hpas: tuple[HpaView, ...] = ()
    namespace: str = ""

    @classmethod
    def of(
        cls, deployments: Iterable[DeploymentView], hpas: Iterable[HpaView] = (), namespace: str = ""
    ) -> NamespaceSnapshot:
        return cls({view.name: view for view in deployments}, tuple(hpas), namespace)

    def deployment(self, name: str) -> DeploymentView | None:
        return self.deployments.get(name)

    def matching(self, labels_match: Callable[[Mapping[str, str]], bool]) -> list[DeploymentView]:
        return sorted((v for v in self.deployments.values() if labels_match(v.labels)), key=lambda v: v.name)

    def claimed_by(self, event_key: str) -> list[str]:
        return sorted(name for name, view in self.deployments.items() if event_key in view.claims)

    def hpa_for(self, deployment_name: str) -> HpaView | None:
        """The HPA whose scaleTargetRef is this Deployment, if any."""
        # Two HPAs on one Deployment already fight each other; follow the oldest, deterministically.
        matches = sorted(
            (h for h in self.hpas if h.target == deployment_name), key=lambda h: (h.created, h.name)
        )
        return matches[0] if matches else None

    def hpa(self, name: str) -> HpaView | None:
        return next((hpa for hpa in self.hpas if hpa.name == name), None)


class EventPoster(Protocol):
    """Where Kubernetes Events go: the API itself (KubeAdapter) or a lane in front of it."""

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
        """Post a new Event; the name the API server gave it, or None when there is none."""
        ...


class EventRecorder(EventPoster, Protocol):
    """Posts Events and counts repeats on an Event already posted (the Event lane's aggregation)."""

    def patch_event(self, namespace: str, name: str, *, count: int, message: str, now: datetime) -> bool:
        """Set the Event's count, message and lastTimestamp; False when the Event is gone (expired)."""
        ...


class KubeApi(EventPoster, Protocol):
    """The Kubernetes calls a pass makes (KubeAdapter; an in-memory one in the unit tests)."""

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
    ) -> ClaimOutcome | None: ...

    def get_event(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def replace_event_status(
        self, namespace: str, name: str, uid: str, status: Mapping[str, Any]
    ) -> None: ...


class KubeAdapter:
    """Every Kubernetes call the operator makes. Synchronous; handlers run it in a worker thread."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api_client = api_client

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """One API request with the client's credentials; the response's JSON, or ApiException."""
        headers = {"Accept": JSON}
        if content_type is not None:
            headers["Content-Type"] = content_type
        method, url, headers, body, post = self._api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api_client.call_api(
            method, url, headers, body, post, _request_timeout=REQUEST_TIMEOUT
        )
        data = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return json.loads(data) if data else {}

    def _patch(self, path: str, body: Any, content_type: str) -> dict[str, Any]:
        return self._request(
            "PATCH", path, body=body, content_type=content_type, query=[("fieldManager", FIELD_MANAGER)]
        )

    # --- reading targets (fresh, for conflicts and for callers without a watch) ------------------------
    def get_deployment(self, namespace: str, name: str) -> DeploymentView | None:
        try:
            return deployment_view(self._request("GET", _deployment_path(namespace, name)))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list_deployments(self, namespace: str, label_selector: str | None = None) -> list[DeploymentView]:
        """The namespace's Deployments (those matching `label_selector`), read afresh, sorted by name."""
        query = [("labelSelector", label_selector)] if label_selector else None
        listing = self._request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments", query=query)
        return sorted((deployment_view(item) for item in listing.get("items") or ()), key=lambda v: v.name)

    def _list_hpas(self, namespace: str) -> NamespaceSnapshot:
        """The namespace's HPAs read afresh (one LIST), as a snapshot without Deployments."""
        listing = self._request(
            "GET", f"/apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers"
        )
        items = listing.get("items") or ()
        return NamespaceSnapshot.of((), (hpa_view(item) for item in items), namespace)

    def _get_hpa(self, namespace: str, name: str) -> HpaView | None:
        try:
            return hpa_view(self._request("GET", _hpa_path(namespace, name)))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    # --- claiming --------------------------------------------------------------------------------------
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
        """Record `wanted` as the claim of event `event_key` (uid `owner_uid`) on the Deployment (None: drop
        it) and apply the result, as `plan_claim` decides.

        The first attempt decides on the snapshot (`fresh`: on the object read afresh); after a refused
        write, on the object read afresh. `only_if` is asked of every version decided on: False leaves the
        target alone. With `dry_run` nothing is written; the outcome says what would have been. Returns None
        when the Deployment does not exist (any more) or `only_if` said no.
        """
        hpas: NamespaceSnapshot | None = None if fresh else snapshot
        deployment = self.get_deployment(snapshot.namespace, name) if fresh else snapshot.deployment(name)
        for _attempt in range(MAX_CONFLICT_RETRIES):
            if deployment is None or (only_if is not None and not only_if(deployment)):
                return None
            if deployment.annotation_error:
                raise CorruptAnnotationError(deployment.annotation_error)
            hpa = self._hpa_for(deployment, hpas)
            plan = plan_claim(target_state(deployment, hpa), event_key, wanted, owner_uid)
            try:
                written = False if dry_run else self._carry_out(deployment, plan)
                return claim_outcome(deployment, plan, hpa, written)
            except ApiException as err:
                if err.status not in STALE_WRITE:
                    raise
                log.debug(
                    "Write to %s refused (%s); deciding again on fresh data", deployment.ref, err.status
                )
            deployment = self.get_deployment(deployment.namespace, name)
            hpas = None
        raise TargetConflictError(
            f"Deployment {name} changed on every one of {MAX_CONFLICT_RETRIES} attempts to claim it"
        )

    def _hpa_for(self, deployment: DeploymentView, snapshot: NamespaceSnapshot | None) -> HpaView | None:
        """The HPA this target is scaled through; from the snapshot, or read afresh (`snapshot` None)."""
        if deployment.baseline is not None:
            # The way a target is scaled is fixed by its first claim, so that the restore matches it.
            if deployment.baseline.hpa_name is None:
                return None
            if snapshot is not None:
                return snapshot.hpa(deployment.baseline.hpa_name)
            return self._get_hpa(deployment.namespace, deployment.baseline.hpa_name)
        if snapshot is not None:
            return snapshot.hpa_for(deployment.name)
        return self._list_hpas(deployment.namespace).hpa_for(deployment.name)

    def _carry_out(self, deployment: DeploymentView, plan: ClaimPlan) -> bool:
        """Make the writes `plan` asks for, each guarded by what it was decided on; whether any was made."""
        path = _deployment_path(deployment.namespace, deployment.name)
        if plan.hpa is None:
            if not plan.writes:
                return False
            operations = _annotation_operations(deployment, plan.annotations or {})
            # The decision (and a first baseline) rests on the replicas read: it holds only if they did.
            operations.append({"op": "test", "path": "/spec/replicas", "value": deployment.replicas})
            if plan.replicas is not None:
                operations.append({"op": "replace", "path": "/spec/replicas", "value": plan.replicas})
            self._patch(path, operations, JSON_PATCH)
            return True
        # The HPA controller moves the replicas of an HPA-backed target: only the annotations are tested.
        # Record first, then raise; restore first, then forget: a crash in between leaves annotations that
        # the next pass carries out again.
        if plan.annotations is not None and not plan.released:
            self._patch(path, _annotation_operations(deployment, plan.annotations), JSON_PATCH)
        if plan.hpa_bounds is not None:
            self._patch(
                _hpa_path(deployment.namespace, plan.hpa.name),
                [
                    # Guarded by the bounds read, not the resourceVersion: the HPA controller updates the
                    # status all the time.
                    {"op": "test", "path": "/spec/minReplicas", "value": plan.hpa.min_replicas},
                    {"op": "test", "path": "/spec/maxReplicas", "value": plan.hpa.max_replicas},
                    {"op": "replace", "path": "/spec/minReplicas", "value": plan.hpa_bounds[0]},
                    {"op": "replace", "path": "/spec/maxReplicas", "value": plan.hpa_bounds[1]},
                ],
                JSON_PATCH,
            )
        if plan.annotations is not None and plan.released:
            self._patch(path, _annotation_operations(deployment, plan.annotations), JSON_PATCH)
        return plan.writes

    # --- the CampaignEvent itself ----------------------------------------------------------------------
    def get_event(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The CampaignEvent as the API server has it now (not a cache); None when it does not exist."""
        try:
            return self._request("GET", _event_path(namespace, name))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def replace_event_status(self, namespace: str, name: str, uid: str, status: Mapping[str, Any]) -> None:
        """Write the whole status (what the new status leaves out is gone; a merge patch would keep it), only
        on the event of that uid: never on another one re-created under the same name (ApiException 422)."""
        self._request(
            "PATCH",
            f"{_event_path(namespace, name)}/status",
            body=[
                {"op": "test", "path": "/metadata/uid", "value": uid},
                {"op": "add", "path": "/status", "value": dict(status)},
            ],
            content_type=JSON_PATCH,
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
        """Post a core/v1 Event about `involved` ({apiVersion, kind, name, uid}); the name it was given, None
        when it was not posted. Events are best effort."""
        timestamp = kube_time(now)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{involved['name']}."},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": involved["name"],
                "namespace": namespace,
                "uid": involved.get("uid"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": FIELD_MANAGER,
        }
        try:
            posted = self._request(
                "POST", f"/api/v1/namespaces/{namespace}/events", body=body, content_type=JSON
            )
        except ApiException as err:
            if err.status == 403 and "being terminated" in str(err.body):
                # Nothing new may be created in a namespace on its way out; that is no denied permission.
                log.debug("Skipped Event %s in namespace %s: it is being terminated", reason, namespace)
                return None
            log.warning(
                "Failed to post Event %s on %s %s/%s: %s",
                reason,
                involved["kind"],
                namespace,
                involved["name"],
                err.reason,
            )
            return None
        return (posted.get("metadata") or {}).get("name")

    def patch_event(self, namespace: str, name: str, *, count: int, message: str, now: datetime) -> bool:
        """Count a repeat on the Event `name` (as client-go's event recorder does): a merge patch of its
        count, message and lastTimestamp. False when the Event is gone (Events expire); other errors are
        raised."""
        try:
            self._request(
                "PATCH",
                f"/api/v1/namespaces/{namespace}/events/{name}",
                body={"count": count, "message": message[:1024], "lastTimestamp": kube_time(now)},
                content_type=MERGE_PATCH,
            )
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True


def _event_path(namespace: str, name: str) -> str:
    return f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/{PLURAL}/{name}"


def _deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def _hpa_path(namespace: str, name: str) -> str:
    return f"/apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers/{name}"


def _pointer(key: str) -> str:
    """The JSON Pointer (RFC 6901) of one annotation."""
    return f"{ANNOTATIONS}/{key.replace('~', '~0').replace('/', '~1')}"


def _annotation_operations(
    deployment: DeploymentView, annotations: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """JSON Patch operations that set (None: remove) campaign annotations, if they all still read as seen.

    A `test` against null passes when the annotation is absent: "nobody claimed it meanwhile" is tested too.
    """
    if not deployment.has_annotations:
        wanted = {key: value for key, value in annotations.items() if value is not None}
        return [
            {"op": "test", "path": ANNOTATIONS, "value": None},
            {"op": "add", "path": ANNOTATIONS, "value": wanted},
        ]
    seen = {key: deployment.campaign_texts.get(key) for key in CAMPAIGN_ANNOTATIONS}
    operations: list[dict[str, Any]] = [
        {"op": "test", "path": _pointer(key), "value": value} for key, value in seen.items()
    ]
    for key, value in annotations.items():
        if value is not None:
            operations.append({"op": "add", "path": _pointer(key), "value": value})
        elif seen.get(key) is not None:
            operations.append({"op": "remove", "path": _pointer(key)})
    return operations


def target_state(deployment: DeploymentView, hpa: HpaView | None) -> TargetState:
    """The Deployment (and the HPA it is scaled through) as `plan_claim` reads a target."""
    bounds = HpaBounds(hpa.name, hpa.min_replicas, hpa.max_replicas) if hpa is not None else None
    return TargetState(deployment.replicas, deployment.baseline, deployment.claims, deployment.owners, bounds)


def claim_outcome(
    deployment: DeploymentView, plan: ClaimPlan, hpa: HpaView | None, written: bool
) -> ClaimOutcome:
    # `plan.hpa` is set only when the target is scaled through `hpa`.
    hpa_after = hpa if plan.hpa is not None else None
    if hpa_after is not None and plan.hpa_bounds is not None:
        hpa_after = replace(hpa_after, min_replicas=plan.hpa_bounds[0], max_replicas=plan.hpa_bounds[1])
    return ClaimOutcome(
        deployment=deployment,
        via=f"HorizontalPodAutoscaler/{hpa_after.name}" if hpa_after is not None else "Deployment",
        baseline=plan.baseline,
        effective_replicas=plan.effective,
        replicas_before=plan.replicas_before,
        replicas_after=plan.replicas_after,
        hpa=hpa_after,
        written=written,
        released=plan.released,
    )


def event_object_ref(name: str, uid: str) -> dict[str, str]:
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "name": name, "uid": uid}


def deployment_object_ref(view: DeploymentView) -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": view.name, "uid": view.uid}
