"""Level-triggered reconciles, with the real operator process, API server and Prometheus.

1. A deletion racing a slow Prometheus query, 20 times: the finalizer does not wait for the query, and the
   pass the query was gathered for writes nothing after the release (no late "Scaled", no annotation back).
2. A Deployment relabelled out of a selector mid-window is released within one resync; the event runs on.
3. A valid -> invalid -> valid edit: the Invalid status carries nothing of the valid one, the claims are
   held, the fix resumes; a resync that changes nothing writes no status.
4. Orphan claims written by hand (an event that never existed, an event re-created under another uid) are
   released by the collector within one resync, with a Warning; a live claim next to them is untouched.
   And the release of an HPA-backed target (two writes) is not undone by the passes of events that target
   it without a claim.
5. A seeded fault campaign: 50 short overlapping lifecycles with deletes, relabels, invalid edits, SIGKILLs
   and a Prometheus that passes, answers slowly, fails or refuses connections; every round ends exact.
   `FAULT_SEED=<seed>` replays its choices (not the order in which the operator's threads run).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler import API_GROUP, API_VERSION, PLURAL
from campaign_autoscaler.devenv.prometheus import MetricFeed, PrometheusServer
from campaign_autoscaler.planning import parse_spec
from campaign_autoscaler.planning.claims import (
    BASELINE_ANNOTATION,
    CAMPAIGN_ANNOTATIONS,
    CLAIMS_ANNOTATION,
    OWNERS_ANNOTATION,
    dump_claims,
    parse_baseline,
    parse_claims,
)
from tests.integration.faultproxy import DeploymentRecorder, DeploymentVersion
from tests.integration.harness import (
    Cluster,
    active_soon,
    campaign_spec,
    deployment_body,
    rfc3339,
    running_operator,
    seconds_from_now,
    utc_now,
    wait_for_more_passes,
    wait_until,
)
from tests.integration.promproxy import FAIL_500, PASS, SLOW, FaultyPrometheusProxy
from tests.integration.test_faults import Supervisor, create_workloads

RESYNC = "2s"
RESYNC_SECONDS = 2.0
SLACK_SECONDS = 1.0  # the pass itself, the watch that shows it, the test's own poll
SLOW_SECONDS = 3.0
METRIC = "shop_requests_per_second"
SEED = int(os.environ.get("FAULT_SEED") or secrets.randbelow(2**31))


def operator_args(namespace: str, prometheus_url: str | None = None) -> list[str]:
    args = ["--namespace", namespace, "--resync-interval", RESYNC, "--metrics-interval", "1s"]
    if prometheus_url is not None:
        # Longer than a slow answer: the answer arrives, late, rather than timing out.
        args += ["--prometheus-url", prometheus_url, "--prometheus-timeout", "5s"]
        # The synthetic series carry no namespace label: the queries run as written (test_tenancy.py covers
        # the scoping).
        args += ["--metrics-namespace-label", ""]
    return args


def campaign_annotations(cluster: Cluster, name: str) -> dict[str, str]:
    """All three campaign annotations (baseline, claims, claim-uids) present on the Deployment."""
    return {key: value for key, value in cluster.annotations(name).items() if key in CAMPAIGN_ANNOTATIONS}


def clean_at(cluster: Cluster, name: str, baseline: int) -> bool:
    deployment = cluster.deployment(name)
    annotations = deployment.metadata.annotations or {}
    return deployment.spec.replicas == baseline and not any(
        key in annotations for key in CAMPAIGN_ANNOTATIONS
    )


def version_is_clean(version: DeploymentVersion, baseline: int) -> bool:
    return version.replicas == baseline and not any(
        key in version.annotations for key in CAMPAIGN_ANNOTATIONS
    )


def event_meta(cluster: Cluster, name: str) -> dict[str, Any]:
    return (cluster.event(name) or {}).get("metadata") or {}


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


# -- a Prometheus proxy that knows its queries in flight and can refuse connections --------------------------

STOPPED = "stopped"  # nothing listens on the proxy's port: connection refused


@dataclass
class Flight:
    query: str
    mode: str
    started: float  # time.time()
    ended: float | None = None


class TrackingProxy(FaultyPrometheusProxy):
    """`FaultyPrometheusProxy` that records every query (in flight and answered) and can stop listening and
    listen again on the same port (`set_mode(STOPPED)`, then any other mode)."""

    def __init__(self, upstream: str, slow_seconds: float = SLOW_SECONDS) -> None:
        super().__init__(upstream, slow_seconds)
        self._port = self._server.server_address[1]
        self._handler_class = self._server.RequestHandlerClass
        self._flights: list[Flight] = []
        self._flights_lock = threading.Lock()
        self._listening = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> TrackingProxy:
        super().start()
        self._listening = True
        return self

    def stop(self) -> None:
        if self._listening:
            self._listening = False
            super().stop()

    def set_mode(self, mode: str) -> None:
        if mode == STOPPED:
            self.stop()
            return
        self.mode = mode
        if not self._listening:
            self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler_class)
            self._server.daemon_threads = True
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
            self._thread.start()
            self._listening = True

    @property
    def current_mode(self) -> str:
        return self.mode if self._listening else STOPPED

    def flights(self, contains: str, since: float = 0.0) -> list[Flight]:
        with self._flights_lock:
            return [f for f in self._flights if contains in f.query and f.started >= since]

    def _handle(self, request: Any) -> None:
        query = (parse_qs(urlsplit(request.path).query).get("query") or [""])[0]
        flight = Flight(query, self.mode, time.time())
        with self._flights_lock:
            self._flights.append(flight)
        try:
            super()._handle(request)
        finally:
            flight.ended = time.time()


@pytest.fixture
def prom_proxy(prometheus: PrometheusServer) -> Iterator[TrackingProxy]:
    proxy = TrackingProxy(prometheus.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def recorder(api_client: client.ApiClient, cluster: Cluster) -> Iterator[DeploymentRecorder]:
    """Every Deployment version of the namespace; on the way out one more Deployment wakes the recorder's
    watch, which would otherwise only look at its stop flag when its 30 s watch request ends."""
    with DeploymentRecorder(api_client, namespace=cluster.namespace) as watching:
        yield watching
        nudge = threading.Timer(0.3, cluster.create_deployment, ("recorder-nudge", 0))
        nudge.start()
    nudge.join()


# -- 1. deletion racing a slow query -------------------------------------------------------------------------

RACES = 20
RACE_LANES = ("lane-a", "lane-b", "lane-c")  # a lane is claimed by one race while the next one is prepared
RACE_BASELINE = 2
QUIET_SECONDS = 2 * RESYNC_SECONDS


@dataclass
class Race:
    index: int
    name: str
    lane: str
    created: float = 0.0
    claimed: float = 0.0
    claim: int = 0
    flight: Flight | None = None
    deleted: float = 0.0
    restored: float | None = None
    gone: float | None = None
    problems: list[str] = field(default_factory=list)


def race_target(namespace: str, race: Race) -> dict[str, Any]:
    # The label matcher makes the query the race's own (it matches the same series): its flights are known.
    query = f'sum({METRIC}{{test="{namespace}",race!="{race.name}"}})'
    metric = {"query": query, "targetPerReplica": 10}
    if race.index % 2:
        return {"selector": {"matchLabels": {"lane": race.lane}}, "metric": metric}
    return {"name": race.lane, "metric": metric}


def late_scaled_lines(log: str, event: str) -> tuple[bool, list[str]]:
    """Whether the log says the event's release restored a target, and every "Scaled" line for the event
    after the last such line. The release is the finalizer's ("Restored ... after CampaignEvent <name>
    released it") or, when its round comes first, the collector's (the event is being deleted)."""
    lines = log.splitlines()
    releases = (f"after CampaignEvent {event} released it", "orphan claim of CampaignEvent ")
    restored = [
        i
        for i, line in enumerate(lines)
        if releases[0] in line
        or (releases[1] in line and f"/{event} on " in line and "being deleted" in line)
    ]
    if not restored:
        return False, []
    scaled = re.compile(rf"Scaled .* for CampaignEvent {re.escape(event)}\s*$")
    return True, [line for line in lines[restored[-1] + 1 :] if scaled.search(line)]


