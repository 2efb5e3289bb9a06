"""The Helm chart through the real Helm engine (helm-python-sdk), no cluster: lint, Kubernetes schemas,
least-privilege RBAC, pod security, the values schema, and that manifests/ and the chart's CRD copy are
what the render script produces."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from campaign_autoscaler.cli import build_parser
from campaign_autoscaler.planning.durations import GO_DURATION_PATTERN

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "campaign-autoscaler"
KUBERNETES_VERSION = "1.30"
RELEASE_NAMESPACE = "campaign-system"
SERVICE_ACCOUNT = "campaign-autoscaler"
WATCHED = ("shop", "payments")

SCENARIOS = MappingProxyType(
    {
        "defaults": {},
        "namespaced": {"watchNamespaces": list(WATCHED)},
        "service-monitor": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}
        },
        "prometheus-auth": {
            "prometheus": {
                "url": "https://prometheus.monitoring.svc:9091",
                "bearerTokenSecret": {"name": "prometheus-reader", "key": "token"},
                "caConfigMap": {"name": "prometheus-ca", "key": "ca.crt"},
            }
        },
        "standalone": {"replicaCount": 1, "peering": {"enabled": False}},
        "monitoring": {
            "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Platform"}},
        },
    }
)

CLUSTER_SCOPED_KINDS = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
)

# (apiGroup, resource, resourceName or None, verb): what the operator does on the API, nothing more.
WORKLOAD_GRANTS = frozenset(
    [
        ("autoscaling.campaigns.dev", "campaignevents", None, verb)
        for verb in ("get", "list", "watch", "patch")
    ]
    + [("autoscaling.campaigns.dev", "campaignevents/status", None, verb) for verb in ("get", "patch")]
    + [("apps", "deployments", None, verb) for verb in ("get", "list", "watch", "patch")]
    + [("autoscaling", "horizontalpodautoscalers", None, verb) for verb in ("get", "list", "watch", "patch")]
    + [("", "events", None, verb) for verb in ("create", "patch")]
    # Why capacity is missing: the Pods of claimed targets, from a watch; never a GET, never a write.
    + [("", "pods", None, verb) for verb in ("list", "watch")]
)
CRD_OBSERVER_GRANTS = frozenset(
    ("apiextensions.k8s.io", "customresourcedefinitions", None, verb) for verb in ("list", "watch")
)
NAMESPACE_OBSERVER_GRANTS = frozenset(("", "namespaces", None, verb) for verb in ("list", "watch"))


def peering_grants(resource: str, name: str) -> frozenset[tuple[str, str, str | None, str]]:
    # The operator creates its own peering object at start-up: a create cannot be limited to a name.
    reads = {("kopf.dev", resource, None, verb) for verb in ("list", "watch", "create")}
    own_object = {("kopf.dev", resource, name, verb) for verb in ("get", "patch")}
    return frozenset(reads | own_object)


# -- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def render_script() -> ModuleType:
    """scripts/render_manifests.py, which both writes manifests/ and renders for these tests."""
    spec = importlib.util.spec_from_file_location(
        "render_manifests", REPO_ROOT / "scripts" / "render_manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def renders(render_script: ModuleType) -> Mapping[str, list[dict[str, Any]]]:
    """Scenario name -> the rendered objects, rendered once for the whole module."""
    return {
        name: [
            yaml.safe_load(obj.text)
            for obj in render_script.rendered_objects(render_script.render_chart(values))
        ]
        for name, values in SCENARIOS.items()
    }


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def peering_crds() -> Mapping[str, dict[str, Any]]:
    """Kind -> the Kopf peering CRD that defines it."""
    documents = yaml.safe_load_all((CHART_DIR / "crds" / "kopfpeerings.kopf.dev.yaml").read_text())
    return {crd["spec"]["names"]["kind"]: crd for crd in documents}


# -- helpers -------------------------------------------------------------------------------------------------


def of_kind(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def only(objects: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    matching = of_kind(objects, kind)
    assert len(matching) == 1, f"expected one {kind}, got {len(matching)}"
    return matching[0]


def operator_container(objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def parsed_args(objects: Iterable[dict[str, Any]]) -> argparse.Namespace:
    """The container's arguments through the operator's own parser (the image's ENTRYPOINT adds `run`)."""
    return build_parser().parse_args(["run", *operator_container(objects)["args"]])


def grants(rules: Iterable[dict[str, Any]]) -> set[tuple[str, str, str | None, str]]:
    """Every (apiGroup, resource, resourceName, verb) the rules allow; resourceName None means any."""
    expanded = set()
    for rule in rules:
        names = rule.get("resourceNames") or [None]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for name in names:
                    expanded.update((group, resource, name, verb) for verb in rule["verbs"])
    return expanded


def bound_roles(objects: list[dict[str, Any]], binding_kind: str) -> list[dict[str, Any]]:
    """The (Cluster)Roles that bindings of `binding_kind` give to the operator's ServiceAccount."""
    role_kind = "ClusterRole" if binding_kind == "ClusterRoleBinding" else "Role"
    roles = []
    for binding in of_kind(objects, binding_kind):
        subjects = binding["subjects"]
        assert subjects == [
            {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": RELEASE_NAMESPACE}
        ]
        assert binding["roleRef"]["kind"] == role_kind
        namespace = binding["metadata"].get("namespace")
        matching = [
            role
            for role in of_kind(objects, role_kind)
            if role["metadata"]["name"] == binding["roleRef"]["name"]
            and role["metadata"].get("namespace") == namespace
        ]
        assert len(matching) == 1, (
            f"{binding_kind} {binding['metadata']['name']} points at no rendered {role_kind}"
        )
        roles += matching
    return roles


def all_rules(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for obj in objects if obj["kind"] in ("Role", "ClusterRole") for rule in obj["rules"]]


# -- lint and Kubernetes schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", ["v1.20.0", "v1.30.0"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_chart_lints_clean(scenario: str, kube_version: str) -> None:
    report = helm.lint(
        CHART_DIR, SCENARIOS[scenario], strict=True, namespace=RELEASE_NAMESPACE, kube_version=kube_version
    )
    assert report["errors"] == []
    assert [message for message in report["messages"] if message["severity"] >= 2] == []  # 2 warning, 3 error


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_object_validates_against_the_kubernetes_schemas(
    scenario: str, renders: Mapping[str, list[dict[str, Any]]], peering_crds: Mapping[str, dict[str, Any]]
) -> None:
    for obj in renders[scenario]:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # a Prometheus Operator CRD: checked by test_service_monitor_is_well_formed
        if obj["apiVersion"] == "kopf.dev/v1":
            jsonschema.validate(
                obj, peering_crds[obj["kind"]]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            )
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_objects_carry_their_namespace(scenario: str, renders: Mapping[str, list[dict[str, Any]]]) -> None:
    """Plain manifests have no `helm --namespace`: every namespaced object names its own."""
    for obj in renders[scenario]:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in CLUSTER_SCOPED_KINDS:
            assert namespace is None, f"{obj['kind']} {obj['metadata']['name']} is cluster-scoped"
        elif obj["kind"] in ("Role", "RoleBinding"):
            assert namespace in WATCHED
        else:
            assert namespace == RELEASE_NAMESPACE, f"{obj['kind']} {obj['metadata']['name']}"


def test_chart_crds_are_v1_and_valid() -> None:
    for path in sorted((CHART_DIR / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            assert crd["apiVersion"] == "apiextensions.k8s.io/v1", path.name  # served by v1.16+, so by v1.20
            kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)


def test_peering_crds_define_kopfs_resources(peering_crds: Mapping[str, dict[str, Any]]) -> None:
    cluster, namespaced = peering_crds["ClusterKopfPeering"]["spec"], peering_crds["KopfPeering"]["spec"]
    assert (cluster["group"], cluster["names"]["plural"], cluster["scope"]) == (
        "kopf.dev",
        "clusterkopfpeerings",
        "Cluster",
    )
    assert (namespaced["group"], namespaced["names"]["plural"], namespaced["scope"]) == (
        "kopf.dev",
        "kopfpeerings",
        "Namespaced",
    )
    for spec in (cluster, namespaced):
        (version,) = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status == {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }  # Kopf's keep-alives


def test_service_monitor_is_well_formed(renders: Mapping[str, list[dict[str, Any]]]) -> None:
    objects = renders["service-monitor"]
    monitor, service = only(objects, "ServiceMonitor"), only(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [port["name"] for port in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"
    for duration in (endpoint["interval"], endpoint["scrapeTimeout"]):
        assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", duration)
    assert of_kind(renders["defaults"], "ServiceMonitor") == []


def test_prometheus_rule_ships_the_rules_file(renders: Mapping[str, list[dict[str, Any]]]) -> None:
    """The optional PrometheusRule carries exactly monitoring/alerts.yaml (promtool-tested in
    test_monitoring.py); off by default."""
    rule = only(renders["monitoring"], "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load((REPO_ROOT / "monitoring" / "alerts.yaml").read_text())
    assert of_kind(renders["defaults"], "PrometheusRule") == []


def test_grafana_dashboard_config_map_for_the_sidecar(renders: Mapping[str, list[dict[str, Any]]]) -> None:
    dashboards = [
        obj
        for obj in of_kind(renders["monitoring"], "ConfigMap")
        if obj["metadata"]["name"].endswith("-dashboard")
    ]
    (config_map,) = dashboards
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Platform"}
    (content,) = config_map["data"].values()
    assert json.loads(content) == json.loads((REPO_ROOT / "monitoring" / "dashboard.json").read_text())
    assert of_kind(renders["defaults"], "ConfigMap") == []


def test_notes_say_which_image_runs(render_script: ModuleType) -> None:
    notes = render_script.render_chart(
        {"image": {"repository": "registry.example.com/platform/ca", "tag": "1.2.3"}}
    )
    (text,) = [text for template, text in notes.items() if template.endswith("NOTES.txt")]
    assert "Image: registry.example.com/platform/ca:1.2.3" in text
    (default,) = [
        text for template, text in render_script.render_chart().items() if template.endswith("NOTES.txt")
    ]
    assert "Image: campaign-autoscaler:0.1.0" in default


# -- RBAC ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rbac_has_no_wildcards_and_nothing_on_secrets(
    scenario: str, renders: Mapping[str, list[dict[str, Any]]]
) -> None:
    rules = all_rules(renders[scenario])
    assert rules
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert not any("*" in item for item in rule.get(field, [])), rule
        assert not any(resource.split("/")[0] == "secrets" for resource in rule["resources"]), rule
        assert "nonResourceURLs" not in rule


def test_cluster_mode_grants_exactly_what_the_operator_does(
    renders: Mapping[str, list[dict[str, Any]]],
) -> None:
    objects = renders["defaults"]
    assert of_kind(objects, "Role") == [] and of_kind(objects, "RoleBinding") == []
    (cluster_role,) = bound_roles(objects, "ClusterRoleBinding")
    expected = (
        WORKLOAD_GRANTS | peering_grants("clusterkopfpeerings", "campaign-autoscaler") | CRD_OBSERVER_GRANTS
    )
    assert grants(cluster_role["rules"]) == expected


def test_namespaced_mode_grants_workloads_only_in_the_watched_namespaces(
    renders: Mapping[str, list[dict[str, Any]]],
) -> None:
    objects = renders["namespaced"]
    roles = bound_roles(objects, "RoleBinding")
    assert sorted(role["metadata"]["namespace"] for role in roles) == sorted(WATCHED)
    for role in roles:
        assert grants(role["rules"]) == WORKLOAD_GRANTS | peering_grants(
            "kopfpeerings", "campaign-autoscaler"
        )
    # Cluster-wide, only Kopf's observers: CRDs, and namespaces to match --namespace against.
    (observer,) = bound_roles(objects, "ClusterRoleBinding")
    assert grants(observer["rules"]) == CRD_OBSERVER_GRANTS | NAMESPACE_OBSERVER_GRANTS
    for cluster_role in of_kind(objects, "ClusterRole"):
        granted_resources = {resource for _, resource, _, _ in grants(cluster_role["rules"])}
        assert not granted_resources & {"deployments", "horizontalpodautoscalers", "events"}, cluster_role


def test_standalone_mode_has_no_peering(renders: Mapping[str, list[dict[str, Any]]]) -> None:
    objects = renders["standalone"]
    assert not [rule for rule in all_rules(objects) if "kopf.dev" in rule["apiGroups"]]
    assert not [obj for obj in objects if obj["apiVersion"] == "kopf.dev/v1"]
    assert parsed_args(objects).peering is None
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # never two standalone operators at once


def test_aggregated_roles_for_people_who_manage_campaigns(
    renders: Mapping[str, list[dict[str, Any]]],
) -> None:
    roles = {role["metadata"]["name"]: role for role in of_kind(renders["defaults"], "ClusterRole")}
    viewer, editor = roles["campaign-autoscaler-view"], roles["campaign-autoscaler-edit"]
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    group = "autoscaling.campaigns.dev"
    assert grants(viewer["rules"]) == {
        *((group, "campaignevents", None, verb) for verb in ("get", "list", "watch")),
        (group, "campaignevents/status", None, "get"),
    }
    editor_verbs = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
    assert grants(editor["rules"]) == {
        *((group, "campaignevents", None, verb) for verb in editor_verbs),
        (group, "campaignevents/status", None, "get"),
    }


def test_no_peering_object_in_the_chart(renders: Mapping[str, list[dict[str, Any]]]) -> None:
    """The operator creates its peering object itself: an object of a kind whose CRD comes in the same
    `kubectl apply` cannot be mapped, so shipping it would make the one-shot install fail."""
    for objects in renders.values():
        assert [obj for obj in objects if obj["apiVersion"].startswith("kopf.dev/")] == []


# -- the operator Deployment ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_pod_security(scenario: str, renders: Mapping[str, list[dict[str, Any]]]) -> None:
    pod = only(renders[scenario], "Deployment")["spec"]["template"]["spec"]
    container = operator_container(renders[scenario])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    tmp_mounts = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp"]
    assert len(tmp_mounts) == 1 and "emptyDir" in volumes[tmp_mounts[0]["name"]]
    assert pod["serviceAccountName"] == SERVICE_ACCOUNT


def test_probes_hit_kopfs_health_endpoint(renders: Mapping[str, list[dict[str, Any]]]) -> None:
    container = operator_container(renders["defaults"])
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    liveness_port = parsed_args(renders["defaults"]).liveness_port
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        assert probe["httpGet"]["path"] == "/healthz"
        assert ports[probe["httpGet"]["port"]] == liveness_port


def test_default_arguments_parse_with_the_operator_cli(renders: Mapping[str, list[dict[str, Any]]]) -> None:
    args = parsed_args(renders["defaults"])
    assert (args.command, args.all_namespaces, args.namespaces) == ("run", True, [])
    assert (args.resync_interval, args.metrics_interval, args.scale_down_stabilization) == (15.0, 15.0, 300.0)
    assert (args.max_scale_factor, args.prometheus_timeout, args.log_format) == (10.0, 5.0, "json")
    assert (args.dry_run, args.verbose, args.kubeconfig) == (False, False, None)  # in-cluster config
    assert (args.peering, args.peering_lifetime) == ("campaign-autoscaler", 10.0)
    container = operator_container(renders["defaults"])
    assert args.metrics_port in [port["containerPort"] for port in container["ports"]]
    assert container["image"] == "campaign-autoscaler:0.1.0"  # tag defaults to appVersion
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"  # Kopf's peer identity


def test_namespaced_mode_passes_each_namespace(renders: Mapping[str, list[dict[str, Any]]]) -> None:
    args = parsed_args(renders["namespaced"])
    assert (args.all_namespaces, args.namespaces) == (False, list(WATCHED))


def test_prometheus_auth_from_a_secret_and_a_config_map(renders: Mapping[str, list[dict[str, Any]]]) -> None:
    objects = renders["prometheus-auth"]
    args = parsed_args(objects)
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = operator_container(objects)["volumeMounts"]

    def volume_holding(path: str) -> dict[str, Any]:
        (mount,) = [mount for mount in mounts if path.startswith(mount["mountPath"] + "/")]
        assert mount.get("readOnly") is True
        return volumes[mount["name"]]

    assert args.prometheus_url == "https://prometheus.monitoring.svc:9091"
    token_volume = volume_holding(args.prometheus_bearer_token_file)
    assert token_volume["secret"]["secretName"] == "prometheus-reader"
    assert token_volume["secret"]["items"] == [{"key": "token", "path": "token"}]
    assert args.prometheus_bearer_token_file.endswith("/token")
    ca_volume = volume_holding(args.prometheus_ca_file)
    assert ca_volume["configMap"] == {"name": "prometheus-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    assert args.prometheus_ca_file.endswith("/ca.crt")


# -- values and their schema ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_values",
    [
        {"replicaCount": "two"},
        {"replicas": 2},  # unknown top-level key
        {"watchNamespaces": ["shop-*"]},  # Roles need exact names
        {"logFormat": "yaml"},
        {"resyncInterval": "0s"},
        {"maxScaleFactor": 0.5},
        {"dryRun": "yes"},
        {"prometheus": {"url": "prometheus:9090"}},
    ],
)
def test_schema_rejects_bad_values(chart: helm.Chart, bad_values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(bad_values)
    with pytest.raises(helm.HelmValuesError):
        chart.render(bad_values, name="campaign-autoscaler", namespace=RELEASE_NAMESPACE)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 2, "peering": {"enabled": False}}, "needs peering.enabled"),
        ({"prometheus": {"bearerTokenFile": "/t", "bearerTokenSecret": {"name": "s"}}}, "not both"),
        ({"prometheus": {"caFile": "/ca", "caConfigMap": {"name": "c"}}}, "not both"),
        ({"serviceMonitor": {"enabled": True}, "metrics": {"enabled": False}}, "needs metrics.enabled"),
        ({"livenessPort": 9090}, "must differ"),
    ],
)
def test_contradicting_values_stop_the_render(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    chart.validate_schema(values)  # each value is fine on its own
    with pytest.raises(helm.HelmRenderError, match=message):
        chart.render(values, name="campaign-autoscaler", namespace=RELEASE_NAMESPACE)


def test_schema_durations_are_the_operators(chart: helm.Chart) -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    assert schema["definitions"]["duration"]["pattern"] == GO_DURATION_PATTERN
    chart.validate_schema(None)  # the defaults pass


def test_every_own_value_is_commented() -> None:
    """Keys of the chart's own settings carry a comment line right above them (free-form Kubernetes blocks
    such as resources or securityContext are documented as a whole)."""
    text = (CHART_DIR / "values.yaml").read_text()
    lines = text.splitlines()
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    undocumented = []

    def visit(node: yaml.MappingNode, schema_node: Mapping[str, Any], path: str) -> None:
        for key_node, value_node in node.value:
            key_path = f"{path}{key_node.value}"
            previous = lines[key_node.start_mark.line - 1].strip() if key_node.start_mark.line else ""
            if not previous.startswith("#"):
                undocumented.append(key_path)
            child_schema = schema_node.get("properties", {}).get(key_node.value, {})
            if isinstance(value_node, yaml.MappingNode) and child_schema.get("additionalProperties") is False:
                visit(value_node, child_schema, key_path + ".")

    visit(yaml.compose(text), schema, "")
    assert undocumented == []


# -- generated files -----------------------------------------------------------------------------------------


def test_chart_crd_is_a_byte_identical_copy(render_script: ModuleType) -> None:
    assert render_script.CHART_CRD_COPY.read_bytes() == render_script.CRD_SOURCE.read_bytes(), (
        "run scripts/render_manifests.py"
    )


def test_manifests_equal_a_fresh_render(render_script: ModuleType) -> None:
    expected = render_script.expected_files()
    assert render_script.out_of_date(expected) == [], "run scripts/render_manifests.py"


def test_manifests_install_the_namespace_first(render_script: ModuleType) -> None:
    documents = list(yaml.safe_load_all(render_script.OPERATOR_MANIFEST.read_text()))
    assert documents[0]["kind"] == "Namespace"
    assert documents[0]["metadata"]["name"] == RELEASE_NAMESPACE
    kinds = [document["kind"] for document in documents]
    assert kinds.index("ServiceAccount") < kinds.index("ClusterRoleBinding") < kinds.index("Deployment")
    peering_crd_kinds = {
        crd["kind"] for crd in yaml.safe_load_all(render_script.PEERING_CRDS_MANIFEST.read_text())
    }
    assert peering_crd_kinds == {"CustomResourceDefinition"}


def test_image_runs_as_the_user_the_chart_expects(renders: Mapping[str, list[dict[str, Any]]]) -> None:
    """The Dockerfile's numeric USER, entrypoint and base, against the pod the chart builds around them."""
    instructions = [
        line.split(maxsplit=1)
        for line in (REPO_ROOT / "Dockerfile").read_text().splitlines()
        if line and not line.startswith((" ", "#"))
    ]
    by_keyword = {keyword: argument for keyword, argument in instructions}  # the last one of each wins
    assert [argument for keyword, argument in instructions if keyword == "FROM"][-1] == "python:3.11-slim"
    assert json.loads(by_keyword["ENTRYPOINT"]) == ["campaign-autoscaler", "run"]
    uid, gid = (int(part) for part in by_keyword["USER"].split(":"))
    pod_security = only(renders["defaults"], "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert (uid, gid) == (10001, 10001) == (pod_security["runAsUser"], pod_security["runAsGroup"])
