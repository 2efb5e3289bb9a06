"""What every benchmark needs: the machine, the local control plane, workloads in bulk, the operator process
and what it used (peak RSS, CPU seconds), the lag of observed replica changes, and a printable result."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client import ApiClient

from campaign_autoscaler import API_GROUP, API_VERSION, KIND, PLURAL
from campaign_autoscaler.devenv.controlplane import MISSING_ASSETS_HELP, ControlPlane, find_assets

CREATE_WORKERS = 8


# -- the machine and the operator's footprint ----------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_gib: float
    cpu_model: str
    python: str

    def describe(self) -> str:
        return f"{self.cpus} CPUs ({self.cpu_model}), {self.memory_gib:.1f} GiB RAM, Python {self.python}"


def source_state() -> str:
    """The commit the operator ran from, and whether its source had uncommitted changes (read-only git)."""

    def git(*arguments: str) -> str:
        completed = subprocess.run(["git", *arguments], capture_output=True, text=True, check=False)
        return completed.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "operator/")
    return f"commit {commit}" + (" + uncommitted changes in operator/" if dirty else "")


def this_machine() -> Machine:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    memory_kib = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal:")))
    return Machine(
        cpus=len(os.sched_getaffinity(0)),
        memory_gib=memory_kib / 1024 / 1024,
        cpu_model=model or platform.processor() or "unknown",
        python=platform.python_version(),
    )


@dataclass(frozen=True)
class ProcessUsage:
    peak_rss_mib: float  # VmHWM: the resident set's high-water mark
    rss_mib: float  # VmRSS: the resident set now
    cpu_seconds: float  # user + system

    def __sub__(self, earlier: ProcessUsage) -> ProcessUsage:
        return ProcessUsage(self.peak_rss_mib, self.rss_mib, self.cpu_seconds - earlier.cpu_seconds)


def process_usage(pid: int) -> ProcessUsage:
    """RSS (peak and now) and CPU time of a live process, from /proc/PID/status and /proc/PID/stat."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()

    def mebibytes(key: str) -> float:
        return int(next(line.split()[1] for line in status if line.startswith(key))) / 1024

    # Fields after the ")" of the command name start at field 3 (state); utime and stime are 14 and 15.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ProcessUsage(mebibytes("VmHWM:"), mebibytes("VmRSS:"), ticks / os.sysconf("SC_CLK_TCK"))


# -- numbers -------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: fraction 0.5 is the median, 0.99 the p99."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@dataclass(frozen=True)
class Measurement:
    name: str
    value: str
    goal: str = ""
    met: bool | None = None  # None: no goal

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: ""}[self.met]


@dataclass(frozen=True)
class BenchmarkResult:
    benchmark: str
    setup: str
    measurements: tuple[Measurement, ...]
    notes: tuple[str, ...] = ()

    def markdown(self) -> str:
        rows = [
            f"### {self.benchmark}",
            "",
            self.setup,
            "",
            "| measurement | value | goal | |",
            "|---|---|---|---|",
        ]
        rows += [f"| {m.name} | {m.value} | {m.goal} | {m.verdict} |" for m in self.measurements]
        rows += ["", *[f"- {note}" for note in self.notes]] if self.notes else []
        return "\n".join(rows) + "\n"


# -- the cluster ---------------------------------------------------------------------------------------------


@contextmanager
def local_control_plane(**options: Any) -> Iterator[ControlPlane]:
    assets = find_assets()
    if assets is None:
        raise SystemExit(MISSING_ASSETS_HELP)
    with ControlPlane(assets, **options) as plane:
        yield plane


def admin_client(plane: ControlPlane, pool_size: int = CREATE_WORKERS * 2) -> ApiClient:
    """A client with the control plane's admin credentials; `pool_size` connections kept (the creating
    threads share one client: one pooled connection each, unless told)."""
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(plane.kubeconfig_path), client_configuration=configuration, persist_config=False
    )
    configuration.connection_pool_maxsize = pool_size
    return ApiClient(configuration)


def work_dir(benchmark: str) -> Path:
    """Where a run keeps its operator log; left behind on purpose, for a look after the numbers."""
    return Path(tempfile.mkdtemp(prefix=f"campaign-bench-{benchmark}-"))


def create_namespace(api: ApiClient, name: str, *, pod_quota: int | None = None) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    if pod_quota is not None:
        core.create_namespaced_resource_quota(
            name, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": str(pod_quota)}}}
        )


def event_body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


def in_parallel(calls: Iterable[Callable[[], object]], workers: int = CREATE_WORKERS) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


def create_deployments(api: ApiClient, namespace: str, bodies: Iterable[dict[str, Any]]) -> None:
    apps = kubernetes.client.AppsV1Api(api)
    in_parallel(lambda body=body: apps.create_namespaced_deployment(namespace, body) for body in bodies)


def create_events(api: ApiClient, namespace: str, specs: dict[str, dict[str, Any]]) -> None:
    create_events_in(api, ((namespace, name, spec) for name, spec in specs.items()))


def create_events_in(api: ApiClient, events: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
    """Create (namespace, name, spec) CampaignEvents, several at a time."""
    custom = kubernetes.client.CustomObjectsApi(api)
    in_parallel(
        lambda namespace=namespace, name=name, spec=spec: custom.create_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, event_body(name, spec)
        )
        for namespace, name, spec in events
    )


def event_phases(api: ApiClient, namespace: str | None = None) -> dict[tuple[str, str], str | None]:
    custom = kubernetes.client.CustomObjectsApi(api)
    if namespace is None:
        listing = custom.list_cluster_custom_object(API_GROUP, API_VERSION, PLURAL)
    else:
        listing = custom.list_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL)
    return {
        (item["metadata"]["namespace"], item["metadata"]["name"]): (item.get("status") or {}).get("phase")
        for item in listing["items"]
    }


def wait_for(probe: Callable[[], bool], *, timeout: float, interval: float = 0.5) -> float | None:
    """Seconds it took until `probe()` held; None when it did not within `timeout`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if probe():
            return time.monotonic() - began
        time.sleep(interval)
    return None


def sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.3f} s"
