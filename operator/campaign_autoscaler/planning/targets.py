"""Which workloads an event's targets take, and the replicas each is planned at, step by step.

A workload is named by its key: its name for an apps/v1 Deployment (as targets were before they had
kinds), `<Kind>.<group>/<name>` for any other kind (`StatefulSet.apps/db`, `Rollout.argoproj.io/web`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .errors import SpecError
from .floors import Floor
from .spec import DEFAULT_KIND, CampaignSpec, TargetSpec
from .timeline import Transition, ramp_replicas, transitions
from .windows import Window


def api_group(api_version: str) -> str:
    """The API group of an apiVersion: `apps` of apps/v1, "" (core) of v1."""
    return api_version.rpartition("/")[0]


def workload_key(api_version: str, kind: str, name: str) -> str:
    """The key a workload goes by in snapshots, memories and claims' bookkeeping (see the module)."""
    group = api_group(api_version)
    if kind == DEFAULT_KIND and group == "apps":
        return name
    return f"{kind}.{group}/{name}" if group else f"{kind}/{name}"


def split_key(key: str) -> tuple[str, str, str]:
    """`(kind, group, name)` of a workload key (the inverse of `workload_key`)."""
    if "/" not in key:
        return DEFAULT_KIND, "apps", key
    head, _, name = key.rpartition("/")
    kind, _, group = head.partition(".")
    return kind, group, name


def target_key(target: TargetSpec, name: str) -> str:
    return workload_key(target.api_version, target.kind, name)


def check_target_kinds(targets: Sequence[TargetSpec], problem: Callable[[TargetSpec], str | None]) -> None:
    """SpecError naming `spec.targets[i].kind` for the first target whose kind `problem` finds fault with
    (unknown to the API server, without a /scale subresource, not watched, a selector over several kinds)."""
    for target in targets:
        found = problem(target)
        if found is not None:
            raise SpecError(target.field("kind"), found)


def resolve_targets(
    targets: Sequence[TargetSpec], selected: Callable[[TargetSpec], Iterable[str]]
) -> list[tuple[TargetSpec, str]]:
    """Each workload the targets take, by key, once: the first target entry that names or selects it wins.

    `selected(target)` lists the keys of the workloads a selector target matches, in the order they should
    appear.
    """
    seen: set[str] = set()
    resolved: list[tuple[TargetSpec, str]] = []
    for target in targets:
        names = [target_key(target, target.name)] if target.name is not None else selected(target)
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
