"""Kopf handlers: each event's daemon and its passes, the finalizer, the orphan-claims collector, and the
operator's wiring. Every pass reads the world, asks `planning` for one decision per target, makes the writes
it asks for and writes the whole status.
"""

from .runtime import OperatorConfig, Runtime
from .wiring import build_registry

__all__ = ["OperatorConfig", "Runtime", "build_registry"]
