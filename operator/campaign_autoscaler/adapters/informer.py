"""The Deployments and HPAs of the watched namespaces, kept current by LIST + WATCH, as small views only.

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

from campaign_autoscaler.adapters.kube import (
    DeploymentView,
    HpaView,
    NamespaceSnapshot,
    deployment_view,
    hpa_view,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 250
WATCH_SECONDS = 300  # the server ends a watch after this long; it is resumed from the last version seen
BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0)
LINE_LIMIT = 16 * 1024 * 1024  # one watch event; a larger one is a broken stream, not an object

View = TypeVar("View", DeploymentView, HpaView)


class ExpiredError(Exception):
    """The resourceVersion to resume from is gone (410): list again."""


class WatchError(Exception):
    """The API server refused a list or a watch, or sent an ERROR event."""


@dataclass(frozen=True)
class Kind(Generic[View]):
    name: str
    path: str  # e.g. "/apis/apps/v1/{scope}deployments"
    view: Callable[[Mapping[str, Any]], View]

    def url(self, namespace: str | None) -> str:
        return self.path.format(scope=f"namespaces/{namespace}/" if namespace else "")


DEPLOYMENTS: Kind[DeploymentView] = Kind("Deployments", "/apis/apps/v1/{scope}deployments", deployment_view)
HPAS: Kind[HpaView] = Kind(
    "HorizontalPodAutoscalers", "/apis/autoscaling/v1/{scope}horizontalpodautoscalers", hpa_view
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
    """One kind's views by namespace and name; written only by its own sync task, in the event loop."""

    def __init__(self, kind: Kind[View]) -> None:
        self.kind = kind
        self.by_namespace: dict[str, dict[str, View]] = {}

    def replace(self, scope: str | None, views: Mapping[str, dict[str, View]]) -> None:
        """A fresh listing of `scope` (None: every namespace) replaces what was known of it."""
        if scope is None:
            self.by_namespace = dict(views)
        else:
            self.by_namespace[scope] = dict(views.get(scope, {}))

    def put(self, namespace: str, name: str, view: View) -> View | None:
        """Keep `view`; returns the view it replaced, if any."""
        views = self.by_namespace.setdefault(namespace, {})
        previous = views.get(name)
        views[name] = view
        return previous

    def drop(self, namespace: str, name: str) -> None:
        self.by_namespace.get(namespace, {}).pop(name, None)

    def views(self, namespace: str) -> list[View]:
        return list(self.by_namespace.get(namespace, {}).values())


class DriftAlarms:
    """Whom to wake when a claimed target is pushed below its claims (a `kubectl apply` or `helm upgrade`
    of the application mid-sale): each event's wake-up, by claim key. Written and rung in the event loop."""

    def __init__(self) -> None:
        self._wakers: dict[str, Callable[[], None]] = {}
        self.rung = 0  # claims woken, for tests and benchmarks

    def register(self, key: str, wake: Callable[[], None]) -> None:
        self._wakers[key] = wake

    def unregister(self, key: str, wake: Callable[[], None]) -> None:
        if self._wakers.get(key) == wake:
            del self._wakers[key]

    def ring(self, keys: Iterable[str]) -> None:
        for key in keys:
            wake = self._wakers.get(key)
            if wake is not None:
                self.rung += 1
                wake()


