"""Targets of other kinds on the real API server: a StatefulSet (the local control plane runs its controller),
and a test CRD shaped like Argo Rollouts' Rollout scaled through its /scale subresource.

- Both are pre-scaled, held and restored exactly; the status says each one's kind and how it is scaled.
- A server-side apply of the application's own manifest mid-window (replicas reset to the value in git) is
  corrected from the watch within 1 s, and the recorded baseline stays.
- SIGKILL of the operator with a write in flight, for each kind, on the way up and on the way down (for the
  Rollout between its two writes: annotations then /scale up, /scale then annotations down): after each
  restart the end is exact.
- Bad input: an unknown kind, a kind without /scale, a selector over several kinds: Invalid naming
  `spec.targets[0].kind`, nothing touched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler.devenv.controlplane import ControlPlane
from campaign_autoscaler.planning.claims import BASELINE_ANNOTATION, CAMPAIGN_ANNOTATIONS, parse_baseline
from tests.integration.faultproxy import (
    DeploymentRecorder,
    DeploymentVersion,
    FaultProxy,
    RequestKind,
    ServingCertificate,
    proxied_kubeconfig,
)
from tests.integration.harness import (
    Cluster,
    active_soon,
    campaign_spec,
    running_operator,
    seconds_from_now,
    wait_until,
)
from tests.integration.test_faults import Supervisor
from tests.integration.test_transitions_first import replica_changes

CRDS = Path(__file__).parent / "crds" / "rollouts.example.campaigns.dev.yaml"
GROUP, VERSION = "example.campaigns.dev", "v1alpha1"
ROLLOUTS = (GROUP, VERSION, "rollouts")
STATEFULSETS = ("apps", "v1", "statefulsets")
DRIFT_SECONDS = 1.0


class Workloads:
    """StatefulSets and Rollouts of one test namespace, through the admin client."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def create_statefulset(self, name: str, replicas: int, labels: dict[str, str] | None = None) -> None:
        selector = {"app": name}
        body = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name, "labels": {**selector, **(labels or {})}},
            "spec": {
                "replicas": replicas,
                "serviceName": name,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": selector},
                    "spec": {"containers": [{"name": "db", "image": "registry.invalid/shop/db:1"}]},
                },
            },
        }
        self.custom.create_namespaced_custom_object("apps", "v1", self.namespace, "statefulsets", body)

    def create_rollout(self, name: str, replicas: int) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Rollout",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "strategy": {"canary": {"steps": [{"setWeight": 20}]}}},
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "rollouts", body)

    def get(self, resource: tuple[str, str, str], name: str) -> dict[str, Any]:
        group, version, plural = resource
        return self.custom.get_namespaced_custom_object(group, version, self.namespace, plural, name)

    def replicas(self, resource: tuple[str, str, str], name: str) -> int:
        return int(self.get(resource, name)["spec"]["replicas"])

    def campaign_annotations(self, resource: tuple[str, str, str], name: str) -> dict[str, str]:
        annotations = self.get(resource, name)["metadata"].get("annotations") or {}
        return {key: value for key, value in annotations.items() if key in CAMPAIGN_ANNOTATIONS}

    def baseline(self, resource: tuple[str, str, str], name: str) -> int:
        return parse_baseline(self.campaign_annotations(resource, name)[BASELINE_ANNOTATION]).replicas

    def apply_replicas(self, resource: tuple[str, str, str], kind: str, name: str, replicas: int) -> None:
        """A server-side apply of the application's manifest as git has it (Argo CD, Flux), taking
        spec.replicas over by force."""
        group, version, plural = resource
        api_version = f"{group}/{version}"
        body = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}
        body["spec"] = {"replicas": replicas}
        request = self.api_client.param_serialize(
            method="PATCH",
            resource_path=f"/apis/{api_version}/namespaces/{self.namespace}/{plural}/{name}",
            query_params=[("fieldManager", "argocd-controller"), ("force", "true")],
            header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
            body=json.dumps(body),
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(*request)
        response.read()
        assert response.status == 200, response.status


@pytest.fixture(scope="module")
def rollout_crd(api_client: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    for body in yaml.safe_load_all(CRDS.read_text()):
        try:
            extensions.create_custom_resource_definition(body)
        except ApiException as err:
            if err.status != 409:
                raise
    custom = client.CustomObjectsApi(api_client)

    def served() -> bool:
        try:
            custom.list_cluster_custom_object(GROUP, VERSION, "rollouts")
            custom.list_cluster_custom_object(GROUP, VERSION, "canaries")
            return True
        except ApiException:
            return False

    wait_until(served, timeout=30, message="Rollouts and Canaries served")


@pytest.fixture
def workloads(api_client: client.ApiClient, cluster: Cluster, rollout_crd: None) -> Workloads:
    return Workloads(api_client, cluster.namespace)


@pytest.fixture
def recorders(
    api_client: client.ApiClient, cluster: Cluster, rollout_crd: None
) -> Iterator[dict[str, DeploymentRecorder]]:
    """Every version of the namespace's StatefulSets and Rollouts, as a watch of the test's own sees them."""
    watching = {
        "StatefulSet": DeploymentRecorder(api_client, namespace=cluster.namespace, resource=STATEFULSETS),
        "Rollout": DeploymentRecorder(api_client, namespace=cluster.namespace, resource=ROLLOUTS),
    }
    for recorder in watching.values():
        recorder.start()
    yield watching
    for recorder in watching.values():
        recorder.request_stop()
    workloads = Workloads(api_client, cluster.namespace)
    workloads.create_statefulset("recorder-nudge", 0)  # an event for each watch: they end at once
    workloads.create_rollout("recorder-nudge", 0)
    for recorder in watching.values():
        recorder.stop()


def baselines_seen(versions: list[DeploymentVersion], name: str) -> set[int]:
    return {
        parse_baseline(v.annotations[BASELINE_ANNOTATION]).replicas
        for v in versions
        if v.name == name and BASELINE_ANNOTATION in v.annotations
    }


def rollout_target(name: str, replicas: int) -> dict[str, Any]:
    return {"name": name, "kind": "Rollout", "apiVersion": f"{GROUP}/{VERSION}", "replicas": replicas}


def db_and_web_window(opens_in: float, lasts: float, lead_time: str) -> dict[str, Any]:
    """A window for StatefulSet db (floor 5) and Rollout web (floor 7): one step up, one down in 2 s."""
    start = seconds_from_now(opens_in)
    return campaign_spec(
        start=start,
        end=start + timedelta(seconds=lasts),
        lead_time=lead_time,
        ramp_up_steps=1,
        ramp_down={"duration": "2s", "steps": 1},
        targets=[{"name": "db", "kind": "StatefulSet", "replicas": 5}, rollout_target("web", 7)],
    )


def back_at_baseline(workloads: Workloads, baselines: dict[tuple[tuple[str, str, str], str], int]) -> bool:
    return all(
        workloads.replicas(resource, name) == baseline and not workloads.campaign_annotations(resource, name)
        for (resource, name), baseline in baselines.items()
    )


def test_a_statefulset_and_a_rollout_are_pre_scaled_held_and_restored_exactly(
    cluster: Cluster,
    workloads: Workloads,
    kubeconfig: str,
    tmp_path: Path,
    recorders: dict[str, DeploymentRecorder],
):
    workloads.create_statefulset("db", 2)
    workloads.create_rollout("web", 3)
    spec = db_and_web_window(opens_in=4, lasts=6, lead_time="2s")
    args = ["--namespace", cluster.namespace, "--resync-interval", "2s"]
    with running_operator(kubeconfig, tmp_path / "operator.log", args) as operator:
        cluster.create_event("sale", spec)
        wait_until(
            lambda: workloads.replicas(STATEFULSETS, "db") == 5 and workloads.replicas(ROLLOUTS, "web") == 7,
            timeout=20,
            message="both pre-scaled",
        )
        assert workloads.baseline(STATEFULSETS, "db") == 2
        assert workloads.baseline(ROLLOUTS, "web") == 3
        wait_until(
            lambda: len(cluster.status("sale").get("targets") or []) == 2, timeout=10, message="status"
        )
        reported = {(t["name"], t["kind"], t["via"]) for t in cluster.status("sale")["targets"]}
        assert reported == {("db", "StatefulSet", "StatefulSet"), ("web", "Rollout", "Scale")}
        wait_until(lambda: cluster.phase("sale") == "Completed", timeout=30, message="Completed")
        wait_until(
            lambda: back_at_baseline(workloads, {(STATEFULSETS, "db"): 2, (ROLLOUTS, "web"): 3}),
            timeout=10,
            message="both restored exactly, annotations gone",
        )
        log = operator.log()
    assert f"Scaled StatefulSet {cluster.namespace}/db 2 -> 5" in log
    assert f"Restored Rollout {cluster.namespace}/web 7 -> 3" in log
    db_versions, web_versions = recorders["StatefulSet"].versions(), recorders["Rollout"].versions()
    assert [replicas for _, replicas in replica_changes(db_versions, "db")] == [2, 5, 2]
    assert [replicas for _, replicas in replica_changes(web_versions, "web")] == [3, 7, 3]
    assert baselines_seen(db_versions, "db") == {2} and baselines_seen(web_versions, "web") == {3}


def test_a_gitops_reset_of_replicas_is_corrected_from_the_watch_and_the_baseline_stays(
    cluster: Cluster,
    workloads: Workloads,
    kubeconfig: str,
    tmp_path: Path,
    recorders: dict[str, DeploymentRecorder],
):
    # A resync far longer than the guarantee: only the watch can explain a correction within a second.
    args = ["--namespace", cluster.namespace, "--resync-interval", "60s"]
    workloads.create_statefulset("db", 2)
    workloads.create_rollout("web", 3)
    targets = [{"name": "db", "kind": "StatefulSet", "replicas": 6}, rollout_target("web", 8)]
    floors = {"db": (STATEFULSETS, "StatefulSet", 6, 2), "web": (ROLLOUTS, "Rollout", 8, 3)}
    with running_operator(kubeconfig, tmp_path / "operator.log", args) as operator:
        cluster.create_event("sale", active_soon(targets))
        for name, (resource, _, floor, _) in floors.items():
            wait_until(lambda r=resource, n=name, f=floor: workloads.replicas(r, n) == f, timeout=20)
        for _ in range(3):
            for name, (resource, kind, floor, baseline) in floors.items():
                workloads.apply_replicas(resource, kind, name, baseline)  # the value in git
                wait_until(
                    lambda r=resource, n=name, f=floor: workloads.replicas(r, n) == f,
                    timeout=5,
                    message=f"{kind} {name} raised again",
                )
                time.sleep(0.3)
        for name, (resource, _, _, baseline) in floors.items():
            assert workloads.baseline(resource, name) == baseline, "the recorded baseline stays"
        log = operator.log()
    latencies = []
    for name, (_, kind, floor, baseline) in floors.items():
        seen = replica_changes(recorders[kind].versions(), name)
        assert [replicas for _, replicas in seen] == [baseline, floor] + [baseline, floor] * 3, seen
        latencies += [seen[i + 1][0] - seen[i][0] for i in range(2, 8, 2)]
        assert baselines_seen(recorders[kind].versions(), name) == {baseline}
    print(f"\nGitOps resets corrected after {[round(latency, 3) for latency in latencies]} s")
    assert max(latencies) <= DRIFT_SECONDS, f"{latencies}\n{log[-4000:]}"


def is_write(
    namespace: str, resource: str, name: str, subresource: str | None
) -> Callable[[RequestKind], bool]:
    def matches(kind: RequestKind) -> bool:
        return (
            kind.verb == "patch"
            and kind.namespace == namespace
            and kind.resource == resource
            and kind.subresource == subresource
            and kind.name == name
        )

    return matches


@pytest.fixture
def supervised(
    control_plane: ControlPlane, cluster: Cluster, tmp_path: Path, rollout_crd: None
) -> Iterator[tuple[Supervisor, FaultProxy]]:
    """The operator, through a proxy whose traps kill it the moment a chosen write goes out."""
    certificate = ServingCertificate(tmp_path / "certificate")
    proxy = FaultProxy(
        control_plane.url, seed=13, upstream_ca=control_plane.ca_path, certificate=certificate
    ).start()
    kubeconfig = proxied_kubeconfig(control_plane.kubeconfig_path, proxy, tmp_path / "proxied.kubeconfig")
    supervisor = Supervisor(
        kubeconfig, tmp_path, ["--namespace", cluster.namespace, "--resync-interval", "2s"]
    )
    try:
        yield supervisor, proxy
    finally:
        supervisor.stop()
        proxy.stop()


def test_sigkill_between_the_writes_of_each_kind_loses_no_baseline(
    cluster: Cluster,
    workloads: Workloads,
    supervised: tuple[Supervisor, FaultProxy],
    recorders: dict[str, DeploymentRecorder],
):
    supervisor, proxy = supervised
    namespace = cluster.namespace
    workloads.create_statefulset("db", 2)
    workloads.create_rollout("web", 3)
    spec = db_and_web_window(opens_in=14, lasts=8, lead_time="8s")
    # In order: the StatefulSet's claim (one patch) up; the Rollout's annotations up, before its /scale;
    # the StatefulSet's release; the Rollout's /scale down, before its annotations go.
    points = [
        ("statefulsets", "db", None),
        ("rollouts", "web", None),
        ("statefulsets", "db", None),
        ("rollouts", "web", "scale"),
    ]
    killed = []
    supervisor.start()
    cluster.create_event("sale", spec)
    for index, (resource, name, subresource) in enumerate(points):
        trap = proxy.arm_trap(
            is_write(namespace, resource, name, subresource), lambda _: supervisor.signal_kill(), forward=True
        )
        assert trap.sprung.wait(timeout=40), f"no write to {resource} {name} {subresource}: {killed}"
        supervisor.kill()
        killed.append(f"{trap.caught.key} {trap.caught.name}")
        if index == 1:  # after the restart the Rollout is raised through /scale: both at their floor
            supervisor.start()
            wait_until(
                lambda: (
                    workloads.replicas(STATEFULSETS, "db") == 5 and workloads.replicas(ROLLOUTS, "web") == 7
                ),
                timeout=20,
                message="both at their floor after two kills",
            )
            continue
        supervisor.start()
    wait_until(
        lambda: back_at_baseline(workloads, {(STATEFULSETS, "db"): 2, (ROLLOUTS, "web"): 3}),
        timeout=30,
        message="both restored exactly after four kills",
    )
    wait_until(lambda: cluster.phase("sale") == "Completed", timeout=20, message="Completed")
    print("\nkilled at: " + "; ".join(killed))
    assert killed == [
        "patch statefulsets db",
        "patch rollouts web",
        "patch statefulsets db",
        "patch rollouts/scale web",
    ]
    for kind, name, baseline, floor in (("StatefulSet", "db", 2, 5), ("Rollout", "web", 3, 7)):
        versions = recorders[kind].versions()
        assert baselines_seen(versions, name) == {baseline}, (kind, versions)
        assert {v.replicas for v in versions if v.name == name} == {baseline, floor}, (kind, versions)


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        (
            {"name": "w", "kind": "Widget", "apiVersion": "example.com/v1"},
            "Widget is not a namespaced kind the API server serves under example.com/v1",
        ),
        (
            {"name": "c", "kind": "Canary", "apiVersion": f"{GROUP}/{VERSION}"},
            f"Canary ({GROUP}/{VERSION}) has no /scale subresource",
        ),
        (
            {"selector": {"matchLabels": {"tier": "checkout"}}},
            "the selector matches workloads of several kinds (Deployment, StatefulSet)",
        ),
    ],
    ids=["unknown kind", "no scale subresource", "selector over several kinds"],
)
def test_a_target_kind_that_cannot_be_scaled_is_invalid_and_nothing_is_touched(
    cluster: Cluster, workloads: Workloads, kubeconfig: str, tmp_path: Path, target: dict, problem: str
):
    cluster.create_deployment("checkout", 2, labels={"tier": "checkout"})
    workloads.create_statefulset("ledger", 3, labels={"tier": "checkout"})
    args = ["--namespace", cluster.namespace, "--resync-interval", "2s"]
    with running_operator(kubeconfig, tmp_path / "operator.log", args):
        cluster.create_event("sale", active_soon([{**target, "replicas": 9}], opens_in=0))
        wait_until(lambda: cluster.phase("sale") == "Invalid", timeout=20, message="Invalid")
        valid = cluster.condition("sale", "Valid")
        assert valid is not None and valid["status"] == "False"
        assert valid["message"].startswith("spec.targets[0].kind: "), valid["message"]
        assert problem in valid["message"]
        time.sleep(2)  # a resync later, still nothing
        assert cluster.replicas("checkout") == 2 and not cluster.campaign_annotations("checkout")
        assert workloads.replicas(STATEFULSETS, "ledger") == 3
        assert not workloads.campaign_annotations(STATEFULSETS, "ledger")
    assert [e.message for e in cluster.k8s_events("InvalidSpec")], "one Warning names the problem"


