"""CLI basics: version, list, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_helpers import run_cli

from edgecnn import __version__


def test_version(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and __version__ in out


def test_list_table_and_json(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    assert "resnet50" in out and "25,557,032" in out and "61,706" in out and "6,624,904" in out
    classic, mobile = out.split("mobile models")
    assert "vgg16" in classic and "mobilenet" not in classic
    assert "mobilenet_v3_small" in mobile and "2,542,856" in mobile and "0.057" in mobile and "vgg" not in mobile
    assert " 4.089 " in classic and " 0.0004 " in classic  # GMACs of resnet50, lenet5
    code, out, _ = run_cli(capsys, "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["vgg16"]["num_params"] == 138_357_544
    assert rows["lenet5"]["input_shape"] == [1, 32, 32]
    assert rows["googlenet"]["torchvision_compatible"] is True
    assert rows["mnasnet0_5"]["group"] == "mobile" and rows["mnasnet0_5"]["macs"] == 104_455_968


def test_list_group(capsys: pytest.CaptureFixture) -> None:
    """``list --group mobile`` (docs/models.md) shows the mobile table alone; ``--group classic`` the other."""
    code, out, _ = run_cli(capsys, "list", "--group", "mobile")
    assert code == 0 and out.startswith("mobile models") and "mobilenet_v3_small" in out and "vgg16" not in out
    code, out, _ = run_cli(capsys, "list", "--group", "classic", "--json")
    names = {r["name"] for r in json.loads(out)}
    assert "vgg16" in names and "lenet5" in names and not any(n.startswith("mobilenet") for n in names)
    code, _, err = run_cli(capsys, "list", "--group", "tiny")
    assert code == 2 and "tiny" in err


def test_console_script_error_is_one_line() -> None:
    # an unknown command is click's usage error: non-zero, no traceback
    r = subprocess.run([sys.executable, "-m", "edgecnn.cli", "frobnicate"], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr
