"""The claim writes of the Kubernetes adapter against the real API server.

A claim is one JSON Patch guarded by `test` operations on what the decision was made on (the replicas and the
campaign annotations). A write made on a stale snapshot is refused only when one of those changed, and is then
decided again on a fresh read; anything else that moved in between (status, other annotations) lets it through
in one write.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler.adapters.eventlane import EventLane
from campaign_autoscaler.adapters.kube import KubeAdapter
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.adapters.statuslane import StatusLane
from campaign_autoscaler.adapters.views import deployment_view, hpa_view
from campaign_autoscaler.handlers.daemon import GONE_STATUSES
from campaign_autoscaler.planning.claims import (
    BASELINE_ANNOTATION,
    CAMPAIGN_ANNOTATIONS,
    CLAIMS_ANNOTATION,
    OWNERS_ANNOTATION,
    parse_baseline,
    parse_claims,
    parse_owners,
)
from tests.integration.harness import Cluster, campaign_spec, utc_now, wait_until


class CountingAdapter(KubeAdapter):
    """The real adapter, counting its requests by method."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        super().__init__(api_client)
        self.requests: list[tuple[str, str]] = []

    def _request(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        self.requests.append((method, path))
        return super()._request(method, path, **options)

    def count(self, method: str, resource: str = "/deployments") -> int:
        return sum(1 for seen, path in self.requests if seen == method and resource in path)


@pytest.fixture
def adapter(api_client: kubernetes.client.ApiClient) -> CountingAdapter:
    return CountingAdapter(api_client)


def snapshot(cluster: Cluster, *names: str) -> NamespaceSnapshot:
    serialize = cluster.apps.api_client.sanitize_for_serialization
    views = [deployment_view(serialize(cluster.deployment(name))) for name in names]
    hpas = cluster.autoscaling.list_namespaced_horizontal_pod_autoscaler(cluster.namespace).items
    return NamespaceSnapshot.of(views, [hpa_view(serialize(hpa)) for hpa in hpas], cluster.namespace)


def annotations(cluster: Cluster, name: str) -> dict[str, str]:
    return dict(cluster.deployment(name).metadata.annotations or {})


def create(cluster: Cluster, name: str, replicas: int) -> None:
    """A Deployment as it settles: with the revision annotation the controller adds right after creation."""
    cluster.create_deployment(name, replicas)
    wait_until(lambda: "deployment.kubernetes.io/revision" in annotations(cluster, name), timeout=10)


def annotate(cluster: Cluster, name: str, **values: str) -> None:
    cluster.apps.patch_namespaced_deployment(name, cluster.namespace, {"metadata": {"annotations": values}})


def test_an_unrelated_change_does_not_refuse_the_claim(cluster: Cluster, adapter: CountingAdapter) -> None:
    create(cluster, "checkout", 2)
    annotate(cluster, "checkout", team="payments")
    stale = snapshot(cluster, "checkout")
    # Someone else's annotation changes: a new resourceVersion, but nothing the claim rests on.
    annotate(cluster, "checkout", team="checkout-squad")
    outcome = adapter.set_claim(stale, "checkout", "shop/sale", 5)
    assert outcome is not None and outcome.written
    assert adapter.count("PATCH") == 1 and adapter.count("GET") == 0
    assert cluster.replicas("checkout") == 5
    seen = annotations(cluster, "checkout")
    assert seen["team"] == "checkout-squad"
    assert parse_baseline(seen[BASELINE_ANNOTATION]).replicas == 2
    assert parse_claims(seen[CLAIMS_ANNOTATION]) == {"shop/sale": 5}


def test_a_deployment_without_annotations_gets_them_without_losing_others(
    cluster: Cluster, adapter: CountingAdapter
) -> None:
    cluster.create_deployment("cart", 2)
    stale = NamespaceSnapshot.of(
        [replace(snapshot(cluster, "cart").deployment("cart"), has_annotations=False)]
    )
    annotate(cluster, "cart", team="cart")
    # The whole annotations map is written only where there is none: here one appeared, so decide again.
    outcome = adapter.set_claim(stale, "cart", "shop/sale", 4)
    assert outcome is not None and outcome.written
    assert adapter.count("PATCH") == 2 and adapter.count("GET") == 1
    seen = annotations(cluster, "cart")
    assert seen["team"] == "cart"
    assert parse_claims(seen[CLAIMS_ANNOTATION]) == {"shop/sale": 4}
    assert cluster.replicas("cart") == 4


def test_a_claim_made_meanwhile_is_kept(cluster: Cluster, adapter: CountingAdapter) -> None:
    create(cluster, "tracking", 2)
    stale = snapshot(cluster, "tracking")
    first = adapter.set_claim(stale, "tracking", "shop/nine-nine", 6)
    assert first is not None and first.written
    # The second event decides on the same, now stale, snapshot: its write is refused and made again.
    second = adapter.set_claim(stale, "tracking", "shop/flash", 4)
    assert second is not None and second.written
    assert adapter.count("PATCH") == 3 and adapter.count("GET") == 1
    seen = annotations(cluster, "tracking")
    assert parse_claims(seen[CLAIMS_ANNOTATION]) == {"shop/nine-nine": 6, "shop/flash": 4}
    assert parse_baseline(seen[BASELINE_ANNOTATION]).replicas == 2
    assert cluster.replicas("tracking") == 6


def test_a_scale_meanwhile_becomes_the_baseline(cluster: Cluster, adapter: CountingAdapter) -> None:
    create(cluster, "search", 2)
    stale = snapshot(cluster, "search")
    cluster.apps.patch_namespaced_deployment_scale("search", cluster.namespace, {"spec": {"replicas": 3}})
    outcome = adapter.set_claim(stale, "search", "shop/sale", 5)
    assert outcome is not None and outcome.baseline.replicas == 3
    assert parse_baseline(annotations(cluster, "search")[BASELINE_ANNOTATION]).replicas == 3
    # Released: back to what it was when first claimed, the annotations gone, other annotations untouched.
    released = adapter.set_claim(snapshot(cluster, "search"), "search", "shop/sale", None)
    assert released is not None and released.released
    assert cluster.replicas("search") == 3
    assert not set(CAMPAIGN_ANNOTATIONS) & set(annotations(cluster, "search"))


def test_hpa_bounds_are_guarded_by_their_values(cluster: Cluster, adapter: CountingAdapter) -> None:
    create(cluster, "orders", 2)
    cluster.create_hpa("orders", "orders", 2, 4)
    stale = snapshot(cluster, "orders")
    # A status write (the HPA controller makes them all the time) does not refuse the claim ...
    cluster.autoscaling.patch_namespaced_horizontal_pod_autoscaler_status(
        "orders", cluster.namespace, {"status": {"currentReplicas": 2, "desiredReplicas": 2}}
    )
    outcome = adapter.set_claim(stale, "orders", "shop/sale", 6)
    assert outcome is not None and outcome.via == "HorizontalPodAutoscaler/orders"
    assert adapter.count("GET") == 0
    assert cluster.hpa_bounds("orders") == (6, 6)
    # ... while a changed bound does: decided again on fresh data, and restored to exactly what was there.
    claimed = snapshot(cluster, "orders")
    cluster.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
        "orders", cluster.namespace, {"spec": {"maxReplicas": 10}}
    )
    released = adapter.set_claim(claimed, "orders", "shop/sale", None)
    assert released is not None and released.released
    assert adapter.count("GET") >= 1
    assert cluster.hpa_bounds("orders") == (2, 4)
    assert not set(CAMPAIGN_ANNOTATIONS) & set(annotations(cluster, "orders"))


