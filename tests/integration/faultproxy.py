"""A reverse proxy on loopback in front of a real server (the kube-apiserver, or Prometheus) that counts every
request and, seeded, injects the faults a busy API server and a flaky network produce.

- Counting: by verb and resource the way Kubernetes names them (`get deployments`, `list deployments`,
  `patch campaignevents/status`, `watch campaignevents`), and by object.
- Faults: a share of the requests a `FaultRule` matches is answered 409 Conflict or 500 by the proxy, either
  instead of reaching the server or after it (the write landed, the answer was lost); watch streams are cut
  after a random time, mid-stream, as a dropped connection looks.
- Traps: one chosen request (the next claim write, say) runs a callback first, then reaches the server or not.

`DeploymentRecorder` is the other side of the glass: every version of the Deployments a watch shows, stamped
with the time it arrived, for invariants checked on each version and for transition lags.

HTTPS in, HTTPS out for the API server (a throw-away serving certificate from `openssl`, on 127.0.0.1);
plain HTTP for Prometheus. The proxy runs its own asyncio loop in a background thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import kubernetes
import yaml
from aiohttp import web

# Headers that describe one hop, not the message: never copied from one connection to the other.
HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade", "te", "trailer"}
)
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
STATUS_REASONS = {409: "Conflict", 500: "InternalError"}
START_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class RequestKind:
    """What a request does, in the API server's words (resource paths of other servers are kept whole)."""

    method: str
    verb: str  # get list watch create update patch delete deletecollection, or the method for non-API paths
    resource: str  # deployments, campaignevents, events, ... or the path for non-API servers
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None
    label_selector: str | None = None

    @property
    def path_resource(self) -> str:
        """`deployments`, or `deployments/scale` for a subresource."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @property
    def key(self) -> str:
        """`patch campaignevents/status`: what the counters are keyed by."""
        return f"{self.verb} {self.path_resource}"


_VERBS_WITH_NAME = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "POST": "create"}
_VERBS_WITHOUT_NAME = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}


def classify(method: str, path: str, query: str = "") -> RequestKind:
    """The verb, resource and object of one request, from its method, path and query string."""
    method = method.upper()
    parts = [part for part in path.split("/") if part]
    if parts[:1] == ["api"] and len(parts) >= 2:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        rest = parts[3:]
    else:
        return RequestKind(method=method, verb=method.lower(), resource=path)
    namespace = None
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return RequestKind(method=method, verb="discovery", resource=path)
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    params = parse_qs(query)
    if name is None:
        watching = params.get("watch", ["false"])[0] in ("true", "1")
        verb = "watch" if method == "GET" and watching else _VERBS_WITHOUT_NAME.get(method, method.lower())
    else:
        verb = _VERBS_WITH_NAME.get(method, method.lower())
    selector = params.get("labelSelector", [None])[0]
    return RequestKind(method, verb, resource, subresource, namespace, name, selector)


@dataclass(frozen=True)
class FaultRule:
    """Answer `status` to a `share` of the requests with one of `verbs` on `resource` (and `subresource`).

    With `after_forward` the request reaches the server first: its effect lands, its answer is lost.
    """

    verbs: frozenset[str]
    resource: str
    share: float
    status: int
    after_forward: bool = False
    subresource: str | None = None

    def matches(self, kind: RequestKind) -> bool:
        return (
            kind.verb in self.verbs
            and kind.resource == self.resource
            and kind.subresource == self.subresource
        )


@dataclass(frozen=True)
class Delay:
    """Hold every request with one of `verbs` on `resource` (and `subresource`) `seconds` before forwarding
    it: a slow API server for that kind of request only."""

    verbs: frozenset[str]
    resource: str
    seconds: float
    subresource: str | None = None

    def matches(self, kind: RequestKind) -> bool:
        return (
            kind.verb in self.verbs
            and kind.resource == self.resource
            and kind.subresource == self.subresource
        )


@dataclass(frozen=True)
class FaultPlan:
    rules: tuple[FaultRule, ...] = ()
    delays: tuple[Delay, ...] = ()
    # Every watch stream is cut after a time drawn uniformly from this range (seconds); None: never.
    watch_cut_after: tuple[float, float] | None = None


NO_FAULTS = FaultPlan()


@dataclass
class Trap:
    """Springs once, on the first request `predicate` accepts: runs `action`, then forwards the request, or
    answers `status` without forwarding it, or (status None) drops the connection without an answer."""

    predicate: Callable[[RequestKind], bool]
    action: Callable[[RequestKind], None]
    forward: bool
    status: int | None = None
    sprung: threading.Event = field(default_factory=threading.Event)
    caught: RequestKind | None = None


@dataclass(frozen=True)
class TrafficSnapshot:
    requests: Counter[str]  # "verb resource[/subresource]" -> how many
    by_object: Counter[tuple[str, str, str, str]]  # (verb, resource[/sub], namespace, name) -> how many
    selector_lists: Counter[str]  # "list <resource>" with a labelSelector -> how many
    faults: Counter[str]  # "409 patch deployments", "500* get deployments" (* after forwarding), "watch cut"
    queries: tuple[tuple[float, str], ...]  # (time.time(), `query` parameter) of Prometheus requests

    def count(self, key: str) -> int:
        return self.requests.get(key, 0)

    @property
    def writes_by_object(self) -> Counter[tuple[str, str, str]]:
        """(resource[/subresource], namespace, name) -> create / update / patch / delete requests on it."""
        writes: Counter[tuple[str, str, str]] = Counter()
        for (verb, resource, namespace, name), count in self.by_object.items():
            if verb in WRITE_VERBS:
                writes[(resource, namespace, name)] += count
        return writes


class ServingCertificate:
    """A self-signed certificate for 127.0.0.1 (its own CA), made with the openssl command line."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.cert_path = directory / "proxy.crt"
        self.key_path = directory / "proxy.key"
        if not self.cert_path.exists():
            command = [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=faultproxy", "-addext", "subjectAltName=IP:127.0.0.1",
                "-keyout", str(self.key_path), "-out", str(self.cert_path),
            ]  # fmt: skip
            subprocess.run(command, check=True, capture_output=True)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        context.set_alpn_protocols(["http/1.1"])
        return context


