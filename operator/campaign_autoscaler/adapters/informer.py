"""The workloads and HPAs of the watched namespaces, kept current by LIST + WATCH, as small views only;
and their KEDA ScaledObjects while the cluster serves them (asked by discovery every so often).

Deployments and HPAs are watched from the start; any other workload kind (StatefulSets, a kind with /scale)
from the moment a target names it (`watch_kind`), and from then on for as long as the operator runs.

Reconciles read targets from here instead of asking the API server. Each object is turned into its
`DeploymentView` / `HpaView` the moment it arrives and its JSON is dropped, one object at a time: 2,000
Deployments cost about 2 MiB of views, where a per-object framework queue holds every body of a listing at
once (tens of MiB at start-up). Listings are paged; a watch resumes from the last resourceVersion it saw
(bookmarks included), and a listing starts over when the server says that version is gone (410).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiohttp

from campaign_autoscaler.adapters.placeholders import PLACEHOLDER_SELECTOR, PlaceholderView, placeholder_view
from campaign_autoscaler.adapters.scaledobjects import (
    SCALED_OBJECTS_API,
    ScaledObjectView,
    scaled_object_view,
    serves_scaled_objects,
)
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.adapters.views import DeploymentView, HpaView, ScalerView, hpa_view, workload_view
from campaign_autoscaler.adapters.workloads import DEPLOYMENTS as DEPLOYMENT_KIND
from campaign_autoscaler.adapters.workloads import WorkloadKind
from campaign_autoscaler.planning import split_key

log = logging.getLogger(__name__)

PAGE_SIZE = 250
WATCH_SECONDS = 300  # the server ends a watch after this long; it is resumed from the last version seen
BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0)
LINE_LIMIT = 16 * 1024 * 1024  # one watch event; a larger one is a broken stream, not an object
# How often the cluster is asked whether it serves KEDA's ScaledObjects (installed or removed meanwhile).
KEDA_DISCOVERY_SECONDS = 60.0

View = TypeVar("View", DeploymentView, HpaView, ScaledObjectView, PlaceholderView)


class ExpiredError(Exception):
    """The resourceVersion to resume from is gone (410): list again."""


class WatchError(Exception):
    """The API server refused a list or a watch, or sent an ERROR event."""


class ForbiddenError(WatchError):
    """The operator may not list the kind (403): its RBAC does not grant it."""


@dataclass(frozen=True)
class Kind(Generic[View]):
    name: str
    path: str  # e.g. "/apis/apps/v1/{scope}deployments"
    view: Callable[[Mapping[str, Any]], View]
    selector: str | None = None  # only the objects with these labels

    def url(self, namespace: str | None) -> str:
        return self.path.format(scope=f"namespaces/{namespace}/" if namespace else "")


def workload_kind(workload: WorkloadKind) -> Kind[DeploymentView]:
    """The watch of one workload kind: `deployments.apps` at /apis/apps/v1/{scope}deployments."""
    prefix = workload.collection(None).rpartition("/")[0]
    name = (
        f"{workload.kind}s" if workload.native else workload.resource
    )  # "Deployments", "rollouts.argoproj.io"
    return Kind(name, f"{prefix}/{{scope}}{workload.plural}", workload_view(workload))


DEPLOYMENTS: Kind[DeploymentView] = workload_kind(DEPLOYMENT_KIND)
HPAS: Kind[HpaView] = Kind(
    "HorizontalPodAutoscalers", "/apis/autoscaling/v1/{scope}horizontalpodautoscalers", hpa_view
)
SCALED_OBJECTS: Kind[ScaledObjectView] = Kind(
    "ScaledObjects", SCALED_OBJECTS_API + "/{scope}scaledobjects", scaled_object_view
)
# Node headroom's placeholder pods only (by their label), never the namespace's other pods.
PLACEHOLDERS: Kind[PlaceholderView] = Kind(
    "placeholder Pods", "/api/v1/{scope}pods", placeholder_view, PLACEHOLDER_SELECTOR
)


def namespace_filter(patterns: Sequence[str]) -> Callable[[str], bool]:
    """Glob patterns as the operator's --namespace takes them; `!pattern` excludes."""
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]

    def wanted(namespace: str) -> bool:
        if any(fnmatch.fnmatchcase(namespace, p) for p in exclude):
            return False
        return not include or any(fnmatch.fnmatchcase(namespace, p) for p in include)

    return wanted


