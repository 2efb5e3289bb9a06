"""KEDA ScaledObjects as the operator reads and writes them: a small view, their paths, the JSON Patch of
their bounds, and whether the cluster serves them at all (discovery: without KEDA's CRD nothing is asked).

A ScaledObject is matched to its workload by `spec.scaleTargetRef` (name; kind, default Deployment;
apiVersion, default apps/v1), so it applies to any kind of workload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from campaign_autoscaler.planning.scaledobject import (
    SCALED_OBJECT_GROUP,
    SCALED_OBJECT_KIND,
    SCALED_OBJECT_PLURAL,
    SCALED_OBJECT_VERSION,
    min_replica_level,
    paused_by,
)
from campaign_autoscaler.planning.targets import workload_key

SCALED_OBJECTS_API = f"/apis/{SCALED_OBJECT_GROUP}/{SCALED_OBJECT_VERSION}"
# Where the operator's bounds live on a ScaledObject, in the order (min, max).
BOUND_PATHS = ("/spec/minReplicaCount", "/spec/maxReplicaCount")


@dataclass(frozen=True)
class ScaledObjectView:
    name: str
    min_replicas: int | None  # spec.minReplicaCount; None: absent (KEDA's default applies)
    max_replicas: int | None  # spec.maxReplicaCount; None: absent
    target: str | None = None  # the name its scaleTargetRef gives, when it is a workload of `target_kind`
    target_kind: str = "Deployment"
    target_api_version: str = "apps/v1"
    hpa_name: str = ""  # the HPA KEDA owns for it: never touched by the operator
    paused: bool = False  # annotated autoscaling.keda.sh/paused-replicas (or paused: "true"): left alone
    created: str = ""
    kind: str = SCALED_OBJECT_KIND

    @property
    def level(self) -> int:
        """The minimum KEDA holds the workload at."""
        return min_replica_level(self.min_replicas)

    @property
    def target_key(self) -> str | None:
        """The key (planning.workload_key) of the workload its scaleTargetRef names."""
        if self.target is None:
            return None
        return workload_key(self.target_api_version, self.target_kind, self.target)

    def scales(self, key: str) -> bool:
        """Whether its scaleTargetRef is the workload of that key."""
        return self.target_key == key


def scaled_object_view(body: Mapping[str, Any]) -> ScaledObjectView:
    """A keda.sh/v1alpha1 ScaledObject as the API serves it."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    name = meta.get("name", "")
    hpa_config = (spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}
    return ScaledObjectView(
        name=name,
        min_replicas=_count(spec.get("minReplicaCount")),
        max_replicas=_count(spec.get("maxReplicaCount")),
        target=ref.get("name") or None,
        target_kind=ref.get("kind") or "Deployment",
        target_api_version=ref.get("apiVersion") or "apps/v1",
        hpa_name=hpa_config.get("name") or f"keda-hpa-{name}",
        paused=paused_by(meta.get("annotations") or {}) is not None,
        created=str(meta.get("creationTimestamp", "")),
    )


def scaled_object_path(namespace: str, name: str | None = None) -> str:
    """The namespace's ScaledObjects, or (`name`) one of them."""
    path = f"{SCALED_OBJECTS_API}/namespaces/{namespace}/{SCALED_OBJECT_PLURAL}"
    return path if name is None else f"{path}/{name}"


def bounds_operations(
    read: tuple[int | None, int | None], bounds: tuple[int | None, int | None]
) -> list[dict[str, Any]]:
    """JSON Patch operations that set a ScaledObject's bounds from `read` to `bounds` (None: the field absent,
    or removed), guarded by the bounds read: a `test` against null passes only while the field is absent.
    Nothing else of it is written."""
    operations: list[dict[str, Any]] = []
    for path, before, after in zip(BOUND_PATHS, read, bounds, strict=True):
        operations.append({"op": "test", "path": path, "value": before})
        if after is not None:
            operations.append({"op": "add", "path": path, "value": after})
        elif before is not None:
            operations.append({"op": "remove", "path": path})
    return operations


def serves_scaled_objects(discovery: Mapping[str, Any]) -> bool:
    """Whether a discovery document of keda.sh/v1alpha1 lists the scaledobjects resource."""
    return any(resource.get("name") == SCALED_OBJECT_PLURAL for resource in discovery.get("resources") or ())


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
