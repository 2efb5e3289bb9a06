"""A real Prometheus on loopback scraping a synthetic exporter, for the integration tests and the demo."""

from __future__ import annotations

import atexit
import json
import math
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import prometheus_client
import yaml

from campaign_autoscaler.devenv.controlplane import (
    ControlPlaneError,
    ManagedProcess,
    free_loopback_port,
    http_probe,
    wait_until_ready,
)

PROMETHEUS_HELP = (
    "The prometheus binary was not found. Install it with `apt-get install -y prometheus` "
    "(Debian/Ubuntu; it also provides promtool; the packaged service need not run), or put "
    "`prometheus` and `promtool` on PATH."
)
DEFAULT_BINARY_PATHS = {"prometheus": "/usr/bin/prometheus", "promtool": "/usr/bin/promtool"}
# Backfilled history sits a year or more in the past (forecast offsets such as 365d): keep it all.
RETENTION = "20y"
QUERY_TIMEOUT_SECONDS = 10


class PrometheusError(RuntimeError):
    """Prometheus refused a query, could not start, or promtool failed."""


class PrometheusUnavailable(PrometheusError):
    """Prometheus did not answer, or answered 5xx (it may be starting or restarting)."""


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    fallback = Path(DEFAULT_BINARY_PATHS[name])
    return str(fallback) if fallback.is_file() else None


def find_prometheus() -> str | None:
    """Path of the prometheus binary (PATH, then /usr/bin/prometheus), or None."""
    return _find_binary("prometheus")


def find_promtool() -> str | None:
    return _find_binary("promtool")


def selector(name: str, labels: Mapping[str, str] | None = None) -> str:
    """PromQL selector for one series: `name{key="value",...}` with values escaped."""
    if not labels:
        return name
    matchers = ",".join(f"{key}={json.dumps(value)}" for key, value in sorted(labels.items()))
    return f"{name}{{{matchers}}}"


@dataclass(frozen=True)
class Sample:
    """One element of an instant-query result (a scalar result has no labels)."""

    labels: Mapping[str, str]
    value: float


def samples_from_result(data: Mapping[str, Any]) -> list[Sample]:
    """The samples of a /api/v1/query `data` object, whether vector or scalar."""
    result_type = data.get("resultType")
    if result_type == "vector":
        return [Sample(dict(item["metric"]), float(item["value"][1])) for item in data["result"]]
    if result_type == "scalar":
        return [Sample({}, float(data["result"][1]))]
    raise PrometheusError(f"Expected a vector or scalar result, got {result_type}")


