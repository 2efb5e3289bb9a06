"""Plays the kubelet's part for a control plane without kubelets: Pods turn Ready a fixed time after they
appear, or, with a scheduler and simulated Nodes (`bound_only`), a fixed time after they are bound to a Node.

One watch on Pods in all namespaces feeds a heap of due times; one timer thread hands due Pods to a small
pool that patches their status. The ReplicaSet and Deployment controllers then count them as ready, as in a
real cluster. A Pod without a nodeName is deleted by the API server at once; one bound to a Node is only
marked for deletion, and the simulator deletes it for good, as its kubelet would once its containers stopped.
With `bound_only`, a Pod the scheduler cannot place stays Pending with the scheduler's own condition.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes

from campaign_autoscaler.planning.instants import kube_time, parse_kube_time

DEFAULT_READY_AFTER_SECONDS = 2.0
WATCH_TIMEOUT_SECONDS = 5
REQUEST_TIMEOUT_SECONDS = 10
HTTP_GONE = 410
# Gone (404), replaced by a namesake (422: uid is immutable), or being deleted (409).
QUIET_PATCH_FAILURES = frozenset({404, 409, 422})

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Container:
    name: str
    image: str


@dataclass(frozen=True, order=True)
class DuePod:
    due_at: float  # a time.monotonic() value
    sequence: int
    namespace: str = field(compare=False)
    name: str = field(compare=False)
    uid: str = field(compare=False)
    containers: tuple[Container, ...] = field(compare=False)


def is_pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def needs_readiness(pod: dict[str, Any], bound_only: bool = False) -> bool:
    metadata = pod.get("metadata") or {}
    if bound_only and not node_name(pod):
        return False
    return not metadata.get("deletionTimestamp") and not is_pod_ready(pod)


def node_name(pod: dict[str, Any]) -> str | None:
    return (pod.get("spec") or {}).get("nodeName") or None


def awaits_kubelet_deletion(pod: dict[str, Any]) -> bool:
    """Marked for deletion while bound to a Node: the API server waits for its kubelet to confirm."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) and node_name(pod) is not None


