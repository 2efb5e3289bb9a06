"""The workload cache's control flow: paging, resuming, starting over after 410, stream framing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest

from campaign_autoscaler.adapters import informer
from campaign_autoscaler.adapters.informer import (
    DriftAlarms,
    ExpiredError,
    Store,
    WatchError,
    WorkloadCache,
)
from campaign_autoscaler.adapters.views import deployment_view, hpa_view
from campaign_autoscaler.adapters.workloads import WorkloadKind
from tests.unit.fakes import deployment_body, hpa_body


class Chunks:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


async def collect(content: Chunks) -> list[bytes]:
    return [line async for line in informer._lines(content)]  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_watch_lines_are_framed_however_the_bytes_arrive() -> None:
    assert await collect(Chunks(b'{"a": 1}\n{"b"', b': 2}\n\n{"c": 3}')) == [
        b'{"a": 1}',
        b'{"b": 2}',
        b'{"c": 3}',
    ]


@pytest.mark.asyncio
async def test_a_line_without_end_beyond_the_limit_is_a_broken_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(informer, "LINE_LIMIT", 8)
    with pytest.raises(ValueError, match="longer than 8 bytes"):
        await collect(Chunks(b"0123456789"))


def test_namespace_patterns_include_and_exclude() -> None:
    wanted = informer.namespace_filter(["shop-*", "!shop-test"])
    assert [wanted(n) for n in ("shop-id", "shop-test", "payments")] == [True, False, False]
    assert informer.namespace_filter([])("anything")
    assert informer.is_glob("shop-*") and informer.is_glob("!x") and not informer.is_glob("shop")


class ScriptedCache(WorkloadCache):
    """The real sync loop over scripted listings and watches instead of HTTP."""

    def __init__(self, watches: list[Any]) -> None:
        super().__init__(session=None, server="https://example.invalid", namespaces=["shop"])  # type: ignore[arg-type]
        self.watches = watches
        self.calls: list[tuple[str, str | None]] = []

    async def _discover_keda(self) -> bool | None:
        return False  # no KEDA in this cluster

    async def _list(self, store: Store[Any], scope: str | None) -> str:
        self.calls.append(("list", None))
        return f"list-{len(self.calls)}"

    async def _watch(self, store: Store[Any], scope: str | None, version: str) -> AsyncIterator[str]:
        self.calls.append(("watch", version))
        script = self.watches.pop(0) if self.watches else None
        if script is None:
            await asyncio.Event().wait()  # a watch that stays open
        for step in script:
            if isinstance(step, Exception):
                raise step
            yield step


@pytest.mark.asyncio
async def test_resumes_from_the_last_version_and_lists_again_only_after_410(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(informer, "BACKOFF_SECONDS", (0.0,))
    cache = ScriptedCache(
        [
            ["7", "8"],  # the server ends the watch: resume from 8
            ["9", WatchError("connection cut")],  # an error: back off, resume from 9
            [ExpiredError()],  # 410: list again, then watch from the new listing
        ]
    )
    task = asyncio.create_task(cache._sync(cache.deployments, "shop"))
    while len(cache.calls) < 6:
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert cache.calls == [
        ("list", None),
        ("watch", "list-1"),
        ("watch", "8"),
        ("watch", "9"),
        ("list", None),
        ("watch", "list-5"),
    ]
    assert cache.restarts == 1


@pytest.mark.asyncio
async def test_synced_only_when_every_first_listing_is_in() -> None:
    cache = ScriptedCache([])
    cache._listed(informer.DEPLOYMENTS, "shop")
    assert not cache.synced
    cache._listed(informer.HPAS, "shop")
    assert not cache.synced
    cache._listed(informer.PLACEHOLDERS, "shop")
    assert cache.synced


# --- drift: a claimed target pushed below its claims wakes the claiming events ------------------------------
CLAIMS = {
    "autoscaling.campaigns.dev/baseline": '{"replicas": 4}',
    "autoscaling.campaigns.dev/claims": '{"shop/sale": 20, "shop/flash": 12}',
}


def drift_cache() -> tuple[WorkloadCache, DriftAlarms, list[str]]:
    alarms = DriftAlarms()
    woken: list[str] = []
    for key in ("shop/sale", "shop/flash"):
        alarms.register(key, lambda urgent, key=key: woken.append(key) if urgent else None)
    cache = WorkloadCache(session=None, server="https://x.invalid", namespaces=["shop"], alarms=alarms)  # type: ignore[arg-type]
    return cache, alarms, woken


def put(cache: WorkloadCache, body: dict[str, Any]) -> None:
    """A watch event, as `_watch` applies it."""
    if body["kind"] == "Deployment":
        view = deployment_view(body)
        cache._wake_claims("shop", cache.deployments.put("shop", view.name, view), view)
    else:
        hpa = hpa_view(body)
        cache._wake_claims("shop", cache.hpas.put("shop", hpa.name, hpa), hpa)


def test_replicas_pushed_below_the_claims_wake_every_claiming_event_once_per_change() -> None:
    cache, _, woken = drift_cache()
    put(cache, deployment_body("checkout", 20, annotations=CLAIMS))
    assert woken == []
    put(cache, deployment_body("checkout", 4, annotations=CLAIMS))  # `kubectl apply` of the application
    assert sorted(woken) == ["shop/flash", "shop/sale"]
    put(cache, deployment_body("checkout", 4, annotations=CLAIMS, ready=12))  # a status update: same change
    assert len(woken) == 2


def test_a_change_of_ready_replicas_wakes_the_claiming_events_without_urgency() -> None:
    alarms = DriftAlarms()
    wakes: list[tuple[str, bool]] = []
    for key in ("shop/sale", "shop/flash"):
        alarms.register(key, lambda urgent, key=key: wakes.append((key, urgent)))
    cache = WorkloadCache(session=None, server="https://x.invalid", namespaces=["shop"], alarms=alarms)  # type: ignore[arg-type]
    put(cache, deployment_body("checkout", 20, annotations=CLAIMS, ready=4))
    put(cache, deployment_body("checkout", 20, annotations=CLAIMS, ready=4))  # nothing moved
    put(cache, deployment_body("web", 3, ready=1))
    put(cache, deployment_body("web", 3, ready=3))  # nobody claims it
    assert wakes == []
    put(cache, deployment_body("checkout", 20, annotations=CLAIMS, ready=9))
    assert sorted(wakes) == [("shop/flash", False), ("shop/sale", False)]
    assert alarms.rung == 0  # drift alarms only


def test_replicas_above_the_claims_wake_nobody() -> None:
    cache, _, woken = drift_cache()
    put(cache, deployment_body("checkout", 20, annotations=CLAIMS))
    put(cache, deployment_body("checkout", 35, annotations=CLAIMS))  # a person or an HPA scales above
    put(cache, deployment_body("web", 1))  # no claims at all
    assert woken == []


def test_an_hpa_backed_target_is_watched_through_its_hpa_min_replicas() -> None:
    cache, alarms, woken = drift_cache()
    put(cache, hpa_body("checkout", "checkout", 20, 40))
    put(cache, deployment_body("checkout", 20, annotations=CLAIMS))
    put(cache, deployment_body("checkout", 18, annotations=CLAIMS))  # the HPA's business
    assert woken == []
    put(cache, hpa_body("checkout", "checkout", 2, 40))  # the HPA's floor was lowered by hand
    assert sorted(woken) == ["shop/flash", "shop/sale"]
    alarms.unregister("shop/sale", lambda urgent: None)  # not its waker: kept
    alarms.ring(["shop/sale"])
    assert woken.count("shop/sale") == 2


def test_a_workload_of_another_kind_is_watched_for_drift_too_and_through_its_hpa() -> None:
    rollouts = WorkloadKind("argoproj.io/v1alpha1", "Rollout", "rollouts")
    cache, _, woken = drift_cache()
    assert cache.watch_kind(rollouts) and not cache.watch_kind(rollouts)
    store = cache.workloads[rollouts]

    def put_rollout(replicas: int) -> None:
        view = deployment_view(deployment_body("web", replicas, annotations=CLAIMS), rollouts)
        cache._wake_claims("shop", store.put("shop", view.name, view), view)

    put_rollout(20)
    put(cache, deployment_body("web", 20))  # a Deployment of the same name, unclaimed
    put_rollout(3)  # a sync of the application's manifest
    assert sorted(woken) == ["shop/flash", "shop/sale"]
    assert sorted(view.key for view in cache.snapshot("shop").deployments.values()) == [
        "Rollout.argoproj.io/web",
        "web",
    ]
    hpa = hpa_body("web", "web", 20, 40)
    hpa["spec"]["scaleTargetRef"] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web"}
    put(cache, hpa)
    put(cache, {**hpa, "spec": {**hpa["spec"], "minReplicas": 2}})
    assert len(woken) == 4  # the HPA that scales the Rollout was lowered below the claims


@pytest.mark.asyncio
async def test_a_kind_watched_later_is_listed_in_every_scope_and_then_waited_for() -> None:
    cache = ScriptedCache([])
    rollouts = WorkloadKind("argoproj.io/v1alpha1", "Rollout", "rollouts")
    task = asyncio.create_task(cache.run())
    await cache.wait_synced()
    cache.watch_kind(rollouts)
    await asyncio.wait_for(cache.wait_kind_listed(rollouts), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert cache.calls.count(("list", None)) == 4  # Deployments, HPAs, placeholder Pods, then Rollouts


# --- per-namespace watches (`--namespace-selector`): started and stopped as namespaces are selected ---------
class SelectedCache(WorkloadCache):
    """The real scope bookkeeping and sync tasks; each listing returns one Deployment named after its scope,
    each watch stays open. Records every (kind, scope) listed and watched."""

    def __init__(self, selected: set[str], namespaces: list[str] | None = None) -> None:
        super().__init__(session=None, server="https://x.invalid", namespaces=namespaces, selected=selected)  # type: ignore[arg-type]
        self.requests: list[tuple[str, str, str | None]] = []
        self.release = asyncio.Event()  # set: listings answer; clear: they hang, as a slow API server
        self.keda_served: bool | None = False  # what discovery of KEDA's ScaledObjects answers

    async def _discover_keda(self) -> bool | None:
        return self.keda_served

    async def _list(self, store: Store[Any], scope: str | None) -> str:
        self.requests.append(("list", store.kind.name, scope))
        await self.release.wait()
        if store is self.deployments:
            assert scope is not None
            store.replace(
                scope, {scope: {"web": deployment_view(deployment_body("web", 3, namespace=scope))}}
            )
        return "1"

    async def _watch(self, store: Store[Any], scope: str | None, version: str) -> AsyncIterator[str]:
        self.requests.append(("watch", store.kind.name, scope))
        await asyncio.Event().wait()
        yield version

    def scopes(self) -> set[str | None]:
        return {scope for _, _, scope in self.requests}


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def running(cache: WorkloadCache) -> AsyncIterator[asyncio.Task[None]]:
    """`cache.run()` as a task, synced, cancelled at the end."""
    task = asyncio.create_task(cache.run())
    await cache.wait_synced()
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.asyncio
async def test_with_a_selector_only_the_selected_namespaces_are_listed_and_watched() -> None:
    cache = SelectedCache({"shop"})
    cache.release.set()
    async with running(cache):
        await settle()
        assert cache.scopes() == {"shop"}  # never the cluster (None), never another namespace
        assert sorted(cache.requests) == sorted(
            (verb, kind, "shop")
            for verb in ("list", "watch")
            for kind in ("Deployments", "HorizontalPodAutoscalers", "placeholder Pods")
        )
        assert cache.watched() == ["shop"] and cache.namespaces() == ["shop"]


@pytest.mark.asyncio
async def test_a_namespace_started_is_listed_then_watched_and_one_stopped_is_forgotten() -> None:
    cache = SelectedCache({"shop"})
    cache.release.set()
    async with running(cache) as task:
        assert cache.start_namespace("payments") is True
        assert cache.start_namespace("payments") is False  # already watched
        await cache.wait_listed("payments")
        assert list(cache.snapshot("payments").deployments) == ["web"]
        await settle()
        assert ("watch", "Deployments", "payments") in cache.requests
        watches = list(cache._tasks["payments"])

        assert cache.stop_namespace("payments") is True
        assert cache.stop_namespace("payments") is False
        await settle()
        assert all(t.cancelled() for t in watches)
        assert "payments" not in cache.deployments.by_namespace
        assert "payments" not in cache.hpas.by_namespace
        assert "payments" not in cache.placeholders.by_namespace
        assert cache.watched() == ["shop"] and cache.namespaces() == ["shop"]
        assert not task.done()  # stopping one namespace is not a failure of the cache
        shop = list(cache._tasks["shop"])
    assert all(t.cancelled() for t in shop)  # the cache's end ends every watch


@pytest.mark.asyncio
async def test_a_listing_in_flight_when_its_namespace_is_stopped_stores_nothing() -> None:
    cache = SelectedCache(set())
    async with running(cache):  # a selector that matches nothing yet: synced at once
        cache.start_namespace("payments")
        await settle()
        assert ("list", "Deployments", "payments") in cache.requests
        cache.stop_namespace("payments")
        cache.release.set()  # the answer arrives after the stop
        await settle()
        assert cache.deployments.by_namespace == {} and cache.watched() == []
        await cache.wait_listed("payments")  # nobody waits forever for a namespace that is gone


@pytest.mark.asyncio
async def test_a_selected_namespace_outside_the_namespace_list_is_not_watched() -> None:
    cache = SelectedCache({"shop", "payments"}, namespaces=["shop-*", "!shop-test"])
    assert cache.watched() == []
    assert cache.start_namespace("shop-id") is True
    assert cache.start_namespace("shop-test") is False
    assert cache.watched() == ["shop-id"]


def test_without_a_selector_the_scopes_are_unchanged() -> None:
    everywhere = WorkloadCache(session=None, server="https://x.invalid", namespaces=None)  # type: ignore[arg-type]
    listed = WorkloadCache(session=None, server="https://x.invalid", namespaces=["b", "a"])  # type: ignore[arg-type]
    globbed = WorkloadCache(session=None, server="https://x.invalid", namespaces=["shop-*"])  # type: ignore[arg-type]
    assert everywhere.watched() == [None] and listed.watched() == ["a", "b"] and globbed.watched() == [None]
    assert not everywhere.start_namespace("shop") and not everywhere.stop_namespace("shop")
    assert everywhere.watched() == [None]


@pytest.mark.asyncio
async def test_an_unexpected_error_of_a_watch_ends_the_cache() -> None:
    class Broken(SelectedCache):
        async def _list(self, store: Store[Any], scope: str | None) -> str:
            raise RuntimeError("a bug")

    cache = Broken({"shop"})
    with pytest.raises(RuntimeError, match="a bug"):
        await cache.run()


class Page(dict):  # a dict that a weak reference can follow
    pass


class PagedServer:
    """Stands in for the aiohttp session of a paged LIST. Like aiohttp's, a response keeps the body's bytes
    and decodes them anew on each json(); the server follows each decoded page weakly and notes whether the
    page before was still alive when the next one was asked for."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.bodies = [json.dumps(page).encode() for page in pages]
        self.decoded: list[weakref.ref[Page]] = []
        self.alive_at_next_request: list[bool] = []
        self.params: list[dict[str, str]] = []

    @contextlib.asynccontextmanager
    async def get(self, url: str, params: dict[str, str], headers: Any) -> AsyncIterator[Response]:
        gc.collect()
        self.alive_at_next_request += [ref() is not None for ref in self.decoded[-1:]]
        self.params.append(dict(params))
        yield Response(self, self.bodies[len(self.params) - 1])


