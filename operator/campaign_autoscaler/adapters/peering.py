"""The operator's own Kopf peering object, created at start-up before Kopf runs.

Kopf keeps an operator with `--peering NAME` paused until a peering object of that name exists. Shipping the
object in the install manifests cannot work in one `kubectl apply`: its kind comes from a CRD in the same
apply, which kubectl cannot map yet. So the operator creates it (a ClusterKopfPeering when it serves every
namespace, a KopfPeering in each namespace it serves) and only then starts Kopf, so that its first
keep-alive lands in an existing object and the replicas elect one active member from the start.

RBAC: `create` on the peering kind (Kubernetes cannot scope a create to a name) and get/patch on the one name.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

log = logging.getLogger(__name__)

PEERING_GROUP = "kopf.dev"
PEERING_VERSION = "v1"
CLUSTER_PLURAL = "clusterkopfpeerings"
NAMESPACED_PLURAL = "kopfpeerings"
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
# An exact namespace name (a DNS label); --namespace also takes Kopf's glob patterns, which name no object.
EXACT_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PEERING_CRDS_HINT = "kubectl apply -f manifests/kopfpeerings.kopf.dev.yaml"
REQUEST_TIMEOUT = (5.0, 10.0)  # seconds to connect, seconds to wait for the answer


class PeeringSetupError(RuntimeError):
    """The peering object could not be made to exist (its CRD is not served, or the API server refused)."""


@dataclass(frozen=True)
class PeeringPlace:
    """Where one peering object lives: cluster-wide (namespace None) or in one namespace."""

    namespace: str | None

    @property
    def kind(self) -> str:
        return "ClusterKopfPeering" if self.namespace is None else "KopfPeering"

    def describe(self, name: str) -> str:
        where = "cluster-wide" if self.namespace is None else f"in namespace {self.namespace}"
        return f"{self.kind} {name!r} {where}"


def peering_places(namespaces: Sequence[str]) -> list[PeeringPlace]:
    """One cluster-wide object without namespaces; else one per exactly named namespace."""
    if not namespaces:
        return [PeeringPlace(None)]
    return [PeeringPlace(namespace) for namespace in namespaces if EXACT_NAMESPACE.match(namespace)]


def peering_body(name: str, place: PeeringPlace) -> dict[str, object]:
    metadata: dict[str, object] = {
        "name": name,
        "labels": {"app.kubernetes.io/managed-by": "campaign-autoscaler"},
    }
    if place.namespace is not None:
        metadata["namespace"] = place.namespace
    return {"apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}", "kind": place.kind, "metadata": metadata}


def _custom_object_call(api: client.CustomObjectsApi, verb: str, place: PeeringPlace, last: object) -> object:
    """`verb` (create, get) on the peering kind of `place`; `last` is the body or the name."""
    if place.namespace is None:
        call = getattr(api, f"{verb}_cluster_custom_object")
        return call(PEERING_GROUP, PEERING_VERSION, CLUSTER_PLURAL, last, _request_timeout=REQUEST_TIMEOUT)
    call = getattr(api, f"{verb}_namespaced_custom_object")
    return call(
        PEERING_GROUP,
        PEERING_VERSION,
        place.namespace,
        NAMESPACED_PLURAL,
        last,
        _request_timeout=REQUEST_TIMEOUT,
    )


def peering_exists(api: client.CustomObjectsApi, name: str, place: PeeringPlace) -> bool:
    try:
        _custom_object_call(api, "get", place, name)
    except (ApiException, HTTPError):
        return False
    return True


def create_peering(api: client.CustomObjectsApi, name: str, place: PeeringPlace) -> str | None:
    """Create the object. None when it exists now (created, or there already); otherwise why not yet: its
    kind is not served (the peering CRD is missing or not established) or the API server did not answer."""
    try:
        _custom_object_call(api, "create", place, peering_body(name, place))
    except ApiException as err:
        if err.status == HTTP_CONFLICT:
            return None
        if err.status == HTTP_NOT_FOUND:
            return (
                f"the {place.kind} kind (kopf.dev/v1) is not served: install Kopf's peering CRDs "
                f"({PEERING_CRDS_HINT})"
            )
        if err.status == HTTP_FORBIDDEN and peering_exists(api, name, place):
            return None  # created by someone else; this operator may only read and patch it
        if err.status == HTTP_FORBIDDEN:
            raise PeeringSetupError(
                f"not allowed to create the {place.describe(name)}: grant `create` on {place.kind} "
                "to the operator's ServiceAccount, or create the object yourself"
            ) from None
        raise PeeringSetupError(f"creating the {place.describe(name)} failed: HTTP {err.status}") from None
    except HTTPError as err:
        return f"the API server did not answer ({getattr(err, 'reason', None) or err})"
    log.info("Created the %s.", place.describe(name))
    return None


def ensure_peering(
    api_client: client.ApiClient,
    name: str,
    namespaces: Sequence[str],
    *,
    wait: float,
    poll: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Make every peering object of this operator exist, waiting up to `wait` seconds for the peering CRDs
    to be served (they may come in the same apply as the operator) and for the API server to answer;
    PeeringSetupError naming the last problem otherwise."""
    api = client.CustomObjectsApi(api_client)
    pending = peering_places(namespaces)
    deadline = clock() + wait
    # The waiting is said once, at the end if it fails, not by urllib3 at every retried connection.
    pool_log = logging.getLogger("urllib3.connectionpool")
    pool_level = pool_log.level
    pool_log.setLevel(logging.ERROR)
    try:
        while True:
            problems = {place: create_peering(api, name, place) for place in pending}
            pending = [place for place, problem in problems.items() if problem is not None]
            if not pending:
                return
            if clock() >= deadline:
                first = pending[0]
                raise PeeringSetupError(f"no {first.describe(name)} after {wait:g}s: {problems[first]}")
            sleep(poll)
    finally:
        pool_log.setLevel(pool_level)
