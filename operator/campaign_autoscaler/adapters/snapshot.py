"""One namespace's workloads and autoscalers as the operator's watches last saw them: what a pass reads."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from campaign_autoscaler.adapters.placeholders import PlaceholderView
from campaign_autoscaler.adapters.scaledobjects import ScaledObjectView
from campaign_autoscaler.adapters.views import DeploymentView, ScalerView
from campaign_autoscaler.planning.claims import HPA_KIND
from campaign_autoscaler.planning.scaledobject import SCALED_OBJECT_KIND


@dataclass(frozen=True)
class NamespaceSnapshot:
    """The workloads (by key, planning.workload_key) and autoscalers (HPAs, KEDA ScaledObjects) of one
    namespace as the operator's watches last saw them.

    Reconciles read from here, not from LIST calls: the API server is asked only to write, and to re-read one
    object when a write was refused (which also says the snapshot was stale).
    """

    deployments: Mapping[str, DeploymentView]
    hpas: tuple[ScalerView, ...] = ()
    namespace: str = ""
    placeholders: tuple[PlaceholderView, ...] = ()  # node headroom's pods, of every event

    @classmethod
    def of(
        cls,
        deployments: Iterable[DeploymentView],
        hpas: Iterable[ScalerView] = (),
        namespace: str = "",
        placeholders: Iterable[PlaceholderView] = (),
    ) -> NamespaceSnapshot:
        return cls({view.key: view for view in deployments}, tuple(hpas), namespace, tuple(placeholders))

    def placeholders_of(self, event_uid: str) -> list[PlaceholderView]:
        return [pod for pod in self.placeholders if pod.event_uid == event_uid]

    def deployment(self, key: str) -> DeploymentView | None:
        """The workload of that key (a Deployment's key is its name)."""
        return self.deployments.get(key)

    def matching(
        self,
        labels_match: Callable[[Mapping[str, str]], bool],
        kind: tuple[str, str] | None = ("apps", "Deployment"),
    ) -> list[DeploymentView]:
        """The workloads of `kind` (group, kind; None: every kind) whose labels match, sorted by name."""
        return sorted(
            (
                v
                for v in self.deployments.values()
                if labels_match(v.labels) and (kind is None or (v.workload.group, v.workload.kind) == kind)
            ),
            key=lambda v: (v.name, v.kind),
        )

    def claimed_by(self, event_key: str) -> list[str]:
        """The keys of the workloads the event of that claim key claims, sorted."""
        return list(self._claimed.get(event_key, ()))

    @cached_property
    def _claimed(self) -> Mapping[str, tuple[str, ...]]:
        """Each claim key's workloads; gathered once per snapshot, which every pass of the namespace shares
        until a view in it changes (see informer.WorkloadCache.snapshot)."""
        claimed: dict[str, list[str]] = {}
        for key, view in self.deployments.items():
            for event_key in view.claims:
                claimed.setdefault(event_key, []).append(key)
        return {event_key: tuple(sorted(keys)) for event_key, keys in claimed.items()}

    def hpa_for(self, key: str) -> ScalerView | None:
        """The autoscaler whose scaleTargetRef is this workload, if any: a KEDA ScaledObject before any HPA,
        and never the HPA a ScaledObject owns (KEDA rewrites it from the ScaledObject)."""
        keda_hpas = {s.hpa_name for s in self.hpas if isinstance(s, ScaledObjectView)}
        # Two autoscalers on one workload already fight each other; follow the oldest, deterministically.
        matches = sorted(
            (scaler for scaler in self.hpas if _scales(scaler, key, keda_hpas)),
            key=lambda s: (s.kind != SCALED_OBJECT_KIND, s.created, s.name),
        )
        return matches[0] if matches else None

    def hpa(self, name: str, kind: str = HPA_KIND) -> ScalerView | None:
        """The autoscaler of that kind and name."""
        return next((s for s in self.hpas if (s.name, s.kind) == (name, kind)), None)


def _scales(scaler: ScalerView, key: str, keda_hpas: set[str]) -> bool:
    """Whether `scaler` scales the workload of that key (planning.workload_key); never the HPA KEDA owns."""
    if isinstance(scaler, ScaledObjectView):
        return scaler.scales(key)
    return scaler.target == key and scaler.owner is None and scaler.name not in keda_hpas