def test_a_claim_records_its_events_uid_and_a_legacy_claim_is_adopted(
    cluster: Cluster, adapter: CountingAdapter
) -> None:
    create(cluster, "legacy", 2)
    annotate(
        cluster,
        "legacy",
        **{BASELINE_ANNOTATION: '{"replicas": 2}', CLAIMS_ANNOTATION: '{"shop/sale":5,"shop/old":3}'},
    )
    cluster.scale("legacy", 5)
    outcome = adapter.set_claim(snapshot(cluster, "legacy"), "legacy", "shop/sale", 5, owner_uid="uid-sale")
    assert outcome is not None and outcome.written  # the same replicas, but the uid is now recorded
    seen = annotations(cluster, "legacy")
    assert parse_owners(seen[OWNERS_ANNOTATION]) == {"shop/sale": "uid-sale"}
    assert parse_claims(seen[CLAIMS_ANNOTATION]) == {"shop/sale": 5, "shop/old": 3}
    assert cluster.replicas("legacy") == 5


def test_a_fresh_release_sees_a_claim_the_snapshot_missed_and_only_if_guards_it(
    cluster: Cluster, adapter: CountingAdapter
) -> None:
    create(cluster, "late", 2)
    before_claim = snapshot(cluster, "late")  # as a lagging watch would still show it
    adapter.set_claim(before_claim, "late", "shop/sale", 6, owner_uid="uid-1")
    assert cluster.replicas("late") == 6
    # Not if the claim is someone else's now (the guard is asked of the version read afresh).
    untouched = adapter.set_claim(
        before_claim,
        "late",
        "shop/sale",
        None,
        fresh=True,
        only_if=lambda view: view.owners.get("shop/sale") == "x",
    )
    assert untouched is None and cluster.replicas("late") == 6
    # Decided on the lagging snapshot the release would see nothing to do; read afresh it restores.
    released = adapter.set_claim(before_claim, "late", "shop/sale", None, fresh=True)
    assert released is not None and released.released
    assert cluster.replicas("late") == 2
    assert not set(CAMPAIGN_ANNOTATIONS) & set(annotations(cluster, "late"))


