"""The namespace opt-in (`--namespace-selector`): the operator acts only in namespaces whose labels match.

A watch on Namespaces keeps the set of selected ones. The workload cache lists and watches the Deployments and
HPAs of the selected namespaces only, one namespace at a time: a namespace that gains the label is listed
before it counts as selected, one that loses it is no longer watched and its objects are forgotten. Kopf's
handlers of CampaignEvents carry a filter that asks the gate, so an event in another namespace gets no
finalizer, no daemon and no pass, and none of its targets is read or touched. When a namespace becomes
selected, its events are annotated once, which makes Kopf evaluate the filter again: they are handled from
then on, within moments rather than a resync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from campaign_autoscaler.adapters.informer import WorkloadCache
from campaign_autoscaler.adapters.namespaces import selected_namespaces, touch_campaign_events

from .runtime import Runtime

log = logging.getLogger("campaign_autoscaler.handlers")

# How long a namespace that just got the label waits for the first listing of its Deployments and HPAs before
# it is selected anyway (the listing goes on, retried; its events see their targets once it is in).
LISTING_WAIT_SECONDS = 30.0


class NamespaceGate:
    """Which namespaces match the selector, as the Namespace watch last saw them (every one without it)."""

    def __init__(self, selector: Mapping[str, str] | None) -> None:
        self.selector = dict(selector) if selector else None
        self.selected: set[str] = set()

    def allows(self, namespace: str | None) -> bool:
        return self.selector is None or namespace in self.selected

    def matches(self, labels: Mapping[str, str] | None, exists: bool = True) -> bool:
        """Whether a namespace with these labels is selected."""
        assert self.selector is not None
        return exists and all((labels or {}).get(key) == value for key, value in self.selector.items())


async def follow_namespace(
    gate: NamespaceGate,
    workloads: WorkloadCache,
    namespace: str,
    labels: Mapping[str, str] | None,
    exists: bool,
) -> bool:
    """Bring the gate and the workload cache in line with a namespace as the Namespace watch sees it; True
    when it has just become selected. A namespace is listed before it counts as selected, so that its events
    never see their targets missing; it is unselected before it is forgotten, for the same reason."""
    if not gate.matches(labels, exists):
        gate.selected.discard(namespace)
        workloads.stop_namespace(namespace)
        return False
    if namespace in gate.selected:
        return False
    if workloads.start_namespace(namespace):
        try:
            await asyncio.wait_for(workloads.wait_listed(namespace), LISTING_WAIT_SECONDS)
        except TimeoutError:
            log.warning(
                "Namespace %s: its Deployments and HPAs are not listed after %.0f s; selected anyway",
                namespace,
                LISTING_WAIT_SECONDS,
            )
    gate.selected.add(namespace)
    return True


async def start_gate(memo: kopf.Memo, selector: Mapping[str, str] | None) -> None:
    """The gate, filled before Kopf starts watching CampaignEvents (startup handlers run first)."""
    gate = NamespaceGate(selector)
    if gate.selector is not None:
        runtime: Runtime = memo["runtime"]
        gate.selected = await asyncio.to_thread(selected_namespaces, runtime.api_client, gate.selector)
        log.info(
            "Acting in the namespaces labelled %s: %s", gate.selector, sorted(gate.selected) or "none yet"
        )
    memo["namespace_gate"] = gate


def in_selected_namespace(namespace: str | None, memo: kopf.Memo, **_: Any) -> bool:
    """Kopf's `when` filter of every CampaignEvent handler."""
    gate: NamespaceGate | None = memo.get("namespace_gate")
    return gate is not None and gate.allows(namespace)


async def on_namespace(
    type: str | None, name: str, labels: Mapping[str, str], memo: kopf.Memo, **_: Any
) -> None:
    gate: NamespaceGate = memo["namespace_gate"]
    if not await follow_namespace(gate, memo["workloads"], name, labels, exists=type != "DELETED"):
        return
    runtime: Runtime = memo["runtime"]
    count = await asyncio.to_thread(touch_campaign_events, runtime.api_client, name, runtime.clock())
    log.info("Selected namespace %s: handling its %d CampaignEvent(s)", name, count)
