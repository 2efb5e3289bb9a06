"""KEDA in the integration tier: the test CRD of ScaledObjects (installed and removed per test) and a small
stand-in for KEDA's controller that, like KEDA, rewrites each ScaledObject's HPA from the ScaledObject every
second, through autoscaling/v2beta2, owned by the ScaledObject."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.harness import ensure_crd, wait_until

CRD_PATH = Path(__file__).resolve().parent / "crds" / "scaledobjects.keda.sh.yaml"
GROUP, VERSION, PLURAL = "keda.sh", "v1alpha1", "scaledobjects"
PAUSED_ANNOTATION = "autoscaling.keda.sh/paused-replicas"


@contextmanager
def scaled_object_crd(api_client: client.ApiClient) -> Iterator[None]:
    """The test CRD, Established and served; removed afterwards (and waited for), so that other tests see a
    cluster without KEDA."""
    extensions = client.ApiextensionsV1Api(api_client)
    name = yaml.safe_load(CRD_PATH.read_text())["metadata"]["name"]
    wait_until(lambda: not _exists(extensions, name), timeout=60, message=f"an earlier CRD {name} gone")
    ensure_crd(api_client, CRD_PATH)
    try:
        yield
    finally:
        extensions.delete_custom_resource_definition(name)
        wait_until(lambda: not _exists(extensions, name), timeout=60, message=f"CRD {name} deleted")


def _exists(extensions: client.ApiextensionsV1Api, name: str) -> bool:
    try:
        extensions.read_custom_resource_definition(name)
        return True
    except ApiException as err:
        if err.status == 404:
            return False
        raise


def scaled_object_body(
    name: str, target: str, *, min_count: int | None, max_count: int | None, paused: bool = False
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": target},  # kind and apiVersion left to their defaults
        "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}],
    }
    if min_count is not None:
        spec["minReplicaCount"] = min_count
    if max_count is not None:
        spec["maxReplicaCount"] = max_count
    metadata: dict[str, Any] = {"name": name}
    if paused:
        metadata["annotations"] = {PAUSED_ANNOTATION: "3"}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ScaledObject", "metadata": metadata, "spec": spec}


class KedaStandIn:
    """Rewrites the HPA of one ScaledObject from it every `interval` seconds, as KEDA's controller does: any
    change made to the HPA by someone else is undone within a second."""

    def __init__(
        self, api_client: client.ApiClient, namespace: str, name: str, interval: float = 1.0
    ) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace, self.name, self.interval = namespace, name, interval
        self.rewrites = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"keda-stand-in {name}", daemon=True)
        self.errors: list[str] = []

    def __enter__(self) -> KedaStandIn:
        self.reconcile()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reconcile()
            except ApiException as err:
                self.errors.append(f"{err.status} {err.reason}")

    def scaled_object(self) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)

    def hpa_name(self, scaled_object: dict[str, Any]) -> str:
        config = (scaled_object["spec"].get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}
        return config.get("name") or f"keda-hpa-{self.name}"

    def reconcile(self) -> None:
        scaled_object = self.scaled_object()
        spec = scaled_object["spec"]
        hpa_name = self.hpa_name(scaled_object)
        body = {
            "apiVersion": "autoscaling/v2beta2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {
                "name": hpa_name,
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "ScaledObject",
                        "name": self.name,
                        "uid": scaled_object["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", **spec["scaleTargetRef"]},
                # KEDA's HPA never has minReplicas 0: a ScaledObject's 0 (its default) becomes 1.
                "minReplicas": max(spec.get("minReplicaCount") or 0, 1),
                "maxReplicas": spec.get("maxReplicaCount", 100),
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 60},
                        },
                    }
                ],
            },
        }
        try:
            current = self.custom.get_namespaced_custom_object(
                "autoscaling", "v2beta2", self.namespace, "horizontalpodautoscalers", hpa_name
            )
        except ApiException as err:
            if err.status != 404:
                raise
            self.custom.create_namespaced_custom_object(
                "autoscaling", "v2beta2", self.namespace, "horizontalpodautoscalers", body
            )
            self.rewrites += 1
            return
        if (current["spec"].get("minReplicas"), current["spec"]["maxReplicas"]) == (
            body["spec"]["minReplicas"],
            body["spec"]["maxReplicas"],
        ):
            return
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        self.custom.replace_namespaced_custom_object(
            "autoscaling", "v2beta2", self.namespace, "horizontalpodautoscalers", hpa_name, body
        )
        self.rewrites += 1

    def hpa_bounds(self) -> tuple[int, int]:
        hpa = self.custom.get_namespaced_custom_object(
            "autoscaling",
            "v2beta2",
            self.namespace,
            "horizontalpodautoscalers",
            self.hpa_name(self.scaled_object()),
        )
        return hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
