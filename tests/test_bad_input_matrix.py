"""The bad-input matrix (tests/bad_inputs.py): every class of hostile or careless input x each command that reads
it, run as a user would (a subprocess with its own cache). Each row asserts the exit code, exactly one ``error:``
line for a refusal, no traceback, nothing written outside what the case allows, no hidden temporary file left,
no raw control character printed, and, for the metadata that asks for huge inputs, a peak RSS bound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bad_inputs import CASES, image_folder, problems, run_case, write_model  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=[f"{c.klass}-{c.id}-{c.command}".replace(" ", "_") for c in CASES])
def test_bad_input(case, tmp_path: Path) -> None:
    outcome = run_case(case, tmp_path)
    found = problems(case, outcome, tmp_path)
    assert not found, f"{found}\nstdout: {outcome.stdout[-800:]}\nstderr: {outcome.stderr[-1500:]}"


def test_matrix_covers_every_class() -> None:
    classes = {c.klass for c in CASES}
    assert classes == {"paths", "overwrite", "metadata", "images", "printable", "modes", "smaller"}
    assert len(CASES) >= 50


def test_sigterm_during_batch_predict_leaves_no_temporary_file(tmp_path: Path) -> None:
    """SIGTERM arrives while batch-predict writes its results: exit 143, no results file, no hidden partial file."""
    model = write_model(tmp_path / "model.onnx")
    images = image_folder(tmp_path / "imgs", n=150, classes=2)
    env = {**os.environ, "EDGECNN_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "edgecnn.cli", "batch-predict", str(model), str(images), "-o",
                             str(tmp_path / "r.jsonl"), "--batch", "1", "--loaders", "1", "--no-progress"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.glob(".r.jsonl.*")) and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "batch-predict finished before the signal could be sent: make the folder larger"
    assert list(tmp_path.glob(".r.jsonl.*")), "the partial results file never appeared"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert not (tmp_path / "r.jsonl").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