def run_race(cluster: Cluster, proxy: TrackingProxy, race: Race, launch_next: Callable[[], None]) -> None:
    """Wait for the race's claim, prepare the next race, delete this one a second into a slow query of it,
    and wait for its release and its finalizer."""
    key = f"{cluster.namespace}/{race.name}"
    race.claim = wait_until(
        lambda: cluster.claims(race.lane).get(key), timeout=20, message=f"{race.name} claims {race.lane}"
    )
    race.claimed = time.time()
    launch_next()
    # A slow query of this event that began after the claim: the reading for the next pass.
    race.flight = flight = wait_until(
        lambda: next(iter(proxy.flights(race.name, since=race.claimed)), None),
        timeout=10,
        interval=0.05,
        message=f"a slow query of {race.name} in flight",
    )
    sleep_until(flight.started + 1.0)
    cluster.delete_event(race.name)
    race.deleted = time.time()
    if flight.ended is not None:
        race.problems.append(f"the slow query ended before the delete ({flight})")
    try:
        wait_until(
            lambda: clean_at(cluster, race.lane, RACE_BASELINE),
            timeout=10,
            interval=0.05,
            message=f"{race.lane} back at {RACE_BASELINE} without campaign annotations",
        )
        race.restored = time.time()
    except AssertionError as err:
        race.problems.append(f"not released: {err}; annotations {campaign_annotations(cluster, race.lane)}")
    try:
        wait_until(lambda: cluster.event(race.name) is None, timeout=10, message="finalized")
        race.gone = time.time()
    except AssertionError as err:
        race.problems.append(str(err))


def judge_race(race: Race, namespace: str, versions: list[DeploymentVersion], log: str) -> None:
    """After the release: the lane stays exact for two resyncs, no Deployment version carries the event's
    claim again, and the log shows no "Scaled" for the event after its "Restored"."""
    key = f"{namespace}/{race.name}"
    restore = next(
        (
            v
            for v in versions
            if v.name == race.lane and v.seen_at >= race.deleted and version_is_clean(v, RACE_BASELINE)
        ),
        None,
    )
    if restore is None:
        race.problems.append("the recorder never saw the lane restored")
        return
    for v in versions:
        since = v.seen_at - restore.seen_at
        if v.name == race.lane and 0 < since <= QUIET_SECONDS and not version_is_clean(v, RACE_BASELINE):
            race.problems.append(
                f"{v.name}@{v.resource_version} {since:.2f}s after the restore: {v.replicas}, {v.annotations}"
            )
        if since > 0 and key in parse_claims(v.annotations.get(CLAIMS_ANNOTATION)):
            race.problems.append(
                f"late claim on {v.name}@{v.resource_version} {since:.2f}s after the restore"
            )
    restored_logged, late = late_scaled_lines(log, race.name)
    if not restored_logged:
        race.problems.append("no line in the log says the event's claim was released")
    race.problems += [f"late log line: {line}" for line in late]


