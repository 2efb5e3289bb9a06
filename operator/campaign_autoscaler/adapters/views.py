"""Read-only views of workloads and of the HPAs that scale them, as the API serves them (a GET, an item of
a LIST, a watch event's body): the fields the operator reads and the campaign annotations, parsed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from campaign_autoscaler.adapters.placeholders import PodTemplateFacts, pod_template_facts
from campaign_autoscaler.adapters.scaledobjects import ScaledObjectView
from campaign_autoscaler.adapters.workloads import DEPLOYMENTS, WorkloadKind
from campaign_autoscaler.planning.capacity import CreationFailure
from campaign_autoscaler.planning.claims import (
    BASELINE_ANNOTATION,
    CAMPAIGN_ANNOTATIONS,
    CLAIMS_ANNOTATION,
    HPA_KIND,
    OWNERS_ANNOTATION,
    Baseline,
    parse_baseline,
    parse_claims,
    parse_owners,
)
from campaign_autoscaler.planning.scaledobject import SCALED_OBJECT_KIND
from campaign_autoscaler.planning.targets import workload_key


@dataclass(frozen=True)
class HpaView:
    name: str
    min_replicas: int
    max_replicas: int
    target: str | None = None  # the key of the workload its scaleTargetRef names
    created: str = ""
    owner: str | None = None  # the KEDA ScaledObject that owns it (and rewrites it): never touched
    kind: str = HPA_KIND

    @property
    def level(self) -> int:
        return self.min_replicas


# The autoscalers a target can be scaled through.
ScalerView = HpaView | ScaledObjectView


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
    workload: WorkloadKind = DEPLOYMENTS  # its kind: a Deployment, a StatefulSet, anything with /scale
    template: PodTemplateFacts = field(default_factory=PodTemplateFacts)  # what node headroom copies
    creation_failure: CreationFailure | None = None  # Pods its ReplicaSet could not create (e.g. quota)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def kind(self) -> str:
        return self.workload.kind

    @cached_property
    def key(self) -> str:
        """The workload's key in snapshots and memories (planning.workload_key); worked out once per view
        (every snapshot and pass asks for it)."""
        return workload_key(self.workload.api_version, self.workload.kind, self.name)

    @property
    def described(self) -> str:
        """`StatefulSet shop/db`, as log lines and Events name it."""
        return f"{self.workload.kind} {self.ref}"

    @property
    def baseline_replicas(self) -> int:
        """The replicas it returns to: the baseline the operator recorded on it, else its replicas now."""
        return self.baseline.replicas if self.baseline is not None else self.replicas


def workload_view(workload: WorkloadKind) -> Callable[[Mapping[str, Any]], DeploymentView]:
    """How objects of `workload`'s kind are read (see `deployment_view`)."""
    return lambda body: deployment_view(body, workload)


def deployment_view(body: Mapping[str, Any], workload: WorkloadKind = DEPLOYMENTS) -> DeploymentView:
    """A workload (a Deployment unless `workload` says otherwise) as the API serves it (camelCase JSON, e.g.
    a watch event's body). Every scalable kind keeps its replicas in `spec.replicas` and its ready ones in
    `status.readyReplicas`, as Deployments, StatefulSets and Argo Rollouts do."""
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
        problem = f"{workload.kind} {meta.get('namespace')}/{meta.get('name')}: {err}"
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
        workload=workload,
        template=pod_template_facts(spec.get("template") or {}),
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
    target = None
    if ref.get("kind") and ref.get("name"):
        target = workload_key(str(ref.get("apiVersion") or "apps/v1"), str(ref["kind"]), str(ref["name"]))
    keda_owner = next(
        (
            owner.get("name")
            for owner in meta.get("ownerReferences") or ()
            if owner.get("kind") == SCALED_OBJECT_KIND and str(owner.get("apiVersion")).startswith("keda.sh/")
        ),
        None,
    )
    return HpaView(
        name=meta.get("name", ""),
        min_replicas=spec["minReplicas"] if spec.get("minReplicas") is not None else 1,
        max_replicas=spec.get("maxReplicas", 1),
        target=target,
        created=str(meta.get("creationTimestamp", "")),
        owner=keda_owner,
    )
