"""Prometheus behind one small interface.

`MetricsSource` answers one number per query or says precisely why it cannot: the operator never scales
down on an answer it does not trust, so "no answer" must be told apart from "zero". Every odd answer is a
failure with its own reason: connection refused, HTTP error, timeout, NaN/Inf, no series, several series,
not a number.
The Prometheus address belongs to the operator (flags), never to an event: an event cannot make the operator
call an arbitrary URL.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from requests.adapters import Retry
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError


class MetricsUnavailableError(Exception):
    """The query gave no trustworthy number. `reason` is a CamelCase word for conditions and metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class BadQueryError(MetricsUnavailableError):
    """Prometheus rejected the query itself (a syntax or type error): the event is wrong, not the server."""

    def __init__(self, detail: str) -> None:
        super().__init__("BadQuery", detail)


class MetricsSource(Protocol):
    def value(self, query: str) -> float:
        """The query's single value now; raises MetricsUnavailableError (or BadQueryError)."""
        ...

    def peak(self, query: str, start: datetime, end: datetime) -> float | None:
        """The highest value of the query between start and end; None when there was no data."""
        ...

    def series(self, query: str, start: datetime, end: datetime, step: float) -> list[tuple[datetime, float]]:
        """The query every `step` seconds from start to end, as its one series (NaN points kept, so that the
        caller can tell them apart from missing ones); empty when there was no data."""
        ...


@dataclass(frozen=True)
class PrometheusSettings:
    url: str
    bearer_token_file: str | None = None
    ca_file: str | None = None
    timeout: float = 5.0


def single_value(result: Any, query: str) -> float:
    """Interpret an instant-query `result` (vector or scalar) as exactly one finite number."""
    if _is_sample(result):  # a scalar result: [timestamp, "value"]
        samples = [result]
    elif isinstance(result, list):
        samples = [series.get("value") if isinstance(series, dict) else series for series in result]
    else:
        raise MetricsUnavailableError("NonNumeric", f"unexpected answer {str(result)[:200]!r} to {query!r}")
    if not samples:
        raise MetricsUnavailableError("NoSeries", f"query {query!r} returned an empty vector")
    if len(samples) > 1:
        raise MetricsUnavailableError(
            "MultipleSeries", f"query {query!r} returned {len(samples)} series, not 1"
        )
    try:
        number = float(samples[0][1])
    except (TypeError, ValueError, IndexError):
        raise MetricsUnavailableError("NonNumeric", f"query {query!r} returned {samples[0]!r}") from None
    if math.isnan(number):
        raise MetricsUnavailableError("NaN", f"query {query!r} returned NaN")
    if math.isinf(number):
        raise MetricsUnavailableError("Inf", f"query {query!r} returned {number}")
    return number


