"""Kubernetes behind one small interface: find targets and their HPAs, claim and restore, post Events.

The annotations on the Deployment are the source of truth (baseline + every event's claim). A claim on a plain
Deployment is one JSON Patch that carries the annotations *and* `spec.replicas`, guarded by `test` operations
on exactly what the decision was made on (the replicas and the two campaign annotations): the baseline can
never be written without the scale (or the other way round), and a concurrent change of any of them makes the
patch fail (422), after which the decision is made again on fresh data. A status update or someone else's
annotation does not make it fail, as a resourceVersion precondition would. For an HPA-backed Deployment the
HPA's bounds are derived from those annotations, so every write is idempotent and a crash between the two
writes converges on the next reconcile. A target scaled by a KEDA ScaledObject is handled the same way, with
the ScaledObject's minReplicaCount/maxReplicaCount in place of the HPA's bounds (adapters/scaledobjects.py).

Requests go through the kubernetes client's ApiClient (configuration, credentials, TLS, connection pool) as
plain JSON: the typed API classes and models cost tens of MiB of memory and a validation per call, for
fields this module reads straight from the JSON anyway.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler import API_GROUP, API_VERSION, KIND, PLURAL
from campaign_autoscaler.adapters.capacity import read_capacity
from campaign_autoscaler.adapters.placeholders import PlaceholderAdapter
from campaign_autoscaler.adapters.scaledobjects import (
    ScaledObjectView,
    bounds_operations,
    scaled_object_path,
    scaled_object_view,
)
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.adapters.views import DeploymentView, ScalerView, deployment_view, hpa_view
from campaign_autoscaler.planning.claims import (
    CAMPAIGN_ANNOTATIONS,
    HPA_KIND,
    Baseline,
    ClaimPlan,
    HpaBounds,
    TargetState,
    plan_claim,
)
from campaign_autoscaler.planning.instants import kube_time
from campaign_autoscaler.planning.preflight import ClusterCapacity
from campaign_autoscaler.planning.scaledobject import SCALED_OBJECT_KIND
from campaign_autoscaler.planning.targets import split_key

from .workloads import DEPLOYMENTS, KindDirectory, WorkloadKind

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
class ClaimOutcome:
    """What a claim (or a release) left on one target."""

    deployment: DeploymentView
    # "Deployment", "StatefulSet", "Scale", "HorizontalPodAutoscaler/<name>", "ScaledObject/<name>[ (paused)]"
    via: str
    baseline: Baseline
    effective_replicas: int  # the floor the target holds now: max(baseline, all claims)
    replicas_before: int  # Deployment replicas or HPA minReplicas before the write
    replicas_after: int  # ... and after it (equal when nothing was written)
    hpa: ScalerView | None  # the autoscaler (HPA or ScaledObject) it is scaled through
    written: bool
    released: bool  # no claim at all is left on the target: it is back at its baseline
    paused: bool = False  # scaled through a paused ScaledObject: left alone


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

    kinds: KindDirectory  # the workload kinds API discovery found

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
        self.kinds = KindDirectory(self.api_resources, self.api_group)

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
        answer: bool = True,
    ) -> dict[str, Any]:
        """One API request with the client's credentials; the response's JSON, or ApiException. With `answer`
        False the response is read but not decoded ({} is returned): a PATCH answers with the whole object,
        and decoding it was a tenth of the operator's interpreter time while 300 transitions were written
        (`python -m benchmarks lag`, py-spy)."""
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
        return json.loads(data) if data and answer else {}

    def read_capacity(self, namespace: str) -> ClusterCapacity:
        """Nodes, what their pods request, and the namespace's ResourceQuotas, for preflight."""
        return read_capacity(self._request, namespace)

    def placeholders(self, image: str, priority_class: str) -> PlaceholderAdapter:
        """Node headroom's pods, created and deleted with this adapter's credentials."""
        return PlaceholderAdapter(self._request, image, priority_class)

    def _patch(self, path: str, body: Any, content_type: str) -> None:
        """A guarded write; what the object became is not needed (the watch shows it)."""
        self._request(
            "PATCH",
            path,
            body=body,
            content_type=content_type,
            query=[("fieldManager", FIELD_MANAGER)],
            answer=False,
        )

    # --- reading targets (fresh, for conflicts and for callers without a watch) ------------------------
    def api_resources(self, api_version: str) -> dict[str, Any] | None:
        """The APIResourceList of a group version (API discovery); None when it is not served."""
        prefix = "/apis" if "/" in api_version else "/api"
        return self._get_if_found(f"{prefix}/{api_version}")

    def api_group(self, group: str) -> dict[str, Any] | None:
        """The APIGroup of a group (its versions, the preferred one); None when it is not served."""
        return self._get_if_found(f"/apis/{group}")

    def get_deployment(
        self, namespace: str, key: str, workload: WorkloadKind | None = None
    ) -> DeploymentView | None:
        """The workload of that key (a Deployment's key is its name) read afresh; None when it does not
        exist, or its kind is not one found so far."""
        kind, group, name = split_key(key)
        workload = workload or self.kinds.by_group_kind(group, kind)
        if workload is None:
            return None
        found = self._get_if_found(workload.path(namespace, name))
        return deployment_view(found, workload) if found is not None else None

    def _get_if_found(self, path: str) -> dict[str, Any] | None:
        """GET `path`; None when the API server answers 404."""
        try:
            return self._request("GET", path)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list_deployments(
        self, namespace: str, label_selector: str | None = None, workload: WorkloadKind = DEPLOYMENTS
    ) -> list[DeploymentView]:
        """The namespace's workloads of a kind (Deployments unless told; those matching `label_selector`),
        read afresh, sorted by name."""
        query = [("labelSelector", label_selector)] if label_selector else None
        listing = self._request("GET", workload.collection(namespace), query=query)
        items = listing.get("items") or ()
        return sorted((deployment_view(item, workload) for item in items), key=lambda v: v.name)

    def list_hpas(self, namespace: str) -> NamespaceSnapshot:
        """The namespace's autoscalers read afresh (HPAs, and ScaledObjects where KEDA's CRD is installed),
        as a snapshot without workloads."""
        listing = self._request(
            "GET", f"/apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers"
        )
        scalers: list[ScalerView] = [hpa_view(item) for item in listing.get("items") or ()]
        try:
            scaled_objects = self._request("GET", scaled_object_path(namespace))
        except ApiException as err:
            # 404: KEDA's CRD is not installed; 403: the RBAC leaves ScaledObjects out (as the watch does).
            if err.status not in (403, 404):
                raise
        else:
            scalers += [scaled_object_view(item) for item in scaled_objects.get("items") or ()]
        return NamespaceSnapshot.of((), scalers, namespace)

    def _get_hpa(self, namespace: str, name: str, kind: str = HPA_KIND) -> ScalerView | None:
        """The autoscaler of that kind and name read afresh; None when it does not exist."""
        try:
            if kind == SCALED_OBJECT_KIND:
                return scaled_object_view(self._request("GET", scaled_object_path(namespace, name)))
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
        seen = snapshot.deployment(name)
        workload = seen.workload if seen is not None else None
        deployment = self.get_deployment(snapshot.namespace, name, workload) if fresh else seen
        for _attempt in range(MAX_CONFLICT_RETRIES):
            if deployment is None or (only_if is not None and not only_if(deployment)):
                return None
            if deployment.annotation_error:
                raise CorruptAnnotationError(deployment.annotation_error)
            hpa = self.hpa_for(deployment, hpas)
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
            deployment = self.get_deployment(deployment.namespace, name, deployment.workload)
            hpas = None
        raise TargetConflictError(
            f"{name} changed on every one of {MAX_CONFLICT_RETRIES} attempts to claim it"
        )

    def hpa_for(self, deployment: DeploymentView, snapshot: NamespaceSnapshot | None) -> ScalerView | None:
        """The autoscaler the target goes through: from the snapshot, or read afresh (snapshot None)."""
        baseline = deployment.baseline
        if baseline is not None:
            # The way a target is scaled is fixed by its first claim, so that the restore matches it.
            if baseline.hpa_name is None:
                return None
            if snapshot is not None:
                return snapshot.hpa(baseline.hpa_name, baseline.scaler_kind)
            return self._get_hpa(deployment.namespace, baseline.hpa_name, baseline.scaler_kind)
        if snapshot is not None:
            return snapshot.hpa_for(deployment.key)
        return self.list_hpas(deployment.namespace).hpa_for(deployment.key)

    def _carry_out(self, deployment: DeploymentView, plan: ClaimPlan) -> bool:
        """Make the writes `plan` asks for, each guarded by what it was decided on; whether any was made."""
        path = deployment.workload.path(deployment.namespace, deployment.name)
        if plan.hpa is None and not deployment.workload.native:
            return self._carry_out_by_scale(deployment, plan)
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
        if plan.hpa_bounds is not None and plan.hpa.kind == SCALED_OBJECT_KIND:
            # Only the two bounds, each guarded by what it was read as (KEDA rewrites the status often).
            self._patch(
                scaled_object_path(deployment.namespace, plan.hpa.name),
                bounds_operations((plan.hpa.min_replicas, plan.hpa.max_replicas), plan.hpa_bounds),
                JSON_PATCH,
            )
        elif plan.hpa_bounds is not None:
            self._patch(
                _hpa_path(deployment.namespace, plan.hpa.name),
                [
                    # Guarded by the bounds read, not the resourceVersion: the HPA controller updates the
                    # status all the time. Patched through the version they were read in (v1): the API
                    # server applies it to its own conversion of the object, so an HPA written through v2
                    # keeps its metrics and behavior exactly (tests/integration/test_hpa_versions.py).
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

    def _carry_out_by_scale(self, deployment: DeploymentView, plan: ClaimPlan) -> bool:
        """Annotations on the object and replicas through /scale: two writes, ordered so that a crash between
        them converges. Up: state first, then the scale (the next pass raises what the annotations claim).
        Down: the scale first, then the state (annotations still claiming more only wake a pass that lowers
        nothing; annotations claiming less first would leave the replicas above them for good)."""
        lowering = plan.replicas is not None and plan.replicas < deployment.replicas
        if lowering:
            self._scale(deployment, plan.replicas)
        if plan.annotations is not None:
            path = deployment.workload.path(deployment.namespace, deployment.name)
            self._patch(path, _annotation_operations(deployment, plan.annotations), JSON_PATCH)
        if plan.replicas is not None and not lowering:
            self._scale(deployment, plan.replicas)
        return plan.writes

    def _scale(self, deployment: DeploymentView, replicas: int | None) -> None:
        """Set the replicas through the /scale subresource, if they still are what the decision read."""
        operations: list[dict[str, Any]] = [{"op": "add", "path": "/spec/replicas", "value": replicas}]
        if deployment.replicas:  # a Scale serves no spec.replicas at all when they are 0: nothing to test
            operations.insert(0, {"op": "test", "path": "/spec/replicas", "value": deployment.replicas})
        self._patch(
            deployment.workload.scale_path(deployment.namespace, deployment.name), operations, JSON_PATCH
        )

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
            answer=False,
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


def target_state(deployment: DeploymentView, hpa: ScalerView | None) -> TargetState:
    """The workload (and the HPA or ScaledObject it is scaled through) as `plan_claim` reads a target."""
    bounds = None
    if hpa is not None:
        paused = isinstance(hpa, ScaledObjectView) and hpa.paused
        bounds = HpaBounds(hpa.name, hpa.min_replicas, hpa.max_replicas, hpa.kind, paused)
    return TargetState(deployment.replicas, deployment.baseline, deployment.claims, deployment.owners, bounds)


def claim_outcome(
    deployment: DeploymentView, plan: ClaimPlan, hpa: ScalerView | None, written: bool
) -> ClaimOutcome:
    # `plan.hpa` is set only when the target is scaled through `hpa`.
    hpa_after = hpa if plan.hpa is not None else None
    if hpa_after is not None and plan.hpa_bounds is not None:
        hpa_after = replace(hpa_after, min_replicas=plan.hpa_bounds[0], max_replicas=plan.hpa_bounds[1])
    via = f"{hpa_after.kind}/{hpa_after.name}" if hpa_after is not None else deployment.workload.via
    return ClaimOutcome(
        deployment=deployment,
        via=f"{via} (paused)" if plan.paused else via,
        baseline=plan.baseline,
        effective_replicas=plan.effective,
        replicas_before=plan.replicas_before,
        replicas_after=plan.replicas_after,
        hpa=hpa_after,
        written=written,
        released=plan.released,
        paused=plan.paused,
    )


def planned_write(view: DeploymentView, hpa: ScalerView | None) -> str:
    """What a claim on the workload writes (`plan --kubeconfig`), `hpa` being the autoscaler (an HPA or a KEDA
    ScaledObject) it is scaled through."""
    if isinstance(hpa, ScaledObjectView):
        if hpa.paused:
            return f"nothing: ScaledObject/{hpa.name} is paused on purpose (KEDA's paused annotations)"
        return f"ScaledObject/{hpa.name} minReplicaCount (maxReplicaCount when below the floor)"
    if hpa is not None:
        return f"HorizontalPodAutoscaler/{hpa.name} minReplicas (maxReplicas when below the floor)"
    if view.workload.native:
        return f"{view.kind} spec.replicas"
    return f"{view.kind} /scale ({view.workload.resource})"


def event_object_ref(name: str, uid: str) -> dict[str, str]:
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "name": name, "uid": uid}


def deployment_object_ref(view: DeploymentView) -> dict[str, str]:
    return {
        "apiVersion": view.workload.api_version,
        "kind": view.workload.kind,
        "name": view.name,
        "uid": view.uid,
    }
