"""A real, throw-away Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
and with `scheduling` a kube-scheduler, simulated Nodes and a stand-in for the cluster autoscaler.

Used by the integration tests and by `campaign-autoscaler demo`. There is no kubelet; the
`PodReadinessSimulator` (podsim.py) plays its part of reporting Pods Ready. Without `scheduling` (the world
most integration tests use) there is no scheduler and no Node: every Pod turns Ready after its delay. With
it, the real scheduler places Pods on the simulated Nodes (nodes.py) by their requests, only a bound Pod
turns Ready, one that fits nowhere stays Pending with the scheduler's condition, and the `NodeProvisioner`
(provisioner.py) adds Nodes for such Pods after a provisioning delay and removes the ones that stay empty.
The node-lifecycle controller is not run (no kubelet renews a Lease): a simulated Node stays Ready.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import kubernetes
import yaml

from campaign_autoscaler.devenv.nodes import NodeShape, create_node
from campaign_autoscaler.devenv.podsim import DEFAULT_READY_AFTER_SECONDS, PodReadinessSimulator
from campaign_autoscaler.devenv.provisioner import NodeProvisioner, ProvisionerConfig

ASSETS_ENV_VAR = "CAMPAIGN_TESTENV_ASSETS"
CACHE_ENV_VAR = "CAMPAIGN_TESTENV_CACHE"
KUBERNETES_VERSION = "1.20.2"
ASSET_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
SCHEDULER_BINARY = "kube-scheduler"  # needed only by a control plane with `scheduling`

ADMIN_USER = "campaign-admin"
ADMIN_GROUPS = ("system:masters",)
OPERATOR_NAMESPACE = "campaign-system"
OPERATOR_SERVICE_ACCOUNT = "campaign-autoscaler"
RESTRICTED_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
RESTRICTED_GROUPS = (
    "system:serviceaccounts",
    f"system:serviceaccounts:{OPERATOR_NAMESPACE}",
    "system:authenticated",
)
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = (
    "deployment",
    "replicaset",
    "statefulset",
    "horizontalpodautoscaling",
    "garbagecollector",
    "namespace",
    "resourcequota",  # a ResourceQuota admits nothing until this controller has computed its usage
)
INITIAL_NODE_GROUP = "initial"

MISSING_ASSETS_HELP = (
    "The local control plane binaries (etcd, kube-apiserver, kube-controller-manager, kube-scheduler "
    f"v{KUBERNETES_VERSION}) were not found. Build and cache them with `make testenv` "
    "(runs scripts/build-testenv.sh, a few minutes once), or point "
    f"${ASSETS_ENV_VAR} at a folder holding the four binaries."
)

STOP_GRACE_SECONDS = 10.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
START_ATTEMPTS = 3
PORT_TAKEN = "address already in use"
LOG_TAIL_LINES = 40


class ControlPlaneError(RuntimeError):
    """A component of the local control plane failed to start or to become ready."""


def default_assets_dir() -> Path:
    """Where scripts/build-testenv.sh caches the binaries (it honours the same variables)."""
    cache_root = os.environ.get(CACHE_ENV_VAR)
    if not cache_root:
        cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        cache_root = str(cache_home / "campaign-autoscaler" / "testenv")
    return Path(cache_root) / f"k8s-{KUBERNETES_VERSION}"


def find_assets() -> Path | None:
    """The folder holding the control plane's binaries, or None if any is missing."""
    override = os.environ.get(ASSETS_ENV_VAR)
    assets_dir = Path(override) if override else default_assets_dir()
    if all(os.access(assets_dir / binary, os.X_OK) for binary in ASSET_BINARIES):
        return assets_dir
    return None


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the usual bind-to-0 trick; a tiny race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when this process dies, even by SIGKILL.

    The signal fires when the forking *thread* exits, so it is only used from the main thread.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork: nothing is imported after it

    def terminate_with_parent() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return terminate_with_parent


