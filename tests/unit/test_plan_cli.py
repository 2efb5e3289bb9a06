"""`campaign-autoscaler plan`: the timeline of every example, broken input, baselines and the cluster view."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler import cli
from campaign_autoscaler.adapters.scaledobjects import scaled_object_view
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.adapters.views import DeploymentView, HpaView, deployment_view, hpa_view
from campaign_autoscaler.adapters.workloads import DEPLOYMENTS, KindDirectory, WorkloadKind
from campaign_autoscaler.cli import plan as cli_plan
from campaign_autoscaler.planning import parse_spec, resolve_window, transitions
from campaign_autoscaler.planning.preflight import ClusterCapacity, NodeFacts

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
NOW = "2026-01-01T00:00:00Z"


def plan(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["plan", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def plan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = plan(capsys, *argv, "--output", "json")
    assert code == 0, err
    return json.loads(out)


def table_rows(out: str) -> list[list[str]]:
    """The body rows of the rich tables, as stripped cells."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")
    ]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def write(tmp_path: Path, text: str, name: str = "event.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- every example ---------------------------------------------------------------------------------------
def test_the_examples_include_the_9_9_sale() -> None:
    assert REPO / "examples" / "sale-9-9.yaml" in EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_plan_shows_every_transition_of_each_example(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, table, err = plan(capsys, "-f", str(path), "--now", NOW)
    assert code == 0, err
    report = plan_json(capsys, "-f", str(path), "--now", NOW)
    manifests = [
        doc for doc in yaml.safe_load_all(path.read_text()) if doc and doc["kind"] == "CampaignEvent"
    ]
    assert [event["name"] for event in report["events"]] == [doc["metadata"]["name"] for doc in manifests]
    rows = table_rows(table)
    for event, manifest in zip(report["events"], manifests, strict=True):
        spec = parse_spec(manifest["spec"])
        expected = transitions(spec, resolve_window(spec, datetime(2026, 1, 1, tzinfo=UTC)))
        assert [(t["at"], t["step"]) for t in event["transitions"]] == [
            (iso(t.at), t.label) for t in expected
        ]
        for step in expected:
            utc = f"{step.at:%Y-%m-%d %H:%M:%S} UTC"
            assert any(row[1] == utc and row[3] == step.label for row in rows), (utc, step.label)


# --- the 9.9 example, computed independently -------------------------------------------------------------
def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def expected_9_9_timeline() -> list[tuple[datetime, str, str, int]]:
    baseline, floor = 4, math.ceil(4 * 2.5)
    start = datetime(2026, 9, 8, 17, 0, tzinfo=UTC)  # 2026-09-09 00:00 in Jakarta, UTC+7 all year
    end = datetime(2026, 9, 9, 19, 0, tzinfo=UTC)  # 2026-09-10 02:00 in Jakarta
    lead, ramp_down = timedelta(minutes=30), timedelta(hours=1)
    steps = [
        (start - lead + i * lead / 3, "PreScaling", f"ramp-up {i + 1}/3", baseline + ceil_div(6 * (i + 1), 3))
        for i in range(3)
    ]
    steps += [(start, "Active", "window opens", floor), (end, "RampingDown", "window closes", floor)]
    steps += [
        (end + k * ramp_down / 4, "RampingDown", f"ramp-down {k}/4", baseline + ceil_div(6 * (4 - k), 4))
        for k in range(1, 4)
    ]
    return [*steps, (end + ramp_down, "Completed", "completed", baseline)]


def test_the_9_9_example_is_what_the_expectations_assume() -> None:
    spec = yaml.safe_load((REPO / "examples/sale-9-9.yaml").read_text())["spec"]
    assert spec["timezone"] == "Asia/Jakarta"
    # Every year on 9 September, 00:00 to 02:00 the next night: never a window already in the past.
    assert spec["schedule"] == {"cron": "0 0 9 9 *", "duration": "26h"}
    assert "start" not in spec and "end" not in spec
    assert (spec["leadTime"], spec["rampUp"], spec["rampDown"]) == (
        "30m",
        {"steps": 3},
        {"duration": "1h", "steps": 4},
    )
    assert spec["trafficMultiplier"] == 2.5
    assert spec["targets"][0] == {"name": "order-tracking"}
    assert [replicas for *_, replicas in expected_9_9_timeline()] == [6, 8, 10, 10, 10, 9, 7, 6, 4]


def test_plan_of_the_9_9_example_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    report = plan_json(
        capsys, "-f", str(REPO / "examples/sale-9-9.yaml"), "--baseline", "order-tracking=4", "--now", NOW
    )
    (event,) = report["events"]
    assert (event["name"], event["namespace"], event["timezone"]) == ("sale-9-9", "shop", "Asia/Jakarta")
    assert event["window"]["start"] == "2026-09-08T17:00:00Z"
    assert event["window"]["startLocal"] == "2026-09-09T00:00:00+07:00"
    assert (event["phase"], event["nextTransition"]) == ("Pending", "2026-09-08T16:30:00Z")
    target = event["targets"][0]
    assert (target["name"], target["baselineReplicas"], target["baselineSource"]) == (
        "order-tracking",
        4,
        "--baseline",
    )
    assert (target["floor"], target["reason"]) == (10, "floor 10 = ceil(2.5 x baseline 4)")
    timeline = [
        (t["at"], t["phase"], t["step"], t["replicas"]["order-tracking"]) for t in event["transitions"]
    ]
    assert timeline == [(iso(at), phase, step, n) for at, phase, step, n in expected_9_9_timeline()]


def test_plan_of_the_9_9_example_as_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = plan(
        capsys, "-f", str(REPO / "examples/sale-9-9.yaml"), "--baseline", "order-tracking=4", "--now", NOW
    )
    assert code == 0, err
    rows = {row[3]: row for row in table_rows(out) if len(row) > 4 and row[3]}
    for at, phase, step, replicas in expected_9_9_timeline():
        jakarta = at + timedelta(hours=7)  # Asia/Jakarta has no daylight saving time
        assert rows[step][:5] == [
            f"{jakarta:%Y-%m-%d %H:%M:%S} WIB",
            f"{at:%Y-%m-%d %H:%M:%S} UTC",
            phase,
            step,
            str(replicas),
        ]
    assert "floor 10 = ceil(2.5 x baseline 4)" in out
    assert "Baseline 1 assumed for selector campaign.tier=checkout" in out
    assert "--baseline targets[1]=N" in out


def test_plan_output_is_deterministic_for_a_given_now(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("-f", str(REPO / "examples/sale-9-9.yaml"), "--now", "2026-09-08T16:45:00Z")
    first, second = plan(capsys, *argv), plan(capsys, *argv)
    assert first == second
    assert "phase PreScaling, next transition 2026-09-08 16:50:00 UTC" in first[1]


# --- a recurring event -----------------------------------------------------------------------------------
RECURRING = """\
apiVersion: autoscaling.campaigns.dev/v1alpha1
kind: CampaignEvent
metadata: {name: payday, namespace: shop}
spec:
  timezone: Asia/Jakarta
  schedule: {cron: "0 0 25 * *", duration: 6h}
  targets: [{name: checkout}]
"""


def test_a_recurring_event_shows_the_next_window_after_now(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, RECURRING)
    (event,) = plan_json(capsys, "-f", path, "--now", "2026-12-24T18:00:00Z")["events"]  # 25th 01:00 local
    assert event["window"]["start"] == "2026-12-24T17:00:00Z"  # the current one
    assert event["phase"] == "Active"
    assert [w["startLocal"] for w in event["upcomingWindows"]] == [
        "2027-01-25T00:00:00+07:00",
        "2027-02-25T00:00:00+07:00",
        "2027-03-25T00:00:00+07:00",
    ]
    (event,) = plan_json(capsys, "-f", path, "--now", "2026-12-25T00:00:00Z")["events"]  # after its ramp-down
    assert (event["window"]["start"], event["phase"]) == ("2027-01-24T17:00:00Z", "Pending")


# --- several documents -----------------------------------------------------------------------------------
def test_several_documents_plan_every_campaign_event(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: checkout}\n"
    other = RECURRING.replace("name: payday", "name: payday-2")
    path = write(tmp_path, f"{deployment}---\n{RECURRING}---\n{other}")
    report = plan_json(capsys, "-f", path, "--now", NOW, "--baseline", "checkout=3")
    assert [event["name"] for event in report["events"]] == ["payday", "payday-2"]


def test_a_kubectl_list_is_read(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    item = yaml.safe_load(RECURRING)
    path = write(tmp_path, yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [item]}))
    assert [e["name"] for e in plan_json(capsys, "-f", path, "--now", NOW)["events"]] == ["payday"]


def test_the_manifest_can_come_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(RECURRING))
    assert [e["name"] for e in plan_json(capsys, "-f", "-", "--now", NOW)["events"]] == ["payday"]


# --- broken input ----------------------------------------------------------------------------------------
SALE = """\
apiVersion: autoscaling.campaigns.dev/v1alpha1
kind: CampaignEvent
metadata: {name: sale, namespace: shop}
spec:
  start: "2026-09-09T00:00:00Z"
  end: "2026-09-10T00:00:00Z"
  targets:
    - name: web
    - name: api
      replicas: 3
"""


@pytest.mark.parametrize(
    ("text", "expected_error"),
    [
        (SALE.replace("2026-09-10T00", "2026-09-08T00"), "error: spec.end: must be after spec.start"),
        (SALE.replace("replicas: 3", "replicas: -1"), "error: spec.targets[1].replicas: must be >= 0"),
        (SALE.replace("  start:", "  leadtime: 5m\n  start:"), "error: spec.leadtime: unknown field"),
        (SALE.replace("targets:", "targets: [oops\n  x:"), "invalid YAML: line 8, column 4"),
        (SALE.replace("kind: CampaignEvent", "kind: Deployment"), "kind: expected CampaignEvent"),
        (SALE.replace("v1alpha1", "v1"), "apiVersion: expected autoscaling.campaigns.dev/v1alpha1"),
        (SALE.replace("name: sale,", "labels: {},"), "metadata.name: required"),
        (
            "apiVersion: autoscaling.campaigns.dev/v1alpha1\nkind: CampaignEvent\nmetadata: {name: x}\n",
            "spec:",
        ),
        ("- a\n- b\n", "document 1: must be a Kubernetes object"),
        ("", "the file is empty"),
    ],
)
def test_a_broken_file_is_an_error_naming_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, expected_error: str
) -> None:
    path = write(tmp_path, text, "broken.yaml")
    code, out, err = plan(capsys, "-f", path, "--now", NOW)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert expected_error in err
    if not expected_error.startswith("error: spec."):
        assert path in err  # problems outside the spec name the file