def is_glob(pattern: str) -> bool:
    return pattern.startswith("!") or any(c in pattern for c in "*?[")


class Store(Generic[View]):
    """One kind's views by namespace and name; written only by its own sync task, in the event loop. Every
    change of a namespace's views moves its `version`, so that a snapshot is made again only when something
    in it changed."""

    def __init__(self, kind: Kind[View]) -> None:
        self.kind = kind
        self.by_namespace: dict[str, dict[str, View]] = {}
        self._changes: dict[str, int] = {}  # per namespace
        self._relisted = 0  # listings of every namespace at once, and clear()

    def version(self, namespace: str) -> tuple[int, int]:
        """Moves whenever the namespace's views change."""
        return self._relisted, self._changes.get(namespace, 0)

    def _changed(self, namespace: str) -> None:
        self._changes[namespace] = self._changes.get(namespace, 0) + 1

    def replace(self, scope: str | None, views: Mapping[str, dict[str, View]]) -> None:
        """A fresh listing of `scope` (None: every namespace) replaces what was known of it."""
        if scope is None:
            self.by_namespace = dict(views)
            self._relisted += 1
        else:
            self.by_namespace[scope] = dict(views.get(scope, {}))
            self._changed(scope)

    def put(self, namespace: str, name: str, view: View) -> View | None:
        """Keep `view`; returns the view it replaced, if any."""
        views = self.by_namespace.setdefault(namespace, {})
        previous = views.get(name)
        views[name] = view
        self._changed(namespace)
        return previous

    def drop(self, namespace: str, name: str) -> None:
        if self.by_namespace.get(namespace, {}).pop(name, None) is not None:
            self._changed(namespace)

    def forget(self, namespace: str) -> None:
        """Every view of the namespace (no longer watched)."""
        self.by_namespace.pop(namespace, None)
        self._changed(namespace)

    def clear(self) -> None:
        self.by_namespace.clear()
        self._relisted += 1

    def views(self, namespace: str) -> list[View]:
        return list(self.by_namespace.get(namespace, {}).values())


class DriftAlarms:
    """Whom to wake when a claimed target changes in a way its claiming events must act on: each event's
    wake-up, by claim key, called with `urgent`. Urgent: the target was pushed below its claims (a `kubectl
    apply` or `helm upgrade` of the application mid-sale), a write is due at once. Not urgent: its Ready
    replicas moved, which the event's capacity report follows (no event polls for readiness). Written and
    rung in the event loop."""

    def __init__(self) -> None:
        self._wakers: dict[str, Callable[[bool], None]] = {}
        self.rung = 0  # claims woken for drift, for tests and benchmarks

    def register(self, key: str, wake: Callable[[bool], None]) -> None:
        self._wakers[key] = wake

    def unregister(self, key: str, wake: Callable[[bool], None]) -> None:
        if self._wakers.get(key) == wake:
            del self._wakers[key]

    def ring(self, keys: Iterable[str], *, urgent: bool = True) -> None:
        for key in keys:
            wake = self._wakers.get(key)
            if wake is not None:
                self.rung += urgent
                wake(urgent)


