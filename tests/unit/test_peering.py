"""The operator's own Kopf peering object at start-up: created where it serves, waited for while the peering
CRDs are not served yet, accepted when it exists already, and a clear error otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler.adapters import peering
from campaign_autoscaler.adapters.peering import PeeringPlace, PeeringSetupError, ensure_peering


class FakeCustomObjects:
    """Answers create/get with the statuses scripted per call; records every object created."""

    def __init__(self, create_statuses: list[int], existing: bool = False) -> None:
        self.create_statuses = create_statuses
        self.existing = existing
        self.created: list[dict[str, Any]] = []

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        status = self.create_statuses.pop(0) if self.create_statuses else 201
        if status != 201:
            raise ApiException(status=status)
        self.created.append(body)
        return body

    def create_cluster_custom_object(self, group: str, version: str, plural: str, body: dict) -> dict:
        assert (group, version, plural) == ("kopf.dev", "v1", "clusterkopfpeerings")
        return self._create(body)

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict
    ) -> dict:
        assert (group, version, plural) == ("kopf.dev", "v1", "kopfpeerings")
        assert body["metadata"]["namespace"] == namespace
        return self._create(body)

    def get_cluster_custom_object(self, group: str, version: str, plural: str, name: str) -> dict:
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


def test_gives_up_naming_the_missing_crds(run: Any) -> None:
    fake = FakeCustomObjects([404] * 100)
    with pytest.raises(
        PeeringSetupError, match=r"ClusterKopfPeering kind .* not served after 5s.*kopfpeerings"
    ):
        run(fake, wait=5.0)


def test_forbidden_create_is_fine_when_someone_else_created_it(run: Any) -> None:
    run(FakeCustomObjects([403], existing=True))
    with pytest.raises(PeeringSetupError, match="not allowed to create the ClusterKopfPeering"):
        run(FakeCustomObjects([403], existing=False))


def test_places(run: Any) -> None:
    assert peering.peering_places(()) == [PeeringPlace(None)]
    assert PeeringPlace("shop").describe("x") == "KopfPeering 'x' in namespace shop"
