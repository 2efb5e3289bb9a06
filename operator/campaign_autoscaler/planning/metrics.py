"""Metric math for the live adjustment and the forecast."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from .numbers import exact
from .spec import MAX_REPLICAS

# Float noise is ~1e-16 relative: a quotient further than this from every integer has the float's ceil.
_CLEAR_OF_INTEGERS = 1e-9


def _plain_ceil(numerator: float, target_per_replica: float) -> int | None:
    """`ceil(numerator / targetPerReplica)` from floats when no integer is within float noise of the quotient
    (the exact decimal arithmetic gives the same); None when it must be worked out exactly."""
    if not all(type(number) in (int, float) for number in (numerator, target_per_replica)):
        return None
    if not (math.isfinite(numerator) and math.isfinite(target_per_replica)) or target_per_replica <= 0:
        return None
    quotient = numerator / target_per_replica
    if not 0 < quotient < MAX_REPLICAS or abs(quotient - round(quotient)) <= _CLEAR_OF_INTEGERS * quotient:
        return None
    return math.ceil(quotient)


def replicas_for_metric(value: float, target_per_replica: float) -> int:
    """`ceil(value / targetPerReplica)`, exactly (160 / 80 is 2); a negative value wants 0, and no value
    wants more than the API's int32 replicas."""
    quick = _plain_ceil(value, target_per_replica)
    if quick is not None:
        return quick
    if exact(target_per_replica) <= 0:
        raise ValueError(f"targetPerReplica must be > 0, got {target_per_replica!r}")
    measured = exact(value)
    if measured <= 0:
        return 0
    return min(MAX_REPLICAS, math.ceil(measured / exact(target_per_replica)))


def forecast_replicas(peak: float, growth: float, target_per_replica: float) -> int:
    """`ceil(peak x growth / targetPerReplica)`: the floor the previous campaign's peak asks for."""
    if type(growth) in (int, float) and type(peak) in (int, float) and math.isfinite(growth) and growth > 0:
        quick = _plain_ceil(peak * growth, target_per_replica)
        if quick is not None:
            return quick
    if exact(growth) <= 0:
        raise ValueError(f"growth must be > 0, got {growth!r}")
    return replicas_for_metric(exact(peak) * exact(growth), target_per_replica)


@dataclass(frozen=True)
class Stabilizer:
    """Recent `(at, wanted)` samples; going up is immediate, going down waits for the window.

    Like the HPA's scale-down stabilization: the stabilized value is the highest wanted over the window.
    """

    samples: tuple[tuple[datetime, int], ...] = ()

    def record(self, at: datetime, wanted: int, window: timedelta) -> Stabilizer:
        """A new stabilizer with this sample added and the samples older than `window` dropped."""
        recent = tuple(sample for sample in self.samples if sample[0] >= at - window)
        return Stabilizer(samples=(*recent, (at, wanted)))

    def stabilized(self, now: datetime, window: timedelta) -> int | None:
        """The highest wanted value sampled in `[now - window, now]`; None without samples there."""
        in_window = [wanted for at, wanted in self.samples if now - window <= at <= now]
        return max(in_window, default=None)