class ManagedProcess:
    """One child process with its output in a log file; stopped with SIGTERM, then SIGKILL after a grace."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=parent_death_signal(),
            )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process else None

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        self._process = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, problem: str) -> ControlPlaneError:
        return ControlPlaneError(
            f"{self.name} {problem} (exit code {self.exit_code()}); last lines of {self.log_path}:\n"
            f"{self.log_tail()}"
        )


def wait_until_ready(
    process: ManagedProcess, probe: Callable[[], bool], timeout_seconds: float, interval: float = 0.1
) -> None:
    """Poll `probe` until it returns True; fail early, with the process's log, if the process exits."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if not process.is_running():
            raise process.failure("exited during start-up")
        if probe():
            return
        time.sleep(interval)
    raise process.failure(f"was not ready after {timeout_seconds:.0f}s")


def http_probe(url: str, *, token: str | None = None, context: ssl.SSLContext | None = None) -> bool:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def kubeconfig_document(server_url: str, ca_path: Path, user_name: str, token: str) -> dict[str, object]:
    cluster_name = "campaign-testenv"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster_name, "cluster": {"server": server_url, "certificate-authority": str(ca_path)}}
        ],
        "users": [{"name": user_name, "user": {"token": token}}],
        "contexts": [{"name": user_name, "context": {"cluster": cluster_name, "user": user_name}}],
        "current-context": user_name,
    }


def _run_openssl(*arguments: str) -> None:
    completed = subprocess.run(["openssl", *arguments], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(arguments)} failed: {completed.stderr.strip()}")


