"""The namespace gate of `--namespace-selector` and the workload cache following it: a namespace is watched
only while it carries the label, and counts as selected only once its Deployments and HPAs are listed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from campaign_autoscaler.adapters.informer import Store, WorkloadCache
from campaign_autoscaler.handlers.namespaces import NamespaceGate, follow_namespace


def test_the_namespace_gate():
    everything = NamespaceGate(None)
    assert everything.allows("anything")
    gate = NamespaceGate({"campaigns.dev/enabled": "true"})
    assert not gate.allows("shop")
    assert gate.matches({"campaigns.dev/enabled": "true", "x": "y"})
    assert not gate.matches({"campaigns.dev/enabled": "false"})
    assert not gate.matches({"campaigns.dev/enabled": "true"}, exists=False)


class ListingCache(WorkloadCache):
    """The real per-namespace bookkeeping; a listing answers only once `release` is set."""

    def __init__(self) -> None:
        super().__init__(session=None, server="https://x.invalid", namespaces=None, selected=set())  # type: ignore[arg-type]
        self.release = asyncio.Event()

    async def _discover_keda(self) -> bool | None:
        return False  # no KEDA in this cluster

    async def _list(self, store: Store[Any], scope: str | None) -> str:
        await self.release.wait()
        return "1"

    async def _watch(self, store: Store[Any], scope: str | None, version: str) -> AsyncIterator[str]:
        await asyncio.Event().wait()
        yield version


@pytest.mark.asyncio
async def test_a_namespace_is_selected_only_once_its_workloads_are_listed_and_forgotten_when_unlabelled():
    gate = NamespaceGate({"campaigns.dev/enabled": "true"})
    cache = ListingCache()
    task = asyncio.create_task(cache.run())
    labelled = {"campaigns.dev/enabled": "true"}
    following = asyncio.create_task(follow_namespace(gate, cache, "shop", labelled, exists=True))
    for _ in range(10):
        await asyncio.sleep(0)
    assert cache.watched() == ["shop"] and not gate.allows("shop")  # listing: not selected yet
    cache.release.set()
    assert await following is True
    assert gate.allows("shop")
    assert (
        await follow_namespace(gate, cache, "shop", {**labelled, "x": "y"}, exists=True) is False
    )  # already
    assert await follow_namespace(gate, cache, "payments", {}, exists=True) is False
    assert cache.watched() == ["shop"]  # a namespace without the label is never watched
    assert await follow_namespace(gate, cache, "shop", {"campaigns.dev/enabled": "no"}, exists=True) is False
    assert not gate.allows("shop") and cache.watched() == []
    assert await follow_namespace(gate, cache, "shop", labelled, exists=True) is True
    assert await follow_namespace(gate, cache, "shop", labelled, exists=False) is False  # deleted
    assert not gate.allows("shop") and cache.watched() == []
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