def test_a_spec_error_also_names_the_event_and_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, SALE.replace("replicas: 3", "replicas: -1"))
    assert f"(CampaignEvent shop/sale in {path})" in plan(capsys, "-f", path)[2]


@pytest.mark.parametrize(
    ("flag", "expected_error"),
    [
        ("nope=3", "--baseline nope: not a target of this event (known: api, targets[0], targets[1], web)"),
        ("web", "--baseline web: expected NAME=N"),
        ("web=x", "is not a whole number"),
        ("web=-1", "must be >= 0"),
    ],
)
def test_a_bad_baseline_flag_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str, expected_error: str
) -> None:
    code, _, err = plan(capsys, "-f", write(tmp_path, SALE), "--baseline", flag)
    assert code == 2
    assert expected_error in err


def test_a_missing_file_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = plan(capsys, "-f", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "missing.yaml" in err


def test_now_needs_an_offset(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["plan", "-f", write(tmp_path, SALE), "--now", "2026-09-09T00:00:00"])
    assert exit_.value.code == 2
    assert "needs a UTC offset" in capsys.readouterr().err


# --- baselines from a cluster ----------------------------------------------------------------------------
SELECTOR_EVENT = """\
apiVersion: autoscaling.campaigns.dev/v1alpha1
kind: CampaignEvent
metadata: {name: sale, namespace: shop}
spec:
  start: "2026-09-09T00:00:00Z"
  end: "2026-09-10T00:00:00Z"
  trafficMultiplier: 2
  targets:
    - name: order-tracking
    - selector: {matchLabels: {tier: checkout}}
    - name: gone
"""


def deployment(
    name: str,
    replicas: int,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    workload: WorkloadKind = DEPLOYMENTS,
) -> DeploymentView:
    metadata = {"name": name, "namespace": "shop", "labels": labels, "annotations": annotations}
    return deployment_view({"metadata": metadata, "spec": {"replicas": replicas}}, workload)


# What /apis/argoproj.io/v1alpha1 serves, abridged: Rollouts with /scale.
ARGO = {
    "resources": [
        {"name": "rollouts", "namespaced": True, "kind": "Rollout"},
        {"name": "rollouts/scale", "namespaced": True, "kind": "Scale"},
    ]
}


class FakeKube:
    """The reads of the Kubernetes adapter the CLI makes, over fixed workloads (and HPAs) in shop."""

    def __init__(self, deployments: list[DeploymentView], hpas: list[HpaView] | None = None) -> None:
        self.deployments = deployments
        self.hpas = hpas or []
        self.namespaces: set[str] = set()
        self.kinds = KindDirectory(
            lambda api_version: ARGO if api_version == "argoproj.io/v1alpha1" else None
        )
        self.capacity_refused = False  # these credentials may not list Nodes

    def read_capacity(self, namespace: str) -> ClusterCapacity:
        if self.capacity_refused:
            raise ApiException(status=403, reason="Forbidden")
        node = NodeFacts("node-1", {"cpu": Decimal(8), "memory": Decimal(2**34), "pods": Decimal(110)})
        return ClusterCapacity((node,), {"cpu": Decimal(1), "pods": Decimal(4)})

    def get_deployment(
        self, namespace: str, key: str, workload: WorkloadKind | None = None
    ) -> DeploymentView | None:
        self.namespaces.add(namespace)
        return next((view for view in self._in(namespace) if view.key == key), None)

    def list_deployments(
        self, namespace: str, label_selector: str | None = None, workload: WorkloadKind = DEPLOYMENTS
    ) -> list[DeploymentView]:
        self.namespaces.add(namespace)
        wanted = dict(term.split("=") for term in (label_selector or "").split(",") if term)
        return sorted(
            (
                view
                for view in self._in(namespace)
                if wanted.items() <= view.labels.items() and view.workload == workload
            ),
            key=lambda view: view.name,
        )

    def list_hpas(self, namespace: str) -> NamespaceSnapshot:
        return NamespaceSnapshot.of((), self.hpas if namespace == "shop" else (), namespace)

    def hpa_for(self, view: DeploymentView, snapshot: NamespaceSnapshot) -> HpaView | None:
        return snapshot.hpa_for(view.key)

    def _in(self, namespace: str) -> list[DeploymentView]:
        return self.deployments if namespace == "shop" else []


def test_kubeconfig_preflight_of_pods_without_requests(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cluster: FakeKube
) -> None:
    path = write(tmp_path, SELECTOR_EVENT)
    (event,) = plan_json(capsys, "-f", path, "--kubeconfig", "k", "--now", NOW)["events"]
    # 4 + 5 + 3 more pods (and 1 of the assumed "gone"), requesting nothing: counted as pods only.
    assert {row["resource"]: row["floorsAdd"] for row in event["preflight"]["nodes"]} == {
        "cpu": "0",
        "memory": "0",
        "pods": "13",
    }
    assert event["preflight"]["ok"] is True
    assert (
        "checkout-api: its pods request no resources, so preflight counts them as pods only."
        in event["notes"]
    )


def test_kubeconfig_without_the_right_to_list_nodes_skips_the_preflight_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cluster: FakeKube
) -> None:
    cluster.capacity_refused = True
    path = write(tmp_path, SELECTOR_EVENT)
    (event,) = plan_json(capsys, "-f", path, "--kubeconfig", "k", "--now", NOW)["events"]
    assert "preflight" not in event
    assert event["notes"][0].startswith("Preflight skipped: these credentials may not list Nodes")


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    kube = FakeKube(
        [
            # Already claimed by an event: its recorded baseline, not the scaled replicas, is the baseline.
            deployment("order-tracking", 10, {}, {"autoscaling.campaigns.dev/baseline": '{"replicas": 4}'}),
            deployment("checkout-web", 3, {"tier": "checkout"}),
            deployment("checkout-api", 5, {"tier": "checkout"}),
            deployment("search", 7, {"tier": "search"}),
        ]
    )
    monkeypatch.setattr(cli_plan, "_kube_adapter", lambda kubeconfig, context: kube)
    return kube