@dataclass(frozen=True)
class SchedulingWorld:
    """A kube-scheduler with `nodes` simulated Nodes of `shape` from the start, and, with `provisioner`, a
    cluster autoscaler stand-in that adds Nodes of its own shape for Pods the scheduler cannot place."""

    nodes: int = 3
    shape: NodeShape = field(default_factory=NodeShape)
    provisioner: ProvisionerConfig | None = None


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on loopback, in a temp dir of their own; with
    `scheduling`, also a kube-scheduler, simulated Nodes and the node provisioner.

    Use as a context manager, or call start() / stop(). stop() leaves no process and no file behind.
    """

    def __init__(
        self,
        assets_dir: Path | None = None,
        *,
        simulate_pods: bool = True,
        pod_ready_after: float = DEFAULT_READY_AFTER_SECONDS,
        start_timeout: float = 60.0,
        scheduling: SchedulingWorld | None = None,
    ) -> None:
        self.assets_dir = assets_dir or find_assets()
        self.simulate_pods = simulate_pods
        self.scheduling = scheduling
        self.provisioner: NodeProvisioner | None = None
        self.pod_ready_after = pod_ready_after
        self.start_timeout = start_timeout
        self.admin_token = secrets.token_hex(24)
        self.restricted_token = secrets.token_hex(24)
        self._workdir: Path | None = None
        self._processes: list[ManagedProcess] = []
        self._simulator: PodReadinessSimulator | None = None
        self._apiserver_port: int | None = None

    # -- public surface -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._apiserver_port is None:
            raise ControlPlaneError("The control plane is not started")
        return f"https://127.0.0.1:{self._apiserver_port}"

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise ControlPlaneError("The control plane is not started")
        return self._workdir

    @property
    def ca_path(self) -> Path:
        """The API server's self-signed serving certificate (with its CA): what clients verify TLS against."""
        return self.workdir / "apiserver-certs" / "apiserver.crt"

    @property
    def kubeconfig_path(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def restricted_kubeconfig_path(self) -> Path:
        return self.workdir / "restricted.kubeconfig"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def process_ids(self) -> dict[str, int]:
        """Component name -> pid of every process this instance runs now."""
        return {process.name: process.pid for process in self._processes if process.pid is not None}

    def write_kubeconfig(self, path: Path | str, token: str, user_name: str = "campaign-user") -> Path:
        """A kubeconfig for this API server authenticating with `token`; TLS verified against `ca_path`."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        document = kubeconfig_document(self.url, self.ca_path, user_name, token)
        target.write_text(yaml.safe_dump(document, sort_keys=False))
        target.chmod(0o600)
        return target

    def start(self) -> ControlPlane:
        """Start every component and wait until each is ready; on failure nothing is left running."""
        if self._workdir is not None:
            raise ControlPlaneError("The control plane is already started")
        needed = (*ASSET_BINARIES, SCHEDULER_BINARY) if self.scheduling is not None else ASSET_BINARIES
        missing = [name for name in needed if not self.assets_dir or not (self.assets_dir / name).is_file()]
        if missing:
            raise ControlPlaneError(
                f"Missing {', '.join(missing)} in {self.assets_dir}. {MISSING_ASSETS_HELP}"
            )
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_once()
                return self
            except ControlPlaneError as error:
                # Free ports are picked before the processes bind them; another process may win the race.
                if PORT_TAKEN not in str(error) or attempt == START_ATTEMPTS:
                    raise
        return self

    def _start_once(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="campaign-controlplane-"))
        atexit.register(self.stop)
        try:
            self._start_components()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop everything this instance started, newest first; idempotent, safe after a failed start."""
        if self.provisioner is not None:
            self.provisioner.stop()
            self.provisioner = None
        if self._simulator is not None:
            self._simulator.request_stop()
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        if self._simulator is not None:
            self._simulator.stop()
            self._simulator = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._apiserver_port = None
        atexit.unregister(self.stop)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # -- start-up ----------------------------------------------------------------------------------------

    def _start_components(self) -> None:
        self.log_dir.mkdir()
        self._write_token_file()
        self._write_service_account_keys()
        etcd_port = free_loopback_port()
        etcd = self._spawn("etcd", self._etcd_argv(etcd_port, free_loopback_port()))
        wait_until_ready(etcd, lambda: http_probe(f"http://127.0.0.1:{etcd_port}/health"), self.start_timeout)
        self._apiserver_port = free_loopback_port()
        apiserver = self._spawn("kube-apiserver", self._apiserver_argv(etcd_port))
        wait_until_ready(apiserver, self._apiserver_ready, self.start_timeout)
        self.write_kubeconfig(self.kubeconfig_path, self.admin_token, ADMIN_USER)
        self.write_kubeconfig(self.restricted_kubeconfig_path, self.restricted_token, RESTRICTED_USER)
        controller_port = free_loopback_port()
        controller_manager = self._spawn(
            "kube-controller-manager", self._controller_manager_argv(controller_port)
        )
        healthz = f"http://127.0.0.1:{controller_port}/healthz"
        wait_until_ready(controller_manager, lambda: http_probe(healthz), self.start_timeout)
        if self.scheduling is not None:
            self._start_scheduling(self.scheduling)
        if self.simulate_pods:
            self._simulator = PodReadinessSimulator(
                self.kubeconfig_path,
                ready_after=self.pod_ready_after,
                bound_only=self.scheduling is not None,
            )
            self._simulator.start()
            if not self._simulator.wait_synced(self.start_timeout):
                raise ControlPlaneError("The Pod readiness simulator could not list Pods")
        if self.scheduling is not None and self.scheduling.provisioner is not None:
            self.provisioner = NodeProvisioner(self.kubeconfig_path, self.scheduling.provisioner).start()

    def _start_scheduling(self, world: SchedulingWorld) -> None:
        """The Nodes first, then the scheduler: it places the first Pods on every Node at once."""
        with kubernetes.config.new_client_from_config(
            config_file=str(self.kubeconfig_path), persist_config=False
        ) as api_client:
            core = kubernetes.client.CoreV1Api(api_client)
            for number in range(1, world.nodes + 1):
                create_node(core, f"node-{number}", world.shape, INITIAL_NODE_GROUP)
        scheduler_port = free_loopback_port()
        scheduler = self._spawn("kube-scheduler", self._scheduler_argv(scheduler_port))
        healthz = f"http://127.0.0.1:{scheduler_port}/healthz"
        wait_until_ready(scheduler, lambda: http_probe(healthz), self.start_timeout)

    def _spawn(self, name: str, argv: Sequence[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.log_dir / f"{name}.log")
        self._processes.append(process)
        process.start()
        return process

    def _apiserver_ready(self) -> bool:
        if not self.ca_path.exists():
            return False
        try:
            context = ssl.create_default_context(cafile=str(self.ca_path))
        except ssl.SSLError:  # the certificate file is being written right now
            return False
        return http_probe(f"{self.url}/readyz", token=self.admin_token, context=context)

    def _write_token_file(self) -> None:
        rows = [
            (self.admin_token, ADMIN_USER, ADMIN_USER, ADMIN_GROUPS),
            (self.restricted_token, RESTRICTED_USER, RESTRICTED_USER, RESTRICTED_GROUPS),
        ]
        lines = [f'{token},{user},{uid},"{",".join(groups)}"' for token, user, uid, groups in rows]
        token_file = self.workdir / "tokens.csv"
        token_file.write_text("\n".join(lines) + "\n")
        token_file.chmod(0o600)

    def _write_service_account_keys(self) -> None:
        private_key = self.workdir / "service-account.key"
        _run_openssl("genrsa", "-out", str(private_key), "2048")
        _run_openssl(
            "rsa", "-in", str(private_key), "-pubout", "-out", str(self.workdir / "service-account.pub")
        )

    def _binary(self, name: str) -> str:
        assert self.assets_dir is not None
        return str(self.assets_dir / name)

    def _etcd_argv(self, client_port: int, peer_port: int) -> list[str]:
        client_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        return [
            self._binary("etcd"),
            "--name=campaign-testenv",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=campaign-testenv={peer_url}",
            # A single member on loopback: elect itself in ~0.1 s rather than the default ~1 s.
            "--heartbeat-interval=10",
            "--election-timeout=100",
            "--log-level=warn",
        ]

    def _apiserver_argv(self, etcd_port: int) -> list[str]:
        return [
            self._binary("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._apiserver_port}",
            "--insecure-port=0",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            "--authorization-mode=RBAC",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            f"--service-account-key-file={self.workdir / 'service-account.pub'}",
            f"--service-account-signing-key-file={self.workdir / 'service-account.key'}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            "--disable-admission-plugins=ServiceAccount",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # The default reconciler would publish 127.0.0.1 as the `kubernetes` Service endpoint, which
            # Endpoints validation refuses (loopback), and log that every few seconds.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]

    def _client_component_flags(self, healthz_port: int) -> list[str]:
        """What the controller manager and the scheduler both take: the admin kubeconfig, no leader election,
        a client limit that does not pace a big scale, and a loopback-only health endpoint."""
        return [
            f"--kubeconfig={self.kubeconfig_path}",
            "--leader-elect=false",
            # The default client limits (20 and 50 requests/s) make a scale to a few hundred Pods take ~20 s.
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            # The secure port would need its own delegated authn round trips.
            "--address=127.0.0.1",
            f"--port={healthz_port}",
            "--secure-port=0",
            "--profiling=false",
            "--v=1",
        ]

    def _scheduler_argv(self, healthz_port: int) -> list[str]:
        return [self._binary("kube-scheduler"), *self._client_component_flags(healthz_port)]

    def _controller_manager_argv(self, healthz_port: int) -> list[str]:
        return [
            self._binary("kube-controller-manager"),
            f"--controllers={','.join(CONTROLLERS)}",
            "--horizontal-pod-autoscaler-sync-period=1s",
            *self._client_component_flags(healthz_port),
        ]