class FaultProxy:
    """start() / stop(), or a `with` block. `url` is what clients are pointed at."""

    def __init__(
        self,
        upstream: str,
        *,
        seed: int,
        upstream_ca: Path | None = None,
        certificate: ServingCertificate | None = None,
        plan: FaultPlan = NO_FAULTS,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.seed = seed
        self.upstream_ca = upstream_ca
        self.certificate = certificate
        self._plan = plan
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._by_object: Counter[tuple[str, str, str, str]] = Counter()
        self._selector_lists: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._queries: list[tuple[float, str]] = []
        self._log: list[tuple[float, RequestKind]] = []
        self._traps: list[Trap] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port: int | None = None

    # -- public surface -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("The proxy is not started")
        scheme = "https" if self.certificate else "http"
        return f"{scheme}://127.0.0.1:{self._port}"

    def set_plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan

    def arm_trap(
        self,
        predicate: Callable[[RequestKind], bool],
        action: Callable[[RequestKind], None],
        *,
        forward: bool,
        status: int | None = None,
    ) -> Trap:
        trap = Trap(predicate=predicate, action=action, forward=forward, status=status)
        with self._lock:
            self._traps.append(trap)
        return trap

    def snapshot(self) -> TrafficSnapshot:
        with self._lock:
            return TrafficSnapshot(
                Counter(self._requests),
                Counter(self._by_object),
                Counter(self._selector_lists),
                Counter(self._faults),
                tuple(self._queries),
            )

    def log(self) -> list[tuple[float, RequestKind]]:
        """Every request so far, in order, with the time.time() it arrived."""
        with self._lock:
            return list(self._log)

    def start(self) -> FaultProxy:
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._open())
            except BaseException as error:  # reported to the starting thread
                failure.append(error)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._close())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name=f"faultproxy-{self.seed}", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS) or failure:
            raise RuntimeError(f"The proxy to {self.upstream} did not start: {failure}")
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=START_TIMEOUT_SECONDS + SHUTDOWN_TIMEOUT_SECONDS)
        self._loop = self._thread = None
        self._port = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # -- serving --------------------------------------------------------------------------------------------

    async def _open(self) -> None:
        upstream_ssl: ssl.SSLContext | bool = False
        if self.upstream.startswith("https://"):
            upstream_ssl = ssl.create_default_context(
                cafile=str(self.upstream_ca) if self.upstream_ca else None
            )
        # No connection limit (watches hold theirs for minutes); bodies pass through as they are, compressed
        # or not, so the client decodes what the server encoded.
        connector = aiohttp.TCPConnector(limit=0, ssl=upstream_ssl)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
        await self._runner.setup()
        server_ssl = self.certificate.server_context() if self.certificate else None
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl)
        await site.start()
        sockets = self._runner.addresses
        self._port = int(sockets[0][1])

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        # Handlers still streaming a watch end here, not as "Task was destroyed but it is pending".
        leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        kind = classify(request.method, request.path, request.query_string)
        body = await request.read()
        trap, fault, cut_after = self._decide(kind)
        self._note_query(request, body)
        if trap is not None:
            trap.action(kind)
            if not trap.forward:
                return _drop(request) if trap.status is None else _status_response(trap.status, kind)
        if fault is not None and not fault.after_forward:
            return _status_response(fault.status, kind)
        with self._lock:
            delay = next((rule.seconds for rule in self._plan.delays if rule.matches(kind)), 0.0)
        if delay:
            await asyncio.sleep(delay)
        assert self._session is not None
        headers = {key: value for key, value in request.headers.items() if key.lower() not in HOP_HEADERS}
        try:
            upstream = await self._session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=body or None
            )
        except (aiohttp.ClientError, OSError) as error:
            return web.Response(status=502, text=f"faultproxy: upstream failed: {error}")
        async with upstream:
            if fault is not None:
                await upstream.read()
                return _status_response(fault.status, kind)
            reply_headers = {
                key: value for key, value in upstream.headers.items() if key.lower() not in HOP_HEADERS
            }
            if kind.verb == "watch":
                return await self._stream(request, upstream, reply_headers, cut_after)
            payload = await upstream.read()
            return web.Response(status=upstream.status, body=payload, headers=reply_headers)

    def _decide(self, kind: RequestKind) -> tuple[Trap | None, FaultRule | None, float | None]:
        """Count the request and roll the dice for it, in one step under the lock."""
        with self._lock:
            self._requests[kind.key] += 1
            self._log.append((time.time(), kind))
            if kind.name is not None:
                self._by_object[(kind.verb, kind.path_resource, kind.namespace or "", kind.name)] += 1
            if kind.verb == "list" and kind.label_selector:
                self._selector_lists[kind.key] += 1
            trap = next((trap for trap in self._traps if trap.predicate(kind)), None)
            if trap is not None:
                self._traps.remove(trap)
                trap.caught = kind
                trap.sprung.set()
            fault = next(
                (
                    rule
                    for rule in self._plan.rules
                    if rule.matches(kind) and self._random.random() < rule.share
                ),
                None,
            )
            if fault is not None:
                self._faults[f"{fault.status}{'*' if fault.after_forward else ''} {kind.key}"] += 1
            cut_after = None
            if kind.verb == "watch" and self._plan.watch_cut_after is not None:
                cut_after = self._random.uniform(*self._plan.watch_cut_after)
            return trap, fault, cut_after

    def _note_query(self, request: web.Request, body: bytes) -> None:
        """Remember the `query` parameter (Prometheus' PromQL; no Kubernetes request has one)."""
        text = request.query.get("query")
        if text is None and request.content_type == "application/x-www-form-urlencoded":
            text = (parse_qs(body.decode(errors="replace")).get("query") or [None])[0]
        if text is not None:
            with self._lock:
                self._queries.append((time.time(), text))

    async def _stream(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        headers: dict[str, str],
        cut_after: float | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, headers=headers)
        await response.prepare(request)
        try:
            async with asyncio.timeout(cut_after):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
        except TimeoutError:
            with self._lock:
                self._faults["watch cut"] += 1
            return _drop(request, response)
        except (ConnectionError, aiohttp.ClientError):
            return _drop(request, response)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response


