"""Which Deployments an event's targets take, and the replicas each is planned at, step by step."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .floors import Floor
from .spec import CampaignSpec, TargetSpec
from .timeline import Transition, ramp_replicas, transitions
from .windows import Window


def resolve_targets(
    targets: Sequence[TargetSpec], selected: Callable[[TargetSpec], Iterable[str]]
) -> list[tuple[TargetSpec, str]]:
    """Each Deployment the targets take, once: the first target entry that names or selects it wins.

    `selected(target)` lists the Deployments a selector target matches, in the order they should appear.
    """
    seen: set[str] = set()
    resolved: list[tuple[TargetSpec, str]] = []
    for target in targets:
        names = [target.name] if target.name is not None else selected(target)
        for name in names:
            if name not in seen:
                seen.add(name)
                resolved.append((target, name))
    return resolved


@dataclass(frozen=True)
class PlannedStep:
    """One transition of a window and the replicas it gives each workload (by label, in the plan's order)."""

    transition: Transition
    replicas: Mapping[str, int]


def planned_steps(
    spec: CampaignSpec, window: Window, baselines: Mapping[str, int], floors: Mapping[str, Floor]
) -> tuple[PlannedStep, ...]:
    """Every transition of `window` with each workload's planned replicas (its live metric aside)."""
    return tuple(
        PlannedStep(
            transition,
            {
                label: ramp_replicas(baseline, floors[label].replicas, transition.fraction)
                for label, baseline in baselines.items()
            },
        )
        for transition in transitions(spec, window)
    )
