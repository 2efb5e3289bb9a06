"""The annotations contract on a target: its baseline and the claims of the events holding it, and the one
decision of what a claim (or a release) writes to the target.

The target gets `max(baseline, claims)`; when the last claim goes the baseline is restored exactly.
Each claim's event is recorded by uid in a third annotation, so that a claim of a deleted event is never
taken for one of a new event of the same name; a claim without it (written before it existed) still reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .scaledobject import SCALED_OBJECT_KIND, min_replica_level, scaled_object_bounds

BASELINE_ANNOTATION = "autoscaling.campaigns.dev/baseline"
CLAIMS_ANNOTATION = "autoscaling.campaigns.dev/claims"
OWNERS_ANNOTATION = "autoscaling.campaigns.dev/claim-uids"
CAMPAIGN_ANNOTATIONS = (BASELINE_ANNOTATION, CLAIMS_ANNOTATION, OWNERS_ANNOTATION)
HPA_KIND = "HorizontalPodAutoscaler"


@dataclass(frozen=True)
class Baseline:
    """What a target returns to. `hpa_name` names the autoscaler it is scaled through (of `scaler_kind`: an
    HPA, or a KEDA ScaledObject), with its bounds; a ScaledObject's bound None was absent and stays absent."""

    replicas: int
    hpa_name: str | None = None
    hpa_min_replicas: int | None = None
    hpa_max_replicas: int | None = None
    scaler_kind: str = HPA_KIND


def claim_key(namespace: str, name: str) -> str:
    """The key an event's claim is stored under: `shop/sale-9-9`."""
    return f"{namespace}/{name}"


def parse_claims(text: str | None) -> dict[str, int]:
    """`{"shop/sale-9-9": 10}` from the annotation; None or "" is no claims."""
    if not text:
        return {}
    document = _load_object(text, CLAIMS_ANNOTATION)
    claims = {}
    for key, replicas in document.items():
        claims[key] = _replicas(replicas, CLAIMS_ANNOTATION, key)
    return claims


def dump_claims(claims: Mapping[str, int] | Mapping[str, str]) -> str:
    """The claims (or owners) annotation's text: compact JSON, keys sorted."""
    return json.dumps(dict(claims), sort_keys=True, separators=(",", ":"))


def parse_owners(text: str | None) -> dict[str, str]:
    """`{"shop/sale-9-9": "<uid>"}`: which event (by uid) made each claim; None or "" is none known."""
    if not text:
        return {}
    document = _load_object(text, OWNERS_ANNOTATION)
    for key, uid in document.items():
        if not isinstance(uid, str) or not uid:
            raise ValueError(f"annotation {OWNERS_ANNOTATION}: {key!r} must be a uid, got {uid!r}")
    return dict(document)


def parse_baseline(text: str) -> Baseline:
    """`{"replicas": 4}` or `{"hpa": "checkout", "minReplicas": 2, "maxReplicas": 10, "replicas": 2}` or
    `{"scaledObject": "checkout", "minReplicaCount": 2, "maxReplicaCount": null, "replicas": 2}` (null: the
    ScaledObject left the field out).

    Keys this version does not know are ignored, so that a newer writer does not break an older reader.
    """
    document = _load_object(text, BASELINE_ANNOTATION)
    if "replicas" not in document:
        raise ValueError(f"annotation {BASELINE_ANNOTATION}: missing 'replicas' in {text!r}")
    replicas = _replicas(document["replicas"], BASELINE_ANNOTATION, "replicas")
    if "scaledObject" in document:
        return _scaled_object_baseline(document, replicas, text)
    hpa_name = document.get("hpa")
    if hpa_name is None:
        if "minReplicas" in document or "maxReplicas" in document:
            raise ValueError(
                f"annotation {BASELINE_ANNOTATION}: minReplicas/maxReplicas without hpa in {text!r}"
            )
        return Baseline(replicas=replicas)
    if not isinstance(hpa_name, str) or not hpa_name:
        raise ValueError(f"annotation {BASELINE_ANNOTATION}: 'hpa' must be a name, got {hpa_name!r}")
    for key in ("minReplicas", "maxReplicas"):
        if key not in document:
            raise ValueError(f"annotation {BASELINE_ANNOTATION}: missing {key!r} for hpa in {text!r}")
    return Baseline(
        replicas=replicas,
        hpa_name=hpa_name,
        hpa_min_replicas=_replicas(document["minReplicas"], BASELINE_ANNOTATION, "minReplicas"),
        hpa_max_replicas=_replicas(document["maxReplicas"], BASELINE_ANNOTATION, "maxReplicas"),
    )


