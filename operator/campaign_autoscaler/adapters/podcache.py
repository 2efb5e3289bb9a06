"""The Pods that are not Ready, of the Deployments in namespaces where a claim is held, kept current by LIST +
WATCH: what a pass reads to say why capacity is missing, without asking the API server.

One watch per namespace that has a claimed Deployment (the set follows the workload cache: a namespace is
watched from the first claim in it and forgotten after the last one goes), never a GET per pass. Each Pod is
turned into a `PodState` the moment it arrives and its JSON dropped; only the Pods of Deployments that are
not Ready are kept (a Ready Pod needs no explanation), so in a steady cluster the cache is nearly empty. A
Pod belongs to the Deployment whose ReplicaSet owns it (the ReplicaSet is named after the Deployment and the
Pod's `pod-template-hash`), so no ReplicaSet needs to be read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import aiohttp

from campaign_autoscaler.adapters.informer import (
    BACKOFF_SECONDS,
    ExpiredError,
    WatchError,
    list_all,
    watch_events,
)
from campaign_autoscaler.planning.capacity import PodState

log = logging.getLogger(__name__)

FOLLOW_SECONDS = 1.0  # how often the set of watched namespaces is brought in line with the claims
TEMPLATE_HASH_LABEL = "pod-template-hash"

# Pods by name, of each Deployment by name.
DeploymentPods = dict[str, dict[str, PodState]]


def owning_deployment(body: Mapping[str, Any]) -> str | None:
    """The Deployment whose ReplicaSet controls this Pod, if one does."""
    meta = body.get("metadata") or {}
    template_hash = (meta.get("labels") or {}).get(TEMPLATE_HASH_LABEL)
    if not template_hash:
        return None
    for owner in meta.get("ownerReferences") or ():
        name = owner.get("name", "")
        if (
            owner.get("kind") == "ReplicaSet"
            and owner.get("controller")
            and name.endswith(f"-{template_hash}")
        ):
            return str(name[: -len(template_hash) - 1])
    return None


def pod_state(body: Mapping[str, Any]) -> PodState | None:
    """A Pod that is neither Ready nor on its way out, as the judgement reads it; None for the others."""
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or ()}
    ready = (conditions.get("Ready") or {}).get("status") == "True"
    if ready or meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
        return None
    scheduled = conditions.get("PodScheduled") or {}
    unschedulable = (
        str(scheduled.get("message") or "Unschedulable")
        if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"
        else None
    )
    waiting = tuple(
        (str(state["waiting"].get("reason") or ""), str(state["waiting"].get("message") or ""))
        for container in (
            *(status.get("initContainerStatuses") or ()),
            *(status.get("containerStatuses") or ()),
        )
        if (state := container.get("state") or {}).get("waiting")
    )
    return PodState(
        name=str(meta.get("name", "")),
        bound=bool(spec.get("nodeName")),
        unschedulable=unschedulable,
        waiting=waiting,
    )


class PodCache:
    """Run `run()` as a task in the event loop that reads `pods()`. `claimed_namespaces` says, when asked,
    which namespaces hold a claim now (read from the workload cache, in the same loop). `changed(namespace,
    deployment)` is called, in the loop, when the watch shows a not-Ready Pod of a Deployment appear, change
    (e.g. found unschedulable) or go: the events that claim it report why capacity is missing without polling.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        server: str,
        claimed_namespaces: Callable[[], Iterable[str]],
        headers: Callable[[], Mapping[str, str]] = dict,
        changed: Callable[[str, str], None] | None = None,
    ) -> None:
        self._session = session
        self._changed = changed
        self._server = server.rstrip("/")
        self._claimed = claimed_namespaces
        self._headers = headers
        self._pods: dict[str, DeploymentPods] = {}
        self._listed: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.lists = 0  # LIST requests made, pages included

    def pods(self, namespace: str) -> Mapping[str, tuple[PodState, ...]] | None:
        """The not-Ready Pods of each Deployment of the namespace; None until the namespace is listed."""
        if namespace not in self._listed:
            return None
        return {name: tuple(pods.values()) for name, pods in self._pods.get(namespace, {}).items() if pods}

    def watched(self) -> list[str]:
        return sorted(self._tasks)

    async def run(self) -> None:
        """Follow the claimed namespaces until cancelled."""
        try:
            while True:
                self.follow()
                await asyncio.sleep(FOLLOW_SECONDS)
        finally:
            tasks = list(self._tasks.values())
            self._tasks.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def follow(self) -> None:
        """Start watching namespaces that gained a claim; stop and forget those that lost every claim."""
        wanted = set(self._claimed())
        for namespace in wanted - set(self._tasks):
            self._tasks[namespace] = asyncio.create_task(
                self._sync(namespace), name=f"watch Pods {namespace}"
            )
            log.info("Watching the Pods of namespace %s (a Deployment there is claimed)", namespace)
        for namespace in set(self._tasks) - wanted:
            self._tasks.pop(namespace).cancel()
            self._pods.pop(namespace, None)
            self._listed.discard(namespace)

    async def _sync(self, namespace: str) -> None:
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    version = await self._list(namespace)
                async for seen in self._watch(namespace, version):
                    version, failures = seen, 0
            except ExpiredError:
                version = None
            except (aiohttp.ClientError, TimeoutError, WatchError, ValueError) as err:
                delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
                failures += 1
                log.warning("Watching Pods in %s failed (%s); again in %.0f s", namespace, err, delay)
                await asyncio.sleep(delay)

    def _url(self, namespace: str) -> str:
        return f"{self._server}/api/v1/namespaces/{namespace}/pods"

    async def _list(self, namespace: str) -> str:
        pods: DeploymentPods = {}
        version, pages = await list_all(
            self._session, self._url(namespace), self._headers, "Pods", lambda item: self._keep(pods, item)
        )
        self.lists += pages
        self._pods[namespace] = pods
        self._listed.add(namespace)
        return version

    @staticmethod
    def _keep(pods: DeploymentPods, item: Mapping[str, Any]) -> str | None:
        """Keep (or drop) one Pod as its latest state says; the Deployment whose not-Ready Pods it changed."""
        deployment = owning_deployment(item)
        if deployment is None:
            return None
        name = str((item.get("metadata") or {}).get("name", ""))
        state = pod_state(item)
        if state is None:
            before = pods.get(deployment, {}).pop(name, None)
        else:
            before = pods.setdefault(deployment, {}).get(name)
            pods[deployment][name] = state
        return deployment if before != state else None

    async def _watch(self, namespace: str, version: str) -> AsyncIterator[str]:
        """Apply every change from `version` on; yields the version after each one, until the server ends."""
        url = self._url(namespace)
        async for kind, obj in watch_events(self._session, url, version, self._headers, "Pods"):
            pods = self._pods.setdefault(namespace, {})
            changed = None
            if kind == "DELETED":
                deployment = owning_deployment(obj)
                name = str((obj.get("metadata") or {}).get("name", ""))
                if deployment is not None and pods.get(deployment, {}).pop(name, None) is not None:
                    changed = deployment
            elif kind in ("ADDED", "MODIFIED"):
                changed = self._keep(pods, obj)
            if changed is not None and self._changed is not None:
                self._changed(namespace, changed)
            yield str((obj.get("metadata") or {}).get("resourceVersion") or version)