class WorkloadCache:
    """Deployments and HPAs of the given namespaces (None: every namespace), read through one HTTP session.

    `namespaces` may hold glob patterns (and `!` exclusions); then the whole cluster is watched and filtered.
    With `selected` (the namespaces a `--namespace-selector` matches now), only those of them that
    `namespaces` allows are watched, each on its own, never the cluster: `start_namespace` and
    `stop_namespace` follow the selection as it changes, and a namespace stopped is forgotten.
    Run `run()` as a task in the event loop that reads `snapshot()`; `wait_synced()` returns once every
    first listing is complete. With `alarms`, a watch event that moves a claimed Deployment's replicas (or
    its HPA's minReplicas, or its ScaledObject's minReplicaCount) below the highest claim on it wakes the
    claiming events at once, urgently, once per change; one that moves its Ready replicas wakes them too, to
    report capacity. ScaledObjects are watched only while discovery (at the start,
    then every `keda_discovery_interval` seconds) says the cluster serves them; a first listing at the start
    is waited for like the others, so that no target is first claimed through the HPA KEDA owns.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        server: str,
        namespaces: Sequence[str] | None,
        headers: Callable[[], Mapping[str, str]] = dict,
        alarms: DriftAlarms | None = None,
        selected: Iterable[str] | None = None,
        keda_discovery_interval: float = KEDA_DISCOVERY_SECONDS,
    ) -> None:
        self._session = session
        self._alarms = alarms
        self._server = server.rstrip("/")
        self._headers = headers  # asked for each LIST and WATCH: a rotated token is picked up
        patterns = list(namespaces or ())
        self._allowed = namespace_filter(patterns)
        self.per_namespace = selected is not None
        if selected is not None:
            self._scopes: list[str | None] = sorted({n for n in selected if self._allowed(n)})
            self._wanted: Callable[[str], bool] = lambda _namespace: True
        elif patterns and not any(is_glob(p) for p in patterns):
            self._scopes = sorted(set(patterns))
            self._wanted = lambda _namespace: True
        else:
            self._scopes = [None]
            self._wanted = self._allowed
        self.deployments: Store[DeploymentView] = Store(DEPLOYMENTS)
        self.hpas: Store[HpaView] = Store(HPAS)
        self.scaled_objects: Store[ScaledObjectView] = Store(SCALED_OBJECTS)
        self.keda = False  # whether the cluster serves ScaledObjects (and they are watched)
        self._keda_discovery_interval = keda_discovery_interval
        self._keda_tasks: dict[str | None, asyncio.Task[None]] = {}
        # Every workload kind watched (Deployments first), and when each had its first listings.
        self.workloads: dict[WorkloadKind, Store[DeploymentView]] = {DEPLOYMENT_KIND: self.deployments}
        self._kind_listed: dict[str, asyncio.Event] = {}
        self.placeholders: Store[PlaceholderView] = Store(PLACEHOLDERS)
        self._pending: set[tuple[str, str | None]] = set()
        self._listed_scopes: dict[str | None, asyncio.Event] = {}
        for scope in self._scopes:
            self._expect(scope)
        self._synced = asyncio.Event()
        self._tasks: dict[str | None, list[asyncio.Task[None]]] = {}
        self._failure: asyncio.Future[None] | None = None  # set by run(); a sync task's unexpected error
        self.lists = 0  # LIST requests made, pages included
        self._snapshots: dict[str, tuple[tuple[tuple[int, int], ...], NamespaceSnapshot]] = {}
        self.restarts = 0  # watches that had to start over with a LIST

    def snapshot(self, namespace: str) -> NamespaceSnapshot:
        """The namespace as the watches last saw it. The same snapshot (it is immutable) until a view in it
        changes: every event whose transition falls due in the same second reads one snapshot, where each
        made its own (100 events x 300 Deployments: 30,000 views gathered in the event loop at the instant
        the replica writes should go out)."""
        version = tuple(store.version(namespace) for store in self._every_store())
        cached = self._snapshots.get(namespace)
        if cached is not None and cached[0] == version:
            return cached[1]
        scalers: list[ScalerView] = [*self.hpas.views(namespace), *self.scaled_objects.views(namespace)]
        views = [view for store in self.workloads.values() for view in store.views(namespace)]
        snapshot = NamespaceSnapshot.of(views, scalers, namespace, self.placeholders.views(namespace))
        self._snapshots[namespace] = (version, snapshot)
        return snapshot

    def namespaces(self) -> list[str]:
        """Every namespace with a workload or a placeholder pod in the cache."""
        stores = [*self.workloads.values(), self.placeholders]
        return sorted({ns for store in stores for ns in store.by_namespace})

    def claims_of(self, namespace: str, key: str) -> Mapping[str, int]:
        """The claims on one workload of the cache (none when it is not there)."""
        workload = self._workload_at(namespace, key)
        return workload.claims if workload is not None else {}

    def _stores(self) -> list[Store[Any]]:
        """Every store watched from the start or since a target named its kind; ScaledObjects aside (they
        follow discovery)."""
        return [*self.workloads.values(), self.hpas, self.placeholders]

    def _every_store(self) -> list[Store[Any]]:
        """Every store, ScaledObjects included: what a namespace's snapshot is made of."""
        return [*self._stores(), self.scaled_objects]

    def watch_kind(self, workload: WorkloadKind) -> bool:
        """Watch a workload kind too, in every scope, from now on; False when it is watched already."""
        if workload in self.workloads:
            return False
        store: Store[DeploymentView] = Store(workload_kind(workload))
        self.workloads[workload] = store
        self._kind_listed[store.kind.name] = asyncio.Event()
        for scope in self._scopes:
            self._pending.add((store.kind.name, scope))
            if self._failure is not None:
                self._start(store, scope)
        log.info("Watching %s too", workload.resource)
        return True

    async def wait_kind_listed(self, workload: WorkloadKind) -> None:
        """Until every first listing of a kind started with `watch_kind` is in."""
        store = self.workloads.get(workload)
        listed = self._kind_listed.get(store.kind.name) if store is not None else None
        if listed is not None:
            await listed.wait()

    def watched(self) -> list[str | None]:
        """The scopes listed and watched now, each a namespace (None: every namespace)."""
        return list(self._scopes)

    async def wait_synced(self) -> None:
        await self._synced.wait()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_listed(self, namespace: str) -> None:
        """Until the first listings of a namespace started with `start_namespace` are in."""
        listed = self._listed_scopes.get(namespace)
        if listed is not None:
            await listed.wait()

    def start_namespace(self, namespace: str) -> bool:
        """Watch a namespace that just became selected (per-namespace mode only); False when it is not
        watched: already watched, or not among `namespaces`."""
        if not self.per_namespace or namespace in self._scopes or not self._allowed(namespace):
            return False
        self._scopes.append(namespace)
        self._expect(namespace)
        if self._failure is not None:  # running: start its tasks now, else run() starts them
            self._spawn(namespace)
        log.info("Watching Deployments and HorizontalPodAutoscalers in namespace %s", namespace)
        return True

    def stop_namespace(self, namespace: str) -> bool:
        """Stop watching a namespace that is no longer selected and forget its objects; False when it was
        not watched."""
        if not self.per_namespace or namespace not in self._scopes:
            return False
        self._scopes.remove(namespace)
        for task in [*self._tasks.pop(namespace, ()), *filter(None, [self._keda_tasks.pop(namespace, None)])]:
            task.cancel()  # a cancelled task runs no more of its code: nothing is stored after the drop
        self._pending -= {(store.kind.name, namespace) for store in self._every_store()}
        for name, listed in self._kind_listed.items():  # a kind listed everywhere still watched is listed
            if not any(kind == name for kind, _ in self._pending):
                listed.set()
        self._listed_scopes.pop(namespace, asyncio.Event()).set()  # nobody waits for it any longer
        if not self._pending and self._failure is not None:
            self._synced.set()
        for store in self._every_store():
            store.forget(namespace)
        self._snapshots.pop(namespace, None)
        log.info("Stopped watching namespace %s; its Deployments and HPAs are forgotten", namespace)
        return True

    async def run(self) -> None:
        """Keep every scope current until cancelled, or until a sync task fails unexpectedly (raised)."""
        if await self._discover_keda():
            self.keda = True
            for scope in self._scopes:
                self._pending.add((SCALED_OBJECTS.name, scope))
        self._failure = asyncio.get_running_loop().create_future()
        for scope in self._scopes:
            self._spawn(scope)
        discovery = asyncio.create_task(self._follow_keda(), name="discover ScaledObjects")
        discovery.add_done_callback(self._ended)
        if not self._pending:
            self._synced.set()  # a selector that matches no namespace yet
        try:
            await self._failure
        finally:
            tasks = [task for tasks in self._tasks.values() for task in tasks]
            tasks += [discovery, *self._keda_tasks.values()]
            self._tasks.clear()
            self._keda_tasks.clear()
            self._failure = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _expect(self, scope: str | None) -> None:
        stores = [*self._stores(), self.scaled_objects] if self.keda else self._stores()
        self._pending |= {(store.kind.name, scope) for store in stores}
        self._listed_scopes[scope] = asyncio.Event()

    def _spawn(self, scope: str | None) -> None:
        self._tasks[scope] = []
        for store in self._stores():
            self._start(store, scope)
        if self.keda:
            self._keda_tasks[scope] = self._start_sync(self.scaled_objects, scope)

    def _start(self, store: Store[Any], scope: str | None) -> None:
        self._tasks.setdefault(scope, []).append(self._start_sync(store, scope))

    def _start_sync(self, store: Store[Any], scope: str | None) -> asyncio.Task[None]:
        task = asyncio.create_task(self._sync(store, scope), name=f"watch {store.kind.name} {_where(scope)}")
        task.add_done_callback(self._ended)
        return task

    async def _discover_keda(self) -> bool | None:
        """Whether the cluster serves keda.sh/v1alpha1 ScaledObjects; None when it could not be asked."""
        try:
            async with self._session.get(
                self._server + SCALED_OBJECTS_API, headers=self._headers()
            ) as response:
                if response.status == 404:
                    return False
                if response.status != 200:
                    log.debug("Discovery of ScaledObjects: HTTP %s", response.status)
                    return None
                return serves_scaled_objects(await response.json())
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            log.debug("Discovery of ScaledObjects failed: %s", err)
            return None

    async def _follow_keda(self) -> None:
        """Watch ScaledObjects once their CRD is installed; stop (and forget them) once it is gone."""
        while True:
            await asyncio.sleep(self._keda_discovery_interval)
            served = await self._discover_keda()
            if served and not self.keda:
                self.keda = True
                log.info("Watching KEDA ScaledObjects: the cluster serves them now")
                for scope in self._scopes:
                    self._keda_tasks[scope] = self._start_sync(self.scaled_objects, scope)
            elif served is False and self.keda:
                self.keda = False
                log.info("Stopped watching KEDA ScaledObjects: the cluster no longer serves them")
                for task in self._keda_tasks.values():
                    task.cancel()
                self._keda_tasks.clear()
                self._pending = {p for p in self._pending if p[0] != SCALED_OBJECTS.name}
                if not self._pending:
                    self._synced.set()
                self.scaled_objects.clear()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._failure is None or self._failure.done():
            return
        error = task.exception()
        if error is not None:
            self._failure.set_exception(error)

    async def _sync(self, store: Store[View], scope: str | None) -> None:
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    version = await self._list(store, scope)
                    self._listed(store.kind, scope)
                async for seen in self._watch(store, scope, version):
                    version, failures = seen, 0
            except ExpiredError:
                log.info("Watch of %s in %s expired; listing again", store.kind.name, _where(scope))
                self.restarts += 1
                version = None
            except ForbiddenError as err:
                if store.kind is not SCALED_OBJECTS:
                    failures = await self._back_off(store, scope, failures, err)
                    continue
                # KEDA is installed but the operator's RBAC leaves ScaledObjects out: the rest goes on
                # without them (no first listing to wait for), and they are asked for again now and then.
                log.warning(
                    "Not permitted to list ScaledObjects in %s (%s): KEDA-scaled targets are not recognized "
                    "until RBAC grants get, list, watch, patch on keda.sh scaledobjects",
                    _where(scope),
                    err,
                )
                self._listed(store.kind, scope)
                await asyncio.sleep(self._keda_discovery_interval)
            except (aiohttp.ClientError, TimeoutError, WatchError, ValueError) as err:
                failures = await self._back_off(store, scope, failures, err)

    async def _back_off(self, store: Store[Any], scope: str | None, failures: int, err: Exception) -> int:
        """Wait before the next attempt after `failures` failures in a row; the count with this one."""
        delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
        log.warning(
            "Watching %s in %s failed (%s); again in %.0f s",
            store.kind.name,
            _where(scope),
            err or type(err).__name__,
            delay,
        )
        await asyncio.sleep(delay)
        return failures + 1

    def _listed(self, kind: Kind[Any], scope: str | None) -> None:
        self._pending.discard((kind.name, scope))
        if not any(pending == scope for _, pending in self._pending) and scope in self._listed_scopes:
            self._listed_scopes[scope].set()
        if kind.name in self._kind_listed and not any(k == kind.name for k, _ in self._pending):
            self._kind_listed[kind.name].set()
        if not self._pending and not self._synced.is_set():
            log.info("Watching Deployments and HorizontalPodAutoscalers: every first listing is in")
            self._synced.set()

    async def _list(self, store: Store[View], scope: str | None) -> str:
        """Every object of the scope, page by page; returns the listing's resourceVersion."""
        views: dict[str, dict[str, View]] = {}
        url = self._server + store.kind.url(scope)

        def keep(item: Mapping[str, Any]) -> None:
            self._keep(views, store.kind, item)

        version, pages = await list_all(
            self._session, url, self._headers, store.kind.name, keep, _selecting(store.kind)
        )
        self.lists += pages
        store.replace(scope, views)
        return version

    def _keep(self, views: dict[str, dict[str, View]], kind: Kind[View], item: Mapping[str, Any]) -> None:
        meta = item.get("metadata") or {}
        namespace = meta.get("namespace", "")
        if self._wanted(namespace):
            views.setdefault(namespace, {})[meta.get("name", "")] = kind.view(item)

    async def _watch(self, store: Store[View], scope: str | None, version: str) -> AsyncIterator[str]:
        """Apply every change from `version` on; yields the version after each one, until the server ends."""
        url = self._server + store.kind.url(scope)
        changes = watch_events(
            self._session, url, version, self._headers, store.kind.name, _selecting(store.kind)
        )
        async for kind, obj in changes:
            meta = obj.get("metadata") or {}
            namespace, name = meta.get("namespace", ""), meta.get("name", "")
            if kind in ("ADDED", "MODIFIED") and self._wanted(namespace):
                view = store.kind.view(obj)
                self._wake_claims(namespace, store.put(namespace, name, view), view)
            elif kind == "DELETED":
                store.drop(namespace, name)
            yield str(meta.get("resourceVersion") or version)

    def _wake_claims(
        self,
        namespace: str,
        previous: DeploymentView | ScalerView | PlaceholderView | None,
        view: DeploymentView | ScalerView | PlaceholderView,
    ) -> None:
        """Ring the claims of a target whose level (its replicas, or the minimum of the HPA or ScaledObject
        that scales it) this change moved below the highest claim, urgently. A level above the claims is
        nobody's business: a person or an HPA may scale above the floor. The HPA KEDA owns is KEDA's
        business. A change of a claimed Deployment's Ready replicas rings its claims without urgency: their
        capacity report follows it. Placeholder pods ring nobody."""
        if self._alarms is None or isinstance(view, PlaceholderView):
            return
        if isinstance(view, DeploymentView):
            if isinstance(previous, DeploymentView) and previous.ready_replicas != view.ready_replicas:
                self._alarms.ring(view.claims, urgent=False)
            if isinstance(previous, DeploymentView) and previous.replicas == view.replicas:
                return
            if any(hpa.target == view.key for hpa in self.hpas.views(namespace)) or any(
                scaled.scales(view.key) for scaled in self.scaled_objects.views(namespace)
            ):
                return  # the autoscaler's bounds hold the floor, not the replicas
            deployment: DeploymentView | None = view
            level = view.replicas
        else:
            if isinstance(view, HpaView) and view.owner is not None:
                return
            if not isinstance(previous, DeploymentView | None) and previous.level == view.level:
                return
            target = view.target_key if isinstance(view, ScaledObjectView) else view.target
            deployment = self._workload_at(namespace, target or "")
            level = view.level
        if deployment is not None and deployment.claims and level < max(deployment.claims.values()):
            self._alarms.ring(deployment.claims)

    def _workload_at(self, namespace: str, key: str) -> DeploymentView | None:
        kind, group, name = split_key(key)
        for workload, store in self.workloads.items():
            if (workload.group, workload.kind) == (group, kind):
                return store.by_namespace.get(namespace, {}).get(name)
        return None


