"""scripts/build-testenv.sh speaks on stderr, one line per stage with the elapsed time, and prints only the
assets folder on stdout (`make testenv` sends stdout to /dev/null, so the stages stay visible)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STAGE_LINE = re.compile(r"^\[testenv +\d+m\d{2}s\] \S")


def run_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "build-testenv.sh")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_given_assets_one_timed_line_on_stderr_and_the_folder_on_stdout(tmp_path: Path) -> None:
    for binary in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        (tmp_path / binary).write_text("#!/bin/sh\n")
        (tmp_path / binary).chmod(0o755)
    result = run_script({"CAMPAIGN_TESTENV_ASSETS": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{tmp_path}\n"
    (line,) = result.stderr.splitlines()
    assert STAGE_LINE.match(line), line
    assert "Using assets from" in line


def test_incomplete_assets_say_what_is_missing_and_fail(tmp_path: Path) -> None:
    (tmp_path / "etcd").write_text("#!/bin/sh\n")
    (tmp_path / "etcd").chmod(0o755)
    result = run_script({"CAMPAIGN_TESTENV_ASSETS": str(tmp_path)})
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert (
        STAGE_LINE.match(line)
        and "lacks one of: etcd kube-apiserver kube-controller-manager kube-scheduler" in line
    )
