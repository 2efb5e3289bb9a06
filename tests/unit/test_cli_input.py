"""Bad input on the command line: one line that names the file and the problem, exit code 2, no traceback."""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from campaign_autoscaler import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "examples" / "sale-9-9.yaml")
NOW = "2026-09-01T00:00:00Z"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return code, err.strip()


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, str]:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(Path(EXAMPLE).read_bytes().replace(b"sale-9-9", b"sal\xe9-9-9", 1))
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 4)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"latin1": str(latin1), "garbage": str(garbage), "fifo": str(fifo), "dir": str(tmp_path)}


@pytest.mark.parametrize("command", [["plan"], ["simulate", "--traffic", "9.9"]])
def test_an_event_file_that_cannot_be_read_is_named_in_one_line(capsys, bad_files, command):
    expected = {
        "latin1": "not UTF-8 text (byte 0xe9 at offset",
        "garbage": "not UTF-8 text (byte 0x80 at offset 128)",
        "fifo": "not a regular file",
        "dir": "is a directory, not a file",
    }
    for kind, problem in expected.items():
        code, err = run(capsys, *command[:1], "-f", bad_files[kind], *command[1:], "--now", NOW)
        assert code == 2
        assert err.startswith(f"error: {bad_files[kind]}: {problem}"), err
    code, err = run(capsys, *command[:1], "-f", "/nonexistent/sale.yaml", *command[1:], "--now", NOW)
    assert (code, err) == (2, "error: /nonexistent/sale.yaml: no such file")


def test_standard_input_that_is_not_text_is_named(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"start: \xff\n")))
    code, err = run(capsys, "plan", "-f", "-", "--now", NOW)
    assert (code, err) == (2, "error: standard input: not UTF-8 text (byte 0xff at offset 7)")


def test_a_traffic_file_that_cannot_be_read_is_named_and_the_built_in_curve_mentioned(capsys, bad_files):
    code, err = run(capsys, "simulate", "-f", EXAMPLE, "--traffic", "10.10", "--now", NOW)
    assert (code, err) == (
        2,
        "error: --traffic 10.10: not a file; the only built-in curve is 9.9, anything else is the path of a "
        "CSV of minute_offset_or_timestamp,rps",
    )
    code, err = run(capsys, "simulate", "-f", EXAMPLE, "--traffic", bad_files["latin1"], "--now", NOW)
    assert code == 2 and "not UTF-8 text" in err
    code, err = run(capsys, "simulate", "-f", EXAMPLE, "--traffic", bad_files["dir"], "--now", NOW)
    assert (code, err) == (2, f"error: {bad_files['dir']}: is a directory, not a traffic file")


@pytest.fixture
def no_cluster_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Not in a pod, no $KUBECONFIG, an empty home."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_run_without_any_cluster_configuration_says_where_it_looked(capsys, no_cluster_config):
    code, err = run(capsys, "run")
    assert code == 2
    assert err == (
        "error: no cluster configuration: not running in a pod, and no kubeconfig "
        f"(--kubeconfig FILE, $KUBECONFIG or {no_cluster_config}/.kube/config)"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"garbage: [1, 2\n", "not a usable kubeconfig (while parsing a flow sequence"),
        (b"just some text\n", "not a usable kubeconfig (expected a YAML mapping of clusters"),
        (b"apiVersion: v1\nkind: Config\n", "not a usable kubeconfig (Invalid kube-config file."),
        (b"\x00\xff\xfe", "not UTF-8 text"),
    ],
)
@pytest.mark.parametrize("command", [["run"], ["plan", "-f", EXAMPLE, "--now", NOW]])
def test_a_kubeconfig_that_cannot_be_used_is_named_in_one_line(
    capsys, tmp_path, no_cluster_config, content, problem, command
):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_bytes(content)
    code, err = run(capsys, *command, "--kubeconfig", str(kubeconfig))
    assert code == 2
    assert err.startswith(f"error: {kubeconfig}: {problem}"), err


def test_an_unreachable_api_server_is_a_runtime_failure_in_one_line(capsys, caplog, tmp_path):
    caplog.set_level(logging.ERROR, logger="urllib3")  # its retry warnings go to the log, not to stderr
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    code, err = run(capsys, "plan", "-f", EXAMPLE, "--now", NOW, "--kubeconfig", str(kubeconfig))
    assert code == 1
    assert err.startswith(f"error: --kubeconfig {kubeconfig}: cannot reach the API server ("), err
    assert "Connection refused" in err


def test_an_unreadable_file_is_named_in_one_line(tmp_path: Path):
    """A file whose mode forbids reading it. Root reads anything, so as root the command runs with the two
    capabilities that let it (dac_override, dac_read_search) dropped: the kernel refuses the read for real."""
    unreadable = tmp_path / "sale.yaml"
    unreadable.write_text(Path(EXAMPLE).read_text())
    unreadable.chmod(0)
    command = [sys.executable, "-m", "campaign_autoscaler", "plan", "-f", str(unreadable), "--now", NOW]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: {unreadable}: cannot be read (Permission denied)\n"
