"""Placeholder pods of node headroom: what a target's pods request, and the pods that hold room for them.

A placeholder is a pause container at a low PriorityClass in the event's namespace, requesting what one pod
of its target requests and placed as that pod would be (its nodeSelector, tolerations and node affinity), so
that the cluster autoscaler adds the nodes the pre-scale will need. It is labelled with the uid of its
event (the watch finds them by the label `autoscaling.campaigns.dev/headroom`) and owned by the event, so
that Kubernetes' garbage collector removes it too should the operator never see the event go.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException
from kubernetes.utils.quantity import parse_quantity

from campaign_autoscaler import API_GROUP, API_VERSION, KIND
from campaign_autoscaler.planning.headroom import (
    DEFAULT_PLACEHOLDER_IMAGE,
    DEFAULT_PRIORITY_CLASS,
    ExistingPlaceholder,
    NewPlaceholder,
    sum_requests,
)

log = logging.getLogger(__name__)

HEADROOM_LABEL = f"{API_GROUP}/headroom"  # "true" on every placeholder: what the watch selects
EVENT_UID_LABEL = f"{API_GROUP}/headroom-event-uid"
EVENT_ANNOTATION = f"{API_GROUP}/headroom-event"  # "<namespace>/<name>"
TARGET_ANNOTATION = f"{API_GROUP}/headroom-target"
INDEX_ANNOTATION = f"{API_GROUP}/headroom-index"
PLACEHOLDER_SELECTOR = f"{HEADROOM_LABEL}=true"
CONTAINER_NAME = "headroom"
JSON = "application/json"


@dataclass(frozen=True)
class PodTemplateFacts:
    """What a placeholder copies from its target's pod template."""

    requests: Mapping[str, Decimal] = field(default_factory=dict)  # one pod's, per resource
    limits: Mapping[str, Decimal] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    node_affinity: Mapping[str, Any] | None = None


def pod_requests(pod_spec: Mapping[str, Any], key: str = "requests") -> dict[str, Decimal]:
    """What a pod requests (`key`: or limits) per resource, as the scheduler counts it: the sum over its
    containers, at least the largest of its init containers, plus its overhead. Unreadable quantities are
    left out."""
    containers = sum_requests(_resources(c, key) for c in pod_spec.get("containers") or ())
    for init in pod_spec.get("initContainers") or ():
        for name, quantity in _resources(init, key).items():
            containers[name] = max(containers.get(name, Decimal(0)), quantity)
    if key == "requests":
        containers = sum_requests([containers, quantities(pod_spec.get("overhead") or {})])
    return containers


def _resources(container: Mapping[str, Any], key: str) -> dict[str, Decimal]:
    resources = container.get("resources") or {}
    if key == "requests":  # a limit without a request is the request too (the API server defaults it so)
        return quantities({**(resources.get("limits") or {}), **(resources.get("requests") or {})})
    return quantities(resources.get(key) or {})


def quantities(raw: Mapping[str, Any]) -> dict[str, Decimal]:
    """Kubernetes quantities (`500m`, `1Gi`) as exact numbers, by resource; unreadable ones are left out."""
    parsed = {}
    for name, text in raw.items():
        try:
            parsed[name] = Decimal(parse_quantity(text))
        except (ValueError, TypeError, ArithmeticError):
            log.debug("Skipped the unreadable quantity %s=%r", name, text)
    return parsed


def pod_template_facts(template: Mapping[str, Any]) -> PodTemplateFacts:
    """The facts of a Deployment's `spec.template`."""
    spec = template.get("spec") or {}
    return PodTemplateFacts(
        requests=pod_requests(spec),
        limits=pod_requests(spec, "limits"),
        node_selector=dict(spec.get("nodeSelector") or {}),
        tolerations=tuple(spec.get("tolerations") or ()),
        node_affinity=(spec.get("affinity") or {}).get("nodeAffinity"),
    )


@dataclass(frozen=True)
class PlaceholderView:
    """A placeholder pod as the watch shows it."""

    namespace: str
    name: str
    event_uid: str
    event_key: str  # "<namespace>/<name>" of its event
    deployment: str
    index: int
    requests: Mapping[str, Decimal]
    terminating: bool
    phase: str = ""
    node: str = ""

    def existing(self) -> ExistingPlaceholder:
        return ExistingPlaceholder(self.name, self.deployment, self.index, self.requests, self.terminating)


def placeholder_view(body: Mapping[str, Any]) -> PlaceholderView:
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    try:
        index = int(annotations.get(INDEX_ANNOTATION, "-1"))
    except ValueError:
        index = -1
    return PlaceholderView(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        event_uid=labels.get(EVENT_UID_LABEL, ""),
        event_key=annotations.get(EVENT_ANNOTATION, ""),
        deployment=annotations.get(TARGET_ANNOTATION, ""),
        index=index,
        requests=pod_requests(spec),
        terminating=bool(meta.get("deletionTimestamp")),
        phase=str((body.get("status") or {}).get("phase", "")),
        node=str(spec.get("nodeName") or ""),
    )


