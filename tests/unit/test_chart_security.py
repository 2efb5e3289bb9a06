"""The chart's security settings, rendered by the real Helm engine: PromQL tenancy, the namespace opt-in, and
the admission webhook (operator-managed with one replica, or cert-manager's)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from campaign_autoscaler.cli import build_parser

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def render_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "render_manifests_security", REPO_ROOT / "scripts" / "render_manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def render(script: ModuleType, values: dict[str, Any]) -> list[dict[str, Any]]:
    return [yaml.safe_load(obj.text) for obj in script.rendered_objects(script.render_chart(values))]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def args_of(objects: list[dict[str, Any]]) -> Any:
    (deployment,) = of_kind(objects, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return build_parser().parse_args(["run", *container["args"]])


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
    args = args_of(objects)
    assert args.metrics_namespace_label == "namespace"
    assert args.webhook_port is None and args.namespace_selector is None
    assert not of_kind(objects, "ValidatingWebhookConfiguration")
    assert ("", "namespaces", "list") not in grants(objects)
    assert not any(group == "events.k8s.io" for group, _, _ in grants(objects))


def test_an_empty_namespace_label_turns_the_scoping_off(render_script):
    assert (
        args_of(render(render_script, {"prometheus": {"namespaceLabel": ""}})).metrics_namespace_label == ""
    )


def test_the_namespace_selector(render_script):
    objects = render(render_script, {"watch": {"namespaceSelector": "campaigns.dev/enabled=true"}})
    assert args_of(objects).namespace_selector == {"campaigns.dev/enabled": "true"}
    assert {("", "namespaces", "list"), ("", "namespaces", "watch")} <= grants(objects)


def test_the_operator_managed_webhook_with_one_replica(render_script):
    objects = render(
        render_script, {"webhook": {"enabled": True}, "replicaCount": 1, "peering": {"enabled": False}}
    )
    args = args_of(objects)
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
    args = args_of(objects)
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
