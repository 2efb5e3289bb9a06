"""Flags a new user gets wrong: one line naming the flag and what it expects, exit code 2; counts printed as
counts. (--traffic 10.10 is in test_cli_input.)"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from campaign_autoscaler import cli
from campaign_autoscaler.simulation.report import minutes_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "examples" / "sale-9-9.yaml")
SIMULATE = ["simulate", "-f", EXAMPLE, "--baseline", "order-tracking=4"]


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own checks
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "usage:" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("value", ["-5s", "-5", "-1m30s", "-0.5"])
@pytest.mark.parametrize("joined", [False, True])
def test_a_negative_pod_startup_is_rejected_not_taken_for_a_flag(
    capsys: pytest.CaptureFixture[str], value: str, joined: bool
) -> None:
    flag = [f"--pod-startup={value}"] if joined else ["--pod-startup", value]
    err = one_line_error(capsys, [*SIMULATE, "--traffic", "9.9", *flag])
    assert f"argument --pod-startup: must be a duration >= 0, got '{value}'" in err


def test_a_flag_missing_its_value_is_still_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    err = one_line_error(capsys, [*SIMULATE, "--traffic", "9.9", "--pod-startup"])
    assert "argument --pod-startup: expected one argument" in err


def test_minute_counts_print_as_whole_numbers_when_whole() -> None:
    assert minutes_text(Fraction(383)) == "383"
    assert minutes_text(Fraction(0)) == "0"
    assert minutes_text(Fraction(9, 2)) == "4.5"
    assert minutes_text(Fraction(9, 4)) == "2.25"


def test_the_simulation_table_shows_whole_minute_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main([*SIMULATE, "--traffic", "9.9", "--pod-startup", "90s", "--now", "2026-09-01T00:00:00Z"])
        == 0
    )
    static_row = next(line for line in capsys.readouterr().out.splitlines() if "static baseline" in line)
    cells = [cell.strip() for cell in static_row.strip("│ ").split("│")]
    assert cells[1].isdigit() and cells[2].isdigit(), static_row  # e.g. 383 and 964, not 383.00


def test_the_demo_context_needs_a_kubeconfig(capsys: pytest.CaptureFixture[str]) -> None:
    err = one_line_error(capsys, ["demo", "--context", "kind-kind"])
    assert err == "error: --context needs --kubeconfig FILE (the demo's own control plane has one context)"


def test_the_demo_names_a_kubeconfig_it_cannot_use(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.yaml"
    err = one_line_error(capsys, ["demo", "--kubeconfig", str(missing)])
    assert err == f"error: {missing}: no such kubeconfig"


def test_target_kinds_are_resource_names(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.build_parser().parse_args(["run", "--target-kinds", "deployments.apps,*.apps"])
    assert raised.value.code == 2
    assert "not a <plural>.<group> resource name: '*.apps'" in capsys.readouterr().err
    args = cli.build_parser().parse_args(["run", "--target-kinds", "deployments.apps, rollouts.argoproj.io"])
    assert args.target_kinds == ("deployments.apps", "rollouts.argoproj.io")
