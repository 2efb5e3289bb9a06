"""The operator's own Kopf peering object at start-up: created where it serves, waited for while the peering
CRDs are not served yet, accepted when it exists already, and a clear error otherwise."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from campaign_autoscaler.adapters import peering
from campaign_autoscaler.adapters.peering import PeeringPlace, PeeringSetupError, ensure_peering


class FakeCustomObjects:
    """Answers create/get with the statuses scripted per call; records every object created."""

    def __init__(self, create_statuses: list[int], existing: bool = False) -> None:
        self.create_statuses = create_statuses
        self.existing = existing
        self.created: list[dict[str, Any]] = []

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.create_statuses and self.create_statuses[0] == 0:  # 0: the API server does not answer
            self.create_statuses.pop(0)
            raise MaxRetryError(
                None, "/apis/kopf.dev/v1", reason=NewConnectionError(None, "Connection refused")
            )
        status = self.create_statuses.pop(0) if self.create_statuses else 201
        if status != 201:
            raise ApiException(status=status)
        self.created.append(body)
        return body

    def create_cluster_custom_object(
        self, group: str, version: str, plural: str, body: dict, _request_timeout: object = None
    ) -> dict:
        assert (group, version, plural) == ("kopf.dev", "v1", "clusterkopfpeerings")
        return self._create(body)

    def create_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        body: dict,
        _request_timeout: object = None,
    ) -> dict:
        assert (group, version, plural) == ("kopf.dev", "v1", "kopfpeerings")
        assert body["metadata"]["namespace"] == namespace
        return self._create(body)

    def get_cluster_custom_object(
        self, group: str, version: str, plural: str, name: str, _request_timeout: object = None
    ) -> dict:
        if not self.existing:
            raise ApiException(status=404)
        return {"metadata": {"name": name}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Any:
    """ensure_peering against a fake API and a fake clock; returns the clock."""

    def run_with(fake: FakeCustomObjects, namespaces: tuple[str, ...] = (), wait: float = 10.0) -> FakeClock:
        clock = FakeClock()
        monkeypatch.setattr(peering.client, "CustomObjectsApi", lambda _api_client: fake)
        ensure_peering(None, "campaign-autoscaler", namespaces, wait=wait, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
        return clock

    return run_with


def test_cluster_wide_operator_creates_a_cluster_kopf_peering(run: Any) -> None:
    fake = FakeCustomObjects([])
    run(fake)
    assert [(body["kind"], body["metadata"]["name"]) for body in fake.created] == [
        ("ClusterKopfPeering", "campaign-autoscaler")
    ]


def test_namespaced_operator_creates_one_per_exact_namespace(run: Any) -> None:
    fake = FakeCustomObjects([])
    run(fake, ("shop", "payments", "team-*"))  # a Kopf glob pattern names no object
    assert [(body["kind"], body["metadata"]["namespace"]) for body in fake.created] == [
        ("KopfPeering", "shop"),
        ("KopfPeering", "payments"),
    ]


def test_an_existing_object_is_fine(run: Any) -> None:
    fake = FakeCustomObjects([409])
    run(fake)
    assert fake.created == []


def test_waits_while_the_peering_crd_is_not_served_yet(run: Any) -> None:
    fake = FakeCustomObjects([404, 404, 404])
    clock = run(fake)
    assert clock.now == 3.0 and len(fake.created) == 1


def test_waits_for_an_api_server_that_does_not_answer_yet(run: Any) -> None:
    fake = FakeCustomObjects([0, 0, 404])
    clock = run(fake)
    assert clock.now == 3.0 and len(fake.created) == 1


def test_gives_up_naming_an_api_server_that_never_answers(run: Any) -> None:
    with pytest.raises(
        PeeringSetupError, match=r"after 3s: the API server did not answer \(.*Connection refused"
    ):
        run(FakeCustomObjects([0] * 100), wait=3.0)


def test_gives_up_naming_the_missing_crds(run: Any) -> None:
    fake = FakeCustomObjects([404] * 100)
    with pytest.raises(
        PeeringSetupError,
        match=r"no ClusterKopfPeering 'campaign-autoscaler' cluster-wide after 5s: .* not served: .*kopf",
    ):
        run(fake, wait=5.0)


def test_forbidden_create_is_fine_when_someone_else_created_it(run: Any) -> None:
    run(FakeCustomObjects([403], existing=True))
    with pytest.raises(PeeringSetupError, match="not allowed to create the ClusterKopfPeering"):
        run(FakeCustomObjects([403], existing=False))


def test_places(run: Any) -> None:
    assert peering.peering_places(()) == [PeeringPlace(None)]
    assert PeeringPlace("shop").describe("x") == "KopfPeering 'x' in namespace shop"


def test_run_with_peering_and_no_api_server_ends_in_one_line_exit_1(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A runtime failure (nothing listens at the kubeconfig's server): one line, exit 1, no traceback."""
    from campaign_autoscaler import cli
    from campaign_autoscaler.cli import run as cli_run

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    monkeypatch.setattr(cli_run, "PEERING_CRD_WAIT", 0.5)
    code = cli.main(["run", "--kubeconfig", str(kubeconfig), "--peering", "campaign-autoscaler"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == [err.strip()] and err.startswith(
        "error: Kopf peering: no ClusterKopfPeering 'campaign-autoscaler' cluster-wide after 0.5s: "
        "the API server did not answer"
    )
