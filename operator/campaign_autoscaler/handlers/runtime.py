"""What the handlers share: the operator's configuration, its runtime, and each event's in-process memory."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from campaign_autoscaler.adapters.kube import (
    CorruptAnnotationError,
    EventPoster,
    KubeApi,
    TargetConflictError,
)
from campaign_autoscaler.adapters.placeholders import HeadroomApi
from campaign_autoscaler.adapters.prometheus import MetricsSource
from campaign_autoscaler.adapters.sampler import DEFAULT_CONCURRENCY, NO_DATA
from campaign_autoscaler.adapters.statuslane import StatusLane
from campaign_autoscaler.adapters.telemetry import Telemetry
from campaign_autoscaler.planning import CampaignSpec, MetricsScope, SpecError, parse_spec
from campaign_autoscaler.planning.curve import CURVE_STEP, History
from campaign_autoscaler.planning.decision import MetricMemory, MetricReading
from campaign_autoscaler.planning.summary import Tally

from .lanes import PassLanes

T = TypeVar("T")

# A failed pass is tried again after 1 s, doubling up to 30 s, each delay spread by +-20 % so that the
# passes of many events failing together (an API server restart) do not come back in one burst.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
RETRY_JITTER = 0.2
# A transition is acted on a hair after it is due, so that `now` is never a microsecond short of it.
TRANSITION_GRACE_SECONDS = 0.02
# What a pass may meet on its way and try again: the API server refusing or failing a request, a target
# that kept changing, a campaign annotation nobody can read, the connection itself (urllib3's own errors
# are no OSError).
PASS_ERRORS = (ApiException, TargetConflictError, CorruptAnnotationError, OSError, Urllib3HTTPError)


@dataclass(frozen=True)
class OperatorConfig:
    resync_interval: float = 15.0
    max_scale_factor: float = 10.0
    dry_run: bool = False
    metrics_interval: float = 15.0
    metrics_concurrency: int = DEFAULT_CONCURRENCY  # Prometheus requests in flight at once
    prometheus_timeout: float = 5.0
    scale_down_stabilization: float = 300.0
    # Seconds between two points of a last campaign's curve (--curve-step).
    curve_step: float = CURVE_STEP.total_seconds()
    peering_lifetime: float = 10.0
    namespaces: tuple[str, ...] = ()  # watched namespaces (glob patterns allowed); empty: every namespace
    # --namespace-selector: act only in namespaces with all these labels; empty: no label needed.
    namespace_selector: tuple[tuple[str, str], ...] = ()
    # The Prometheus label that holds a series' namespace: every query is held to its event's namespace.
    # Empty: queries run as written, over every namespace's series. (`run` and the chart default to
    # `namespace`; this default is for the library and the tests of other concerns.)
    metrics_namespace_label: str = ""
    # --target-kinds (`<plural>.<group>`): workload kinds watched from the start besides Deployments (so the
    # collector sees their orphan claims after a restart); other kinds are watched once an event names them.
    target_kinds: tuple[str, ...] = ()

    def metrics_scope(self, namespace: str) -> MetricsScope | None:
        """What an event's PromQL in `namespace` may see (None: everything)."""
        return MetricsScope(self.metrics_namespace_label, namespace) if self.metrics_namespace_label else None

    @property
    def metrics_max_age(self) -> float:
        """How old a metric's last value may be before the event counts as blind: two readings missed, each
        given its full timeout."""
        return 2 * self.metrics_interval + self.prometheus_timeout


def event_poster(runtime: Runtime) -> EventPoster:
    """The Event lane when there is one, so that Events never hold up the replica writes behind them."""
    return runtime.events if runtime.events is not None else runtime.kube


class OperatorStoppingError(RuntimeError):
    """A write refused because the operator is stopping: another replica will make it."""


class WriteGate:
    """Closed when the operator stops gracefully, before it leaves the peering: no pass or collector round
    starts writing after that, and `close` waits for those in flight. So a standby that takes over the
    moment this replica's peering record is gone never writes beside it."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open = True
        self._writing = 0

    @contextlib.contextmanager
    def writing(self) -> Iterator[bool]:
        """True (and counted in flight until the block ends) while the gate is open; False once closed."""
        with self._changed:
            admitted = self._open
            if admitted:
                self._writing += 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._changed:
                    self._writing -= 1
                    self._changed.notify_all()

    def close(self, timeout: float) -> bool:
        """Admit no more writers; wait up to `timeout` for those in flight. True when none is left."""
        with self._changed:
            self._open = False
            return self._changed.wait_for(lambda: self._writing == 0, timeout)


@dataclass(frozen=True)
class Runtime:
    """What every handler needs; it travels in Kopf's memo."""

    config: OperatorConfig
    kube: KubeApi
    api_client: client.ApiClient | None = None
    metrics: MetricsSource | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)
    gate: WriteGate = field(default_factory=WriteGate)
    events: EventPoster | None = None  # where Events go; None: posted by `kube` in the caller's thread
    statuses: StatusLane | None = None  # where status writes go; None: written by the daemon's own thread
    headroom: HeadroomApi | None = None  # node headroom's placeholder pods; None: no placeholders at all
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    lanes: PassLanes | None = None  # where passes run; None: the event loop's default executor

    async def in_lane(self, urgent: bool, call: Callable[..., T], *args: object) -> T:
        """`call(*args)` in a worker thread: the urgent or the routine lane (see handlers/lanes.py)."""
        if self.lanes is None:
            return await asyncio.to_thread(call, *args)
        return await self.lanes.run(urgent, call, *args)


