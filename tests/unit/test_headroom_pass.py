"""Node headroom in the pass, the release and the orphan collector, against in-memory Kubernetes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from campaign_autoscaler.adapters.placeholders import (
    PlaceholderAdapter,
    PlaceholderView,
    PodTemplateFacts,
    placeholder_view,
)
from campaign_autoscaler.adapters.snapshot import NamespaceSnapshot
from campaign_autoscaler.handlers.collector import EventDirectory, collect
from campaign_autoscaler.handlers.passes import release_event
from campaign_autoscaler.handlers.runtime import OperatorConfig, Runtime
from campaign_autoscaler.planning.headroom import NewPlaceholder
from tests.unit.fakes import NAMESPACE, Clock, EventDriver, FakeKube, deployment_body, event_body

START = datetime(2026, 9, 9, 0, 0, tzinfo=UTC)
UID = "uid-sale-1"


class FakeHeadroom:
    """Placeholder pods kept in memory, made by the real adapter's body."""

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.builder = PlaceholderAdapter(lambda *args, **kwargs: {})
        self.created: list[str] = []
        self.deleted: list[str] = []

    def create(
        self,
        namespace: str,
        event_name: str,
        event_uid: str,
        placeholder: NewPlaceholder,
        template: PodTemplateFacts,
    ) -> bool:
        if placeholder.name in self.pods:
            return False
        self.pods[placeholder.name] = self.builder.body(
            namespace, event_name, event_uid, placeholder, template
        )
        self.created.append(placeholder.name)
        return True

    def delete(self, namespace: str, name: str) -> None:
        self.deleted.append(name)
        self.pods.pop(name, None)

    def list_of_event(self, namespace: str, event_uid: str | None = None) -> list[PlaceholderView]:
        return [pod for pod in self.views() if event_uid is None or pod.event_uid == event_uid]

    def views(self) -> list[PlaceholderView]:
        return [placeholder_view(body) for body in self.pods.values()]


def with_requests(body: dict[str, Any]) -> dict[str, Any]:
    body["spec"]["template"] = {
        "spec": {
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}]
        }
    }
    return body


class World:
    def __init__(self) -> None:
        self.clock = Clock(START - timedelta(hours=1))
        self.kube = FakeKube()
        self.headroom = FakeHeadroom()
        self.kube.add_deployment(with_requests(deployment_body("checkout", 4)))
        self.kube.add_deployment(deployment_body("search", 2))  # requests nothing
        self.runtime = Runtime(
            config=OperatorConfig(), kube=self.kube, clock=self.clock, headroom=self.headroom
        )
        spec = {
            "start": "2026-09-09T00:00:00Z",
            "end": "2026-09-09T10:00:00Z",
            "leadTime": "30m",
            "rampUp": {"steps": 3},
            "trafficMultiplier": 2.5,
            "targets": [{"name": "checkout"}, {"name": "search"}],
            "nodeHeadroom": {"leadTime": "10m"},
        }
        self.driver = EventDriver(self.runtime, self.kube, spec, uid=UID)

    def snapshot(self) -> NamespaceSnapshot:
        return dataclasses.replace(self.kube.snapshot(), placeholders=tuple(self.headroom.views()))

    def step(self, at: datetime) -> Any:
        self.clock.now = at
        return self.driver.step(self.snapshot())


def test_placeholders_follow_the_headroom_the_ramp_and_the_opening() -> None:
    world = World()
    result = world.step(START - timedelta(minutes=41))
    assert world.headroom.pods == {}
    assert result.next_at == START - timedelta(minutes=40)  # the daemon wakes up for the headroom

    world.step(START - timedelta(minutes=40))
    pods = world.headroom.views()
    assert len(pods) == 6  # floor 10 - 4 replicas of checkout; search requests nothing
    assert {pod.deployment for pod in pods} == {"checkout"}
    assert all(pod.requests == {"cpu": Decimal("0.5"), "memory": Decimal(256 * 2**20)} for pod in pods)
    assert "HeadroomWithoutRequests" in world.kube.posted_reasons()
    assert "NodeHeadroom" in world.kube.posted_reasons()

    world.step(START - timedelta(minutes=39))  # nothing changed: nothing written
    assert len(world.headroom.created) == 6 and world.headroom.deleted == []

    # Ramp-up step 1: 4 -> 6. The new pods are not Ready in the pass that asks for them: the placeholders
    # are left for the scheduler to preempt; once the pods are Ready, the two they stand for are gone.
    world.step(START - timedelta(minutes=30))
    assert world.kube.replicas("checkout") == 6
    assert len(world.headroom.pods) == 6 and world.headroom.deleted == []
    world.step(START - timedelta(minutes=29))
    assert len(world.headroom.pods) == 4
    # The window opens, the rest of the ramp asked for at once: the placeholders are the scheduler's until
    # those pods are Ready, then none is left.
    world.step(START)
    assert world.kube.replicas("checkout") == 10 and len(world.headroom.pods) == 4
    world.step(START + timedelta(seconds=1))
    assert world.headroom.pods == {}


def test_a_dry_run_creates_no_placeholder() -> None:
    world = World()
    world.driver.spec = {**world.driver.spec, "dryRun": True}
    world.step(START - timedelta(minutes=35))
    assert world.headroom.pods == {}


def test_the_release_deletes_every_placeholder_even_one_the_watch_does_not_show() -> None:
    world = World()
    world.step(START - timedelta(minutes=35))
    assert len(world.headroom.pods) == 6
    world.driver.deleting = True
    release_event(world.runtime, world.driver.memory, world.driver.world(world.kube.snapshot()))
    assert world.headroom.pods == {}


def test_the_collector_deletes_the_placeholders_of_a_gone_event_only() -> None:
    world = World()
    world.step(START - timedelta(minutes=35))
    ghost = NewPlaceholder("ghost-checkout-0", "checkout", 0, {"cpu": Decimal(1)})
    world.headroom.create(NAMESPACE, "ghost", "uid-ghost", ghost, PodTemplateFacts())
    world.kube.add_event(event_body("sale", UID))  # alive, as the API server says
    directory = EventDirectory()
    collect(world.runtime, directory, world.snapshot(), timedelta(minutes=1))
    assert world.headroom.deleted == ["ghost-checkout-0"]
    assert len(world.headroom.pods) == 6