class SyntheticExporter:
    """Gauges set by hand, served on a loopback port for Prometheus to scrape."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self._gauges: dict[str, tuple[prometheus_client.Gauge, tuple[str, ...]]] = {}
        self._server: Any = None
        self._thread: Any = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise PrometheusError("The exporter is not started")
        return int(self._server.server_port)

    @property
    def address(self) -> str:
        """host:port, as a Prometheus scrape target."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> SyntheticExporter:
        self._server, self._thread = prometheus_client.start_http_server(
            0, addr="127.0.0.1", registry=self.registry
        )
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> SyntheticExporter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def set(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        """Set the series `name{labels}` to `value`, creating the gauge on first use."""
        gauge = self._gauge(name, tuple(sorted(labels or {})))
        (gauge.labels(**labels) if labels else gauge).set(value)

    def remove(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Drop one series, or without labels the whole gauge; Prometheus marks them stale on next scrape."""
        if name not in self._gauges:
            return
        gauge, label_names = self._gauges[name]
        if labels:
            if tuple(sorted(labels)) != label_names:
                raise ValueError(f"Gauge {name} has labels {list(label_names)}, not {sorted(labels)}")
            gauge.remove(*(labels[key] for key in label_names))
        else:
            self.registry.unregister(gauge)
            del self._gauges[name]

    def clear(self) -> None:
        for gauge, _ in self._gauges.values():
            self.registry.unregister(gauge)
        self._gauges.clear()

    def _gauge(self, name: str, label_names: tuple[str, ...]) -> prometheus_client.Gauge:
        if name not in self._gauges:
            documentation = f"Synthetic {name}, set by the test environment"
            gauge = prometheus_client.Gauge(name, documentation, label_names, registry=self.registry)
            self._gauges[name] = (gauge, label_names)
        gauge, known_label_names = self._gauges[name]
        if known_label_names != label_names:
            raise ValueError(f"Gauge {name} has labels {list(known_label_names)}, not {list(label_names)}")
        return gauge


def prometheus_config(
    scrape_targets: Sequence[str],
    scrape_interval: str,
    job_name: str = "synthetic",
    rule_files: Sequence[Path] = (),
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "scrape_configs": [{"job_name": job_name, "static_configs": [{"targets": list(scrape_targets)}]}],
    }
    if rule_files:
        config["rule_files"] = [str(path) for path in rule_files]
    return config


class PrometheusServer:
    """The real prometheus binary on a loopback port, with a TSDB in a temp dir of its own.

    stop() / start() keep the data dir and the port (a test may stop Prometheus mid-window and bring it
    back); close() (or leaving the `with` block) stops it and removes everything. Prometheus scrapes for
    the first time about 5 s after a start (its target updates are batched); `lookback_delta` (a Prometheus
    duration) shortens how long a series stays visible after its last sample (default 5m).
    """

    def __init__(
        self,
        scrape_targets: Sequence[str] = (),
        *,
        binary: str | None = None,
        promtool: str | None = None,
        scrape_interval: str = "1s",
        lookback_delta: str | None = None,
        start_timeout: float = 30.0,
        job_name: str = "synthetic",
        rule_files: Sequence[Path] = (),
    ) -> None:
        self.binary = binary or find_prometheus()
        self.promtool = promtool or find_promtool()
        self.scrape_targets = list(scrape_targets)
        self.scrape_interval = scrape_interval
        self.lookback_delta = lookback_delta
        self.start_timeout = start_timeout
        self.job_name = job_name
        self.rule_files = list(rule_files)
        self._workdir: Path | None = None
        self._port: int | None = None
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise PrometheusError("Prometheus was never started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise PrometheusError("Prometheus was never started")
        return self._workdir

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def is_running(self) -> bool:
        return self._process is not None and self._process.is_running()

    def start(self) -> PrometheusServer:
        if self.is_running():
            return self
        if self.binary is None:
            raise PrometheusError(PROMETHEUS_HELP)
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="campaign-prometheus-"))
            self._port = free_loopback_port()
            atexit.register(self.close)
        config_path = self.workdir / "prometheus.yml"
        config = prometheus_config(self.scrape_targets, self.scrape_interval, self.job_name, self.rule_files)
        config_path.write_text(yaml.safe_dump(config))
        self._process = ManagedProcess("prometheus", self._argv(config_path), self.log_path)
        self._process.start()
        try:
            wait_until_ready(self._process, lambda: http_probe(f"{self.url}/-/ready"), self.start_timeout)
        except ControlPlaneError as error:
            self.stop()
            raise PrometheusError(str(error)) from error
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after a grace); the data dir stays for a restart."""
        if self._process is not None:
            self._process.stop(grace_seconds=30)
            self._process = None

    def close(self) -> None:
        """Stop Prometheus and remove its data dir; idempotent."""
        self.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            self._port = None
        atexit.unregister(self.close)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _argv(self, config_path: Path) -> list[str]:
        assert self.binary is not None
        return [
            self.binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address=127.0.0.1:{self._port}",
            "--log.level=warn",
            *([f"--query.lookback-delta={self.lookback_delta}"] if self.lookback_delta else []),
        ]

    # -- queries --------------------------------------------------------------------------------------------

    def query(self, promql: str, at: datetime | None = None) -> dict[str, Any]:
        """Instant query; returns the `data` object of the JSON answer ({"resultType", "result"})."""
        form = {"query": promql}
        if at is not None:
            form["time"] = f"{at.timestamp():.3f}"
        request = urllib.request.Request(
            f"{self.url}/api/v1/query", data=urllib.parse.urlencode(form).encode()
        )
        try:
            with urllib.request.urlopen(request, timeout=QUERY_TIMEOUT_SECONDS) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            problem = f"Query {promql!r} failed with HTTP {error.code}: {_error_message(error)}"
            raise (PrometheusUnavailable if error.code >= 500 else PrometheusError)(problem) from error
        except (urllib.error.URLError, OSError) as error:
            raise PrometheusUnavailable(f"Prometheus at {self.url} did not answer: {error}") from error
        return dict(answer["data"])

    def rules(self) -> list[dict[str, Any]]:
        """Every rule loaded from `rule_files`, with its health and last error (GET /api/v1/rules)."""
        try:
            with urllib.request.urlopen(
                f"{self.url}/api/v1/rules", timeout=QUERY_TIMEOUT_SECONDS
            ) as response:
                answer = json.load(response)
        except (urllib.error.URLError, OSError) as error:
            raise PrometheusUnavailable(f"Prometheus at {self.url} did not answer: {error}") from error
        return [rule for group in answer["data"]["groups"] for rule in group["rules"]]

    def query_samples(self, promql: str, at: datetime | None = None) -> list[Sample]:
        return samples_from_result(self.query(promql, at))

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[Sample]], bool],
        timeout: float = 30.0,
        interval: float = 0.25,
    ) -> list[Sample]:
        """Poll the instant query until `predicate(samples)` holds; returns those samples.

        Connection errors count as "not yet" (Prometheus may be restarting); a refused query fails at once.
        """
        deadline = time.monotonic() + timeout
        last_seen: list[Sample] | str = "no answer"
        while time.monotonic() < deadline:
            try:
                samples = self.query_samples(promql)
            except PrometheusUnavailable as error:
                last_seen = str(error)
            else:
                if predicate(samples):
                    return samples
                last_seen = samples
            time.sleep(interval)
        raise TimeoutError(
            f"{promql!r} did not satisfy the condition within {timeout:.0f}s; last: {last_seen}"
        )

    # -- history --------------------------------------------------------------------------------------------

    def backfill_openmetrics(self, text: str) -> list[Path]:
        """Write history (OpenMetrics text, timestamps in seconds) into the TSDB as blocks; returns them.

        Prometheus 2.42 only notices new blocks on its periodic reload (once a minute), so a running
        server is restarted to make the history queryable at once.
        """
        if self.promtool is None:
            raise PrometheusError(PROMETHEUS_HELP)
        staging = Path(tempfile.mkdtemp(prefix="backfill-", dir=self.workdir))
        source = staging / "input.om"
        source.write_text(text if text.rstrip().endswith("# EOF") else text.rstrip("\n") + "\n# EOF\n")
        blocks_dir = staging / "blocks"
        command = [
            self.promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "-q",
            str(source),
            str(blocks_dir),
        ]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise PrometheusError(f"promtool failed: {completed.stderr.strip() or completed.stdout.strip()}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        blocks = [
            Path(shutil.move(block, self.data_dir / block.name)) for block in sorted(blocks_dir.iterdir())
        ]
        shutil.rmtree(staging, ignore_errors=True)
        if self.is_running():
            self.stop()
            self.start()
        return blocks


