"""One pass of one event: who it is, the single `now` every decision in it uses, and how it speaks."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from campaign_autoscaler.adapters.kube import ClaimOutcome, event_object_ref
from campaign_autoscaler.planning import TargetSpec, claim_key
from campaign_autoscaler.planning.capacity import READY, CapacityVerdict
from campaign_autoscaler.planning.decision import MetricMemory, TargetDecision
from campaign_autoscaler.planning.instants import kube_time

from .runtime import CurveResult, EventMemory, ForecastResult, Runtime, event_poster

log = logging.getLogger("campaign_autoscaler.handlers")


def iso(moment: datetime | None) -> str | None:
    return kube_time(moment) if moment else None


@dataclass(frozen=True)
class EventContext:
    runtime: Runtime
    memory: EventMemory
    name: str
    namespace: str
    uid: str
    generation: int
    now: datetime

    @property
    def key(self) -> str:
        return claim_key(self.namespace, self.name)

    @property
    def ref(self) -> dict[str, str]:
        return event_object_ref(self.name, self.uid)

    def post(self, involved: Mapping[str, str], event_type: str, reason: str, message: str) -> None:
        event_poster(self.runtime).post_event(
            namespace=self.namespace,
            involved=involved,
            event_type=event_type,
            reason=reason,
            message=message,
            now=self.now,
        )

    def warn_once(self, marker: tuple[str, ...], reason: str, message: str) -> None:
        """A Warning on the event, once per window for each marker."""
        announced = self.memory.window.announced
        if marker in announced:
            return
        announced.add(marker)
        log.warning(message)
        self.post(self.ref, "Warning", reason, message)


@dataclass(frozen=True)
class TargetReport:
    """What a pass decided and did on one target."""

    outcome: ClaimOutcome
    decision: TargetDecision
    forecast: ForecastResult | None
    metric_before: MetricMemory | None  # the metric memory before this pass (None: no metric)
    target: TargetSpec | None = None  # the spec entry that named or selected the Deployment
    curve: CurveResult | None = None  # with metric.forecast.mode curve: the previous campaign's curve
    next_change: tuple[datetime, int] | None = None  # the curve's next planned change: when, to what
    capacity: CapacityVerdict = READY  # why replicas asked for are not Ready, if some are not

    @property
    def wanted(self) -> int | None:
        return self.decision.wanted

    @property
    def metric(self) -> MetricMemory | None:
        return self.decision.memory if self.metric_before is not None else None