def _status_response(code: int, kind: RequestKind) -> web.Response:
    """The error a real API server sends: a Status object."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"faultproxy injected {code} into {kind.key} {kind.name or ''}".strip(),
        "reason": STATUS_REASONS.get(code, "InternalError"),
        "code": code,
    }
    return web.Response(status=code, text=json.dumps(status), content_type="application/json")


def _drop(request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
    """Close the client's connection without a (complete) answer, as a dead network does."""
    if request.transport is not None:
        request.transport.abort()
    return response if response is not None else web.Response(status=502)


def proxied_kubeconfig(source: Path, proxy: FaultProxy, target: Path) -> Path:
    """A copy of the kubeconfig `source` whose clusters point at `proxy` (verified with its certificate)."""
    document = yaml.safe_load(source.read_text())
    for entry in document["clusters"]:
        entry["cluster"]["server"] = proxy.url
        if proxy.certificate is not None:
            entry["cluster"]["certificate-authority"] = str(proxy.certificate.cert_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    target.chmod(0o600)
    return target


@dataclass(frozen=True)
class DeploymentVersion:
    seen_at: float  # time.time() when the watch delivered it
    namespace: str
    name: str
    resource_version: str
    replicas: int
    annotations: Mapping[str, str]
    ready_replicas: int = 0  # status.readyReplicas (0 for a custom resource)


WATCH_SECONDS = 30
HTTP_GONE = 410


class DeploymentRecorder:
    """Records every version of the Deployments (or of `resource`: group, version, plural) in `namespace`
    (all namespaces when None) that match `label_selector`, from a watch in a background thread. start()
    returns once the initial list is in."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        resource: tuple[str, str, str] | None = None,
    ) -> None:
        self._apps = kubernetes.client.AppsV1Api(api_client)
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector or ""
        self._versions: list[DeploymentVersion] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def versions(self) -> list[DeploymentVersion]:
        with self._lock:
            return list(self._versions)

    def start(self) -> DeploymentRecorder:
        resource_version = self._list()
        self._thread = threading.Thread(
            target=self._watch_loop, args=(resource_version,), name="deployment-recorder", daemon=True
        )
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Stop at the next event the watch delivers (stop() waits for it, or for the watch to time out)."""
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=WATCH_SECONDS + 10)
            self._thread = None

    def __enter__(self) -> DeploymentRecorder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _list_function(self) -> tuple[Callable[..., Any], tuple[str, ...]]:
        """The list call (and its positional arguments) for one namespace, or for all of them."""
        if self.resource is not None:
            if self.namespace is None:
                return self._custom.list_cluster_custom_object, self.resource
            group, version, plural = self.resource
            return self._custom.list_namespaced_custom_object, (group, version, self.namespace, plural)
        if self.namespace is None:
            return self._apps.list_deployment_for_all_namespaces, ()
        return self._apps.list_namespaced_deployment, (self.namespace,)

    def _list(self) -> str:
        function, arguments = self._list_function()
        response = function(*arguments, label_selector=self.label_selector, _preload_content=False)
        listing = json.loads(response.data)
        for item in listing["items"]:
            self._record(item)
        return str(listing["metadata"]["resourceVersion"])

    def _watch_loop(self, resource_version: str) -> None:
        function, arguments = self._list_function()
        while not self._stopping.is_set():
            watcher = kubernetes.watch.Watch()
            try:
                for event in watcher.stream(
                    function,
                    *arguments,
                    label_selector=self.label_selector,
                    resource_version=resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=WATCH_SECONDS,
                    deserialize=False,
                ):
                    item = event["object"]
                    resource_version = item["metadata"].get("resourceVersion", resource_version)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._record(item)
                    if self._stopping.is_set():
                        watcher.stop()
            except kubernetes.client.ApiException as error:
                if error.status != HTTP_GONE:
                    self.errors.append(f"{error.status} {error.reason}")
                    self._stopping.wait(0.5)
                resource_version = self._list()
            except Exception as error:  # a dropped connection: watch again from where it stopped
                self.errors.append(repr(error))
                self._stopping.wait(0.5)

    def _record(self, item: Mapping[str, object]) -> None:
        metadata = item["metadata"]
        replicas = item["spec"].get("replicas")
        version = DeploymentVersion(
            seen_at=time.time(),
            namespace=metadata["namespace"],
            name=metadata["name"],
            resource_version=metadata["resourceVersion"],
            replicas=1 if replicas is None else int(replicas),
            annotations=dict(metadata.get("annotations") or {}),
            ready_replicas=int((item.get("status") or {}).get("readyReplicas") or 0),
        )
        with self._lock:
            self._versions.append(version)


def replica_changes(versions: Iterable[DeploymentVersion]) -> dict[tuple[str, str], list[tuple[float, int]]]:
    """(seen at, replicas) of each Deployment every time its replicas changed, first version included."""
    changes: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for version in versions:
        history = changes.setdefault((version.namespace, version.name), [])
        if not history or history[-1][1] != version.replicas:
            history.append((version.seen_at, version.replicas))
    return changes


def lag_after(
    history: Sequence[tuple[float, int]], due: float, replicas: int, until: float = math.inf
) -> float | None:
    """Seconds from `due` until the first change to `replicas` seen in [due, until); None: not seen.

    A change seen before `due` is not one the transition made; one seen after `until` (the next step's due
    time, say) is not either.
    """
    return next((seen - due for seen, value in history if value == replicas and due <= seen < until), None)
