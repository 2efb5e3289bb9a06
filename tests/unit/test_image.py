"""`make image`: builds with docker, else podman, tagged with the chart's appVersion; one line and exit 2
when neither is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def path_with(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only `make`, `sed` and the given (recording) container engines."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("make", "sed"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    for tool in tools:
        engine = bin_dir / tool
        engine.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{tmp_path}/calls"\n')
        engine.chmod(0o755)
    return str(bin_dir)


def make_image(tmp_path: Path, *tools: str, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    # A make of its own, not a sub-make of `make test` (which would say "make[1]: ***" and pass its flags).
    inherited = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    env = {**inherited, "PATH": path_with(tmp_path, *tools)}
    return subprocess.run(
        ["make", "--no-print-directory", "image", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_docker_or_podman_one_line_and_exit_2(tmp_path: Path) -> None:
    result = make_image(tmp_path)
    assert result.returncode == 2
    (line, *make_note) = result.stderr.splitlines()
    assert line.startswith("make image: neither docker nor podman is installed")
    assert all(note.startswith("make: ***") for note in make_note)


def test_builds_with_the_charts_app_version_tag(tmp_path: Path) -> None:
    app_version = yaml.safe_load((REPO / "charts/campaign-autoscaler/Chart.yaml").read_text())["appVersion"]
    result = make_image(tmp_path, "podman")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "calls").read_text() == f"podman build -t campaign-autoscaler:{app_version} .\n"


def test_docker_first_and_a_registry_image(tmp_path: Path) -> None:
    result = make_image(
        tmp_path, "docker", "podman", args=("IMAGE=registry.example.com/team/ca", "TAG=9.9.9")
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "calls").read_text() == "docker build -t registry.example.com/team/ca:9.9.9 .\n"
