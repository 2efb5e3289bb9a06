"""KEDA ScaledObjects as a way a target is scaled: the bounds the operator owns on one, and their defaults.

KEDA derives an HPA from each ScaledObject and rewrites it from the ScaledObject on any change, so a floor is
held by raising the ScaledObject's `spec.minReplicaCount` (and `spec.maxReplicaCount` when it is below the
floor), never the HPA's. A bound the ScaledObject leaves out (KEDA's default applies) is recorded as None and
restored absent.
"""

from __future__ import annotations

from collections.abc import Mapping

SCALED_OBJECT_KIND = "ScaledObject"
SCALED_OBJECT_GROUP = "keda.sh"
SCALED_OBJECT_VERSION = "v1alpha1"
SCALED_OBJECT_PLURAL = "scaledobjects"
# Set by a person who pauses autoscaling on purpose: the operator leaves such a ScaledObject alone. KEDA
# holds the workload at paused-replicas; since KEDA 2.13 `paused: "true"` pauses it where it stands.
PAUSED_ANNOTATION = "autoscaling.keda.sh/paused-replicas"
PAUSED_FLAG_ANNOTATION = "autoscaling.keda.sh/paused"


def paused_by(annotations: Mapping[str, str]) -> str | None:
    """The annotation that pauses a ScaledObject, if one does."""
    if PAUSED_ANNOTATION in annotations:
        return PAUSED_ANNOTATION
    if str(annotations.get(PAUSED_FLAG_ANNOTATION, "")).strip().lower() == "true":
        return PAUSED_FLAG_ANNOTATION
    return None


# KEDA's defaults for the bounds a ScaledObject leaves out.
DEFAULT_MIN_REPLICA_COUNT = 0
DEFAULT_MAX_REPLICA_COUNT = 100


def min_replica_level(min_replica_count: int | None) -> int:
    """The minimum KEDA holds: `spec.minReplicaCount`, or its default when absent."""
    return DEFAULT_MIN_REPLICA_COUNT if min_replica_count is None else min_replica_count


def max_replica_level(max_replica_count: int | None) -> int:
    """The maximum KEDA holds: `spec.maxReplicaCount`, or its default when absent."""
    return DEFAULT_MAX_REPLICA_COUNT if max_replica_count is None else max_replica_count


def scaled_object_bounds(
    baseline_min: int | None, baseline_max: int | None, highest_claim: int | None
) -> tuple[int | None, int | None]:
    """`(minReplicaCount, maxReplicaCount)` for the ScaledObject (None: absent): each baseline bound raised
    to the highest claim where it holds less, else the baseline bound exactly as it was (absent stays absent).
    `highest_claim` None (no claim left): the baseline bounds."""
    if highest_claim is None:
        return baseline_min, baseline_max
    wanted_min = highest_claim if highest_claim > min_replica_level(baseline_min) else baseline_min
    wanted_max = highest_claim if highest_claim > max_replica_level(baseline_max) else baseline_max
    return wanted_min, wanted_max