class WorkloadCache:
    """Deployments and HPAs of the given namespaces (None: every namespace), read through one HTTP session.

    `namespaces` may hold glob patterns (and `!` exclusions); then the whole cluster is watched and filtered.
    With `selected` (the namespaces a `--namespace-selector` matches now), only those of them that
    `namespaces` allows are watched, each on its own, never the cluster: `start_namespace` and
    `stop_namespace` follow the selection as it changes, and a namespace stopped is forgotten.
    Run `run()` as a task in the event loop that reads `snapshot()`; `wait_synced()` returns once every
    first listing is complete. With `alarms`, a watch event that moves a claimed Deployment's replicas (or
    its HPA's minReplicas) below the highest claim on it wakes the claiming events at once, once per change.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        server: str,
        namespaces: Sequence[str] | None,
        headers: Callable[[], Mapping[str, str]] = dict,
        alarms: DriftAlarms | None = None,
        selected: Iterable[str] | None = None,
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
        self._pending: set[tuple[str, str | None]] = set()
        self._listed_scopes: dict[str | None, asyncio.Event] = {}
        for scope in self._scopes:
            self._expect(scope)
        self._synced = asyncio.Event()
        self._tasks: dict[str | None, list[asyncio.Task[None]]] = {}
        self._failure: asyncio.Future[None] | None = None  # set by run(); a sync task's unexpected error
        self.lists = 0  # LIST requests made, pages included
        self.restarts = 0  # watches that had to start over with a LIST

    def snapshot(self, namespace: str) -> NamespaceSnapshot:
        return NamespaceSnapshot.of(self.deployments.views(namespace), self.hpas.views(namespace), namespace)

    def namespaces(self) -> list[str]:
        """Every namespace with a Deployment in the cache."""
        return sorted(self.deployments.by_namespace)

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
        for task in self._tasks.pop(namespace, ()):
            task.cancel()  # a cancelled task runs no more of its code: nothing is stored after the drop
        self._pending -= {(kind.name, namespace) for kind in (DEPLOYMENTS, HPAS)}
        self._listed_scopes.pop(namespace, asyncio.Event()).set()  # nobody waits for it any longer
        if not self._pending and self._failure is not None:
            self._synced.set()
        self.deployments.by_namespace.pop(namespace, None)
        self.hpas.by_namespace.pop(namespace, None)
        log.info("Stopped watching namespace %s; its Deployments and HPAs are forgotten", namespace)
        return True

    async def run(self) -> None:
        """Keep every scope current until cancelled, or until a sync task fails unexpectedly (raised)."""
        self._failure = asyncio.get_running_loop().create_future()
        for scope in self._scopes:
            self._spawn(scope)
        if not self._pending:
            self._synced.set()  # a selector that matches no namespace yet
        try:
            await self._failure
        finally:
            tasks = [task for tasks in self._tasks.values() for task in tasks]
            self._tasks.clear()
            self._failure = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _expect(self, scope: str | None) -> None:
        self._pending |= {(kind.name, scope) for kind in (DEPLOYMENTS, HPAS)}
        self._listed_scopes[scope] = asyncio.Event()

    def _spawn(self, scope: str | None) -> None:
        tasks = [
            asyncio.create_task(self._sync(store, scope), name=f"watch {store.kind.name} {_where(scope)}")
            for store in (self.deployments, self.hpas)
        ]
        for task in tasks:
            task.add_done_callback(self._ended)
        self._tasks[scope] = tasks

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
            except (aiohttp.ClientError, TimeoutError, WatchError, ValueError) as err:
                delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
                failures += 1
                log.warning(
                    "Watching %s in %s failed (%s); again in %.0f s",
                    store.kind.name,
                    _where(scope),
                    err or type(err).__name__,
                    delay,
                )
                await asyncio.sleep(delay)

    def _listed(self, kind: Kind[Any], scope: str | None) -> None:
        self._pending.discard((kind.name, scope))
        if not any(pending == scope for _, pending in self._pending) and scope in self._listed_scopes:
            self._listed_scopes[scope].set()
        if not self._pending and not self._synced.is_set():
            log.info("Watching Deployments and HorizontalPodAutoscalers: every first listing is in")
            self._synced.set()

    async def _list(self, store: Store[View], scope: str | None) -> str:
        """Every object of the scope, page by page; returns the listing's resourceVersion."""
        views: dict[str, dict[str, View]] = {}
        url = self._server + store.kind.url(scope)
        async for page in list_pages(self._session, url, self._headers, store.kind.name):
            self.lists += 1
            for item in page.get("items") or ():
                self._keep(views, store.kind, item)
        store.replace(scope, views)
        return str((page.get("metadata") or {}).get("resourceVersion", ""))

    def _keep(self, views: dict[str, dict[str, View]], kind: Kind[View], item: Mapping[str, Any]) -> None:
        meta = item.get("metadata") or {}
        namespace = meta.get("namespace", "")
        if self._wanted(namespace):
            views.setdefault(namespace, {})[meta.get("name", "")] = kind.view(item)

    async def _watch(self, store: Store[View], scope: str | None, version: str) -> AsyncIterator[str]:
        """Apply every change from `version` on; yields the version after each one, until the server ends."""
        url = self._server + store.kind.url(scope)
        async for kind, obj in watch_events(self._session, url, version, self._headers, store.kind.name):
            meta = obj.get("metadata") or {}
            namespace, name = meta.get("namespace", ""), meta.get("name", "")
            if kind in ("ADDED", "MODIFIED") and self._wanted(namespace):
                view = store.kind.view(obj)
                self._check_drift(namespace, store.put(namespace, name, view), view)
            elif kind == "DELETED":
                store.drop(namespace, name)
            yield str(meta.get("resourceVersion") or version)

    def _check_drift(
        self, namespace: str, previous: DeploymentView | HpaView | None, view: DeploymentView | HpaView
    ) -> None:
        """Ring the claims of a target whose level (its replicas, or its HPA's minReplicas when an HPA
        scales it) this change moved below the highest claim. A level above the claims is nobody's
        business: a person or an HPA may scale above the floor."""
        if self._alarms is None:
            return
        if isinstance(view, DeploymentView):
            if isinstance(previous, DeploymentView) and previous.replicas == view.replicas:
                return
            if any(hpa.target == view.name for hpa in self.hpas.views(namespace)):
                return  # the HPA's bounds hold the floor, not the replicas
            deployment: DeploymentView | None = view
            level = view.replicas
        else:
            if isinstance(previous, HpaView) and previous.min_replicas == view.min_replicas:
                return
            deployment = self.deployments.by_namespace.get(namespace, {}).get(view.target or "")
            level = view.min_replicas
        if deployment is not None and deployment.claims and level < max(deployment.claims.values()):
            self._alarms.ring(deployment.claims)


async def list_pages(
    session: aiohttp.ClientSession, url: str, headers: Callable[[], Mapping[str, str]], what: str
) -> AsyncIterator[Mapping[str, Any]]:
    """Each page of a paged LIST; the last one's metadata holds the listing's resourceVersion."""
    params = {"limit": str(PAGE_SIZE)}
    while True:
        async with session.get(url, params=params, headers=headers()) as response:
            if response.status != 200:
                raise WatchError(f"LIST {what}: HTTP {response.status} {await response.text()}")
            page = await response.json()
        yield page
        metadata = page.get("metadata") or {}
        if not metadata.get("continue"):
            return
        params = {"limit": str(PAGE_SIZE), "continue": metadata["continue"]}


async def watch_events(
    session: aiohttp.ClientSession,
    url: str,
    version: str,
    headers: Callable[[], Mapping[str, str]],
    what: str,
) -> AsyncIterator[tuple[str, Mapping[str, Any]]]:
    """(type, object) of each change from `version` on (bookmarks included), until the server ends the
    watch; ExpiredError when that version is gone, WatchError when the server refuses or reports an error."""
    params = {
        "watch": "true",
        "resourceVersion": version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": str(WATCH_SECONDS),
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
