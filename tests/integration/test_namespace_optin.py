"""The namespace opt-in (`--namespace-selector`) with the real operator and API server, every request of the
operator counted by a proxy in front of the API server.

A namespace without the label is never read or touched: no request at all names it (no LIST or WATCH of its
Deployments or HPAs, no write to anything in it), the Deployments and HPAs of the cluster are never listed or
watched cluster-wide, and its event gets no finalizer, no status, no annotation. Once the namespace gets the
label, its Deployments and HPAs are listed and watched and the event is handled within a resync interval;
once it loses the label, its watches end and nothing in it is read or written any more."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from campaign_autoscaler.devenv.controlplane import ControlPlane
from campaign_autoscaler.planning.claims import CAMPAIGN_ANNOTATIONS
from tests.integration.faultproxy import FaultProxy, RequestKind, ServingCertificate, proxied_kubeconfig
from tests.integration.harness import Cluster, active_soon, running_operator, wait_until

pytestmark = pytest.mark.integration

RESYNC_SECONDS = 2.0
SLACK_SECONDS = 3.0  # the operator's start-up when the label comes early, the watch, the test's own poll
LABEL = "campaigns.dev/enabled"
WORKLOAD_RESOURCES = ("deployments", "horizontalpodautoscalers", "pods")  # pods: the placeholders


@pytest.fixture
def labelled_namespace(api_client: client.ApiClient, namespace: str) -> Iterator[str]:
    """A second namespace, carrying the label from the start (the value is the test namespace's name)."""
    name = f"{namespace}-on"[:63]
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name, "labels": {LABEL: namespace}}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def workload_reads(proxy: FaultProxy, since: float = 0.0) -> list[tuple[str, str, str | None]]:
    """(verb, resource, namespace) of every LIST and WATCH of Deployments, HPAs and placeholder pods from
    `since` on."""
    return [
        (kind.verb, kind.resource, kind.namespace)
        for at, kind in proxy.log()
        if at >= since and kind.resource in WORKLOAD_RESOURCES and kind.verb in ("list", "watch")
    ]


def naming(proxy: FaultProxy, namespace: str, since: float = 0.0) -> list[RequestKind]:
    """Every request on an object in `namespace` (a LIST or WATCH of it included) from `since` on."""
    return [kind for at, kind in proxy.log() if at >= since and kind.namespace == namespace]


def test_a_namespace_is_read_and_handled_only_while_it_carries_the_label(
    cluster: Cluster,
    api_client: client.ApiClient,
    kubeconfig: str,
    control_plane: ControlPlane,
    labelled_namespace: str,
    tmp_path: Path,
):
    namespace = cluster.namespace
    core = client.CoreV1Api(api_client)
    autoscaling = client.AutoscalingV1Api(api_client)
    cluster.create_deployment("checkout", 2)
    cluster.create_hpa("checkout-hpa", "checkout", 2, 10)
    cluster.create_event("sale", active_soon([{"name": "checkout"}], opens_in=1))
    Cluster(api_client, labelled_namespace).create_deployment("web", 1)
    selector = f"{LABEL}={namespace}"  # a value of this test's own: other tests' namespaces never match
    args = ["--resync-interval", f"{RESYNC_SECONDS:g}s", "--namespace-selector", selector]
    certificate = ServingCertificate(tmp_path / "proxy")
    with (
        FaultProxy(
            control_plane.url, seed=0, upstream_ca=control_plane.ca_path, certificate=certificate
        ) as proxy,
        running_operator(
            proxied_kubeconfig(Path(kubeconfig), proxy, tmp_path / "proxied.kubeconfig"),
            tmp_path / "operator.log",
            args,
        ) as operator,
    ):
        operator.wait_ready(timeout=60)
        time.sleep(4 * RESYNC_SECONDS)  # past the window's opening: it would have scaled by now
        event = cluster.event("sale") or {}
        assert not event.get("status"), event.get("status")
        assert not event["metadata"].get("finalizers"), event["metadata"]
        assert cluster.replicas("checkout") == 2
        assert not set(cluster.annotations("checkout")) & set(CAMPAIGN_ANNOTATIONS)
        # Not one request named the unlabelled namespace, and the workloads were read per labelled namespace
        # only, never cluster-wide.
        assert naming(proxy, namespace) == []
        reads = workload_reads(proxy)
        assert {where for _, _, where in reads} == {labelled_namespace}, reads
        assert {(verb, resource) for verb, resource, _ in reads} == {
            (verb, resource) for verb in ("list", "watch") for resource in WORKLOAD_RESOURCES
        }

        core.patch_namespace(namespace, {"metadata": {"labels": {LABEL: namespace}}})
        labelled = time.monotonic()
        labelled_at = time.time()
        wait_until(
            lambda: (
                autoscaling.read_namespaced_horizontal_pod_autoscaler(
                    "checkout-hpa", namespace
                ).spec.min_replicas
                == 5
            ),
            timeout=RESYNC_SECONDS + SLACK_SECONDS,
            message="the event handled after the label",
        )
        took = time.monotonic() - labelled
        # The claim is written before the status: the phase follows within the same pass.
        wait_until(lambda: cluster.phase("sale") == "Active", timeout=SLACK_SECONDS, message="phase Active")
        assert operator.log().count("Selected namespace") == 1
        started = set(workload_reads(proxy, since=labelled_at))
        assert started == {
            (verb, resource, namespace) for verb in ("list", "watch") for resource in WORKLOAD_RESOURCES
        }, started

        core.patch_namespace(namespace, {"metadata": {"labels": {LABEL: "off"}}})
        wait_until(
            lambda: f"Stopped watching namespace {namespace}" in operator.log(),
            timeout=SLACK_SECONDS,
            message="the watches of the unlabelled namespace stopped",
        )
        unlabelled_at = time.time()
        time.sleep(2 * RESYNC_SECONDS)
        # Nothing read or written there any more: no new watch, and the event's daemon makes no pass (its
        # claims stay, as the README says, until the label returns).
        assert naming(proxy, namespace, since=unlabelled_at) == []
        assert (
            autoscaling.read_namespaced_horizontal_pod_autoscaler("checkout-hpa", namespace).spec.min_replicas
            == 5
        )
        assert all(where is not None for _, _, where in workload_reads(proxy))
    print(
        f"handled {took:.2f}s after the label (resync {RESYNC_SECONDS:g}s); "
        f"{len(workload_reads(proxy))} LIST/WATCH requests of Deployments and HPAs, none cluster-wide"
    )