def bound_at(pod: dict[str, Any]) -> str | None:
    """When the scheduler bound the Pod (its PodScheduled=True transition), if it did."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return next(
        (
            c.get("lastTransitionTime")
            for c in conditions
            if c.get("type") == "PodScheduled" and c.get("status") == "True"
        ),
        None,
    )


def pod_containers(pod: dict[str, Any]) -> tuple[Container, ...]:
    containers = (pod.get("spec") or {}).get("containers") or []
    return tuple(Container(c["name"], c.get("image", "")) for c in containers)


def ready_status_patch(due: DuePod, now: datetime) -> dict[str, Any]:
    """The status a kubelet would report once every container started and passed its readiness probe.

    The uid makes the patch fail (422, uid is immutable) if the Pod was replaced by a namesake meanwhile.
    """
    timestamp = kube_time(now)
    condition_types = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    return {
        "metadata": {"uid": due.uid},
        "status": {
            "phase": "Running",
            "startTime": timestamp,
            "conditions": [
                {"type": kind, "status": "True", "lastTransitionTime": timestamp} for kind in condition_types
            ],
            "containerStatuses": [
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": "",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": timestamp}},
                }
                for container in due.containers
            ],
        },
    }


class PodReadinessSimulator:
    """Marks every Pod (with `bound_only`, every Pod bound to a Node) Ready `ready_after` seconds after it is
    first seen so. start() / stop(), or a `with`."""

    def __init__(
        self,
        kubeconfig_path: Path | str,
        ready_after: float = DEFAULT_READY_AFTER_SECONDS,
        *,
        workers: int = 4,
        bound_only: bool = False,
    ) -> None:
        self.kubeconfig_path = Path(kubeconfig_path)
        self.ready_after = ready_after
        self.bound_only = bound_only
        self._deleting_uids: set[str] = set()
        self._workers = workers
        self._stopping = threading.Event()
        self._wakeup = threading.Condition()
        self._due: list[DuePod] = []
        self._pending_uids: set[str] = set()
        self._readied_uids: set[str] = set()
        self._sequence = itertools.count()
        self._threads: list[threading.Thread] = []
        self._pool: ThreadPoolExecutor | None = None
        self._api_client: kubernetes.client.ApiClient | None = None
        self._synced = threading.Event()

    def start(self) -> PodReadinessSimulator:
        self._api_client = kubernetes.config.new_client_from_config(
            config_file=str(self.kubeconfig_path), persist_config=False
        )
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="podsim-patch")
        self._threads = [
            threading.Thread(target=self._watch_loop, name="podsim-watch", daemon=True),
            threading.Thread(target=self._timer_loop, name="podsim-timer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def wait_synced(self, timeout: float = 10.0) -> bool:
        """True once the initial Pod list has been read (Pods created after that are surely seen)."""
        return self._synced.wait(timeout)

    def request_stop(self) -> None:
        """Ask the threads to finish without waiting for them (lets the caller shut the API server down)."""
        self._stopping.set()
        with self._wakeup:
            self._wakeup.notify_all()

    def stop(self) -> None:
        self.request_stop()
        for thread in self._threads:
            thread.join(timeout=WATCH_TIMEOUT_SECONDS + REQUEST_TIMEOUT_SECONDS)
        self._threads = []
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None

    def __enter__(self) -> PodReadinessSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- watching -------------------------------------------------------------------------------------------

    def _core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self._api_client)

    def _watch_loop(self) -> None:
        resource_version: str | None = None
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    resource_version = self._list_and_schedule()
                    self._synced.set()
                resource_version = self._watch_from(resource_version)
            except kubernetes.client.ApiException as error:
                if error.status != HTTP_GONE:
                    logger.warning("Pod watch failed: %s", error.reason)
                    self._stopping.wait(0.5)
                resource_version = None
            except Exception as error:  # connection refused or reset: the API server is restarting or gone
                if not self._stopping.is_set():
                    logger.warning("Pod watch failed: %s", error)
                    self._stopping.wait(0.5)
                resource_version = None

    def _list_and_schedule(self) -> str:
        response = self._core().list_pod_for_all_namespaces(
            _preload_content=False, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
        pod_list = json.loads(response.data)
        pods = pod_list.get("items") or []
        with self._wakeup:  # Pods deleted while the watch was down left no DELETED event
            self._readied_uids &= {pod["metadata"]["uid"] for pod in pods}
        for pod in pods:
            self._consider(pod, self._remaining_delay(pod))
        return str(pod_list["metadata"]["resourceVersion"])

    def _watch_from(self, resource_version: str) -> str | None:
        watcher = kubernetes.watch.Watch()
        stream = watcher.stream(
            self._core().list_pod_for_all_namespaces,
            resource_version=resource_version,
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
            allow_watch_bookmarks=True,
            deserialize=False,
            _request_timeout=WATCH_TIMEOUT_SECONDS + REQUEST_TIMEOUT_SECONDS,
        )
        for event in stream:
            pod = event["object"]
            resource_version = pod.get("metadata", {}).get("resourceVersion", resource_version)
            if event["type"] == "DELETED":
                self._forget(pod)
            elif event["type"] in ("ADDED", "MODIFIED"):
                self._consider(pod, self.ready_after)
            if self._stopping.is_set():
                watcher.stop()
        return resource_version

    def _remaining_delay(self, pod: dict[str, Any]) -> float:
        """For a Pod found by a (re)list: its delay less its age (since it was bound, with `bound_only`),
        never early.

        The API's timestamps have whole seconds, so the Pod may be up to 1 s younger than it says.
        """
        created = bound_at(pod) if self.bound_only else (pod.get("metadata") or {}).get("creationTimestamp")
        if not created:
            return self.ready_after
        created_at = parse_kube_time(created)
        youngest_age = (datetime.now(UTC) - created_at).total_seconds() - 1.0
        return min(self.ready_after, max(0.0, self.ready_after - youngest_age))

    def _consider(self, pod: dict[str, Any], delay: float) -> None:
        metadata = pod.get("metadata") or {}
        uid = metadata.get("uid", "")
        if awaits_kubelet_deletion(pod):
            self._finish_deletion(metadata["namespace"], metadata["name"], uid)
            return
        if not needs_readiness(pod, self.bound_only):
            return
        with self._wakeup:
            # A Pod made Ready once is left alone: a test may mark it unready on purpose.
            if uid in self._pending_uids or uid in self._readied_uids:
                return
            self._pending_uids.add(uid)
            due = DuePod(
                due_at=time.monotonic() + delay,
                sequence=next(self._sequence),
                namespace=metadata["namespace"],
                name=metadata["name"],
                uid=uid,
                containers=pod_containers(pod),
            )
            heapq.heappush(self._due, due)
            self._wakeup.notify()

    def _forget(self, pod: dict[str, Any]) -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        with self._wakeup:
            self._pending_uids.discard(uid)
            self._readied_uids.discard(uid)
            self._deleting_uids.discard(uid)

    def _finish_deletion(self, namespace: str, name: str, uid: str) -> None:
        with self._wakeup:
            self._pending_uids.discard(uid)
            if uid in self._deleting_uids or self._pool is None:
                return
            self._deleting_uids.add(uid)
        self._pool.submit(self._delete_now, namespace, name, uid)

    def _delete_now(self, namespace: str, name: str, uid: str) -> None:
        """What a kubelet does once a deleted Pod's containers stopped: delete it for good (grace 0)."""
        if self._stopping.is_set():
            return
        try:
            self._core().delete_namespaced_pod(
                name,
                namespace,
                # In the body, with the uid: a body's options replace the query's gracePeriodSeconds.
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except kubernetes.client.ApiException as error:
            if error.status not in QUIET_PATCH_FAILURES:
                logger.warning("Could not delete Pod %s/%s: %s", namespace, name, error.reason)
        except Exception as error:
            if not self._stopping.is_set():
                logger.warning("Could not delete Pod %s/%s: %s", namespace, name, error)
        with self._wakeup:  # a later watch event of the same Pod may try again
            self._deleting_uids.discard(uid)

    # -- making Pods ready ----------------------------------------------------------------------------------

    def _timer_loop(self) -> None:
        while not self._stopping.is_set():
            for due in self._take_due():
                assert self._pool is not None
                self._pool.submit(self._mark_ready, due)

    def _take_due(self) -> list[DuePod]:
        with self._wakeup:
            now = time.monotonic()
            if not self._due or self._due[0].due_at > now:
                timeout = self._due[0].due_at - now if self._due else None
                self._wakeup.wait(timeout)
                return []
            taken = []
            while self._due and self._due[0].due_at <= now:
                due = heapq.heappop(self._due)
                if due.uid in self._pending_uids:  # else deleted meanwhile
                    taken.append(due)
            return taken

    def _mark_ready(self, due: DuePod) -> None:
        if self._stopping.is_set():
            return
        try:
            self._core().patch_namespaced_pod_status(
                due.name,
                due.namespace,
                ready_status_patch(due, datetime.now(UTC)),
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
            readied = True
        except kubernetes.client.ApiException as error:
            readied = False
            if error.status not in QUIET_PATCH_FAILURES:
                logger.warning("Could not mark Pod %s/%s ready: %s", due.namespace, due.name, error.reason)
        except Exception as error:
            readied = False
            if not self._stopping.is_set():
                logger.warning("Could not mark Pod %s/%s ready: %s", due.namespace, due.name, error)
        with self._wakeup:
            if due.uid in self._pending_uids:
                self._pending_uids.remove(due.uid)
                if readied:
                    self._readied_uids.add(due.uid)
