"""``edgecnn optimize`` on detection and segmentation files: task metrics per candidate, the budget in points of the
task's metric, end-to-end latency, the chosen file's metadata (issue 24)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecnn.metadata import decode
from edgecnn.optimize import optimize

DET = "ssdlite320_mobilenet_v3_large"
SEG = "lraspp_mobilenet_v3_large"
SIZE = (96, 96)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Sixteen synthetic pictures (rectangles on a plain ground)."""
    from PIL import Image, ImageDraw

    folder = tmp_path_factory.mktemp("opt-task-images")
    rng = np.random.default_rng(3)
    for i in range(16):
        im = Image.new("RGB", (120, 96), tuple(int(v) for v in rng.integers(0, 255, 3)))
        pen = ImageDraw.Draw(im)
        for _ in range(3):
            x, y = (int(v) for v in rng.integers(0, 80, 2))
            pen.rectangle([x, y, x + 30, y + 20], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        im.save(folder / f"{i:02d}.png")
    return folder


def _run(model: Path, out: Path, images: Path, **kw) -> dict:
    return optimize(model, data=images, output=out, providers=["cpu"], precisions=["fp32", "int8"], batches=[1],
                    duration=0.1, threads=1, calib_size=8, eval_limit=8, progress=False, **kw)


@pytest.mark.slow
def test_detector_candidates_carry_matched_f1_end_to_end_latency_and_the_chosen_metadata(exported, images, tmp_path
                                                                                         ) -> None:
    src = exported(DET, nms="host", input_size=SIZE).path
    rep = _run(src, tmp_path / "out", images, budget=50.0)
    assert rep["file_task"] == "detection" and rep["metric"] == "matched_f1"
    assert rep["budget"]["primary_metric"] == "map50" and "at least 50%" in rep["budget"]["rule"]
    ok = [c for c in rep["candidates"] if c["status"] == "ok"]
    assert {c["precision"] for c in ok} == {"fp32", "int8"}
    ref = next(c for c in ok if c["reference"])
    assert ref["matched_f1"] == 1.0 and ref["accuracy_drop"] == 0.0
    for c in ok:
        assert 0.0 <= c["matched_f1"] <= 1.0
        assert c["accuracy_drop"] == pytest.approx(100 * (1 - c["matched_f1"]), abs=1e-6)
        assert c["within_budget"] == (c["accuracy_drop"] <= 50.0)
        assert c["latency_scope"] == "end to end: graph + decoding + NMS on the host"
    ch = rep["chosen"]
    assert ch is not None and ch["matched_f1"] is not None
    meta = decode({p.key: p.value for p in onnx.load(ch["path"]).metadata_props})["optimize"]["accuracy"]
    assert meta["task"] == "detection" and meta["primary_metric"] == "map50"
    assert meta["matched_f1"] == ch["matched_f1"] and meta["latency_scope"].startswith("end to end")
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["candidates"][0]["matched_f1"] == 1.0


@pytest.mark.slow
def test_a_labelled_task_metric_makes_the_budget_points_of_map50(exported, images, tmp_path) -> None:
    src = exported(DET, nms="graph", input_size=SIZE).path
    seen: list[str] = []

    def labelled(path: Path) -> dict[str, float]:  # a stand-in for COCO mAP: fixed figures per file
        name = Path(path).name
        seen.append(name)
        if "keep" in name:  # the kept-float search's files: within the budget from the first one
            return {"map50": 41.5, "map": 21.0}
        return {"map50": 40.0, "map": 20.0} if "int8" in name else {"map50": 42.0, "map": 21.5}

    rep = _run(src, tmp_path / "out", images, budget=1.0, task_metric=labelled)
    assert rep["metric"] == "map50" and rep["budget"]["rule"].startswith("mAP@.5 at most 1 points below fp32")
    by = {c["precision"]: c for c in rep["candidates"] if c["status"] == "ok" and not c["kept_float"]}
    assert by["fp32"]["map50"] == 42.0 and by["fp32"]["map"] == 21.5
    assert by["int8"]["map50"] == 40.0 and by["int8"]["accuracy_drop"] == pytest.approx(2.0)
    assert by["int8"]["within_budget"] is False and by["int8"]["matched_f1"] is not None
    kept = next(c for c in rep["candidates"] if c["kept_float"])
    assert kept["map50"] == 41.5 and kept["within_budget"] is True and rep["keep_float"]["tried"][0]["keep"] == 1
    assert rep["chosen"]["map50"] in (42.0, 41.5)  # the faster of fp32 and int8 with one layer in float
    assert any("keep" in n for n in seen)


@pytest.mark.slow
def test_segmenter_candidates_carry_pixel_agreement(exported, images, tmp_path) -> None:
    src = exported(SEG, input_size=SIZE).path
    rep = _run(src, tmp_path / "out", images, budget=100.0)
    assert rep["file_task"] == "segmentation" and rep["metric"] == "pixel_agreement"
    assert rep["budget"]["primary_metric"] == "miou"
    ok = [c for c in rep["candidates"] if c["status"] == "ok"]
    assert all(0.0 <= c["pixel_agreement"] <= 1.0 for c in ok)
    assert all(c["latency_scope"] == "end to end: graph + per-pixel argmax" for c in ok)
    assert rep["chosen"] is not None and rep["chosen"]["pixel_agreement"] is not None


def test_a_task_metric_on_a_classifier_is_one_line(tmp_path) -> None:
    from onnx_factory import make_classifier

    from edgecnn.errors import EdgecnnError

    model = make_classifier(tmp_path / "tiny.onnx", size=16)
    with pytest.raises(EdgecnnError, match="task metric"):
        optimize(model, providers=["cpu"], precisions=["fp32"], batches=[1], duration=0.1, threads=1,
                 progress=False, task_metric=lambda p: {"map50": 1.0})


def test_the_table_of_a_task_file_shows_its_metrics_not_top1() -> None:
    from edgecnn.optimize.report import table_markdown

    row = {"provider": "cpu", "precision": "int8", "batch": 1, "status": "ok", "map50": 88.71, "map": 63.35,
           "matched_f1": 0.9182, "kept_float": [], "within_budget": True}
    text = table_markdown({"file_task": "detection", "candidates": [row], "chosen": None})
    head = text.splitlines()[0]
    assert "mAP@.5" in head and "mAP@[.5:.95]" in head and "F1 vs fp32 %" in head
    assert "top-1 %" not in head and "mIoU" not in head  # columns no candidate has are left out
    assert "| 88.71 | 63.35 | 91.82 |" in text
    classifier = table_markdown({"candidates": [dict(row, accuracy=0.5)], "chosen": None}).splitlines()[0]
    assert "top-1 %" in classifier and "mAP@.5" not in classifier