class PrometheusMetricsSource:
    """`MetricsSource` on prometheus-api-client. Each call is one HTTP request, no retries: the operator asks
    again at its next metrics interval, and holds what it has meanwhile."""

    def __init__(
        self, settings: PrometheusSettings, observe: Callable[[str, float], None] | None = None
    ) -> None:
        session = requests.Session()
        if settings.ca_file:
            session.verify = settings.ca_file
        self._settings = settings
        self._client = PrometheusConnect(
            url=settings.url.rstrip("/"),
            session=session,
            retry=Retry(total=False),  # no retries, and the original error, not a MaxRetryError wrapping it
            timeout=settings.timeout,
        )
        self._observe = observe or (lambda outcome, seconds: None)

    def _headers(self) -> dict[str, str] | None:
        # Read on every call: a mounted token is rotated in place.
        if not self._settings.bearer_token_file:
            return None
        token = Path(self._settings.bearer_token_file).read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def _number(self, query: str, at: datetime | None = None) -> float:
        """One query, read as exactly one finite number; its latency and outcome are observed."""
        params = {"time": f"{at.timestamp():.3f}"} if at is not None else None
        self._client.headers = self._headers()
        began = time.monotonic()
        outcome = "ok"
        try:
            return single_value(self._raw_result(query, params), query)
        except MetricsUnavailableError as err:
            outcome = err.reason
            raise
        finally:
            self._observe(outcome, time.monotonic() - began)

    def _raw_result(self, query: str, params: dict[str, str] | None) -> Any:
        return self._answer(
            lambda: self._client.custom_query(query, params=params, timeout=self._settings.timeout)
        )

    def _answer(self, ask: Callable[[], Any]) -> Any:
        """One request to Prometheus; every way it can fail as a MetricsUnavailableError with its reason."""
        try:
            return ask()
        except (requests.ConnectionError, NewConnectionError) as err:
            # urllib3 files a refused connection under its timeouts; it is not one.
            raise MetricsUnavailableError("ConnectionFailed", _first_line(err)) from err
        except (requests.Timeout, Urllib3TimeoutError) as err:
            raise MetricsUnavailableError("Timeout", f"no answer within {self._settings.timeout}s") from err
        except (requests.RequestException, Urllib3HTTPError) as err:
            raise MetricsUnavailableError("HTTPError", _first_line(err)) from err
        except PrometheusApiClientException as err:
            # The client folds the response into its message: "HTTP Status Code 400 (b'{...}')".
            if "HTTP Status Code 400" in str(err) and '"errorType":"bad_data"' in str(err):
                raise BadQueryError(_prometheus_error(str(err))) from err
            raise MetricsUnavailableError("HTTPError", _first_line(err)) from err
        except ValueError as err:  # a 200 whose body is not JSON
            raise MetricsUnavailableError("NonNumeric", f"unreadable answer: {_first_line(err)}") from err

    def points(self, query: str, start: datetime, end: datetime, step: float) -> list[tuple[datetime, float]]:
        """The query evaluated every `step` seconds from start to end (a range query), as its one series."""
        return range_points(self._range(query, start, end, step), query)

    def series(self, query: str, start: datetime, end: datetime, step: float) -> list[tuple[datetime, float]]:
        return range_points(self._range(query, start, end, step), query, keep_nan=True)

    def _range(self, query: str, start: datetime, end: datetime, step: float) -> Any:
        self._client.headers = self._headers()
        return self._answer(
            lambda: self._client.custom_query_range(
                query,
                start_time=start,
                end_time=end,
                step=f"{step:g}s",
                params={"timeout": f"{self._settings.timeout:g}s"},
                timeout=self._settings.timeout,
            )
        )

    def value(self, query: str) -> float:
        return self._number(query)

    def peak(self, query: str, start: datetime, end: datetime) -> float | None:
        length = max(1, math.ceil((end - start).total_seconds()))
        step = max(1, length // 500)
        subquery = f"max_over_time(({query})[{length}s:{step}s])"
        try:
            return self._number(f"max({subquery})", at=end)
        except MetricsUnavailableError as err:
            if err.reason == "NoSeries":
                return None
            raise


def range_points(result: Any, query: str, keep_nan: bool = False) -> list[tuple[datetime, float]]:
    """A range-query `result` (a matrix) as the points of its one series, in time order; NaN and Inf
    points are dropped unless `keep_nan`. No series is an empty list; several are a failure, as for an
    instant query."""
    if not isinstance(result, list):
        raise MetricsUnavailableError("NonNumeric", f"unexpected answer {str(result)[:200]!r} to {query!r}")
    if len(result) > 1:
        raise MetricsUnavailableError(
            "MultipleSeries", f"query {query!r} returned {len(result)} series, not 1"
        )
    points = []
    for stamp, text in result[0].get("values", []) if result else []:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise MetricsUnavailableError("NonNumeric", f"query {query!r} returned {text!r}") from None
        if keep_nan or math.isfinite(value):
            points.append((datetime.fromtimestamp(float(stamp), UTC), value))
    return points


def _is_sample(result: Any) -> bool:
    return (
        isinstance(result, list)
        and len(result) == 2
        and isinstance(result[0], int | float)
        and isinstance(result[1], str)
    )


def _prometheus_error(message: str) -> str:
    marker = '"error":"'
    if marker not in message:
        return _first_line(Exception(message))
    return message.split(marker, 1)[1].split('"', 1)[0]


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0][:300] if str(err) else type(err).__name__
