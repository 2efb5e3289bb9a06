"""Target kinds: parsing `kind`/`apiVersion`, workload keys, API discovery, and the Invalid verdicts that name
`spec.targets[i].kind`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaign_autoscaler.adapters.informer import workload_kind
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.adapters.views import deployment_view, hpa_view
from campaign_autoscaler.adapters.workloads import (
    DEPLOYMENTS,
    STATEFULSETS,
    KindDirectory,
    WorkloadKind,
    kind_problem,
    kinds_served,
)
from campaign_autoscaler.handlers.kinds import kind_problem_in, named_kinds
from campaign_autoscaler.planning import (
    SpecError,
    check_target_kinds,
    parse_spec,
    resolve_targets,
    split_key,
    workload_key,
)

NOW = datetime(2026, 9, 1, tzinfo=UTC)
ROLLOUTS = WorkloadKind("argoproj.io/v1alpha1", "Rollout", "rollouts", scale=True)
# An APIResourceList as /apis/argoproj.io/v1alpha1 serves it (abridged): one kind with /scale, one without.
ARGO_LISTING = {
    "kind": "APIResourceList",
    "groupVersion": "argoproj.io/v1alpha1",
    "resources": [
        {"name": "rollouts", "namespaced": True, "kind": "Rollout", "verbs": ["get", "list", "watch"]},
        {"name": "rollouts/status", "namespaced": True, "kind": "Rollout", "verbs": ["get"]},
        {"name": "rollouts/scale", "namespaced": True, "kind": "Scale", "group": "autoscaling"},
        {"name": "analysistemplates", "namespaced": True, "kind": "AnalysisTemplate"},
        {"name": "clusteranalysistemplates", "namespaced": False, "kind": "ClusterAnalysisTemplate"},
    ],
}


def spec_with(*targets: dict) -> dict:
    return {"start": "2026-09-09T00:00:00Z", "end": "2026-09-09T02:00:00Z", "targets": list(targets)}


def workload(name: str, kind: WorkloadKind = DEPLOYMENTS, labels: dict | None = None, replicas: int = 2):
    body = {
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "labels": labels or {}},
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": replicas},
    }
    return deployment_view(body, kind)


def test_kind_and_api_version_default_to_an_apps_v1_deployment():
    target = parse_spec(spec_with({"name": "checkout"})).targets[0]
    assert (target.api_version, target.kind, target.kind_given) == ("apps/v1", "Deployment", False)
    rollout = parse_spec(
        spec_with({"name": "web", "kind": "Rollout", "apiVersion": "argoproj.io/v1alpha1"})
    ).targets[0]
    assert (rollout.api_version, rollout.kind, rollout.kind_given) == (
        "argoproj.io/v1alpha1",
        "Rollout",
        True,
    )
    assert rollout.display == "Rollout web"


@pytest.mark.parametrize(
    ("target", "field"),
    [
        ({"name": "web", "kind": "rollout"}, "spec.targets[0].kind"),
        ({"name": "web", "kind": 3}, "spec.targets[0].kind"),
        ({"name": "web", "apiVersion": "argoproj.io/"}, "spec.targets[0].apiVersion"),
        ({"name": "web", "apiVersion": "Apps/v1"}, "spec.targets[0].apiVersion"),
    ],
)
def test_a_malformed_kind_or_api_version_is_invalid_naming_the_field(target, field):
    with pytest.raises(SpecError) as raised:
        parse_spec(spec_with(target))
    assert raised.value.field == field


def test_the_same_name_may_be_targeted_once_per_kind():
    spec = parse_spec(spec_with({"name": "web"}, {"name": "web", "kind": "StatefulSet"}))
    assert [t.kind for t in spec.targets] == ["Deployment", "StatefulSet"]
    with pytest.raises(SpecError) as raised:
        parse_spec(spec_with({"name": "web", "kind": "StatefulSet"}, {"name": "web", "kind": "StatefulSet"}))
    assert raised.value.field == "spec.targets[1].name"


def test_a_workload_key_is_the_name_of_a_deployment_and_kind_group_name_otherwise():
    assert workload_key("apps/v1", "Deployment", "checkout") == "checkout"
    assert workload_key("apps/v1", "StatefulSet", "db") == "StatefulSet.apps/db"
    assert workload_key("argoproj.io/v1alpha1", "Rollout", "web") == "Rollout.argoproj.io/web"
    assert workload_key("v1", "ReplicationController", "old") == "ReplicationController/old"
    for key in ("checkout", "StatefulSet.apps/db", "Rollout.argoproj.io/web", "ReplicationController/old"):
        kind, group, name = split_key(key)
        version = f"{group}/v1" if group else "v1"
        assert workload_key(version, kind, name) == key


def test_targets_resolve_to_the_keys_of_their_kind():
    spec = parse_spec(
        spec_with(
            {"name": "db", "kind": "StatefulSet"},
            {"selector": {"matchLabels": {"tier": "web"}}, "kind": "Rollout", "apiVersion": "argoproj.io/v1"},
            {"name": "db"},
        )
    )
    resolved = resolve_targets(spec.targets, lambda target: ["Rollout.argoproj.io/web"])
    assert [key for _, key in resolved] == ["StatefulSet.apps/db", "Rollout.argoproj.io/web", "db"]


def test_discovery_finds_namespaced_kinds_and_their_scale_subresource():
    served = kinds_served("argoproj.io/v1alpha1", ARGO_LISTING)
    assert served["Rollout"] == ROLLOUTS
    assert served["AnalysisTemplate"].scale is False
    assert "ClusterAnalysisTemplate" not in served  # cluster-scoped: never a target
    assert ROLLOUTS.resource == "rollouts.argoproj.io" and ROLLOUTS.via == "Scale"
    assert (
        ROLLOUTS.scale_path("shop", "web") == "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web/scale"
    )
    assert STATEFULSETS.via == "StatefulSet" and STATEFULSETS.native


def test_the_directory_asks_once_per_group_version_and_again_only_when_it_served_nothing():
    asked: list[str] = []
    listings = {"argoproj.io/v1alpha1": ARGO_LISTING}

    def fetch(api_version: str):
        asked.append(api_version)
        return listings.get(api_version)

    directory = KindDirectory(fetch)
    assert directory.lookup("apps/v1", "StatefulSet", NOW) == STATEFULSETS
    assert directory.lookup("argoproj.io/v1alpha1", "Rollout", NOW) == ROLLOUTS
    assert directory.lookup("argoproj.io/v1alpha1", "AnalysisTemplate", NOW).scale is False
    assert asked == ["argoproj.io/v1alpha1"]
    assert directory.lookup("example.com/v1", "Widget", NOW) is None
    assert directory.lookup("example.com/v1", "Widget", NOW + timedelta(seconds=5)) is None
    assert asked == ["argoproj.io/v1alpha1", "example.com/v1"]  # not asked again right away
    listings["example.com/v1"] = {
        "resources": [
            {"name": "widgets", "namespaced": True, "kind": "Widget"},
            {"name": "widgets/scale", "namespaced": True, "kind": "Scale"},
        ]
    }
    assert directory.lookup("example.com/v1", "Widget", NOW + timedelta(seconds=31)).plural == "widgets"
    assert directory.by_group_kind("example.com", "Widget").api_version == "example.com/v1"


def test_an_unknown_kind_and_a_kind_without_scale_are_invalid_naming_the_kind():
    unknown = parse_spec(
        spec_with({"name": "a"}, {"name": "w", "kind": "Widget", "apiVersion": "example.com/v1"})
    )
    kinds = {("example.com/v1", "Widget"): None}
    with pytest.raises(SpecError) as raised:
        check_target_kinds(unknown.targets, lambda t: kind_problem_in(kinds, NamespaceSnapshot.of([]), t))
    assert raised.value.field == "spec.targets[1].kind"
    assert "not a namespaced kind the API server serves under example.com/v1" in str(raised.value)
    no_scale = WorkloadKind("argoproj.io/v1alpha1", "AnalysisTemplate", "analysistemplates", scale=False)
    assert "has no /scale subresource" in kind_problem(no_scale, no_scale.api_version, no_scale.kind)
    assert kind_problem(ROLLOUTS, ROLLOUTS.api_version, "Rollout") is None


def test_a_selector_without_kind_matching_several_kinds_is_invalid():
    spec = parse_spec(spec_with({"selector": {"matchLabels": {"tier": "web"}}}))
    snapshot = NamespaceSnapshot.of(
        [workload("web", labels={"tier": "web"}), workload("db", STATEFULSETS, {"tier": "web"})]
    )
    problem = kind_problem_in({}, snapshot, spec.targets[0])
    assert problem is not None and "several kinds (Deployment, StatefulSet)" in problem
    explicit = parse_spec(spec_with({"selector": {"matchLabels": {"tier": "web"}}, "kind": "Deployment"}))
    assert kind_problem_in({}, snapshot, explicit.targets[0]) is None
    assert [v.key for v in snapshot.matching(explicit.targets[0].matches)] == ["web"]


def test_the_raw_spec_names_its_kinds_for_discovery_and_statefulsets_for_a_selector_without_kind():
    raw = spec_with(
        {"name": "a"},
        {"name": "w", "kind": "Rollout", "apiVersion": "argoproj.io/v1alpha1"},
        {"selector": {"matchLabels": {"x": "y"}}},
        "not a target",
    )
    assert named_kinds(raw) == {
        ("apps/v1", "Deployment"),
        ("argoproj.io/v1alpha1", "Rollout"),
        ("apps/v1", "StatefulSet"),
    }


def test_an_hpa_names_the_workload_of_any_kind_it_scales():
    hpa = hpa_view(
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 5,
            },
        }
    )
    rollout = workload("web", ROLLOUTS)
    snapshot = NamespaceSnapshot.of([rollout, workload("web")], [hpa])
    assert snapshot.hpa_for(rollout.key) == hpa
    assert snapshot.hpa_for("web") is None  # the Deployment of the same name is not the one it scales


def test_a_kind_is_watched_at_its_own_collection():
    kind = workload_kind(ROLLOUTS)
    assert kind.url("shop") == "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts"
    assert kind.url(None) == "/apis/argoproj.io/v1alpha1/rollouts"
    assert workload_kind(STATEFULSETS).name == "StatefulSets"


def test_a_resource_name_is_found_in_its_groups_preferred_version():
    asked: list[str] = []

    def fetch_group(group: str):
        asked.append(group)
        return (
            {"preferredVersion": {"groupVersion": "argoproj.io/v1alpha1"}} if group == "argoproj.io" else None
        )

    directory = KindDirectory(lambda v: ARGO_LISTING if v == "argoproj.io/v1alpha1" else None, fetch_group)
    assert directory.resource("rollouts.argoproj.io", NOW) == ROLLOUTS
    assert directory.resource("statefulsets.apps", NOW) == STATEFULSETS
    assert directory.resource("widgets.example.com", NOW) is None
    assert asked == ["argoproj.io", "example.com"]  # apps/v1 is known without asking