def _selecting(kind: Kind[Any]) -> dict[str, str]:
    return {"labelSelector": kind.selector} if kind.selector else {}


async def list_all(
    session: aiohttp.ClientSession,
    url: str,
    headers: Callable[[], Mapping[str, str]],
    what: str,
    keep: Callable[[Mapping[str, Any]], object],
    selecting: Mapping[str, str] | None = None,
) -> tuple[str, int]:
    """Hand every object of a paged LIST (with `selecting`'s query, e.g. a labelSelector) to `keep`; returns
    the listing's resourceVersion and how many pages (requests) it took. ForbiddenError on a 403, WatchError
    on any other refusal.

    A page is let go before the next one is asked for: the caches of several namespaces list at once at
    start-up, and a decoded page of 250 Deployments is several MB. Held across the next request, they set
    the operator's peak memory (see benchmarks/RESULTS.md, "Memory at 500 events").
    """
    params = {"limit": str(PAGE_SIZE), **(selecting or {})}
    pages = 0
    while True:
        pages += 1
        async with session.get(url, params=params, headers=headers()) as response:
            if response.status != 200:
                error = ForbiddenError if response.status == 403 else WatchError
                raise error(f"LIST {what}: HTTP {response.status} {await response.text()}")
            page = await response.json()
        for item in page.get("items") or ():
            keep(item)
        metadata = page.get("metadata") or {}
        del page
        if not metadata.get("continue"):
            return str(metadata.get("resourceVersion", "")), pages
        params = {"limit": str(PAGE_SIZE), "continue": metadata["continue"], **(selecting or {})}


