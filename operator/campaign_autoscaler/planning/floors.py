"""The floor a target holds during the window, and why."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .numbers import exact, format_number
from .spec import MAX_REPLICAS, TargetSpec


@dataclass(frozen=True)
class Floor:
    replicas: int
    min_replicas: int
    max_replicas: int
    reason: str  # e.g. "floor 10 = ceil(2.5 x baseline 4), clamped to max 8"


def clamp(value: int, low: int, high: int) -> int:
    """`value` within `[low, high]`; `low` wins if the bounds cross."""
    return max(low, min(value, high))


def compute_floor(
    target: TargetSpec,
    baseline: int,
    traffic_multiplier: float,
    max_scale_factor: float,
    forecast_replicas: int | None = None,
) -> Floor:
    """`replicas`, else `ceil(baseline x multiplier)`; raised to the forecast; clamped to min/max.

    The default max is `max(replicas, minReplicas, ceil(baseline x max_scale_factor))`, so it never
    lowers an explicit `replicas` (nor contradicts an explicit `minReplicas`).
    """
    if baseline < 0:
        raise ValueError(f"baseline must be >= 0, got {baseline}")
    replicas, reason = _planned_floor(target, baseline, traffic_multiplier)
    if forecast_replicas is not None and forecast_replicas > replicas:
        replicas, reason = forecast_replicas, f"floor {forecast_replicas} = forecast {forecast_replicas}"
    min_replicas = target.min_replicas or 0
    max_replicas = _max_replicas(target, baseline, max_scale_factor)
    if replicas > max_replicas:
        replicas, reason = max_replicas, f"{reason}, clamped to max {max_replicas}"
    if replicas < min_replicas:
        replicas, reason = min_replicas, f"{reason}, raised to min {min_replicas}"
    return Floor(replicas=replicas, min_replicas=min_replicas, max_replicas=max_replicas, reason=reason)


def _planned_floor(target: TargetSpec, baseline: int, traffic_multiplier: float) -> tuple[int, str]:
    if target.replicas is not None:
        return target.replicas, f"floor {target.replicas} = replicas"
    multiplier = target.multiplier if target.multiplier is not None else traffic_multiplier
    replicas = math.ceil(baseline * exact(multiplier))
    formula = f"ceil({format_number(multiplier)} x baseline {baseline})"
    if replicas > MAX_REPLICAS:
        return MAX_REPLICAS, f"floor {MAX_REPLICAS} = {formula}, capped at the int32 limit"
    return replicas, f"floor {replicas} = {formula}"


def _max_replicas(target: TargetSpec, baseline: int, max_scale_factor: float) -> int:
    if target.max_replicas is not None:
        return target.max_replicas
    # Replicas are an int32 in the API: a default cap beyond it would be a patch the API server refuses.
    scaled_cap = min(MAX_REPLICAS, math.ceil(baseline * exact(max_scale_factor)))
    return max(target.replicas or 0, target.min_replicas or 0, scaled_cap)