def test_deleting_an_event_during_a_slow_query_never_leaves_a_late_write(
    cluster: Cluster,
    kubeconfig: str,
    tmp_path: Path,
    metric_feed: MetricFeed,
    prom_proxy: TrackingProxy,
    recorder: DeploymentRecorder,
):
    namespace = cluster.namespace
    for lane in RACE_LANES:
        cluster.create_deployment(lane, RACE_BASELINE, labels={"lane": lane})
    metric_feed.set_and_wait(METRIC, 50, {"test": namespace})  # 50 / 10 per replica: a claim of 5
    prom_proxy.set_mode(SLOW)
    races = [Race(i, f"race-{i:02d}", RACE_LANES[i % len(RACE_LANES)]) for i in range(RACES)]

    def launch(index: int) -> None:
        if index >= RACES:
            return
        race = races[index]
        previous = races[index - len(RACE_LANES)] if index >= len(RACE_LANES) else None
        if previous is not None and previous.restored is not None:
            sleep_until(previous.restored + QUIET_SECONDS)  # the lane's quiet period is over before reuse
        cluster.create_event(
            race.name, active_soon([race_target(namespace, race)], opens_in=0, multiplier=1.0)
        )
        race.created = time.time()

    began = time.time()
    args = operator_args(namespace, prom_proxy.url)
    with running_operator(kubeconfig, tmp_path / "operator.log", args) as op:
        launch(0)
        for race in races:
            run_race(cluster, prom_proxy, race, lambda race=race: launch(race.index + 1))
        sleep_until(max((race.restored or race.deleted) for race in races) + QUIET_SECONDS + 0.5)
        log = op.log()
    assert op.process is not None and op.process.returncode == 0, f"exit code {op.process.returncode}"
    versions = recorder.versions()
    for race in races:
        judge_race(race, namespace, versions, log)

    print(f"\n{RACES} deletion races in {time.time() - began:.1f}s")
    for race in races:
        assert race.flight is not None
        answered = f"{race.flight.ended - race.deleted:+.2f}s" if race.flight.ended else "never"
        released = f"{race.restored - race.deleted:.2f}s" if race.restored else "never"
        print(
            f"{race.name} {race.lane} claim {race.claim}: deleted {race.deleted - race.flight.started:.2f}s "
            f"into its query; released after {released}; the slow answer came {answered} after the delete"
        )
    leaks = {race.name: race.problems for race in races if race.problems}
    print(f"leaks: {len(leaks)} of {RACES}")
    assert leaks == {}, f"{len(leaks)} of {RACES} races leaked: {leaks}\n--- operator log ---\n{log[-6000:]}"
    for lane in RACE_LANES:
        assert clean_at(cluster, lane, RACE_BASELINE), (lane, campaign_annotations(cluster, lane))


# -- 2. relabelled out of the selector -----------------------------------------------------------------------


def test_a_deployment_relabelled_out_of_the_selector_is_released_within_one_resync(
    cluster: Cluster, kubeconfig: str, tmp_path: Path
):
    namespace = cluster.namespace
    cluster.create_deployment("cart", 2, labels={"tier": "web"})
    cluster.create_deployment("checkout", 3, labels={"tier": "web"})
    key = f"{namespace}/sale"
    with running_operator(kubeconfig, tmp_path / "operator.log", operator_args(namespace)) as op:
        cluster.create_event(
            "sale", active_soon([{"selector": {"matchLabels": {"tier": "web"}}, "replicas": 6}])
        )
        wait_until(
            lambda: (
                cluster.phase("sale") == "Active"
                and cluster.replicas("cart") == 6
                and cluster.replicas("checkout") == 6
            ),
            timeout=15,
            message="Active, cart and checkout at 6",
        )
        generation = event_meta(cluster, "sale")["generation"]
        assert cluster.claims("cart") == {key: 6}

        cluster.apps.patch_namespaced_deployment(
            "cart", namespace, {"metadata": {"labels": {"tier": "batch"}}}
        )
        relabelled = time.monotonic()
        wait_until(
            lambda: clean_at(cluster, "cart", 2),
            timeout=RESYNC_SECONDS + 5,
            interval=0.05,
            message="cart released to 2",
        )
        took = time.monotonic() - relabelled
        print(f"\nrelabelled cart released after {took:.2f}s (resync {RESYNC_SECONDS}s)")
        assert took <= RESYNC_SECONDS + SLACK_SECONDS, f"released after {took:.2f}s"
        assert cluster.phase("sale") == "Active"
        assert event_meta(cluster, "sale")["generation"] == generation, "the spec did not change"
        assert cluster.replicas("checkout") == 6 and cluster.claims("checkout") == {key: 6}
        wait_until(
            lambda: [t["name"] for t in cluster.status("sale").get("targets") or []] == ["checkout"],
            timeout=RESYNC_SECONDS + SLACK_SECONDS,
            message="status targets: checkout only",
        )
        restored = [e.message for e in cluster.k8s_events(reason="Restored", kind="Deployment")]
        assert any("/cart 6 -> 2 after CampaignEvent sale released it" in m for m in restored), restored
        # It stays released: the next resyncs do not claim it again.
        op.wait_for_passes(namespace, "sale", 2)
        assert clean_at(cluster, "cart", 2), campaign_annotations(cluster, "cart")
        assert cluster.replicas("checkout") == 6 and cluster.phase("sale") == "Active"
    assert op.process is not None and op.process.returncode == 0


# -- 3. valid -> invalid -> valid; no idle status writes -----------------------------------------------------


