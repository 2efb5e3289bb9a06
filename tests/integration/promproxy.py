"""A tiny faulty HTTP proxy in front of the test Prometheus: a normal answer, an HTTP 500, or a slow one."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PASS, FAIL_500, SLOW = "pass", "500", "slow"


class FaultyPrometheusProxy:
    """Forwards GET requests to `upstream`; `mode` decides what the client gets. Counts queries."""

    def __init__(self, upstream: str, slow_seconds: float = 3.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.slow_seconds = slow_seconds
        self.mode = PASS
        self.queries = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultyPrometheusProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.queries += 1
            mode = self.mode
        if mode == FAIL_500:
            self._reply(request, 500, b'{"status":"error","errorType":"internal","error":"injected failure"}')
            return
        if mode == SLOW:
            time.sleep(self.slow_seconds)
        try:
            with urllib.request.urlopen(self.upstream + request.path, timeout=10) as upstream:
                self._reply(request, upstream.status, upstream.read())
        except urllib.error.HTTPError as err:
            self._reply(request, err.code, err.read())
        except (OSError, urllib.error.URLError):
            self._reply(request, 502, b"upstream unreachable")

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout is what the slow mode is for)