class MetricFeed:
    """Set synthetic values and wait until PromQL sees them; clear() drops every gauge it touched."""

    def __init__(self, exporter: SyntheticExporter, server: PrometheusServer) -> None:
        self.exporter = exporter
        self.server = server
        self._series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()

    def set(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self.exporter.set(name, value, labels)
        self._series.add((name, tuple(sorted((labels or {}).items()))))

    def set_and_wait(
        self, name: str, value: float, labels: dict[str, str] | None = None, timeout: float = 30.0
    ) -> float:
        """Set the value, then return it once an instant query of exactly that series yields it."""
        self.set(name, value, labels)

        def shows_value(samples: list[Sample]) -> bool:
            return len(samples) == 1 and _same_value(samples[0].value, value)

        return self.server.wait_for(selector(name, labels), shows_value, timeout)[0].value

    def remove(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.exporter.remove(name, labels)
        self._series.discard((name, tuple(sorted((labels or {}).items()))))

    def clear(self) -> None:
        """Unregister the gauges (so a later user may give the same name other labels)."""
        for name in sorted({name for name, _ in self._series}):
            self.exporter.remove(name)
        self._series.clear()


def _error_message(error: urllib.error.HTTPError) -> str:
    body = error.read()
    try:
        return str(json.loads(body).get("error", error.reason))
    except (ValueError, AttributeError):
        return body.decode(errors="replace").strip() or str(error.reason)


def _same_value(seen: float, wanted: float) -> bool:
    if math.isnan(wanted):
        return math.isnan(seen)
    return math.isclose(seen, wanted, rel_tol=1e-9, abs_tol=1e-12)