def wait_settled(cluster: Cluster, name: str, quiet: float = 1.0, timeout: float = 10) -> str:
    """The event's resourceVersion once it has not changed for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    seen, since = event_meta(cluster, name)["resourceVersion"], time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = event_meta(cluster, name)["resourceVersion"]
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return seen
    raise AssertionError(f"CampaignEvent {name} kept changing for {timeout}s")


STALE_KEYS = {"window", "targets", "nextTransition"}


def test_an_invalid_edit_drops_the_stale_status_holds_the_claims_and_the_fix_resumes(
    cluster: Cluster, kubeconfig: str, tmp_path: Path
):
    namespace = cluster.namespace
    key = f"{namespace}/sale"
    cluster.create_deployment("checkout", 2)
    cluster.create_deployment("later", 2)
    with running_operator(kubeconfig, tmp_path / "operator.log", operator_args(namespace)) as op:
        spec = active_soon([{"name": "checkout", "replicas": 6}])
        cluster.create_event("sale", spec)
        wait_until(
            lambda: (
                cluster.phase("sale") == "Active"
                and cluster.replicas("checkout") == 6
                and cluster.status("sale").keys() >= STALE_KEYS
            ),
            timeout=15,
            message="Active at 6 with window, targets and nextTransition",
        )
        held = campaign_annotations(cluster, "checkout")
        assert parse_claims(held[CLAIMS_ANNOTATION]) == {key: 6}

        start = datetime.fromisoformat(spec["start"].replace("Z", "+00:00"))
        cluster.patch_event_spec("sale", {"end": rfc3339(start - timedelta(seconds=10))})
        invalid_generation = event_meta(cluster, "sale")["generation"]
        wait_until(lambda: cluster.phase("sale") == "Invalid", timeout=RESYNC_SECONDS + 3, message="Invalid")
        status = cluster.status("sale")
        assert not STALE_KEYS & status.keys(), f"stale keys in the Invalid status: {status}"
        assert status["observedGeneration"] == invalid_generation, status
        valid = cluster.condition("sale", "Valid")
        assert (
            valid is not None and valid["status"] == "False" and valid["message"].startswith("spec.end:")
        ), valid
        # An invalid spec touches nothing: the claim made under the valid spec is held as it was.
        assert cluster.replicas("checkout") == 6
        assert campaign_annotations(cluster, "checkout") == held
        settled = wait_settled(cluster, "sale")
        op.wait_for_passes(namespace, "sale", 2)
        assert event_meta(cluster, "sale")["resourceVersion"] == settled, (
            "an Invalid status was written again"
        )
        assert cluster.replicas("checkout") == 6 and campaign_annotations(cluster, "checkout") == held

        cluster.patch_event_spec("sale", {"end": spec["end"]})
        fixed_generation = event_meta(cluster, "sale")["generation"]
        wait_until(
            lambda: cluster.phase("sale") == "Active" and cluster.status("sale").keys() >= STALE_KEYS,
            timeout=RESYNC_SECONDS + 3,
            message="Active again with its window, targets and nextTransition",
        )
        status = cluster.status("sale")
        assert status["observedGeneration"] == fixed_generation
        assert status["window"] == {"start": spec["start"][:19] + "Z", "end": spec["end"][:19] + "Z"}, status
        assert [t["name"] for t in status["targets"]] == ["checkout"]
        assert cluster.condition("sale", "Valid")["status"] == "True"
        assert cluster.replicas("checkout") == 6 and cluster.claims("checkout") == {key: 6}

        # A Pending event: once its status is written, the resyncs change nothing and write nothing.
        tomorrow = utc_now().replace(microsecond=0) + timedelta(days=1)
        cluster.create_event(
            "later",
            campaign_spec(start=tomorrow, end=tomorrow + timedelta(hours=1), targets=[{"name": "later"}]),
        )
        wait_until(lambda: cluster.phase("later") == "Pending", timeout=10, message="later Pending")
        settled = wait_settled(cluster, "later")
        op.wait_for_passes(namespace, "later", 3)
        assert event_meta(cluster, "later")["resourceVersion"] == settled, (
            "a resync that changed nothing wrote the status of a Pending event"
        )
        assert clean_at(cluster, "later", 2)

        cluster.delete_event("sale")
        wait_until(lambda: clean_at(cluster, "checkout", 2), timeout=5, message="checkout released on delete")
    assert op.process is not None and op.process.returncode == 0


# -- 4. orphan claims written by hand ------------------------------------------------------------------------


def create_claimed_deployment(
    cluster: Cluster, name: str, replicas: int, claims: dict[str, int], owners: dict[str, str] | None = None
) -> None:
    body = deployment_body(name, replicas)
    annotations = {BASELINE_ANNOTATION: '{"replicas": 2}', CLAIMS_ANNOTATION: dump_claims(claims)}
    if owners:
        annotations[OWNERS_ANNOTATION] = dump_claims(owners)
    body["metadata"]["annotations"] = annotations
    cluster.apps.create_namespaced_deployment(cluster.namespace, body)


def test_orphan_claims_are_released_by_the_collector_and_a_live_claim_is_untouched(
    cluster: Cluster, kubeconfig: str, tmp_path: Path
):
    namespace = cluster.namespace
    cluster.create_deployment("live", 2)
    cluster.create_deployment("spare", 1)
    with running_operator(kubeconfig, tmp_path / "operator.log", operator_args(namespace)) as op:
        cluster.create_event("sale", active_soon([{"name": "live", "replicas": 5}]))
        wait_until(lambda: cluster.replicas("live") == 5, timeout=15, message="live at 5")
        tomorrow = utc_now().replace(microsecond=0) + timedelta(days=1)
        # Two events re-created under their old names: one valid (Pending, it targets only "spare"), one
        # Invalid (it targets nothing). Their old incarnations' claims record another uid.
        cluster.create_event(
            "reborn",
            campaign_spec(start=tomorrow, end=tomorrow + timedelta(hours=1), targets=[{"name": "spare"}]),
        )
        cluster.create_event(
            "broken",
            campaign_spec(start=tomorrow, end=tomorrow - timedelta(hours=1), targets=[{"name": "spare"}]),
        )
        wait_until(
            lambda: cluster.phase("reborn") == "Pending" and cluster.phase("broken") == "Invalid",
            timeout=10,
            message="reborn Pending, broken Invalid",
        )
        live_before = campaign_annotations(cluster, "live")
        sale_uid = event_meta(cluster, "sale")["uid"]
        assert live_before[OWNERS_ANNOTATION] == dump_claims({f"{namespace}/sale": sale_uid}), live_before
        old_uid = "00000000-0000-4000-8000-000000000000"
        orphans = {
            "haunted": f"{namespace}/ghost",  # an event that never existed
            "stale": f"{namespace}/reborn",
            "stale-invalid": f"{namespace}/broken",
        }
        written = time.monotonic()
        create_claimed_deployment(cluster, "haunted", 7, {orphans["haunted"]: 7})
        create_claimed_deployment(cluster, "stale", 7, {orphans["stale"]: 7}, {orphans["stale"]: old_uid})
        create_claimed_deployment(
            cluster, "stale-invalid", 7, {orphans["stale-invalid"]: 7}, {orphans["stale-invalid"]: old_uid}
        )
        released_after = {}
        deadline = written + RESYNC_SECONDS + 5
        while len(released_after) < len(orphans) and time.monotonic() < deadline:
            for name in orphans:
                if name not in released_after and clean_at(cluster, name, 2):
                    released_after[name] = round(time.monotonic() - written, 2)
            time.sleep(0.05)
        print(f"\norphans released after (s): {released_after}")
        assert set(released_after) == set(orphans), {
            name: (cluster.replicas(name), campaign_annotations(cluster, name)) for name in orphans
        }
        assert all(seconds <= RESYNC_SECONDS + SLACK_SECONDS for seconds in released_after.values()), (
            released_after
        )

        def orphan_events() -> list[Any] | None:
            found = cluster.k8s_events(reason="OrphanClaimReleased")
            return found if {e.involved_object.name for e in found} >= set(orphans) else None

        collected = wait_until(
            orphan_events, timeout=5, message="an OrphanClaimReleased Event on each orphan's Deployment"
        )
        by_target = {e.involved_object.name: e for e in collected}
        for name, orphan_key in orphans.items():
            event = by_target[name]
            assert event.type == "Warning" and event.involved_object.kind == "Deployment", event
            assert (
                f"orphan claim of CampaignEvent {orphan_key} on Deployment {namespace}/{name}"
                in event.message
            )
            assert event.message.endswith("7 -> 2"), event.message
        assert "it no longer exists" in by_target["haunted"].message
        assert "it was re-created" in by_target["stale"].message
        assert "it was re-created" in by_target["stale-invalid"].message
        assert set(by_target) == set(orphans), f"only the orphans are collected: {sorted(by_target)}"

        # The live claim, the events and the spare Deployment: untouched, now and a resync later.
        op.wait_for_passes(namespace, "sale", 2)
        op.wait_for_passes(namespace, "reborn", 1)
        assert cluster.replicas("live") == 5 and campaign_annotations(cluster, "live") == live_before
        assert cluster.phase("sale") == "Active"
        assert cluster.phase("reborn") == "Pending" and cluster.phase("broken") == "Invalid"
        assert clean_at(cluster, "spare", 1)
        for name in orphans:
            assert clean_at(cluster, name, 2), (name, campaign_annotations(cluster, name))
    assert op.process is not None and op.process.returncode == 0


def test_an_event_deleted_without_its_finalizer_leaves_no_claim_and_no_pass_behind(
    cluster: Cluster, kubeconfig: str, tmp_path: Path
):
    """An event can be gone without its finalizer having run: deleted before Kopf's finalizer landed (Kopf
    starts the daemon in the same cycle as it adds the finalizer), or the finalizer removed by hand. Its
    claims are released at once, and its daemon, which Kopf never stops, makes no pass after that (it used to
    claim the target again on every resync, against the collector)."""
    namespace = cluster.namespace
    cluster.create_deployment("api", 2)
    with running_operator(kubeconfig, tmp_path / "operator.log", operator_args(namespace)) as op:
        cluster.create_event("sale", active_soon([{"name": "api", "replicas": 5}], opens_in=0))
        wait_until(lambda: cluster.replicas("api") == 5, timeout=15, message="api at 5")
        # The finalizer removed by hand and the event deleted while the operator is frozen (else Kopf puts
        # its finalizer back in between): the operator only sees the event gone.
        assert op.process is not None
        op.process.send_signal(signal.SIGSTOP)
        try:
            force_gone(cluster, "sale")
            cluster.delete_event("sale")
            wait_until(lambda: cluster.event("sale") is None, timeout=10, message="sale gone")
        finally:
            op.process.send_signal(signal.SIGCONT)
        # Released by whichever sees it first: the watch's DELETED, or the daemon's status write that the API
        # server refuses (the finalizer's own release line has no reason after it).
        released = f"Released CampaignEvent {namespace}/sale from 1 target(s): "
        wait_until(lambda: released in op.log(), timeout=10, message="the release of the deleted event")
        wait_until(lambda: clean_at(cluster, "api", 2), timeout=5, message="api back at 2, annotations gone")
        # A second event's passes mark the resyncs that go by: the deleted one's daemon must not pass again.
        cluster.create_event("witness", active_soon([{"name": "api", "replicas": 3}], opens_in=0))
        wait_until(lambda: cluster.replicas("api") == 3, timeout=15, message="witness holds api at 3")
        cluster.patch_event_spec("witness", active_soon([{"name": "api", "replicas": 4}], opens_in=0))
        wait_until(lambda: cluster.replicas("api") == 4, timeout=15, message="witness raised api to 4")
        time.sleep(RESYNC_SECONDS)  # one more resync of a would-be zombie, with the witness as its bystander
        log = op.log()
    after = log.split(released, 1)[1]
    mentions = re.compile(rf"CampaignEvent ({re.escape(namespace)}/)?sale\b")
    assert [line for line in after.splitlines() if mentions.search(line)] == []
    assert cluster.replicas("api") == 4 and parse_claims(
        cluster.annotations("api").get(CLAIMS_ANNOTATION)
    ) == {f"{namespace}/witness": 4}
    assert op.process is not None and op.process.returncode == 0


# -- 4b. the release of an HPA-backed target, with bystanders ------------------------------------------------

BYSTANDERS = 60
HPA_RELEASES = 50


def test_a_bystander_pass_never_undoes_the_release_of_an_hpa_backed_target(
    cluster: Cluster, kubeconfig: str, tmp_path: Path
):
    """An HPA-backed target is released in two writes (the HPA's bounds, then the annotations). Events that
    target it without a claim (Pending ones here) pass over it all the time, spread over the resync interval:
    none may raise the HPA again from the claims it still reads between the two writes. (Found by the fault
    campaign below; this makes the interleaving frequent.)"""
    namespace = cluster.namespace
    cluster.create_deployment("payments", 2)
    cluster.create_hpa("payments", "payments", 2, 4)
    tomorrow = utc_now().replace(microsecond=0) + timedelta(days=1)
    pending = campaign_spec(start=tomorrow, end=tomorrow + timedelta(hours=1), targets=[{"name": "payments"}])
    leaks: list[str] = []
    with running_operator(kubeconfig, tmp_path / "operator.log", operator_args(namespace)) as op:
        for index in range(BYSTANDERS):  # their passes spread evenly over the resync interval
            cluster.create_event(f"bystander-{index}", pending)
            time.sleep(RESYNC_SECONDS / BYSTANDERS)
        for index in range(HPA_RELEASES):
            name = f"claimer-{index:02d}"
            cluster.create_event(name, active_soon([{"name": "payments", "replicas": 6}], opens_in=0))
            wait_until(
                lambda: (
                    cluster.hpa_bounds("payments") == (6, 6) and campaign_annotations(cluster, "payments")
                ),
                timeout=15,
                message=f"{name} raised the HPA to 6/6",
            )
            cluster.delete_event(name)
            wait_until(lambda name=name: cluster.event(name) is None, timeout=10, message=f"{name} finalized")
            time.sleep(0.5)
            bounds, annotations = cluster.hpa_bounds("payments"), campaign_annotations(cluster, "payments")
            if bounds != (2, 4) or annotations:
                # Not a moment caught mid-write: it stays so through two more passes of every bystander.
                bystanders = [f"bystander-{index}" for index in range(BYSTANDERS)]
                wait_for_more_passes(op, namespace, bystanders, 2)
                bounds, annotations = (
                    cluster.hpa_bounds("payments"),
                    campaign_annotations(cluster, "payments"),
                )
                if bounds != (2, 4) or annotations:
                    leaks.append(f"after {name}: HPA at {bounds}, annotations {annotations}")
                    break  # the baseline is lost from here on
        log = op.log()
    assert op.process is not None and op.process.returncode == 0
    writes = [
        line for line in log.splitlines() if "HorizontalPodAutoscaler" in line and "minReplicas" in line
    ]
    print(f"\nreleases: {index + 1}, leaks: {len(leaks)}")
    assert leaks == [], f"{leaks} of {index + 1} releases; HPA writes (tail):\n" + "\n".join(writes[-6:])


# -- 5. a seeded fault campaign ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    baseline: int
    labels: dict[str, str] = field(default_factory=dict)
    hpa: tuple[int, int] | None = None  # (minReplicas, maxReplicas) of its HPA


CAMPAIGN_WORKLOADS = (
    Workload("cart", 2, {"tier": "web"}),
    Workload("checkout", 3, {"tier": "web"}),
    Workload("search", 1),
    Workload("idle", 0),
    Workload("payments", 2, hpa=(2, 4)),
)
RELABELLED = ("cart", "checkout")
ROUNDS = 10
EVENTS_PER_ROUND = 5
LEAD, WINDOW, RAMP_DOWN = 2, 4, 2  # seconds: a lifecycle is 8 s long
LIFECYCLE = LEAD + WINDOW + RAMP_DOWN
DELETE_SHARE = 0.25
PROMETHEUS_MODES = (PASS, SLOW, FAIL_500, STOPPED)
COMPLETION_TIMEOUT = 60.0


def target_menu(namespace: str) -> list[list[dict[str, Any]]]:
    """The targets an event may have, in slots: an event takes at most one target of a slot (a spec may not
    name one Deployment twice)."""
    metric = {"query": f'sum({METRIC}{{test="{namespace}"}})', "targetPerReplica": 10}  # 40: 4 replicas
    web = {"matchLabels": {"tier": "web"}}
    return [
        [{"name": "cart", "multiplier": 2}],
        [{"selector": web, "replicas": 6}, {"selector": web, "metric": metric}],
        [{"name": "checkout", "replicas": 7, "metric": metric}],
        [{"name": "search", "metric": metric}],
        [{"name": "payments", "replicas": 5}, {"name": "payments", "metric": metric}],
        [{"name": "idle", "replicas": 2}],
    ]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(order=True)
class Action:
    at: float  # seconds from the round's origin
    what: str = field(compare=False)
    run: Callable[[], object] = field(compare=False)


@dataclass
class Round:
    index: int
    origin: datetime
    events: dict[str, dict[str, Any]]
    actions: list[Action]

    @property
    def deleted(self) -> set[str]:
        return {a.what.removeprefix("delete ") for a in self.actions if a.what.startswith("delete ")}


def exact_end_problems(cluster: Cluster) -> list[str]:
    problems = []
    for workload in CAMPAIGN_WORKLOADS:
        annotations = campaign_annotations(cluster, workload.name)
        if annotations:
            problems.append(f"{workload.name} still carries {annotations}")
        if workload.hpa is not None:
            bounds = cluster.hpa_bounds(workload.name)
            if bounds != workload.hpa:
                problems.append(f"HPA {workload.name} at {bounds}, not {workload.hpa}")
        else:
            replicas = cluster.replicas(workload.name)
            if replicas != workload.baseline:
                problems.append(f"{workload.name} at {replicas}, not {workload.baseline}")
    return problems


def repair(cluster: Cluster) -> None:
    """Put every workload back by hand after a leak was recorded, so that the next round starts exact."""
    for workload in CAMPAIGN_WORKLOADS:
        patch: dict[str, Any] = {"metadata": {"annotations": dict.fromkeys(CAMPAIGN_ANNOTATIONS)}}
        if workload.hpa is None:
            patch["spec"] = {"replicas": workload.baseline}
        cluster.apps.patch_namespaced_deployment(workload.name, cluster.namespace, patch)
        if workload.hpa is not None:
            cluster.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                workload.name,
                cluster.namespace,
                {"spec": {"minReplicas": workload.hpa[0], "maxReplicas": workload.hpa[1]}},
            )


def baseline_violations(versions: list[DeploymentVersion]) -> list[str]:
    """Every recorded Deployment version whose baseline annotation is not the original baseline, or whose
    replicas went below it."""
    by_name = {w.name: w for w in CAMPAIGN_WORKLOADS}
    problems = []
    for version in versions:
        workload = by_name.get(version.name)
        if workload is None:
            continue
        where = f"{version.name}@{version.resource_version}"
        text = version.annotations.get(BASELINE_ANNOTATION)
        if text is not None:
            baseline = parse_baseline(text)
            if workload.hpa is not None:
                recorded = (baseline.hpa_name, baseline.hpa_min_replicas, baseline.hpa_max_replicas)
                if recorded != (workload.name, *workload.hpa):
                    problems.append(f"{where}: HPA baseline lost: {text}")
            elif baseline.replicas != workload.baseline or baseline.hpa_name is not None:
                problems.append(f"{where}: baseline lost: {text}")
        if workload.hpa is None and version.replicas < workload.baseline:
            problems.append(f"{where}: replicas {version.replicas} below the baseline {workload.baseline}")
    return problems


class FaultCampaign:
    """Plans each round from the seeded generator, plays it against the cluster, and judges its end."""

    def __init__(
        self, cluster: Cluster, supervisor: Supervisor, proxy: TrackingProxy, rng: random.Random
    ) -> None:
        self.cluster = cluster
        self.supervisor = supervisor
        self.proxy = proxy
        self.rng = rng
        self.menu = target_menu(cluster.namespace)
        self.journal: list[str] = []
        self.event_keys: set[str] = set()

    # the faults ---------------------------------------------------------------------------------------
    def delete(self, name: str) -> None:
        self.cluster.delete_event(name)

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        try:
            self.cluster.patch_event_spec(name, spec)
        except ApiException as err:
            if err.status != 404:  # deleted meanwhile: nothing to edit
                raise

    def relabel(self, name: str, tier: str) -> None:
        patch = {"metadata": {"labels": {"tier": tier}}}
        self.cluster.apps.patch_namespaced_deployment(name, self.cluster.namespace, patch)

    # a round ------------------------------------------------------------------------------------------
    def plan(self, index: int) -> Round:
        rng = self.rng
        origin = seconds_from_now(1.0)
        events: dict[str, dict[str, Any]] = {}
        actions: list[Action] = []
        for k in range(EVENTS_PER_ROUND):
            name = f"r{index}-e{k}"
            offset = rng.randint(0, 3)  # its pre-scale begins this many seconds after the origin
            start = origin + timedelta(seconds=LEAD + offset)
            events[name] = campaign_spec(
                start=start,
                end=start + timedelta(seconds=WINDOW),
                lead_time=f"{LEAD}s",
                ramp_up_steps=rng.choice([1, 2]),
                ramp_down={"duration": f"{RAMP_DOWN}s", "steps": 2},
                multiplier=rng.choice([1.5, 2.0]),
                targets=[rng.choice(slot) for slot in rng.sample(self.menu, rng.choice([1, 2]))],
            )
            parse_spec(events[name])  # only the invalid edits below make an event invalid
            if rng.random() < DELETE_SHARE:
                at = rng.uniform(offset, offset + LIFECYCLE)
                actions.append(Action(at, f"delete {name}", lambda n=name: self.delete(n)))
        for name in rng.sample(sorted(events), rng.choice([0, 1, 2])):
            start = instant(events[name]["start"])
            at = rng.uniform(0, LEAD + WINDOW) + start.timestamp() - LEAD - origin.timestamp()
            invalid = {"end": rfc3339(start - timedelta(seconds=1))}
            valid = {"end": events[name]["end"]}
            actions.append(Action(at, f"invalid {name}", lambda n=name, s=invalid: self.patch_spec(n, s)))
            back = at + rng.uniform(0.5, 2.5)
            actions.append(Action(back, f"valid again {name}", lambda n=name, s=valid: self.patch_spec(n, s)))
        if rng.random() < 0.6:
            target = rng.choice(RELABELLED)
            at = rng.uniform(1, 9)
            actions.append(Action(at, f"relabel {target} off", lambda t=target: self.relabel(t, "off")))
            if rng.random() < 0.5:
                back = at + rng.uniform(1, 3)
                actions.append(
                    Action(back, f"relabel {target} back", lambda t=target: self.relabel(t, "web"))
                )
        if rng.random() < 0.6:
            at = rng.uniform(1, 10)
            actions.append(Action(at, "SIGKILL operator", self.supervisor.kill))
            actions.append(Action(at + rng.uniform(0.2, 1.5), "restart operator", self.supervisor.start))
        for _ in range(3):
            mode = rng.choice(PROMETHEUS_MODES)
            actions.append(
                Action(rng.uniform(0, 10), f"prometheus {mode}", lambda m=mode: self.proxy.set_mode(m))
            )
        return Round(index, origin, events, sorted(actions))

    def play(self, round_: Round) -> None:
        for name in RELABELLED:
            self.relabel(name, "web")
        for name, spec in round_.events.items():
            self.cluster.create_event(name, spec)
            self.event_keys.add(f"{self.cluster.namespace}/{name}")
        origin = round_.origin.timestamp()
        for action in round_.actions:
            sleep_until(origin + action.at)
            action.run()
            self.journal.append(f"round {round_.index} +{time.time() - origin:5.2f}s {action.what}")

    def finish(self, round_: Round) -> list[str]:
        """Every event Completed (or deleted), every workload exact; then the events are deleted."""
        cluster, problems = self.cluster, []
        survivors = [name for name in round_.events if name not in round_.deleted]
        try:
            wait_until(
                lambda: (
                    all(cluster.phase(name) == "Completed" for name in survivors)
                    and all(cluster.event(name) is None for name in round_.deleted)
                ),
                timeout=COMPLETION_TIMEOUT,
                interval=0.2,
                message="every event Completed or deleted",
            )
        except AssertionError as err:
            problems.append(f"{err}; phases {[(name, cluster.phase(name)) for name in round_.events]}")
        ended = time.time()
        try:
            wait_until(
                lambda: not exact_end_problems(cluster),
                timeout=RESYNC_SECONDS + SLACK_SECONDS,
                message="exact end state",
            )
        except AssertionError:
            problems += exact_end_problems(cluster)
        if time.time() - ended > 0.5:
            self.journal.append(
                f"round {round_.index}: end state {time.time() - ended:.2f}s after the events"
            )
        for name in round_.events:
            with contextlib.suppress(ApiException):
                cluster.delete_event(name)
        try:
            wait_until(
                lambda: all(cluster.event(name) is None for name in round_.events),
                timeout=15,
                message="events deleted",
            )
        except AssertionError as err:
            problems.append(str(err))
            for name in round_.events:
                force_gone(cluster, name)
        problems += exact_end_problems(cluster)  # deleting Completed events changes nothing
        elapsed = time.time() - round_.origin.timestamp()
        self.journal.append(f"round {round_.index} done at +{elapsed:5.2f}s: {len(problems)} problem(s)")
        return problems


def force_gone(cluster: Cluster, name: str) -> None:
    """Remove an event whose finalizer never finished (the caller records it as a problem)."""
    with contextlib.suppress(ApiException):
        cluster.custom.patch_namespaced_custom_object(
            API_GROUP, API_VERSION, cluster.namespace, PLURAL, name, {"metadata": {"finalizers": None}}
        )


def test_a_seeded_fault_campaign_of_fifty_lifecycles_ends_every_round_exact(
    cluster: Cluster,
    kubeconfig: str,
    tmp_path: Path,
    metric_feed: MetricFeed,
    prom_proxy: TrackingProxy,
    recorder: DeploymentRecorder,
):
    print(f"\nFault campaign seed: FAULT_SEED={SEED}")
    namespace = cluster.namespace
    create_workloads(cluster, CAMPAIGN_WORKLOADS)
    metric_feed.set_and_wait(METRIC, 40, {"test": namespace})
    supervisor = Supervisor(Path(kubeconfig), tmp_path, operator_args(namespace, prom_proxy.url))
    campaign = FaultCampaign(cluster, supervisor, prom_proxy, random.Random(f"{SEED}/reconcile"))
    leaks: dict[str, list[str]] = {}
    began = time.time()
    supervisor.start()
    try:
        for index in range(ROUNDS):
            round_ = campaign.plan(index)
            campaign.play(round_)
            problems = campaign.finish(round_)
            if problems:
                leaks[f"round {index}"] = problems
                repair(cluster)
        prom_proxy.set_mode(PASS)
        time.sleep(RESYNC_SECONDS + 0.5)
        if final := exact_end_problems(cluster):
            leaks["the end"] = final
    finally:
        code = supervisor.stop()
        log = supervisor.log()
    print("\n".join(campaign.journal))
    lifecycles = len(campaign.event_keys)
    print(f"{lifecycles} lifecycles, {time.time() - began:.1f}s; leaks: {len(leaks)} of {ROUNDS} rounds")
    assert lifecycles == ROUNDS * EVENTS_PER_ROUND == 50
    assert leaks == {}, f"seed {SEED}: {leaks}\n--- operator log (tail) ---\n{log[-8000:]}"
    assert code == 0, f"operator exited with {code} on SIGTERM"
    versions = recorder.versions()
    assert baseline_violations(versions) == [], f"seed {SEED}"
    claimed = set().union(*(parse_claims(v.annotations.get(CLAIMS_ANNOTATION)) for v in versions))
    assert claimed - campaign.event_keys == set(), f"seed {SEED}: claims by events that never existed"
    assert recorder.errors == [], recorder.errors
    ever_claimed = {v.name for v in versions if parse_claims(v.annotations.get(CLAIMS_ANNOTATION))}
    assert ever_claimed >= {w.name for w in CAMPAIGN_WORKLOADS}, f"seed {SEED}: the campaign never happened"
    met = sorted({flight.mode for flight in prom_proxy.flights("")})
    print(f"Prometheus answered the operator in modes {met} (and refused it while stopped)")