def test_kubeconfig_baselines_and_selector_matches(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cluster: FakeKube
) -> None:
    path = write(tmp_path, SELECTOR_EVENT)
    (event,) = plan_json(capsys, "-f", path, "--kubeconfig", "kubeconfig.yaml", "--now", NOW)["events"]
    targets = {t["name"]: (t["baselineReplicas"], t["baselineSource"], t["floor"]) for t in event["targets"]}
    assert targets == {
        "order-tracking": (4, "cluster", 8),
        "checkout-api": (5, "cluster", 10),
        "checkout-web": (3, "cluster", 6),
        "gone": (1, "assumed", 2),
    }
    assert cluster.namespaces == {"shop"}
    assert "Deployment shop/gone was not found in the cluster." in event["notes"]
    opens = next(t for t in event["transitions"] if t["step"] == "window opens")
    assert opens["replicas"] == {"order-tracking": 8, "checkout-api": 10, "checkout-web": 6, "gone": 2}


def test_the_namespace_flag_picks_where_deployments_are_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cluster: FakeKube
) -> None:
    path = write(tmp_path, SELECTOR_EVENT)
    (event,) = plan_json(capsys, "-f", path, "--kubeconfig", "k", "-n", "other", "--now", NOW)["events"]
    assert cluster.namespaces == {"other"}
    assert {t["name"]: t["baselineSource"] for t in event["targets"]} == {
        "order-tracking": "assumed",
        "gone": "assumed",
    }
    assert "selector tier=checkout matched no Deployment in namespace other." in event["notes"]


