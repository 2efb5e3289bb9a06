"""Workload kinds: what a target's (apiVersion, kind) is on this API server, found through API discovery.

apps/v1 Deployments and StatefulSets are written as they always were (`spec.replicas` in one guarded JSON
Patch with the annotations); any other kind is read from its object and scaled through its `/scale`
subresource. A kind the API server does not serve, or one without `/scale`, cannot be a target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaign_autoscaler.planning import api_group

# apps/v1 kinds whose replicas are written in the same patch as the annotations.
NATIVE_KINDS = ("Deployment", "StatefulSet")
# A group version the API server did not serve is asked about again after this long (a CRD installed later).
REDISCOVER_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class WorkloadKind:
    """One namespaced kind that can be a target."""

    api_version: str
    kind: str
    plural: str
    scale: bool = True  # it has a /scale subresource

    @property
    def native(self) -> bool:
        """apps/v1 Deployment or StatefulSet: `spec.replicas` written with the annotations, no /scale."""
        return self.api_version == "apps/v1" and self.kind in NATIVE_KINDS

    @property
    def group(self) -> str:
        return api_group(self.api_version)

    @property
    def resource(self) -> str:
        """`deployments.apps`, `rollouts.argoproj.io`: as RBAC and kubectl name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def via(self) -> str:
        """How a target of this kind is scaled, as `status.targets[].via` says it (without an HPA)."""
        return self.kind if self.native else "Scale"

    def collection(self, namespace: str | None) -> str:
        prefix = f"/apis/{self.api_version}" if self.group else f"/api/{self.api_version}"
        scope = f"/namespaces/{namespace}" if namespace else ""
        return f"{prefix}{scope}/{self.plural}"

    def path(self, namespace: str, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"

    def scale_path(self, namespace: str, name: str) -> str:
        return f"{self.path(namespace, name)}/scale"


DEPLOYMENTS = WorkloadKind("apps/v1", "Deployment", "deployments")
STATEFULSETS = WorkloadKind("apps/v1", "StatefulSet", "statefulsets")


def kinds_served(api_version: str, listing: Mapping[str, Any]) -> dict[str, WorkloadKind]:
    """The namespaced kinds of an APIResourceList (`GET /apis/<group>/<version>`), by kind."""
    resources = listing.get("resources") or ()
    names = {str(item.get("name", "")) for item in resources}
    found: dict[str, WorkloadKind] = {}
    for item in resources:
        plural = str(item.get("name", ""))
        if "/" in plural or not item.get("namespaced"):
            continue
        kind = str(item.get("kind", ""))
        found.setdefault(kind, WorkloadKind(api_version, kind, plural, f"{plural}/scale" in names))
    return found


class KindDirectory:
    """What the API server serves, per group version, asked once (again later only when it served nothing).

    `fetch(api_version)` returns the APIResourceList, or None when the group version is not served;
    `fetch_group(group)` the APIGroup (its preferred version), or None when the group is not served.
    """

    def __init__(
        self,
        fetch: Callable[[str], Mapping[str, Any] | None],
        fetch_group: Callable[[str], Mapping[str, Any] | None] = lambda _group: None,
    ) -> None:
        self._fetch = fetch
        self._fetch_group = fetch_group
        self._served: dict[str, tuple[dict[str, WorkloadKind], datetime | None]] = {
            "apps/v1": ({k.kind: k for k in (DEPLOYMENTS, STATEFULSETS)}, None)
        }

    def known(self, api_version: str, kind: str) -> WorkloadKind | None:
        """From what was already found; no request."""
        return self._served.get(api_version, ({}, None))[0].get(kind)

    def by_group_kind(self, group: str, kind: str) -> WorkloadKind | None:
        """A kind already found, by API group and kind (any version of it)."""
        for served, _ in self._served.values():
            found = served.get(kind)
            if found is not None and found.group == group:
                return found
        return None

    def lookup(self, api_version: str, kind: str, now: datetime) -> WorkloadKind | None:
        """The kind as the API server serves it; None when it does not. May ask the API server."""
        entry = self._served.get(api_version)
        stale = entry is not None and entry[1] is not None and now - entry[1] >= REDISCOVER_AFTER
        if entry is None or (kind not in entry[0] and stale):
            listing = self._fetch(api_version)
            entry = (kinds_served(api_version, listing) if listing is not None else {}, now)
            self._served[api_version] = entry
        served = entry[0]
        return served.get(kind)

    def resource(self, resource: str, now: datetime) -> WorkloadKind | None:
        """The kind of a resource named `<plural>.<group>` (RBAC's way, e.g. `rollouts.argoproj.io`), in
        its group's preferred version; None when it is not served. May ask the API server."""
        plural, _, group = resource.partition(".")
        if group == "apps":
            api_version: str | None = "apps/v1"
        elif not group:
            api_version = "v1"
        else:
            found = self._fetch_group(group)
            api_version = ((found or {}).get("preferredVersion") or {}).get("groupVersion")
        if not api_version:
            return None
        self.lookup(api_version, "", now)  # finds what the group version serves
        served = self._served.get(api_version, ({}, None))[0]
        return next((kind for kind in served.values() if kind.plural == plural), None)


def kind_problem(kind: WorkloadKind | None, api_version: str, name: str) -> str | None:
    """Why a target of kind `name` (`api_version`) cannot be scaled; None when it can."""
    if kind is None:
        return f"{name} is not a namespaced kind the API server serves under {api_version}"
    if not kind.native and not kind.scale:
        return f"{name} ({api_version}) has no /scale subresource, so it cannot be scaled"
    return None