async def watch_events(
    session: aiohttp.ClientSession,
    url: str,
    version: str,
    headers: Callable[[], Mapping[str, str]],
    what: str,
    selecting: Mapping[str, str] | None = None,
) -> AsyncIterator[tuple[str, Mapping[str, Any]]]:
    """(type, object) of each change from `version` on (bookmarks included; with `selecting`'s query), until
    the server ends the watch; ExpiredError when that version is gone, WatchError when the server refuses or
    reports an error."""
    params = {
        "watch": "true",
        "resourceVersion": version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": str(WATCH_SECONDS),
        **(selecting or {}),
    }
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=WATCH_SECONDS + 30)
    async with session.get(url, params=params, headers=headers(), timeout=timeout) as response:
        if response.status == 410:
            raise ExpiredError()
        if response.status != 200:
            raise WatchError(f"WATCH {what}: HTTP {response.status} {await response.text()}")
        async for line in _lines(response.content):
            event = json.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise ExpiredError()
                raise WatchError(f"WATCH {what}: {obj.get('message') or obj}")
            yield str(kind), obj


def _where(scope: str | None) -> str:
    return f"namespace {scope}" if scope else "all namespaces"


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The lines of a watch stream, however large; one at a time."""
    buffer = b""
    async for chunk in content.iter_any():
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
        if len(buffer) > LINE_LIMIT:
            raise ValueError(f"a watch event longer than {LINE_LIMIT} bytes")
    if buffer.strip():
        yield buffer
