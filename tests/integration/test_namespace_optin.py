"""The namespace opt-in (`--namespace-selector`) with the real operator and API server: an event in a
namespace without the label is never handled and its targets never touched (no finalizer, no status, no
annotation); once the namespace gets the label, the event is handled within a resync interval."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client

from campaign_autoscaler.planning.claims import CAMPAIGN_ANNOTATIONS
from tests.integration.harness import Cluster, active_soon, running_operator, wait_until

pytestmark = pytest.mark.integration

RESYNC_SECONDS = 2.0
SLACK_SECONDS = 3.0  # the operator's start-up when the label comes early, the watch, the test's own poll
LABEL = "campaigns.dev/enabled"


def test_a_namespace_is_handled_only_once_it_carries_the_label(
    cluster: Cluster, api_client: client.ApiClient, kubeconfig: str, tmp_path: Path
):
    namespace = cluster.namespace
    core = client.CoreV1Api(api_client)
    cluster.create_deployment("checkout", 2)
    cluster.create_event("sale", active_soon([{"name": "checkout"}], opens_in=1))
    selector = f"{LABEL}={namespace}"  # a value of this test's own: other tests' namespaces never match
    args = ["--resync-interval", f"{RESYNC_SECONDS:g}s", "--namespace-selector", selector]
    with running_operator(kubeconfig, tmp_path / "operator.log", args) as operator:
        wait_until(
            lambda: "Acting in the namespaces labelled" in operator.log(), timeout=60, message="start-up"
        )
        time.sleep(4 * RESYNC_SECONDS)  # past the window's opening: it would have scaled by now
        event = cluster.event("sale") or {}
        assert not event.get("status"), event.get("status")
        assert not event["metadata"].get("finalizers"), event["metadata"]
        assert cluster.replicas("checkout") == 2
        assert not set(cluster.annotations("checkout")) & set(CAMPAIGN_ANNOTATIONS)

        core.patch_namespace(namespace, {"metadata": {"labels": {LABEL: namespace}}})
        labelled = time.monotonic()
        wait_until(
            lambda: cluster.replicas("checkout") == 5,
            timeout=RESYNC_SECONDS + SLACK_SECONDS,
            message="the event handled after the label",
        )
        took = time.monotonic() - labelled
        # The claim is written before the status: the phase follows within the same pass.
        wait_until(lambda: cluster.phase("sale") == "Active", timeout=SLACK_SECONDS, message="phase Active")
        assert operator.log().count("Selected namespace") == 1
    print(f"handled {took:.2f}s after the label (resync {RESYNC_SECONDS:g}s)")