class Fence:
    """Orders an event's passes and its release, across the worker threads they run in.

    A pass holds `lock` while it decides and writes; the release takes it, so it waits for the pass in
    flight (even one whose asyncio task was cancelled: its thread runs on), and marks the event released.
    No pass writes after that.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.released = False


@dataclass(frozen=True)
class ForecastResult:
    replicas: int | None
    peak: float | None
    problem: str | None  # why there is no forecast; None when there is one

    @property
    def settled(self) -> bool:
        """Found, or known to have no data: not asked again in this window."""
        return self.replicas is not None or self.problem == NO_DATA


@dataclass(frozen=True)
class CurveResult:
    """The previous campaign's curve for one window, as read (`metric.forecast.mode: curve`)."""

    history: History | None
    problem: str | None = None  # why there is no curve (a CamelCase reason); None when there is one
    detail: str = ""

    @property
    def settled(self) -> bool:
        """Read, or known to have no data: not asked again in this window."""
        return self.history is not None or self.problem == NO_DATA


@dataclass
class WindowMemory:
    """What is remembered about one window of an event; dropped when the next window begins."""

    key: str
    announced: set[tuple[str, ...]] = field(default_factory=set)
    ready_seconds: dict[str, float] = field(default_factory=dict)  # per Deployment
    forecasts: dict[object, ForecastResult] = field(default_factory=dict)  # per metric spec
    curves: dict[object, CurveResult] = field(default_factory=dict)  # per metric spec, mode curve
    # Per Deployment: the curve's next planned change, and what it was worked out from (see passes).
    next_changes: dict[str, tuple[tuple[object, ...], tuple[datetime, int] | None]] = field(
        default_factory=dict
    )
    tallies: dict[str, Tally] = field(default_factory=dict)  # per Deployment: what was seen in the window


@dataclass
class EventMemory:
    """Per-event, in-process state. Lost on restart on purpose: what must survive a restart lives in the
    targets' annotations or the event's status, and is read back from there. Every part is bounded: by the
    current window, the current targets and the current metric queries."""

    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    fence: Fence = field(default_factory=Fence)
    parsed: tuple[int, CampaignSpec | SpecError] | None = None
    validated_generation: int | None = None
    announced_invalid: int | None = None  # the generation whose rejection was announced
    reconciled_generation: int | None = None
    window: WindowMemory = field(default_factory=lambda: WindowMemory(""))
    finished: WindowMemory | None = None  # the window before `window`, until its summary is written
    metrics: dict[str, MetricMemory] = field(default_factory=dict)  # per Deployment
    readings: dict[str, MetricReading] = field(default_factory=dict)  # per query: the latest answer
    touched: set[str] = field(default_factory=set)  # Deployments this process wrote a claim of this event to
    last_phase: str | None = None
    failures: int = 0  # consecutive failed passes
    next_at: datetime | None = None  # the next transition, as the last good pass saw it
    urgent: bool = True  # the next pass carries something due now (the first pass always may)

    def wake(self, urgent: bool = False) -> None:
        """Wake the event's daemon for a pass; `urgent` when a write is due at once (a target pushed below
        its floor)."""
        self.urgent = self.urgent or urgent
        self.wakeup.set()

    def take_urgency(self, now: datetime) -> bool:
        """Whether the pass about to run goes in the urgent lane: woken urgently, a transition due, or a retry
        of a failed pass (it may carry one). Resets the urgent wake-up."""
        urgent = self.urgent or self.failures > 0 or (self.next_at is not None and self.next_at <= now)
        self.urgent = False
        return urgent

    def spec(
        self, generation: int, raw: Mapping[str, Any], metrics_scope: MetricsScope | None = None
    ) -> CampaignSpec:
        """The parsed spec of `generation`, parsed once; raises its SpecError every time."""
        if self.parsed is None or self.parsed[0] != generation:
            try:
                self.parsed = (generation, parse_spec(raw, metrics_scope))
            except SpecError as err:
                self.parsed = (generation, err)
        parsed = self.parsed[1]
        if isinstance(parsed, SpecError):
            raise parsed
        return parsed

    def window_memory(self, key: str) -> WindowMemory:
        if self.window.key != key:
            self.finished = self.window if self.window.key else None
            self.window = WindowMemory(key)
        return self.window

    def retry_delay(self, now: datetime, resync_interval: float) -> float:
        """The delay before trying a failed pass again (counts the failure): a jittered exponential backoff,
        but never past the resync interval nor past the next transition, so that a flaky API server does
        not postpone a step that is due."""
        self.failures += 1
        backoff = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (self.failures - 1))
        delays = [backoff * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER), resync_interval]
        if self.next_at is not None and self.next_at > now:  # once it is past, the backoff alone counts
            delays.append((self.next_at - now).total_seconds() + TRANSITION_GRACE_SECONDS)
        return min(delays)