class Response:
    status = 200

    def __init__(self, server: PagedServer, body: bytes) -> None:
        self.server, self.body = server, body

    async def json(self) -> Page:
        page = Page(json.loads(self.body))
        self.server.decoded.append(weakref.ref(page))
        return page


@pytest.mark.asyncio
async def test_a_listing_lets_each_page_go_before_asking_for_the_next() -> None:
    server = PagedServer(
        [
            {"items": [{"n": 1}, {"n": 2}], "metadata": {"continue": "c1"}},
            {"items": [{"n": 3}], "metadata": {"continue": "c2"}},
            {"items": [], "metadata": {"resourceVersion": "42"}},
        ]
    )
    kept: list[Any] = []
    version, pages = await informer.list_all(
        server,  # type: ignore[arg-type]
        "https://api.invalid/apis/apps/v1/deployments",
        dict,
        "Deployments",
        lambda item: kept.append(item["n"]),
        {"labelSelector": "a=b"},
    )
    assert (version, pages, kept) == ("42", 3, [1, 2, 3])
    assert server.alive_at_next_request == [False, False]
    assert [p.get("continue") for p in server.params] == [None, "c1", "c2"]
    assert all(p["labelSelector"] == "a=b" and p["limit"] == str(informer.PAGE_SIZE) for p in server.params)