def test_a_baseline_flag_overrides_the_cluster(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cluster: FakeKube
) -> None:
    path = write(tmp_path, SELECTOR_EVENT)
    argv = ("-f", path, "--kubeconfig", "k", "--baseline", "checkout-web=6", "--baseline", "gone=2")
    (event,) = plan_json(capsys, *argv, "--now", NOW)["events"]
    assert {t["name"]: (t["baselineReplicas"], t["baselineSource"]) for t in event["targets"]} == {
        "order-tracking": (4, "cluster"),
        "checkout-api": (5, "cluster"),
        "checkout-web": (6, "--baseline"),
        "gone": (2, "--baseline"),
    }


def test_a_cluster_error_is_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Forbidden(FakeKube):
        def list_hpas(self, namespace: str) -> NamespaceSnapshot:
            raise ApiException(status=403, reason="Forbidden")

    monkeypatch.setattr(cli_plan, "_kube_adapter", lambda kubeconfig, context: Forbidden([]))
    code, _, err = plan(capsys, "-f", write(tmp_path, SELECTOR_EVENT), "--kubeconfig", "k")
    assert code == 1
    assert err == "error: --kubeconfig k: 403 Forbidden\n"


def test_selector_targets_take_a_baseline_by_index(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, SELECTOR_EVENT)
    (event,) = plan_json(capsys, "-f", path, "--baseline", "targets[1]=5", "--now", NOW)["events"]
    selector = next(t for t in event["targets"] if t["name"] == "selector tier=checkout")
    assert (selector["baselineReplicas"], selector["floor"], selector["target"]) == (5, 10, "spec.targets[1]")


