"""Refusal at apply time, on the real API server: the CRD's bounds, and the operator's validating webhook.

1. An oversized query, 51 targets, replicas 2^31: the API server itself refuses them, naming the field.
2. The webhook: end before start, an unknown timezone, a bad cron and a query reaching another namespace
   are refused at create (and with server-side dry-run, `kubectl apply --dry-run=server`), with the same
   field-named message the Invalid phase shows; a valid event goes through.
3. With the operator stopped, the create still succeeds (failurePolicy Ignore) at once, and the event turns
   Invalid when the operator returns.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler import API_GROUP, API_VERSION, PLURAL
from tests.integration.harness import (
    Cluster,
    OperatorProcess,
    campaign_spec,
    free_port,
    seconds_from_now,
    wait_until,
)

pytestmark = pytest.mark.integration


def event_body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "CampaignEvent",
        "metadata": {"name": name},
        "spec": spec,
    }


def valid_spec(**changes: Any) -> dict[str, Any]:
    spec = campaign_spec(
        start=seconds_from_now(3600), end=seconds_from_now(7200), targets=[{"name": "checkout"}]
    )
    spec.update(changes)
    return spec


def create(cluster: Cluster, name: str, spec: dict[str, Any], dry_run: str | None = None) -> Any:
    kwargs = {"dry_run": dry_run} if dry_run else {}
    return cluster.custom.create_namespaced_custom_object(
        API_GROUP, API_VERSION, cluster.namespace, PLURAL, event_body(name, spec), **kwargs
    )


def refusal(cluster: Cluster, name: str, spec: dict[str, Any], dry_run: str | None = None) -> str:
    """The API server's message refusing the create (fails the test when it is accepted)."""
    with pytest.raises(ApiException) as raised:
        create(cluster, name, spec, dry_run)
    assert raised.value.status in (400, 422), raised.value
    return raised.value.body


# --- 1. the CRD's bounds ---------------------------------------------------------------------------------
def test_oversized_inputs_are_refused_by_the_api_server(cluster: Cluster):
    long_query = "sum(" + "+".join(["up"] * 700) + ")"
    target = {"name": "checkout", "metric": {"query": long_query, "targetPerReplica": 1}}
    body = refusal(cluster, "long-query", valid_spec(targets=[target]))
    # The API server of 1.20 names a field inside a list without its index.
    assert "spec.targets.metric.query" in body and "at most 2000 chars" in body

    body = refusal(cluster, "many-targets", valid_spec(targets=[{"name": f"web-{i}"} for i in range(51)]))
    assert "spec.targets" in body and "should have at most 50 items" in body

    body = refusal(cluster, "huge-replicas", valid_spec(targets=[{"name": "checkout", "replicas": 2**31}]))
    assert "spec.targets.replicas" in body and "less than or equal to 2147483647" in body

    body = refusal(cluster, "long-name", valid_spec(targets=[{"name": "a" * 254}]))
    assert "spec.targets.name" in body and "at most 253 chars" in body

    create(cluster, "at-the-bounds", valid_spec(targets=[{"name": f"web-{i}"} for i in range(50)]))
    assert cluster.event("at-the-bounds") is not None


# --- 2. and 3. the webhook ----------------------------------------------------------------------------------
INVALID = {
    "end-before-start": (
        lambda: valid_spec(start="2026-09-10T00:00:00Z", end="2026-09-09T00:00:00Z"),
        "spec.end: must be after spec.start",
    ),
    "unknown-timezone": (lambda: valid_spec(timezone="Mars/Olympus_Mons"), "spec.timezone: unknown timezone"),
    "bad-cron": (
        lambda: {
            **{k: v for k, v in valid_spec().items() if k not in ("start", "end")},
            "schedule": {"cron": "61 * * * *", "duration": "1h"},
        },
        "spec.schedule.cron",
    ),
    "other-namespace": (
        lambda: valid_spec(
            targets=[
                {
                    "name": "checkout",
                    "metric": {
                        "query": 'sum(rate(http_requests_total{namespace="payments"}[2m]))',
                        "targetPerReplica": 10,
                    },
                }
            ]
        ),
        "spec.targets[0].metric.query: selector",
    ),
}


