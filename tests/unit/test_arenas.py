"""Fewer malloc arenas: set on glibc, a no-op elsewhere."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from campaign_autoscaler.adapters import arenas


def test_the_arenas_are_limited_on_glibc() -> None:
    assert arenas.limit_arenas() is (platform.libc_ver()[0] == "glibc")


def test_without_a_c_library_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert arenas.limit_arenas() is False


def test_a_c_library_without_mallopt_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoMallopt:
        def __init__(self, name: str) -> None:
            pass

        def __getattr__(self, name: str) -> object:
            raise AttributeError(name)

    monkeypatch.setattr(arenas.ctypes, "CDLL", NoMallopt)
    assert arenas.limit_arenas() is False
