"""Kubernetes behind one small interface: find targets and their HPAs, claim and restore, post Events.

The annotations on the Deployment are the source of truth (baseline + every event's claim). A claim on a plain
Deployment is one merge patch that carries the annotations *and* `spec.replicas`, guarded by the
resourceVersion the decision was made on: the baseline can never be written without the scale (or the other
way round), and a concurrent writer makes the patch fail with 409, after which the decision is made again on
fresh data. For an HPA-backed Deployment the HPA's bounds are derived from those annotations, so every write
is idempotent and a crash between the two writes converges on the next reconcile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler import API_GROUP, API_VERSION, KIND, PLURAL
from campaign_autoscaler.planning.claims import (
    BASELINE_ANNOTATION,
    CLAIMS_ANNOTATION,
    Baseline,
    dump_baseline,
    dump_claims,
    effective_replicas,
    hpa_bounds,
    parse_baseline,
    parse_claims,
    replicas_to_apply,
)

log = logging.getLogger(__name__)

FIELD_MANAGER = "campaign-autoscaler"
MAX_CONFLICT_RETRIES = 8


class TargetConflictError(RuntimeError):
    """The target kept changing under us: every optimistic write attempt hit a 409."""


class CorruptAnnotationError(RuntimeError):
    """A campaign annotation on a target cannot be read; the target is left alone rather than guessed at."""


@dataclass(frozen=True)
class HpaView:
    name: str
    min_replicas: int
    max_replicas: int
    resource_version: str


@dataclass(frozen=True)
class DeploymentView:
    namespace: str
    name: str
    uid: str
    resource_version: str
    replicas: int
    ready_replicas: int
    labels: Mapping[str, str]
    baseline: Baseline | None
    claims: Mapping[str, int]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


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


def _deployment_view(obj: Any) -> DeploymentView:
    annotations = obj.metadata.annotations or {}
    ref = f"{obj.metadata.namespace}/{obj.metadata.name}"
    try:
        baseline = (
            parse_baseline(annotations[BASELINE_ANNOTATION]) if BASELINE_ANNOTATION in annotations else None
        )
        claims = parse_claims(annotations.get(CLAIMS_ANNOTATION))
    except ValueError as err:
        raise CorruptAnnotationError(f"Deployment {ref}: {err}") from err
    replicas = obj.spec.replicas if obj.spec.replicas is not None else 1
    return DeploymentView(
        namespace=obj.metadata.namespace,
        name=obj.metadata.name,
        uid=obj.metadata.uid,
        resource_version=obj.metadata.resource_version,
        replicas=replicas,
        ready_replicas=(obj.status.ready_replicas or 0) if obj.status else 0,
        labels=dict(obj.metadata.labels or {}),
        baseline=baseline,
        claims=claims,
    )


def _hpa_view(obj: Any) -> HpaView:
    return HpaView(
        name=obj.metadata.name,
        min_replicas=obj.spec.min_replicas if obj.spec.min_replicas is not None else 1,
        max_replicas=obj.spec.max_replicas,
        resource_version=obj.metadata.resource_version,
    )


class KubeAdapter:
    """Every Kubernetes call the operator makes. Synchronous; handlers run it in a worker thread."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._apps = client.AppsV1Api(api_client)
        self._autoscaling = client.AutoscalingV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    # --- reading targets -------------------------------------------------------------------------------
    def get_deployment(self, namespace: str, name: str) -> DeploymentView | None:
        try:
            return _deployment_view(self._apps.read_namespaced_deployment(name, namespace))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list_deployments(self, namespace: str, label_selector: str | None = None) -> list[DeploymentView]:
        listing = self._apps.list_namespaced_deployment(namespace, label_selector=label_selector or "")
        return sorted((_deployment_view(obj) for obj in listing.items), key=lambda view: view.name)

    def find_hpa(self, namespace: str, deployment_name: str) -> HpaView | None:
        """The HPA whose scaleTargetRef is this Deployment (autoscaling/v1 view), if any."""
        matches = [
            hpa
            for hpa in self._autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items
            if hpa.spec.scale_target_ref.kind == "Deployment"
            and hpa.spec.scale_target_ref.name == deployment_name
            and (hpa.spec.scale_target_ref.api_version or "apps/v1").startswith("apps/")
        ]
        if not matches:
            return None
        # Two HPAs on one Deployment already fight each other; follow the oldest, as the HPA controller's
        # own conflict report does not pick one either.
        matches.sort(key=lambda hpa: (hpa.metadata.creation_timestamp, hpa.metadata.name))
        return _hpa_view(matches[0])

    def _get_hpa(self, namespace: str, name: str) -> HpaView | None:
        try:
            return _hpa_view(self._autoscaling.read_namespaced_horizontal_pod_autoscaler(name, namespace))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    # --- claiming --------------------------------------------------------------------------------------
    def set_claim(
        self, namespace: str, name: str, event_key: str, wanted: int | None, *, dry_run: bool = False
    ) -> ClaimOutcome | None:
        """Record `wanted` as this event's claim on the Deployment (None: drop it) and apply the result.

        With `dry_run` nothing is written; the outcome says what would have been. Returns None when the
        Deployment does not exist (any more).
        """
        for _attempt in range(MAX_CONFLICT_RETRIES):
            deployment = self.get_deployment(namespace, name)
            if deployment is None:
                return None
            try:
                return self._apply_claim(deployment, event_key, wanted, dry_run)
            except ApiException as err:
                if err.status != 409:
                    raise
                log.debug("Conflict on Deployment %s/%s; retrying on fresh data", namespace, name)
        raise TargetConflictError(
            f"Deployment {namespace}/{name} changed on every one of {MAX_CONFLICT_RETRIES} attempts"
        )

    def _apply_claim(
        self, deployment: DeploymentView, event_key: str, wanted: int | None, dry_run: bool
    ) -> ClaimOutcome:
        new_claims = {key: value for key, value in deployment.claims.items() if key != event_key}
        if wanted is not None:
            new_claims[event_key] = wanted
        hpa = self._hpa_for(deployment)
        baseline = deployment.baseline or self._baseline_now(deployment, hpa)
        if hpa is not None and (baseline.hpa_name == hpa.name):
            return self._apply_via_hpa(deployment, hpa, baseline, new_claims, dry_run)
        return self._apply_via_deployment(deployment, baseline, new_claims, dry_run)

    def _hpa_for(self, deployment: DeploymentView) -> HpaView | None:
        if deployment.baseline is not None:
            # The way a target is scaled is fixed by its first claim, so that the restore matches it.
            if deployment.baseline.hpa_name is None:
                return None
            return self._get_hpa(deployment.namespace, deployment.baseline.hpa_name)
        return self.find_hpa(deployment.namespace, deployment.name)

    @staticmethod
    def _baseline_now(deployment: DeploymentView, hpa: HpaView | None) -> Baseline:
        if hpa is None:
            return Baseline(replicas=deployment.replicas)
        return Baseline(
            replicas=deployment.replicas,
            hpa_name=hpa.name,
            hpa_min_replicas=hpa.min_replicas,
            hpa_max_replicas=hpa.max_replicas,
        )

    def _annotations_patch(self, baseline: Baseline, claims: Mapping[str, int]) -> dict[str, str | None]:
        if not claims:
            return {BASELINE_ANNOTATION: None, CLAIMS_ANNOTATION: None}
        return {BASELINE_ANNOTATION: dump_baseline(baseline), CLAIMS_ANNOTATION: dump_claims(claims)}

    def _apply_via_deployment(
        self, deployment: DeploymentView, baseline: Baseline, new_claims: Mapping[str, int], dry_run: bool
    ) -> ClaimOutcome:
        had_annotations = deployment.baseline is not None or bool(deployment.claims)
        replicas = replicas_to_apply(deployment.replicas, baseline.replicas, deployment.claims, new_claims)
        annotations_change = dict(deployment.claims) != dict(new_claims) or (
            had_annotations and not new_claims
        )
        if not new_claims and not had_annotations:
            replicas = None  # never claimed: nothing to restore
        written = False
        if (annotations_change or (replicas is not None and replicas != deployment.replicas)) and not dry_run:
            patch: dict[str, Any] = {
                "metadata": {
                    "resourceVersion": deployment.resource_version,
                    "annotations": self._annotations_patch(baseline, new_claims),
                }
            }
            if replicas is not None and replicas != deployment.replicas:
                patch["spec"] = {"replicas": replicas}
            self._apps.patch_namespaced_deployment(
                deployment.name, deployment.namespace, patch, field_manager=FIELD_MANAGER
            )
            written = True
        after = replicas if replicas is not None else deployment.replicas
        return ClaimOutcome(
            deployment=deployment,
            via="Deployment",
            baseline=baseline,
            effective_replicas=effective_replicas(baseline.replicas, new_claims),
            replicas_before=deployment.replicas,
            replicas_after=after,
            hpa=None,
            written=written,
            released=not new_claims,
        )

    def _apply_via_hpa(
        self,
        deployment: DeploymentView,
        hpa: HpaView,
        baseline: Baseline,
        new_claims: Mapping[str, int],
        dry_run: bool,
    ) -> ClaimOutcome:
        min_replicas, max_replicas = hpa_bounds(baseline, new_claims)
        written = False
        if not dry_run:
            if new_claims and dict(deployment.claims) != dict(new_claims):
                # Record first, then raise: a crash in between leaves a claim that the next reconcile applies.
                self._write_annotations(deployment, baseline, new_claims)
                written = True
            if (hpa.min_replicas, hpa.max_replicas) != (min_replicas, max_replicas):
                self._autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                    hpa.name,
                    deployment.namespace,
                    {
                        "metadata": {"resourceVersion": hpa.resource_version},
                        "spec": {"minReplicas": min_replicas, "maxReplicas": max_replicas},
                    },
                    field_manager=FIELD_MANAGER,
                )
                written = True
            if not new_claims and (deployment.baseline is not None or deployment.claims):
                # Restore first, then forget: the baseline outlives the HPA restore by one write.
                self._write_annotations(deployment, baseline, new_claims)
                written = True
        return ClaimOutcome(
            deployment=deployment,
            via=f"HorizontalPodAutoscaler/{hpa.name}",
            baseline=baseline,
            effective_replicas=min_replicas,
            replicas_before=hpa.min_replicas,
            replicas_after=min_replicas if not dry_run else hpa.min_replicas,
            hpa=HpaView(hpa.name, min_replicas, max_replicas, hpa.resource_version),
            written=written,
            released=not new_claims,
        )

    def _write_annotations(
        self, deployment: DeploymentView, baseline: Baseline, claims: Mapping[str, int]
    ) -> None:
        self._apps.patch_namespaced_deployment(
            deployment.name,
            deployment.namespace,
            {
                "metadata": {
                    "resourceVersion": deployment.resource_version,
                    "annotations": self._annotations_patch(baseline, claims),
                }
            },
            field_manager=FIELD_MANAGER,
        )

    def claimed_deployments(self, namespace: str, event_key: str) -> list[str]:
        """Names of the Deployments in `namespace` that carry a claim of this event."""
        return [view.name for view in self.list_deployments(namespace) if event_key in view.claims]

    # --- the CampaignEvent itself ----------------------------------------------------------------------
    def patch_event_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self._custom.patch_namespaced_custom_object_status(
            API_GROUP, API_VERSION, namespace, PLURAL, name, {"status": dict(status)}
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
    ) -> None:
        """Post a core/v1 Event about `involved` ({apiVersion, kind, name, uid}). Events are best effort."""
        timestamp = now.astimezone(UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{involved['name']}."),
            involved_object=client.V1ObjectReference(
                api_version=involved["apiVersion"],
                kind=involved["kind"],
                name=involved["name"],
                namespace=namespace,
                uid=involved.get("uid"),
            ),
            type=event_type,
            reason=reason,
            message=message[:1024],
            first_timestamp=timestamp,
            last_timestamp=timestamp,
            count=1,
            source=client.V1EventSource(component=FIELD_MANAGER),
            reporting_component=FIELD_MANAGER,
            reporting_instance=FIELD_MANAGER,
        )
        try:
            self._core.create_namespaced_event(namespace, body)
        except ApiException as err:
            log.warning(
                "Failed to post Event %s on %s %s/%s: %s",
                reason,
                involved["kind"],
                namespace,
                involved["name"],
                err.reason,
            )


def event_object_ref(name: str, uid: str) -> dict[str, str]:
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "name": name, "uid": uid}


def deployment_object_ref(view: DeploymentView) -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": view.name, "uid": view.uid}
