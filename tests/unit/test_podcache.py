"""The Pod cache: it watches only namespaces with a claim, keeps only the not-Ready Pods of each Deployment,
follows their changes, and forgets a namespace once its last claim goes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from campaign_autoscaler.adapters import podcache
from campaign_autoscaler.adapters.podcache import PodCache
from campaign_autoscaler.planning.capacity import PodState


def pod(
    name: str, deployment: str = "web", *, ready: bool = False, node: str | None = None
) -> dict[str, Any]:
    template_hash = "5d8f7c9b4"
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "resourceVersion": "7",
            "labels": {"pod-template-hash": template_hash},
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": f"{deployment}-{template_hash}", "controller": True}
            ],
        },
        "spec": {"nodeName": node} if node else {},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }
    return body


@pytest.mark.asyncio
async def test_not_ready_pods_of_claimed_namespaces_are_kept_and_followed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    changes: asyncio.Queue[tuple[str, Mapping[str, Any]]] = asyncio.Queue()

    async def list_all(session: Any, url: str, headers: Any, what: str, keep: Any) -> tuple[str, int]:
        assert url == "https://api.invalid/api/v1/namespaces/shop/pods"
        for item in (pod("a"), pod("b", ready=True), pod("c", "api")):
            keep(item)
        return "5", 1

    async def watch_events(session: Any, url: str, version: str, headers: Any, what: str) -> Any:
        assert version == "5"
        while True:
            yield await changes.get()

    monkeypatch.setattr(podcache, "list_all", list_all)
    monkeypatch.setattr(podcache, "watch_events", watch_events)
    claimed = {"shop"}
    woken: list[tuple[str, str]] = []
    cache = PodCache(
        None,  # type: ignore[arg-type]
        "https://api.invalid",
        lambda: claimed,
        changed=lambda namespace, deployment: woken.append((namespace, deployment)),
    )
    assert cache.pods("shop") is None
    cache.follow()
    for _ in range(20):
        await asyncio.sleep(0)
    assert cache.pods("shop") == {"web": (PodState("a"),), "api": (PodState("c"),)}
    assert cache.pods("other") is None  # never asked for: no claim there

    assert woken == []  # the first listing wakes nobody: the passes read it
    await changes.put(("MODIFIED", pod("a", ready=True)))
    await changes.put(("ADDED", pod("d", node="node-1")))
    await changes.put(("MODIFIED", pod("d", node="node-1")))  # nothing the capacity report reads moved
    await changes.put(("DELETED", pod("c", "api")))
    await changes.put(("DELETED", pod("b", ready=True)))  # was Ready: not kept, nothing to report
    for _ in range(20):
        await asyncio.sleep(0)
    assert cache.pods("shop") == {"web": (PodState("d", bound=True),)}
    # The events claiming each Deployment are woken once per change of its not-Ready Pods.
    assert woken == [("shop", "web"), ("shop", "web"), ("shop", "api")]

    claimed.clear()
    cache.follow()
    assert cache.pods("shop") is None and cache.watched() == []
    await asyncio.sleep(0)  # the cancelled watch ends