def format_quantity(name: str, quantity: Decimal) -> str:
    """A quantity as the API takes it: CPU in millicores, everything else in whole units, rounded up (a
    placeholder must not hold less than the pod it stands for)."""
    if name == "cpu" or name.endswith("/cpu"):
        return f"{int((quantity * 1000).to_integral_value(ROUND_CEILING))}m"
    return str(int(quantity.to_integral_value(ROUND_CEILING)))


class HeadroomApi(Protocol):
    """The Kubernetes calls node headroom makes (PlaceholderAdapter)."""

    def create(
        self,
        namespace: str,
        event_name: str,
        event_uid: str,
        placeholder: NewPlaceholder,
        template: PodTemplateFacts,
    ) -> bool: ...

    def delete(self, namespace: str, name: str) -> None: ...

    def list_of_event(self, namespace: str, event_uid: str | None = None) -> list[PlaceholderView]: ...


class PlaceholderRefusedError(RuntimeError):
    """The API server refused a placeholder: admission (a missing PriorityClass, a LimitRange, a policy) or
    the namespace's ResourceQuota (QuotaExceededError)."""


class QuotaExceededError(PlaceholderRefusedError):
    """The namespace's ResourceQuota refused a placeholder."""


Request = Callable[..., dict[str, Any]]


class PlaceholderAdapter:
    """Creates, lists and deletes placeholder pods through the operator's Kubernetes requests."""

    def __init__(
        self,
        request: Request,
        image: str = DEFAULT_PLACEHOLDER_IMAGE,
        priority_class: str = DEFAULT_PRIORITY_CLASS,
    ) -> None:
        self._request = request
        self.image = image
        self.priority_class = priority_class

    def body(
        self,
        namespace: str,
        event_name: str,
        event_uid: str,
        placeholder: NewPlaceholder,
        template: PodTemplateFacts,
    ) -> dict[str, Any]:
        """The placeholder pod: a pause container at the headroom PriorityClass, owned by its event."""
        resources: dict[str, Any] = {
            "requests": {k: format_quantity(k, v) for k, v in sorted(placeholder.requests.items())}
        }
        if template.limits:
            resources["limits"] = {k: format_quantity(k, v) for k, v in sorted(template.limits.items())}
        spec: dict[str, Any] = {
            "priorityClassName": self.priority_class,
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "restartPolicy": "Always",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65535},
            "containers": [
                {
                    "name": CONTAINER_NAME,
                    "image": self.image,
                    "resources": resources,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        }
        if template.node_selector:
            spec["nodeSelector"] = dict(template.node_selector)
        if template.tolerations:
            spec["tolerations"] = [dict(t) for t in template.tolerations]
        if template.node_affinity:
            spec["affinity"] = {"nodeAffinity": template.node_affinity}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": placeholder.name,
                "namespace": namespace,
                "labels": {
                    HEADROOM_LABEL: "true",
                    EVENT_UID_LABEL: event_uid,
                    "app.kubernetes.io/managed-by": "campaign-autoscaler",
                },
                "annotations": {
                    EVENT_ANNOTATION: f"{namespace}/{event_name}",
                    TARGET_ANNOTATION: placeholder.deployment,
                    INDEX_ANNOTATION: str(placeholder.index),
                },
                "ownerReferences": [
                    {
                        "apiVersion": f"{API_GROUP}/{API_VERSION}",
                        "kind": KIND,
                        "name": event_name,
                        "uid": event_uid,
                    }
                ],
            },
            "spec": spec,
        }

    def create(
        self,
        namespace: str,
        event_name: str,
        event_uid: str,
        placeholder: NewPlaceholder,
        template: PodTemplateFacts,
    ) -> bool:
        """Create one placeholder; False when it exists already (or its namespace is being deleted).
        QuotaExceededError when the namespace's ResourceQuota refuses it, PlaceholderRefusedError when
        admission does."""
        body = self.body(namespace, event_name, event_uid, placeholder, template)
        try:
            self._request("POST", f"/api/v1/namespaces/{namespace}/pods", body=body, content_type=JSON)
        except ApiException as err:
            if err.status == 409:
                return False
            if err.status == 403 and "being terminated" in str(err.body):
                return False  # nothing new may be created in a namespace on its way out: nothing to hold
            if err.status == 403 and "exceeded quota" in str(err.body):
                raise QuotaExceededError(_message(err)) from err
            if err.status in (400, 403, 422):
                raise PlaceholderRefusedError(_message(err)) from err
            raise
        return True

    def delete(self, namespace: str, name: str) -> None:
        """Delete one placeholder at once (a pause container has nothing to finish); gone already is fine."""
        try:
            self._request(
                "DELETE",
                f"/api/v1/namespaces/{namespace}/pods/{name}",
                body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
                content_type=JSON,
            )
        except ApiException as err:
            if err.status != 404:
                raise

    def list_of_event(self, namespace: str, event_uid: str | None = None) -> list[PlaceholderView]:
        """The namespace's placeholders (of the event `event_uid` only, when given), read afresh."""
        selector = PLACEHOLDER_SELECTOR + (f",{EVENT_UID_LABEL}={event_uid}" if event_uid else "")
        listing = self._request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", query=[("labelSelector", selector)]
        )
        return [placeholder_view(item) for item in listing.get("items") or ()]


def _message(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message") or err.reason)
    except ValueError:
        return str(err.reason)
