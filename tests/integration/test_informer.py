"""The workload cache (LIST + WATCH of Deployments and HPAs) against the real API server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import kubernetes
import pytest
import pytest_asyncio

from campaign_autoscaler.adapters import informer
from campaign_autoscaler.adapters.informer import WorkloadCache
from campaign_autoscaler.adapters.session import bounded_session, connection_info
from tests.integration.harness import Cluster, deployment_body


@pytest_asyncio.fixture
async def session(api_client: kubernetes.client.ApiClient) -> AsyncIterator[object]:
    http = bounded_session(connection_info(api_client.configuration), 4)
    yield http
    await http.close()


@pytest_asyncio.fixture
async def start_cache(session: object) -> AsyncIterator[Callable[..., object]]:
    tasks: list[asyncio.Task[None]] = []

    async def start(namespaces: list[str] | None, server: str, **options: object) -> WorkloadCache:
        options.setdefault("session", session)
        cache = WorkloadCache(server=server, namespaces=namespaces, **options)  # type: ignore[arg-type]
        tasks.append(asyncio.create_task(cache.run()))
        await asyncio.wait_for(cache.wait_synced(), timeout=20)
        return cache

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def eventually(probe: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not probe():
        assert asyncio.get_running_loop().time() < deadline, "not seen in time"
        await asyncio.sleep(0.05)


def names(cache: WorkloadCache, namespace: str) -> set[str]:
    return set(cache.snapshot(namespace).deployments)


@pytest.mark.asyncio
async def test_lists_in_pages_then_follows_every_change(
    cluster: Cluster, start_cache: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(informer, "PAGE_SIZE", 2)
    for name in ("cart", "checkout", "search"):
        cluster.create_deployment(name, 1)
    cluster.create_hpa("search", "search", 1, 3)
    cache = await start_cache([cluster.namespace], cluster.apps.api_client.configuration.host)

    snapshot = cache.snapshot(cluster.namespace)
    assert set(snapshot.deployments) == {"cart", "checkout", "search"}
    assert snapshot.hpa_for("search") is not None and snapshot.hpa_for("search").max_replicas == 3
    assert cache.lists == 4  # two pages of Deployments, one of HPAs, one of (no) placeholder pods

    cluster.scale("cart", 4)
    await eventually(lambda: cache.snapshot(cluster.namespace).deployment("cart").replicas == 4)
    cluster.apps.delete_namespaced_deployment("checkout", cluster.namespace)
    await eventually(lambda: names(cache, cluster.namespace) == {"cart", "search"})
    cluster.create_deployment("orders", 2)
    await eventually(lambda: "orders" in names(cache, cluster.namespace))
    cluster.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
        "search", cluster.namespace, {"spec": {"maxReplicas": 7}}
    )
    await eventually(lambda: cache.snapshot(cluster.namespace).hpa("search").max_replicas == 7)


@pytest.mark.asyncio
async def test_glob_patterns_watch_the_cluster_and_keep_only_matching_namespaces(
    cluster: Cluster, start_cache: Callable[..., object]
) -> None:
    cluster.create_deployment("kept", 1)
    other = f"{cluster.namespace}-x"
    cluster.core.create_namespace({"metadata": {"name": other}})
    try:
        cluster.apps.create_namespaced_deployment(other, deployment_body("excluded", 1))
        cache = await start_cache(
            [f"{cluster.namespace}*", f"!{other}"], cluster.apps.api_client.configuration.host
        )
        assert names(cache, cluster.namespace) == {"kept"}
        assert names(cache, other) == set()
        cluster.apps.create_namespaced_deployment(other, deployment_body("still-excluded", 1))
        cluster.create_deployment("new", 1)
        await eventually(lambda: names(cache, cluster.namespace) == {"kept", "new"})
        assert names(cache, other) == set()
    finally:
        cluster.core.delete_namespace(other)


@pytest.mark.asyncio
async def test_credentials_are_asked_for_on_every_list_and_watch(
    cluster: Cluster, api_client: kubernetes.client.ApiClient, start_cache: Callable[..., object]
) -> None:
    info = connection_info(api_client.configuration)
    asked: list[int] = []

    def headers() -> dict[str, str]:
        asked.append(1)
        return info.as_http_headers()

    # A session without credentials of its own: a rotated token must reach every request.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=info.as_ssl_context())) as http:
        cluster.create_deployment("cart", 1)
        cache = await start_cache([cluster.namespace], info.server, session=http, headers=headers)
        assert names(cache, cluster.namespace) == {"cart"}
        await eventually(lambda: len(asked) >= 4)  # a LIST and a WATCH of Deployments and of HPAs
