"""Target kinds before a pass: find each (apiVersion, kind) an event names through API discovery, start
watching the kinds it can scale, and say (for the pass) which targets' kinds are at fault.

Discovery and the first listing of a newly watched kind happen here, in the event loop before a pass, never
inside one: a pass only reads what they found.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from campaign_autoscaler.adapters.informer import WorkloadCache
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.adapters.workloads import (
    STATEFULSETS,
    KindDirectory,
    WorkloadKind,
    kind_problem,
)
from campaign_autoscaler.planning import TargetSpec
from campaign_autoscaler.planning.spec import DEFAULT_API_VERSION, DEFAULT_KIND

from .context import log
from .runtime import PASS_ERRORS, Runtime

# How long a pass waits for the first listing of a kind it just started watching; after that it goes on
# with what is known (a target not listed yet is reported missing, and found by a later pass).
FIRST_LISTING_SECONDS = 10.0
KindMap = Mapping[tuple[str, str], WorkloadKind | None]


def named_kinds(raw_spec: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Every (apiVersion, kind) the raw spec's targets name (the spec is validated later, by the pass);
    StatefulSets too when a selector names no kind: whether it matches several kinds is checked on them."""
    targets = raw_spec.get("targets")
    found: set[tuple[str, str]] = set()
    for raw in targets if isinstance(targets, list) else ():
        if not isinstance(raw, Mapping):
            continue
        api_version, kind = raw.get("apiVersion", DEFAULT_API_VERSION), raw.get("kind", DEFAULT_KIND)
        if isinstance(api_version, str) and isinstance(kind, str):
            found.add((api_version, kind))
        if "selector" in raw and "kind" not in raw:
            found.add((STATEFULSETS.api_version, STATEFULSETS.kind))
    return found


def lookup_kinds(directory: KindDirectory, named: set[tuple[str, str]], now: Any) -> KindMap:
    """Each named kind as the API server serves it (may ask it: run in a worker thread)."""
    return {(api_version, kind): directory.lookup(api_version, kind, now) for api_version, kind in named}


async def find_kinds(directory: KindDirectory, named: set[tuple[str, str]], now: Any) -> KindMap:
    """`lookup_kinds`, in a worker thread only when a kind is not known yet."""
    known = {(api_version, kind): directory.known(api_version, kind) for api_version, kind in named}
    if all(found is not None for found in known.values()):
        return known
    return await asyncio.to_thread(lookup_kinds, directory, named, now)


async def watch_kinds(workloads: WorkloadCache, kinds: KindMap) -> bool:
    """Watch every kind found that can be scaled; wait (a while) for the first listings of new ones.
    Whether a kind was new."""
    new = [
        kind
        for (api_version, name), kind in kinds.items()
        if kind is not None and kind_problem(kind, api_version, name) is None and workloads.watch_kind(kind)
    ]
    for kind in new:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(workloads.wait_kind_listed(kind), FIRST_LISTING_SECONDS)
            continue
        log.warning("The first listing of %s did not come in %.0f s", kind.resource, FIRST_LISTING_SECONDS)
    return bool(new)


# Not workloads: watched (HPAs) or handled (ScaledObjects) as the owners of a workload's replicas.
OWNER_RESOURCES = ("horizontalpodautoscalers.autoscaling", "scaledobjects.keda.sh")


async def watch_target_kinds(runtime: Runtime, workloads: WorkloadCache) -> None:
    """Watch the scalable kinds of `--target-kinds` from the start (those the API server serves now)."""
    for resource in runtime.config.target_kinds:
        if resource in OWNER_RESOURCES:
            continue
        try:
            kind = await asyncio.to_thread(runtime.kube.kinds.resource, resource, runtime.clock())
        except PASS_ERRORS as err:
            log.warning("Failed to find target kind %s: %s", resource, err)
            continue
        if kind is None or kind_problem(kind, kind.api_version, kind.kind) is not None:
            log.info("Not watching target kind %s: not served, or without /scale", resource)
            continue
        workloads.watch_kind(kind)


def kind_problem_in(kinds: KindMap, snapshot: NamespaceSnapshot, target: TargetSpec) -> str | None:
    """What is wrong with the target's kind (None: nothing): not served, no /scale, or a selector that
    names no kind and matches workloads of several kinds."""
    if (target.api_version, target.kind) != (DEFAULT_API_VERSION, DEFAULT_KIND):
        if (target.api_version, target.kind) in kinds:
            found = kinds[(target.api_version, target.kind)]
        else:  # not looked up (a caller without discovery): only the apps/v1 kinds are known
            found = STATEFULSETS if (target.api_version, target.kind) == ("apps/v1", "StatefulSet") else None
        problem = kind_problem(found, target.api_version, target.kind)
        if problem is not None:
            return problem
    if target.by_name or target.kind_given:
        return None
    kinds_matched = sorted({v.kind for v in snapshot.matching(target.matches, None)})
    if len(kinds_matched) > 1:
        return (
            f"the selector matches workloads of several kinds ({', '.join(kinds_matched)}): "
            "set kind (and apiVersion) to say which"
        )
    return None