def _scaled_object_baseline(document: Mapping[str, Any], replicas: int, text: str) -> Baseline:
    name = document["scaledObject"]
    if not isinstance(name, str) or not name:
        raise ValueError(f"annotation {BASELINE_ANNOTATION}: 'scaledObject' must be a name, got {name!r}")
    bounds: list[int | None] = []
    for key in ("minReplicaCount", "maxReplicaCount"):
        if key not in document:
            raise ValueError(
                f"annotation {BASELINE_ANNOTATION}: missing {key!r} for scaledObject in {text!r}"
            )
        value = document[key]
        bounds.append(None if value is None else _replicas(value, BASELINE_ANNOTATION, key))
    return Baseline(replicas, name, bounds[0], bounds[1], SCALED_OBJECT_KIND)


def dump_baseline(baseline: Baseline) -> str:
    if baseline.hpa_name is None:
        return json.dumps({"replicas": baseline.replicas})
    if baseline.scaler_kind == SCALED_OBJECT_KIND:
        return json.dumps(
            {
                "scaledObject": baseline.hpa_name,
                "minReplicaCount": baseline.hpa_min_replicas,
                "maxReplicaCount": baseline.hpa_max_replicas,
                "replicas": baseline.replicas,
            }
        )
    return json.dumps(
        {
            "hpa": baseline.hpa_name,
            "minReplicas": baseline.hpa_min_replicas,
            "maxReplicas": baseline.hpa_max_replicas,
            "replicas": baseline.replicas,
        }
    )


def effective_replicas(baseline: int, claims: Mapping[str, int]) -> int:
    """What the target gets: the highest of its baseline and every claim."""
    return max([baseline, *claims.values()])


def replicas_to_apply(
    current: int, baseline: int, old_claims: Mapping[str, int], new_claims: Mapping[str, int]
) -> int | None:
    """The replicas to write after the claims change from `old_claims` to `new_claims`; None: leave it.

    A floor, not a ceiling: replicas below the claims are raised; replicas above what the operator set
    (an HPA or a person raised them) are left alone; a lowered claim steps down only what the operator set.
    When no claim is left the baseline is restored exactly, whatever the target was scaled to.
    """
    if not new_claims:
        return baseline
    new_effective = effective_replicas(baseline, new_claims)
    old_effective = effective_replicas(baseline, old_claims)
    if current < new_effective:
        return new_effective
    if new_effective < old_effective and current == old_effective:
        return new_effective
    return None


def hpa_bounds(baseline: Baseline, claims: Mapping[str, int]) -> tuple[int | None, int | None]:
    """`(minReplicas, maxReplicas)` for the HPA (`minReplicaCount`, `maxReplicaCount` for a ScaledObject):
    the baseline bounds raised to the highest claim."""
    if baseline.scaler_kind == SCALED_OBJECT_KIND:
        highest = max(claims.values()) if claims else None
        return scaled_object_bounds(baseline.hpa_min_replicas, baseline.hpa_max_replicas, highest)
    if baseline.hpa_min_replicas is None or baseline.hpa_max_replicas is None:
        raise ValueError(f"baseline {baseline} records no HPA bounds")
    if not claims:
        return baseline.hpa_min_replicas, baseline.hpa_max_replicas
    highest_claim = max(claims.values())
    return max(baseline.hpa_min_replicas, highest_claim), max(baseline.hpa_max_replicas, highest_claim)


