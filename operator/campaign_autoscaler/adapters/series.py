"""Gauges with one series per event or target, kept as plain numbers and turned into metric families only when
/metrics is scraped.

prometheus-client's labelled Gauge keeps a child object per series (its own lock, value object and label
copies): 7.7 MiB for the 9,500 series of 500 events x 4 targets (tracemalloc), about half of what the
operator's memory grows by in `python -m benchmarks scale`. A `SeriesTable` keeps a dict entry per series
instead (label tuple -> float) and is registered on the registry as a custom collector, the way
prometheus-client documents for values that live elsewhere. The exposition is the same: name, help, labels,
value.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric


class SeriesTable:
    """A labelled gauge: `set(labels, value)`, `remove(*labels)` (KeyError when absent), scraped as one
    family."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def set(self, labels: tuple[str, ...], value: float) -> None:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {labels}")
        with self._lock:
            self._values[labels] = float(value)

    def remove(self, *labels: str) -> None:
        with self._lock:
            del self._values[labels]

    def value(self, *labels: str) -> float | None:
        with self._lock:
            return self._values.get(labels)

    def __len__(self) -> int:
        return len(self._values)

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            series = list(self._values.items())
        for labels, value in series:
            family.add_metric(labels, value)
        yield family
