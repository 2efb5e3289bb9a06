"""The operator's own Prometheus metrics (prometheus-client), on a registry of its own.

One `Telemetry` per operator process; it travels in Kopf's memo with everything else.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from .series import SeriesTable

PREFIX = "campaign_autoscaler"
PHASES = ("Pending", "PreScaling", "Active", "RampingDown", "Completed", "Invalid")
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
QUERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Reconciles run in worker threads: the bookkeeping behind the gauges is shared between them.
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}
        self._targets: dict[tuple[str, str], set[str]] = {}
        self._unready: dict[tuple[str, str], set[tuple[str, str]]] = {}  # per event: (target, reason)
        self.events = Gauge(f"{PREFIX}_events", "CampaignEvents by phase", ["phase"], registry=self.registry)
        self.baseline = SeriesTable(
            f"{PREFIX}_target_baseline_replicas",
            "Baseline replicas of a target",
            ["namespace", "event", "target"],
            self.registry,
        )
        self.desired = SeriesTable(
            f"{PREFIX}_target_desired_replicas",
            "Replicas a CampaignEvent wants for a target now",
            ["namespace", "event", "target"],
            self.registry,
        )
        self.ready = SeriesTable(
            f"{PREFIX}_target_ready_replicas",
            "Ready replicas of a target as last seen",
            ["namespace", "event", "target"],
            self.registry,
        )
        self.event_phase = SeriesTable(
            f"{PREFIX}_event_phase",
            "1 for the phase a CampaignEvent is in now (one series per event)",
            ["namespace", "event", "phase"],
            self.registry,
        )
        self.lead_time = SeriesTable(
            f"{PREFIX}_event_lead_time_seconds",
            "spec.leadTime of a CampaignEvent: its capacity must be Ready this long after pre-scaling starts",
            ["namespace", "event"],
            self.registry,
        )
        self.observed_ready = SeriesTable(
            f"{PREFIX}_target_observed_ready_seconds",
            "From the start of pre-scaling until the target's floor was first seen Ready, in this window",
            ["namespace", "event", "target"],
            self.registry,
        )
        self.unready = SeriesTable(
            f"{PREFIX}_target_unready_replicas",
            "Replicas of a target asked for and not Ready, by why (Unschedulable, QuotaExceeded, ...)",
            ["namespace", "event", "target", "reason"],
            self.registry,
        )
        self.passes = Counter(
            f"{PREFIX}_event_passes",
            "Passes of a CampaignEvent completed: targets and status brought to what the decision wants",
            ["namespace", "event"],
            registry=self.registry,
        )
        self.metric_value = SeriesTable(
            f"{PREFIX}_target_metric_value",
            "Last value of a target's metric query as the operator read it (when the target has a metric)",
            ["namespace", "event", "target"],
            self.registry,
        )
        self.transitions = Counter(
            f"{PREFIX}_transitions", "Phase transitions acted on", ["phase"], registry=self.registry
        )
        self.transition_lag = Histogram(
            f"{PREFIX}_transition_lag_seconds",
            "From a transition's due time until it was applied",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.scale_operations = Counter(
            f"{PREFIX}_scale_operations",
            "Writes that changed a target's replicas or HPA bounds",
            ["reason"],
            registry=self.registry,
        )
        self.api_errors = Counter(
            f"{PREFIX}_kubernetes_api_errors",
            "Kubernetes API calls that failed",
            ["status"],
            registry=self.registry,
        )
        self.query_duration = Histogram(
            f"{PREFIX}_prometheus_query_duration_seconds",
            "Prometheus query latency",
            ["outcome"],
            buckets=QUERY_BUCKETS,
            registry=self.registry,
        )
        self.query_errors = Counter(
            f"{PREFIX}_prometheus_query_errors",
            "Prometheus queries without a usable answer, by reason",
            ["reason"],
            registry=self.registry,
        )
        for phase in PHASES:
            self.events.labels(phase=phase).set(0)

    def serve(self, port: int, address: str = "0.0.0.0") -> Any:
        """Expose /metrics over HTTP in a background thread; returns (server, thread)."""
        return start_http_server(port, addr=address, registry=self.registry)

    def observe_query(self, outcome: str, seconds: float) -> None:
        self.query_duration.labels(outcome="ok" if outcome == "ok" else "error").observe(seconds)
        if outcome != "ok":
            self.query_errors.labels(reason=outcome).inc()

    def observe_event(
        self,
        namespace: str,
        name: str,
        phase: str,
        targets: Iterable[Mapping[str, Any]],
        lead_time_seconds: float | None = None,
    ) -> None:
        with self._lock:
            self._observe_event(namespace, name, phase, targets, lead_time_seconds)

    def _observe_event(
        self,
        namespace: str,
        name: str,
        phase: str,
        targets: Iterable[Mapping[str, Any]],
        lead_time_seconds: float | None,
    ) -> None:
        previous_phase = self._phases.get((namespace, name))
        if previous_phase != phase:
            if previous_phase is not None:
                with contextlib.suppress(KeyError):
                    self.event_phase.remove(namespace, name, previous_phase)
                self.events.labels(phase=previous_phase).dec()
            self.events.labels(phase=phase).inc()
            self.event_phase.set((namespace, name, phase), 1)
            self._phases[(namespace, name)] = phase
        if lead_time_seconds is not None:
            self.lead_time.set((namespace, name), lead_time_seconds)
        else:  # an invalid spec has no lead time
            with contextlib.suppress(KeyError):
                self.lead_time.remove(namespace, name)
        seen = set()
        for entry in targets:
            labels = (namespace, name, entry["name"])
            seen.add(entry["name"])
            self.baseline.set(labels, entry["baselineReplicas"])
            self.desired.set(labels, entry["desiredReplicas"])
            self.ready.set(labels, entry["readyReplicas"])
            if entry.get("observedReadySeconds") is not None:
                self.observed_ready.set(labels, entry["observedReadySeconds"])
            else:
                with contextlib.suppress(KeyError):
                    self.observed_ready.remove(namespace, name, entry["name"])
            if "metricValue" in entry:
                self.metric_value.set(labels, float(entry["metricValue"]))
        for gone in self._targets.get((namespace, name), set()) - seen:
            self._remove_target(namespace, name, gone)
        self._targets[(namespace, name)] = seen

    def observe_unready(self, namespace: str, name: str, targets: Mapping[str, Mapping[Any, int]]) -> None:
        """Each target's replicas not Ready by reason; a reason that no longer holds loses its series."""
        with self._lock:
            seen = set()
            for target, counts in targets.items():
                for reason, count in counts.items():
                    self.unready.set((namespace, name, target, str(reason)), count)
                    seen.add((target, str(reason)))
            self._drop_unready(namespace, name, self._unready.get((namespace, name), set()) - seen)
            self._unready[(namespace, name)] = seen

    def _drop_unready(self, namespace: str, name: str, series: set[tuple[str, str]]) -> None:
        for target, reason in series:
            with contextlib.suppress(KeyError):
                self.unready.remove(namespace, name, target, reason)

    def forget_event(self, namespace: str, name: str) -> None:
        with self._lock:
            self._drop_unready(namespace, name, self._unready.pop((namespace, name), set()))
            phase = self._phases.pop((namespace, name), None)
            if phase is not None:
                with contextlib.suppress(KeyError):
                    self.event_phase.remove(namespace, name, phase)
                self.events.labels(phase=phase).dec()
            with contextlib.suppress(KeyError):
                self.lead_time.remove(namespace, name)
            for target in self._targets.pop((namespace, name), set()):
                self._remove_target(namespace, name, target)
            with contextlib.suppress(KeyError):
                self.passes.remove(namespace, name)

    def count_pass(self, namespace: str, name: str) -> None:
        self.passes.labels(namespace=namespace, event=name).inc()

    def count_transition(self, namespace: str, name: str, phase: str) -> None:
        self.transitions.labels(phase=phase).inc()

    def count_scale(self, namespace: str, target: str, reason: str) -> None:
        self.scale_operations.labels(reason=reason).inc()

    def _remove_target(self, namespace: str, name: str, target: str) -> None:
        for gauge in (self.baseline, self.desired, self.ready, self.observed_ready, self.metric_value):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name, target)
