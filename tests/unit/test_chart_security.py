"""The chart's security settings, rendered by the real Helm engine: PromQL tenancy, the namespace opt-in, and
the admission webhook (operator-managed with one replica, or cert-manager's)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.unit.test_chart import of_kind, parsed_args, render_script

__all__ = ["render_script"]  # the module's fixture, shared with test_chart.py


def render(script: ModuleType, values: dict[str, Any]) -> list[dict[str, Any]]:
    return [yaml.safe_load(obj.text) for obj in script.rendered_objects(script.render_chart(values))]


def grants(objects: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for role in of_kind(objects, "ClusterRole")
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_defaults_hold_queries_to_the_namespace_and_serve_no_webhook(render_script):
    objects = render(render_script, {})
    args = parsed_args(objects)
    assert args.metrics_namespace_label == "namespace"
    assert args.webhook_port is None and args.namespace_selector is None
    assert not of_kind(objects, "ValidatingWebhookConfiguration")
    assert ("", "namespaces", "list") not in grants(objects)
    assert not any(group == "events.k8s.io" for group, _, _ in grants(objects))


def test_an_empty_namespace_label_turns_the_scoping_off(render_script):
    assert (
        parsed_args(render(render_script, {"prometheus": {"namespaceLabel": ""}})).metrics_namespace_label
        == ""
    )


def test_the_namespace_selector(render_script):
    objects = render(render_script, {"watch": {"namespaceSelector": "campaigns.dev/enabled=true"}})
    assert parsed_args(objects).namespace_selector == {"campaigns.dev/enabled": "true"}
    assert {("", "namespaces", "list"), ("", "namespaces", "watch")} <= grants(objects)


def test_the_operator_managed_webhook_with_one_replica(render_script):
    objects = render(
        render_script, {"webhook": {"enabled": True}, "replicaCount": 1, "peering": {"enabled": False}}
    )
    args = parsed_args(objects)
    assert (args.webhook_port, args.webhook_timeout, args.webhook_failure_policy) == (9443, 5, "Ignore")
    assert args.webhook_service[1] == "campaign-autoscaler-webhook" and args.webhook_configuration
    (service,) = [s for s in of_kind(objects, "Service") if s["metadata"]["name"].endswith("-webhook")]
    assert service["spec"]["ports"][0]["port"] == 9443
    assert ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "create") in grants(objects)
    assert not of_kind(objects, "ValidatingWebhookConfiguration")


def test_two_replicas_without_cert_manager_are_refused(render_script):
    with pytest.raises(Exception, match=r"needs webhook\.certManager\.enabled"):
        render(render_script, {"webhook": {"enabled": True}})


def test_the_cert_manager_webhook(render_script):
    values = {
        "webhook": {"enabled": True, "certManager": {"enabled": True}},
        "watch": {"namespaceSelector": "campaigns.dev/enabled=true,team=shop"},
    }
    objects = render(render_script, values)
    args = parsed_args(objects)
    assert args.webhook_cert_dir and not args.webhook_configuration
    (configuration,) = of_kind(objects, "ValidatingWebhookConfiguration")
    (webhook,) = configuration["webhooks"]
    assert (webhook["failurePolicy"], webhook["timeoutSeconds"]) == ("Ignore", 5)
    assert webhook["namespaceSelector"] == {"matchLabels": {"campaigns.dev/enabled": "true", "team": "shop"}}
    assert webhook["clientConfig"]["service"]["path"] == "/validate-campaignevent"
    (certificate,) = of_kind(objects, "Certificate")
    assert configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].endswith(
        "/" + certificate["metadata"]["name"]
    )
    assert of_kind(objects, "Issuer")
    assert ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "create") not in grants(
        objects
    )