# --- one snapshot per namespace until something in it changes ----------------------------------------------
def test_a_snapshot_is_shared_until_a_view_of_its_namespace_changes() -> None:
    cache, _, _ = drift_cache()
    put(cache, deployment_body("checkout", 20, annotations=CLAIMS))
    first = cache.snapshot("shop")
    assert cache.snapshot("shop") is first
    other = deployment_view({**deployment_body("web", 2), "metadata": {"name": "web", "namespace": "tools"}})
    cache.deployments.put("tools", "web", other)  # another namespace
    assert cache.snapshot("shop") is first
    put(cache, deployment_body("checkout", 4, annotations=CLAIMS))
    changed = cache.snapshot("shop")
    assert changed is not first and changed.deployments["checkout"].replicas == 4
    put(cache, hpa_body("checkout-hpa", "checkout", 2, 10))
    assert cache.snapshot("shop") is not changed and cache.snapshot("shop").hpa("checkout-hpa") is not None
    cache.deployments.drop("shop", "checkout")
    assert "checkout" not in cache.snapshot("shop").deployments
    put(cache, deployment_body("checkout", 4, annotations=CLAIMS))
    cache.deployments.forget("shop")
    assert cache.snapshot("shop").deployments == {}


def test_a_snapshot_says_which_workloads_each_event_claims() -> None:
    cache, _, _ = drift_cache()
    put(cache, deployment_body("web", 20, annotations=CLAIMS))
    put(cache, deployment_body("checkout", 20, annotations=CLAIMS))
    put(cache, deployment_body("cart", 3))
    snapshot = cache.snapshot("shop")
    assert snapshot.claimed_by("shop/sale") == ["checkout", "web"]
    assert snapshot.claimed_by("shop/other") == []