def test_the_collector_releases_orphan_claims_on_every_kind_it_watches_after_a_restart(
    cluster: Cluster, workloads: Workloads, kubeconfig: str, tmp_path: Path
):
    """Claims left by an event deleted while the operator was down, on kinds no live event names: the kinds
    of --target-kinds are watched from the start, so the collector finds and releases them."""
    gone = {
        "autoscaling.campaigns.dev/baseline": '{"replicas": 2}',
        "autoscaling.campaigns.dev/claims": json.dumps({f"{cluster.namespace}/gone": 6}),
    }
    workloads.create_statefulset("db", 6)
    workloads.create_rollout("web", 6)
    for resource, name in ((STATEFULSETS, "db"), (ROLLOUTS, "web")):
        group, version, plural = resource
        workloads.custom.patch_namespaced_custom_object(
            group, version, cluster.namespace, plural, name, {"metadata": {"annotations": gone}}
        )
    kinds = f"deployments.apps,statefulsets.apps,horizontalpodautoscalers.autoscaling,rollouts.{GROUP}"
    args = ["--namespace", cluster.namespace, "--resync-interval", "2s", "--target-kinds", kinds]
    with running_operator(kubeconfig, tmp_path / "operator.log", args):
        wait_until(
            lambda: back_at_baseline(workloads, {(STATEFULSETS, "db"): 2, (ROLLOUTS, "web"): 2}),
            timeout=20,
            message="both orphan claims released, baselines restored",
        )
    released = {e.involved_object.kind for e in cluster.k8s_events("OrphanClaimReleased")}
    assert released == {"StatefulSet", "Rollout"}
