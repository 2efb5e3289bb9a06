"""The annotations contract on a target: its baseline and the claims of the events holding it.

The target gets `max(baseline, claims)`; when the last claim goes the baseline is restored exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BASELINE_ANNOTATION = "autoscaling.campaigns.dev/baseline"
CLAIMS_ANNOTATION = "autoscaling.campaigns.dev/claims"


@dataclass(frozen=True)
class Baseline:
    replicas: int
    hpa_name: str | None = None
    hpa_min_replicas: int | None = None
    hpa_max_replicas: int | None = None


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


def dump_claims(claims: Mapping[str, int]) -> str:
    return json.dumps(dict(claims), sort_keys=True, separators=(",", ":"))


def parse_baseline(text: str) -> Baseline:
    """`{"replicas": 4}` or `{"hpa": "checkout", "minReplicas": 2, "maxReplicas": 10, "replicas": 2}`.

    Keys this version does not know are ignored, so that a newer writer does not break an older reader.
    """
    document = _load_object(text, BASELINE_ANNOTATION)
    if "replicas" not in document:
        raise ValueError(f"annotation {BASELINE_ANNOTATION}: missing 'replicas' in {text!r}")
    replicas = _replicas(document["replicas"], BASELINE_ANNOTATION, "replicas")
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


def dump_baseline(baseline: Baseline) -> str:
    if baseline.hpa_name is None:
        return json.dumps({"replicas": baseline.replicas})
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


def hpa_bounds(baseline: Baseline, claims: Mapping[str, int]) -> tuple[int, int]:
    """`(minReplicas, maxReplicas)` for the HPA: the baseline bounds raised to the highest claim."""
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
