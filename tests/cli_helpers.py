"""Run the ``edgecnn`` CLI in-process and capture what a user would see."""

from __future__ import annotations

import pytest

from edgecnn.cli import main


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """``edgecnn ARGS...`` -> (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