class Webhooked:
    """The operator with its webhook on a port of its own, and the configuration it writes (removed after)."""

    def __init__(self, kubeconfig: str, namespace: str, log: Path) -> None:
        self.configuration = f"campaign-autoscaler-{namespace}"
        self.args = [
            "--namespace", namespace,
            "--resync-interval", "2s",
            "--webhook-port", str(free_port()),
            "--webhook-host", "127.0.0.1",
            "--webhook-configuration-name", self.configuration,
        ]  # fmt: skip
        self.kubeconfig = kubeconfig
        self.log = log
        self.process: OperatorProcess | None = None

    def start(self) -> OperatorProcess:
        self.process = OperatorProcess(self.kubeconfig, self.log, self.args).start()
        return self.process

    def stop(self) -> None:
        if self.process is not None:
            assert self.process.stop() == 0, self.process.log()[-3000:]


@pytest.fixture
def webhooked(
    kubeconfig: str, namespace: str, tmp_path: Path, api_client: client.ApiClient, campaignevent_crd: object
) -> Iterator[Webhooked]:
    operator = Webhooked(kubeconfig, namespace, tmp_path / "operator.log")
    try:
        yield operator
    finally:
        operator.stop()
        try:
            client.AdmissionregistrationV1Api(api_client).delete_validating_webhook_configuration(
                operator.configuration
            )
        except ApiException as err:
            if err.status != 404:
                raise


def wait_for_webhook(cluster: Cluster) -> None:
    """Until the webhook answers: a refused server-side dry run (Ignore lets it through before that)."""

    def refused() -> bool:
        try:
            create(cluster, "probe", INVALID["end-before-start"][0](), dry_run="All")
        except ApiException as err:
            return err.status == 422
        return False

    wait_until(refused, timeout=60, interval=0.5, message="the webhook to refuse an invalid event")


def test_the_webhook_refuses_invalid_events_at_apply_time(cluster: Cluster, webhooked: Webhooked, api_client):
    webhooked.start()
    wait_for_webhook(cluster)
    configuration = client.AdmissionregistrationV1Api(api_client).read_validating_webhook_configuration(
        webhooked.configuration
    )
    (webhook,) = configuration.webhooks
    assert (webhook.failure_policy, webhook.timeout_seconds) == ("Ignore", 5)
    assert webhook.client_config.url.startswith("https://127.0.0.1:")

    for name, (spec, message) in INVALID.items():
        for dry_run in ("All", None):  # kubectl apply --dry-run=server, then kubectl apply
            body = refusal(cluster, name, spec(), dry_run)
            assert message in body, (name, dry_run, body)
            denied = 'admission webhook \\"campaignevents.autoscaling.campaigns.dev\\" denied the request'
            assert denied in body, body
        assert cluster.event(name) is None

    create(cluster, "valid", valid_spec(), dry_run="All")
    assert cluster.event("valid") is None
    create(cluster, "valid", valid_spec())
    assert cluster.event("valid") is not None
    # An edit to an invalid spec is refused too; a metadata-only change (labels, the finalizer) is not.
    with pytest.raises(ApiException) as raised:
        cluster.patch_event_spec("valid", {"end": "2020-01-01T00:00:00Z"})
    assert raised.value.status == 422 and "spec.end" in raised.value.body
    cluster.custom.patch_namespaced_custom_object(
        API_GROUP, API_VERSION, cluster.namespace, PLURAL, "valid", {"metadata": {"labels": {"team": "a"}}}
    )


def test_with_the_operator_stopped_the_apply_succeeds_and_the_event_turns_invalid(
    cluster: Cluster, webhooked: Webhooked
):
    webhooked.start()
    wait_for_webhook(cluster)
    webhooked.stop()

    began = time.monotonic()
    create(cluster, "late", INVALID["end-before-start"][0]())
    took = time.monotonic() - began
    assert cluster.event("late") is not None
    assert took < 5.5, f"the create waited {took:.1f}s for a webhook that is gone"  # the 5 s timeout at most
    print(f"create with the operator stopped took {took:.3f}s")

    webhooked.start()

    def invalid() -> dict[str, Any] | None:
        valid = cluster.condition("late", "Valid")
        return valid if cluster.phase("late") == "Invalid" and valid else None

    condition = wait_until(invalid, timeout=60, message="the event to turn Invalid")
    assert condition["message"].startswith("spec.end: must be after spec.start"), condition
