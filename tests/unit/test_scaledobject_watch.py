"""KEDA ScaledObjects in the workload cache and the snapshot: watched only while the cluster serves them,
preferred over any HPA (never the HPA KEDA owns), and a rewrite below the floor wakes the claiming events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from campaign_autoscaler.adapters import informer
from campaign_autoscaler.adapters.informer import DriftAlarms, WorkloadCache
from campaign_autoscaler.adapters.scaledobjects import (
    ScaledObjectView,
    bounds_operations,
    scaled_object_view,
    serves_scaled_objects,
)
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.adapters.views import deployment_view, hpa_view
from tests.unit.fakes import deployment_body, hpa_body
from tests.unit.test_informer import CLAIMS, SelectedCache, running, settle


def scaled_object_body(
    name: str,
    target: str,
    min_count: int | None = None,
    max_count: int | None = None,
    *,
    kind: str | None = None,
    hpa_name: str | None = None,
    paused: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"scaleTargetRef": {"name": target}}
    if kind is not None:
        spec["scaleTargetRef"]["kind"] = kind
    if min_count is not None:
        spec["minReplicaCount"] = min_count
    if max_count is not None:
        spec["maxReplicaCount"] = max_count
    if hpa_name is not None:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"name": hpa_name}}
    meta: dict[str, Any] = {"name": name, "namespace": "shop", "creationTimestamp": "2026-01-02T00:00:00Z"}
    if paused:
        meta["annotations"] = {"autoscaling.keda.sh/paused-replicas": "0"}
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": meta, "spec": spec}


def keda_hpa_body(name: str, target: str, owner: str) -> dict[str, Any]:
    body = hpa_body(name, target, 1, 100, created="2025-01-01T00:00:00Z")
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": owner}
    ]
    return body


def test_a_scaled_object_reads_with_keda_s_defaults_and_its_hpa_name():
    view = scaled_object_view(scaled_object_body("checkout", "web"))
    assert (view.min_replicas, view.max_replicas, view.level) == (None, None, 0)
    assert view.hpa_name == "keda-hpa-checkout"
    assert view.scales("web") and not view.scales("StatefulSet.apps/web")
    custom = scaled_object_view(scaled_object_body("checkout", "web", 2, 9, hpa_name="mine", paused=True))
    assert (custom.min_replicas, custom.max_replicas, custom.hpa_name, custom.paused) == (2, 9, "mine", True)
    assert not scaled_object_view(scaled_object_body("db", "db", kind="StatefulSet")).scales("db")


@pytest.mark.parametrize(
    ("annotations", "paused"),
    [
        ({"autoscaling.keda.sh/paused-replicas": "0"}, True),
        ({"autoscaling.keda.sh/paused": "true"}, True),  # KEDA 2.13+: paused where it stands
        ({"autoscaling.keda.sh/paused": "True "}, True),
        ({"autoscaling.keda.sh/paused": "false"}, False),
        ({}, False),
    ],
)
def test_either_of_kedas_pause_annotations_leaves_the_scaled_object_alone(
    annotations: dict[str, str], paused: bool
) -> None:
    body = scaled_object_body("checkout", "web")
    body["metadata"]["annotations"] = annotations
    assert scaled_object_view(body).paused is paused


def test_the_scaled_object_is_chosen_never_the_hpa_keda_owns():
    scalers = [
        hpa_view(keda_hpa_body("keda-hpa-checkout", "web", "checkout")),
        hpa_view(hpa_body("renamed", "web", 1, 100, created="2025-01-01T00:00:00Z")),
        scaled_object_view(scaled_object_body("checkout", "web", hpa_name="renamed")),
    ]
    snapshot = NamespaceSnapshot.of([], scalers, "shop")
    chosen = snapshot.hpa_for("web")
    assert isinstance(chosen, ScaledObjectView) and chosen.name == "checkout"
    # Without the ScaledObject in sight, the HPA KEDA owns (by its owner reference) is still not taken.
    assert NamespaceSnapshot.of([], scalers[:1], "shop").hpa_for("web") is None
    assert snapshot.hpa("checkout", "ScaledObject") is chosen
    assert snapshot.hpa("checkout") is None  # no HPA of that name


def test_bounds_are_patched_alone_guarded_by_what_was_read_absent_ones_removed():
    assert bounds_operations((None, 8), (12, 12)) == [
        {"op": "test", "path": "/spec/minReplicaCount", "value": None},
        {"op": "add", "path": "/spec/minReplicaCount", "value": 12},
        {"op": "test", "path": "/spec/maxReplicaCount", "value": 8},
        {"op": "add", "path": "/spec/maxReplicaCount", "value": 12},
    ]
    assert bounds_operations((12, 12), (None, 8)) == [
        {"op": "test", "path": "/spec/minReplicaCount", "value": 12},
        {"op": "remove", "path": "/spec/minReplicaCount"},
        {"op": "test", "path": "/spec/maxReplicaCount", "value": 12},
        {"op": "add", "path": "/spec/maxReplicaCount", "value": 8},
    ]


def test_discovery_reads_whether_scaledobjects_are_served():
    assert serves_scaled_objects({"resources": [{"name": "scaledobjects"}, {"name": "scaledobjects/status"}]})
    assert not serves_scaled_objects({"resources": [{"name": "scaledjobs"}]})
    assert not serves_scaled_objects({})


def test_a_rewrite_of_the_scaled_object_below_the_claims_wakes_the_claiming_events():
    alarms = DriftAlarms()
    woken: list[str] = []
    alarms.register("shop/sale", lambda urgent: woken.append("shop/sale") if urgent else None)
    cache = WorkloadCache(session=None, server="https://x.invalid", namespaces=["shop"], alarms=alarms)  # type: ignore[arg-type]

    def put(body: dict[str, Any]) -> None:
        if body["kind"] == "ScaledObject":
            view: Any = scaled_object_view(body)
            store: Any = cache.scaled_objects
        elif body["kind"] == "Deployment":
            view, store = deployment_view(body), cache.deployments
        else:
            view, store = hpa_view(body), cache.hpas
        cache._wake_claims("shop", store.put("shop", view.name, view), view)

    put(scaled_object_body("checkout", "web", 20, 40))
    put(deployment_body("web", 20, annotations=CLAIMS))
    put(deployment_body("web", 3, annotations=CLAIMS))  # KEDA's HPA scales it: not the replicas' business
    put(keda_hpa_body("keda-hpa-checkout", "web", "checkout"))  # KEDA rewrote its own HPA: KEDA's business
    assert woken == []
    put(scaled_object_body("checkout", "web", 2, 40))  # rewritten below the floor
    assert woken == ["shop/sale"]
    put(scaled_object_body("checkout", "web", 2, 50))  # the same minimum: no new change
    assert woken == ["shop/sale"]


@pytest.mark.asyncio
async def test_scaled_objects_are_watched_only_while_served_and_forgotten_when_gone() -> None:
    cache = SelectedCache({"shop"})
    cache._keda_discovery_interval = 0.01
    cache.release.set()
    async with running(cache):
        await settle()
        assert not any(kind == "ScaledObjects" for _, kind, _ in cache.requests)
        cache.keda_served = True  # KEDA's CRD installed
        await asyncio.sleep(0.05)
        assert ("watch", "ScaledObjects", "shop") in cache.requests
        assert cache.keda
        cache.scaled_objects.put(
            "shop", "checkout", scaled_object_view(scaled_object_body("checkout", "web"))
        )
        assert cache.snapshot("shop").hpa_for("web") is not None
        cache.keda_served = None  # discovery failed: nothing changes
        await asyncio.sleep(0.05)
        assert cache.keda
        cache.keda_served = False  # the CRD was removed
        await asyncio.sleep(0.05)
        assert not cache.keda and cache.scaled_objects.by_namespace == {}
        assert cache._keda_tasks == {}


@pytest.mark.asyncio
async def test_when_served_at_the_start_the_first_listing_of_scaled_objects_is_waited_for() -> None:
    cache = SelectedCache({"shop"})
    cache.keda_served = True
    task = asyncio.create_task(cache.run())
    await settle()
    assert ("list", "ScaledObjects", "shop") in cache.requests
    assert not cache.synced  # listings hang until released
    cache.release.set()
    await asyncio.wait_for(cache.wait_synced(), 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_scaled_objects_are_listed_and_watched_under_keda_sh_v1alpha1() -> None:
    assert informer.SCALED_OBJECTS.url("shop") == "/apis/keda.sh/v1alpha1/namespaces/shop/scaledobjects"


@pytest.mark.asyncio
async def test_scaled_objects_the_rbac_leaves_out_hold_up_nothing() -> None:
    class Forbidden(SelectedCache):
        async def _list(self, store: Any, scope: str | None) -> str:
            if store is self.scaled_objects:
                self.requests.append(("list", store.kind.name, scope))
                raise informer.ForbiddenError("LIST ScaledObjects: HTTP 403")
            return await super()._list(store, scope)

    cache = Forbidden({"shop"})
    cache.keda_served = True
    cache.release.set()
    async with running(cache) as task:  # synced: the refused listing is not waited for
        await settle()
        assert ("list", "ScaledObjects", "shop") in cache.requests
        assert not task.done()  # and it is no failure of the cache
