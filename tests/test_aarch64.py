"""The torch-free runtime on aarch64, emulated: files made on x86 give the same answers under qemu-user.

``tools/setup_aarch64.sh`` sets up the emulated aarch64 (qemu-user, an arm64 Python 3.11, ``edgecnn[cpu]``'s aarch64
wheels with the pinned ONNX Runtime). The files (LeNet-5 trained on digits: fp32, fp16, int8 QDQ, ORT format, a
foreign NHWC file and ``optimize --target-arch aarch64``'s chosen file) are made here on x86, then
``tools/aarch64_driver.py`` runs the Engine, ``predict``, ``evaluate``, ``bench --iters 1`` and ``doctor`` on both
sides, on ONNX Runtime and on OpenVINO; ``tools/check_aarch64.py`` holds the comparison and the bounds with their
reasons (fp32 >= 100 dB; ONNX Runtime int8: identical logits). Without the environment these tests skip with the
reason, unless EDGECNN_REQUIRE_AARCH64=1 (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnx
import pytest
from tools_helpers import tool

from edgecnn.metadata import decode

pytestmark = [pytest.mark.aarch64, pytest.mark.slow]
check = tool("check_aarch64")


def need(ok: bool, reason: str) -> None:
    """Skip (or fail, when EDGECNN_REQUIRE_AARCH64=1) unless the emulated environment is there."""
    if ok:
        return
    message = f"{reason}; run tools/setup_aarch64.sh"
    if os.environ.get("EDGECNN_REQUIRE_AARCH64") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The files, made once; the driver's run on x86 and emulated."""
    python = check.emulated_python()
    need(python is not None, f"no emulated aarch64 Python in {check.AARCH64_DIR}")
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    work = tmp_path_factory.mktemp("aarch64")
    # in a child process: the export, training and optimize run keep their memory (and torch) out of this one, whose
    # RSS forked children inherit (tests/test_bad_input_matrix.py bounds theirs)
    proc = subprocess.run([sys.executable, str(check.ROOT / "tools" / "check_aarch64.py"), "--files-only",
                           str(work / "files")], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    made = json.loads(proc.stdout.strip().splitlines()[-1])
    plan = check.make_plan(made)
    ref = check.run_driver([sys.executable], plan, work / "x86")
    arm = check.run_driver([str(python)], plan, work / "aarch64")
    return {"work": work, "made": made, "plan": plan, "x86": ref, "arm": arm, "python": python}


def _row(runs: dict[str, Any], label: str) -> dict[str, Any]:
    return check.agreement(label, runs["work"] / "x86", runs["work"] / "aarch64", runs["x86"], runs["arm"])


def test_the_emulated_side_is_aarch64_without_torch(runs: dict[str, Any]) -> None:
    arm = runs["arm"]
    assert arm["machine"] == "aarch64" and runs["x86"]["machine"] != "aarch64"
    assert arm["emulation"]["emulated"] and arm["emulation"]["arch"] == "aarch64"
    assert arm["torch_importable"] is False  # edgecnn[cpu] as a device installs it
    pins = {line.split("=", 1)[0]: line for line in (check.ROOT / "tools" / "setup_aarch64.sh").read_text().splitlines()
            if line.startswith(("ORT_VERSION=", "OPENVINO_VERSION="))}
    assert f":-{arm['onnxruntime']}}}" in pins["ORT_VERSION"]
    assert f":-{arm['openvino'].split('-')[0]}}}" in pins["OPENVINO_VERSION"]


#: every row: each file on ONNX Runtime, and on OpenVINO (not the ORT-format file)
KEYS = [*check.BOUNDS, *(f"{label}@openvino" for label in check.OPENVINO_BOUNDS)]


@pytest.mark.parametrize("key", KEYS)
def test_file_agrees_with_x86(runs: dict[str, Any], key: str) -> None:
    row = _row(runs, key)
    assert "error" not in row, row.get("error")
    assert row["inputs_max_abs_diff"] == 0.0  # the same preprocessing, bit for bit (Pillow, numpy)
    assert row["top1_match"] == 1.0
    assert row["top5_match"] == 1.0 or not row["top5_required"], f"{key}: top-5 differs ({row['why']})"
    assert row["sqnr_db"] >= row["bound_db"], f"{key}: {row['sqnr_db']:.1f} dB < {row['bound_db']} ({row['why']})"
    assert row["within_bound"]
    if key in ("int8", "optimize-aarch64"):  # ONNX Runtime's integer kernels: bit-identical logits on both
        assert row["identical"]


@pytest.mark.parametrize("key", [k for k in KEYS if k != "ort"])
def test_commands_run_emulated_and_agree(runs: dict[str, Any], key: str) -> None:
    row = _row(runs, key)
    c = row["commands"]
    assert all(v["ran"] for v in c.values()), {k: v["error"] for k, v in c.items() if not v["ran"]}
    assert c["predict"]["same_top5"] or not row["top5_required"]
    assert c["evaluate"]["same_accuracy"]
    assert c["bench"]["says_emulated"]  # and never on x86:
    x86 = key if "reference" not in row else key.partition("@")[0]  # OpenVINO on this x86 could not compile it
    assert not any("emulated" in w for w in runs["x86"]["files"][x86]["bench"]["json"]["warnings"])


def test_the_file_prepared_for_aarch64(runs: dict[str, Any]) -> None:
    o = runs["made"]["optimize"]
    assert o["target_arch"] == "aarch64" and o["int8_activation_type"] == "int8"
    assert o["chosen_by"] == "accuracy and size" and o["chosen"]["precision"] == "int8"
    meta = decode({p.key: p.value for p in onnx.load(o["chosen"]["path"]).metadata_props})["optimize"]
    assert meta["timings_used"] is False and meta["target_arch"] == "aarch64"
    row = _row(runs, "optimize-aarch64")
    assert row["identical"] or row["sqnr_db"] >= check.BOUNDS["optimize-aarch64"][1]
    # the x86 bench of the file chosen for aarch64 raises no "chosen on another CPU" warning: it claims no speed
    assert not any("chosen by 'edgecnn optimize'" in w
                   for w in runs["x86"]["files"]["optimize-aarch64"]["bench"]["json"]["warnings"])


def test_doctor_under_emulation_reports_what_it_sees(runs: dict[str, Any]) -> None:
    doctor = runs["arm"]["doctor"]
    assert doctor["code"] == 0
    cpu = doctor["json"]["cpu"]
    assert cpu["arch"] == "aarch64" and cpu["emulated"]["emulated"]
    assert cpu["flags"]["asimd"]  # NEON, as qemu announces it in the auxiliary vector
    assert "emulated     yes:" in runs["arm"]["doctor_text"]


def test_the_cli_starts_as_a_process_emulated(runs: dict[str, Any]) -> None:
    """One real ``python -m edgecnn.cli`` process (the driver runs the commands in one process for time)."""
    fp32 = runs["plan"]["files"]["fp32"]
    proc = subprocess.run([str(runs["python"]), "-m", "edgecnn.cli", "predict", fp32, runs["plan"]["images"][0],
                           "--top", "3"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "EDGECNN_CACHE_DIR": str(runs["work"] / "cache")})
    assert proc.returncode == 0, proc.stderr
    first = runs["x86"]["files"]["fp32"]["predict"]["json"]["results"][0]["predictions"][0]
    assert str(first["index"]) in proc.stdout or str(first["label"]) in proc.stdout
    bad = subprocess.run([str(runs["python"]), "-m", "edgecnn.cli", "predict", str(Path(fp32).with_name("no.onnx")),
                          runs["plan"]["images"][0]], capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
