"""The digits chain in reduced form: train LeNet-5 briefly, export fp32 -> fp16 -> int8, evaluate on held-out data."""

from __future__ import annotations

from pathlib import Path

import pytest
from quantize_helpers import digits_tools

pytest.importorskip("sklearn")


@pytest.mark.slow  # trains LeNet-5, then exports and evaluates fp32, fp16 and int8 end to end
def test_digits_chain_int8_within_two_points(tmp_path: Path) -> None:
    tools = digits_tools()
    res = tools.run_chain(tmp_path / "digits", epochs=4, calib_size=128, log=lambda m: None)
    models = res["models"]
    fp32, fp16, int8 = (models[k]["top1"] for k in ("fp32", "fp16", "int8"))
    assert res["test_images"] == 360 and res["train_images"] == 1437
    assert fp32 > 0.85, f"training failed: fp32 top-1 {fp32}"
    assert abs(fp32 - res["torch_top1"]) <= 0.003  # the runtime's preprocessing = the training inputs
    assert abs(fp16 - fp32) <= 0.01
    assert fp32 - int8 <= 0.02, f"int8 {int8} vs fp32 {fp32}"
    assert models["int8"]["vs_fp32"]["labelled"] and models["int8"]["vs_fp32"]["top1_agreement"] > 0.95
    assert models["int8"]["size"] * 2.5 < models["fp32"]["size"]
    assert models["fp16"]["precision"] == "fp16" and models["int8"]["precision"] == "int8"
    # the held-out split is an ImageFolder of PNGs: 10 classes
    test_dir = tmp_path / "digits" / "test"
    assert sorted(p.name for p in test_dir.iterdir()) == [str(i) for i in range(10)]