def tomorrows_sale(cluster: Cluster, adapter: CountingAdapter) -> str:
    """A CampaignEvent `sale` whose window opens tomorrow, on a Deployment `api`; its uid."""
    tomorrow = utc_now().replace(microsecond=0) + timedelta(days=1)
    cluster.create_deployment("api", 2)
    spec = campaign_spec(start=tomorrow, end=tomorrow + timedelta(hours=1), targets=[{"name": "api"}])
    cluster.create_event("sale", spec)
    event = adapter.get_event(cluster.namespace, "sale")
    assert event is not None
    return event["metadata"]["uid"]


def test_a_status_write_lands_only_on_the_event_of_its_uid(
    cluster: Cluster, adapter: CountingAdapter
) -> None:
    """The whole status is written with a `test` of the event's uid: never onto another event re-created
    under the same name; the API server's answer when the event is gone is one the daemon knows as such."""
    uid = tomorrows_sale(cluster, adapter)

    adapter.replace_event_status(cluster.namespace, "sale", uid, {"phase": "Pending"})
    assert cluster.status("sale") == {"phase": "Pending"}

    with pytest.raises(ApiException) as another:
        adapter.replace_event_status(cluster.namespace, "sale", "another-uid", {"phase": "Active"})
    assert another.value.status in GONE_STATUSES
    assert cluster.status("sale") == {"phase": "Pending"}

    cluster.delete_event("sale")
    wait_until(lambda: cluster.event("sale") is None, timeout=10, message="sale deleted")
    with pytest.raises(ApiException) as gone:
        adapter.replace_event_status(cluster.namespace, "sale", uid, {"phase": "Active"})
    assert gone.value.status in GONE_STATUSES


def test_deployments_are_listed_by_selector_with_their_recorded_baselines(
    cluster: Cluster, adapter: CountingAdapter
) -> None:
    cluster.create_deployment("checkout-web", 3, {"tier": "checkout"})
    cluster.create_deployment("checkout-api", 9, {"tier": "checkout"})
    cluster.create_deployment("search", 2, {"tier": "search"})
    annotate(cluster, "checkout-api", **{BASELINE_ANNOTATION: '{"replicas": 5}'})
    listed = adapter.list_deployments(cluster.namespace, "tier=checkout")
    assert [(view.name, view.baseline_replicas) for view in listed] == [
        ("checkout-api", 5),
        ("checkout-web", 3),
    ]
    assert [view.name for view in adapter.list_deployments(cluster.namespace)] == [
        "checkout-api",
        "checkout-web",
        "search",
    ]
    assert adapter.get_deployment(cluster.namespace, "gone") is None


def test_repeated_events_become_one_event_with_a_count(cluster: Cluster, adapter: CountingAdapter) -> None:
    """Through the Event lane, five Events about one Deployment with the same reason and kind of message are
    one Event on the API server: posted once, then counted by a PATCH; its message is the latest."""
    cluster.create_deployment("web", 1)
    uid = cluster.deployment("web").metadata.uid
    involved = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid}
    lane = EventLane(adapter).start()
    now = utc_now()
    for step in range(5):
        lane.post_event(
            namespace=cluster.namespace,
            involved=involved,
            event_type="Normal",
            reason="Scaled",
            message=f"Scaled Deployment {cluster.namespace}/web {step + 1} -> {step + 2} for CampaignEvent x",
            now=now + timedelta(seconds=step),
        )
    lane.wait_empty()
    events = [e for e in cluster.core.list_namespaced_event(cluster.namespace).items if e.reason == "Scaled"]
    assert len(events) == 1
    (event,) = events
    assert event.count == 5
    assert event.message == f"Scaled Deployment {cluster.namespace}/web 5 -> 6 for CampaignEvent x"
    assert event.involved_object.uid == uid
    assert event.last_timestamp > event.first_timestamp
    # Posted once; the four repeats are written together by one PATCH of the count.
    assert adapter.count("POST", "/events") == 1 and adapter.count("PATCH", "/events") == 1


def test_the_status_lane_tells_a_write_on_a_gone_event(cluster: Cluster, adapter: CountingAdapter) -> None:
    """The status lane writes through the uid-guarded status write; its future carries the answer the daemon
    knows as "the event is gone"."""
    uid = tomorrows_sale(cluster, adapter)
    lane = StatusLane(adapter.replace_event_status).start()
    assert lane.submit(cluster.namespace, "sale", uid, {"phase": "Pending"}).result(30) is None
    assert cluster.status("sale") == {"phase": "Pending"}
    with pytest.raises(ApiException) as another:
        lane.submit(cluster.namespace, "sale", "another-uid", {"phase": "Active"}).result(30)
    assert another.value.status in GONE_STATUSES
    assert cluster.status("sale") == {"phase": "Pending"}