def _load_object(text: str, annotation: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as error:
        raise ValueError(f"annotation {annotation}: not JSON ({error}): {text!r}") from None
    if not isinstance(document, dict):
        raise ValueError(f"annotation {annotation}: expected a JSON object, got {text!r}")
    return document


def _replicas(value: object, annotation: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"annotation {annotation}: {key!r} must be an integer >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class HpaBounds:
    """The autoscaler a target is scaled through, as read: an HPA, or (`kind`) a KEDA ScaledObject, whose
    bounds may be absent (None) and which a person may have paused (then it is left alone)."""

    name: str
    min_replicas: int | None
    max_replicas: int | None
    kind: str = HPA_KIND
    paused: bool = False

    @property
    def level(self) -> int:
        """The minimum the autoscaler holds the target at."""
        if self.kind == SCALED_OBJECT_KIND:
            return min_replica_level(self.min_replicas)
        return self.min_replicas if self.min_replicas is not None else 1


@dataclass(frozen=True)
class TargetState:
    """A target as read: its replicas, the campaign annotations on it, and the HPA scaling it (if any).

    `hpa` is the HPA the target is scaled through: for a target already claimed, the one its baseline names
    (the way a target is scaled is fixed by its first claim, so that the restore matches it).
    """

    replicas: int
    baseline: Baseline | None = None
    claims: Mapping[str, int] = field(default_factory=dict)
    owners: Mapping[str, str] = field(default_factory=dict)
    hpa: HpaBounds | None = None

    @property
    def claimed(self) -> bool:
        return self.baseline is not None or bool(self.claims) or bool(self.owners)


@dataclass(frozen=True)
class ClaimPlan:
    """What setting one event's claim writes, and what the target holds afterwards."""

    baseline: Baseline
    claims: Mapping[str, int]
    annotations: Mapping[str, str | None] | None  # annotations to write (a None value: remove); None: none
    replicas: int | None  # the Deployment's replicas to write; None: leave them
    # The autoscaler's (min, max) to write (for a ScaledObject a None bound is removed); None: leave them.
    hpa_bounds: tuple[int | None, int | None] | None
    hpa: HpaBounds | None  # the autoscaler (HPA or ScaledObject) the target is scaled through
    replicas_before: int  # the replicas (or the autoscaler's minimum) before
    replicas_after: int  # ... and after the plan is carried out
    effective: int  # the floor the target holds afterwards: max(baseline, every claim)
    paused: bool = False  # scaled through a paused ScaledObject: left alone, nothing written

    @property
    def released(self) -> bool:
        """No claim at all is left: the target is back at its baseline."""
        return not self.claims

    @property
    def writes(self) -> bool:
        return self.annotations is not None or self.replicas is not None or self.hpa_bounds is not None


def plan_claim(state: TargetState, event_key: str, wanted: int | None, owner_uid: str | None) -> ClaimPlan:
    """Set (None: drop) the claim of the event `event_key` (uid `owner_uid`) on the target `state`.

    An event that neither holds nor wants a claim writes nothing while others hold one: the bounds it
    would derive from their claims can undo a release in flight (an HPA is restored first, its annotations
    removed second, and a write in between would raise it again for good). Only a target that no claim holds
    any more but still carries campaign annotations (a release cut short) is finished by anyone.
    A target scaled through a paused ScaledObject was paused on purpose: nothing at all is written.
    """
    plan = _plan(state, event_key, wanted, owner_uid)
    if plan.hpa is not None and plan.hpa.paused:
        return replace(
            plan,
            claims=dict(state.claims),
            annotations=None,
            hpa_bounds=None,
            replicas_after=plan.replicas_before,
            effective=plan.replicas_before,
            paused=True,
        )
    if wanted is None and event_key not in state.claims and state.claims:
        return replace(
            plan, annotations=None, replicas=None, hpa_bounds=None, replicas_after=plan.replicas_before
        )
    return plan


def _plan(state: TargetState, event_key: str, wanted: int | None, owner_uid: str | None) -> ClaimPlan:
    claims = {key: value for key, value in state.claims.items() if key != event_key}
    owners = {key: uid for key, uid in state.owners.items() if key != event_key and key in claims}
    if wanted is not None:
        claims[event_key] = wanted
        if owner_uid:
            owners[event_key] = owner_uid
    baseline = state.baseline or _baseline_now(state)
    annotations = None
    if (claims, owners) != (dict(state.claims), dict(state.owners)) or (state.claimed and not claims):
        annotations = _annotations(baseline, claims, owners)
    scaler = state.hpa
    if scaler is not None and (baseline.hpa_name, baseline.scaler_kind) == (scaler.name, scaler.kind):
        bounds = hpa_bounds(baseline, claims)
        current = (scaler.min_replicas, scaler.max_replicas)
        level_after = replace(scaler, min_replicas=bounds[0]).level
        return ClaimPlan(
            baseline=baseline,
            claims=claims,
            annotations=annotations,
            replicas=None,
            hpa_bounds=bounds if bounds != current else None,
            hpa=scaler,
            replicas_before=scaler.level,
            replicas_after=level_after,
            effective=level_after,
        )
    replicas = replicas_to_apply(state.replicas, baseline.replicas, state.claims, claims)
    if replicas == state.replicas or (not claims and not state.claimed):
        replicas = None  # nothing to move, or never claimed: nothing to restore
    return ClaimPlan(
        baseline=baseline,
        claims=claims,
        annotations=annotations,
        replicas=replicas,
        hpa_bounds=None,
        hpa=None,
        replicas_before=state.replicas,
        replicas_after=state.replicas if replicas is None else replicas,
        effective=effective_replicas(baseline.replicas, claims),
    )


def _baseline_now(state: TargetState) -> Baseline:
    if state.hpa is None:
        return Baseline(replicas=state.replicas)
    return Baseline(
        replicas=state.replicas,
        hpa_name=state.hpa.name,
        hpa_min_replicas=state.hpa.min_replicas,
        hpa_max_replicas=state.hpa.max_replicas,
        scaler_kind=state.hpa.kind,
    )


def _annotations(
    baseline: Baseline, claims: Mapping[str, int], owners: Mapping[str, str]
) -> dict[str, str | None]:
    if not claims:
        return dict.fromkeys(CAMPAIGN_ANNOTATIONS)
    return {
        BASELINE_ANNOTATION: dump_baseline(baseline),
        CLAIMS_ANNOTATION: dump_claims(claims),
        OWNERS_ANNOTATION: dump_claims(owners) if owners else None,
    }