# --- every example plans to a window still to come -------------------------------------------------------
@pytest.mark.parametrize("years_ahead", [0, 1, 5])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_example_plans_to_a_window_to_come(
    capsys: pytest.CaptureFixture[str], path: Path, years_ahead: int
) -> None:
    """`plan -f` of each example today (and in one and five years) finds a window that has not ended, so a
    new user who applies an example sees it Pending (or under way), never Completed."""
    now = datetime.now(UTC) + timedelta(days=365 * years_ahead)
    for event in plan_json(capsys, "-f", str(path), "--now", iso(now))["events"]:
        assert event["phase"] != "Completed", event["name"]
        assert datetime.fromisoformat(event["window"]["end"]) > now, event["name"]
        if event["phase"] == "Pending":
            assert datetime.fromisoformat(event["window"]["start"]) > now, event["name"]


def test_an_unreadable_baseline_annotation_is_one_line_naming_the_deployment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = deployment("order-tracking", 10, {}, {"autoscaling.campaigns.dev/baseline": "{not json"})
    monkeypatch.setattr(cli_plan, "_kube_adapter", lambda kubeconfig, context: FakeKube([broken]))
    code, out, err = plan(capsys, "-f", write(tmp_path, SELECTOR_EVENT), "--kubeconfig", "k")
    assert (code, out) == (1, "")
    assert err.startswith("error: Deployment shop/order-tracking: ") and err.count("\n") == 1


KINDS_EVENT = """\
apiVersion: autoscaling.campaigns.dev/v1alpha1
kind: CampaignEvent
metadata: {name: sale, namespace: shop}
spec:
  start: "2026-09-09T00:00:00Z"
  end: "2026-09-10T00:00:00Z"
  trafficMultiplier: 2
  targets:
    - name: checkout
    - {name: ledger, kind: StatefulSet}
    - {selector: {matchLabels: {tier: web}}, kind: Rollout, apiVersion: argoproj.io/v1alpha1}
"""


def test_kubeconfig_plan_shows_each_targets_kind_and_what_is_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollouts = WorkloadKind("argoproj.io/v1alpha1", "Rollout", "rollouts")
    statefulsets = WorkloadKind("apps/v1", "StatefulSet", "statefulsets")
    hpa = hpa_view(
        {
            "metadata": {"name": "checkout"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
                "minReplicas": 2,
                "maxReplicas": 6,
            },
        }
    )
    kube = FakeKube(
        [
            deployment("checkout", 2, {}),
            deployment("ledger", 3, {}, workload=statefulsets),
            deployment("web", 4, {"tier": "web"}, workload=rollouts),
            deployment("web-legacy", 5, {"tier": "web"}),  # a Deployment: not the selector's kind
        ],
        [hpa],
    )
    monkeypatch.setattr(cli_plan, "_kube_adapter", lambda kubeconfig, context: kube)
    path = write(tmp_path, KINDS_EVENT)
    (event,) = plan_json(capsys, "-f", path, "--kubeconfig", "k", "--now", NOW)["events"]
    assert {t["name"]: (t["kind"], t["writes"], t["baselineReplicas"]) for t in event["targets"]} == {
        "checkout": (
            "Deployment",
            "HorizontalPodAutoscaler/checkout minReplicas (maxReplicas when below the floor)",
            2,
        ),
        "StatefulSet.apps/ledger": ("StatefulSet", "StatefulSet spec.replicas", 3),
        "Rollout.argoproj.io/web": ("Rollout", "Rollout /scale (rollouts.argoproj.io)", 4),
    }
    code, out, _ = plan(capsys, "-f", path, "--kubeconfig", "k", "--now", NOW)
    assert code == 0 and "Rollout /scale (rollouts.argoproj.io)" in out and "StatefulSet spec.replicas" in out


@pytest.mark.parametrize(
    ("paused", "written"),
    [
        (False, "ScaledObject/checkout-so minReplicaCount (maxReplicaCount when below the floor)"),
        (True, "nothing: ScaledObject/checkout-so is paused on purpose (KEDA's paused annotations)"),
    ],
)
def test_kubeconfig_plan_of_a_keda_scaled_target_names_its_scaled_object(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    paused: bool,
    written: str,
) -> None:
    annotations = {"autoscaling.keda.sh/paused-replicas": "2"} if paused else {}
    scaled = scaled_object_view(
        {
            "metadata": {"name": "checkout-so", "annotations": annotations},
            "spec": {"scaleTargetRef": {"name": "checkout"}, "minReplicaCount": 2, "maxReplicaCount": 8},
        }
    )
    keda_hpa = hpa_view(  # the HPA KEDA owns for it: never what a claim writes
        {
            "metadata": {"name": "keda-hpa-checkout-so"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
                "minReplicas": 2,
                "maxReplicas": 8,
            },
        }
    )
    kube = FakeKube([deployment("checkout", 2, {})], [keda_hpa, scaled])  # type: ignore[list-item]
    monkeypatch.setattr(cli_plan, "_kube_adapter", lambda kubeconfig, context: kube)
    path = write(tmp_path, KINDS_EVENT.split("    - {name: ledger")[0])
    (event,) = plan_json(capsys, "-f", path, "--kubeconfig", "k", "--now", NOW)["events"]
    assert [(t["name"], t["writes"]) for t in event["targets"]] == [("checkout", written)]


def test_kubeconfig_plan_of_a_kind_the_cluster_cannot_scale_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_plan, "_kube_adapter", lambda kubeconfig, context: FakeKube([]))
    path = write(tmp_path, KINDS_EVENT.replace("argoproj.io/v1alpha1", "example.com/v1"))
    code, out, err = plan(capsys, "-f", path, "--kubeconfig", "k", "--now", NOW)
    assert (code, out) == (2, "")
    assert err == (
        "error: spec.targets[2].kind: Rollout is not a namespaced kind the API server serves under "
        "example.com/v1\n"
    )
