"""``edgecnn bundle`` and ``bundle --verify`` for detection (NMS in the graph and on the host) and segmentation
files: the model, its ORT-format copy and reduced-operator config, preprocessing.json with the task keys, and a
verify run through the Python runtime's post-processing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli as _run

from edgecnn.bundle import build_bundle, verify_bundle

SSD = "ssdlite320_mobilenet_v3_large"


@pytest.fixture(scope="module")
def bundles(exported, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("bundle_tasks")
    files = {"graph": exported(SSD, input_size=(160, 160), nms="graph").path,
             "host": exported(SSD, input_size=(160, 160), nms="host").path,
             "segmentation": exported("lraspp_mobilenet_v3_large", input_size=(128, 128)).path}
    out = {}
    for kind, path in files.items():
        build_bundle(path, d / kind)
        out[kind] = d / kind
    return out


def _name(folder: Path) -> str:
    return json.loads((folder / "manifest.json").read_text())["model"]


@pytest.mark.parametrize("nms", ["graph", "host"])
def test_detection_bundle_contents(bundles: dict, nms: str) -> None:
    d = bundles[nms]
    name = _name(d)
    files = sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
    assert files == sorted([f"{name}.onnx", f"{name}.ort", f"{name}.required_operators.config", "labels.txt",
                            "manifest.json", "preprocessing.json", "runtime.json", "README.md", "cpp/README.md",
                            "android/README.md", "ios/README.md"])
    ops = (d / f"{name}.required_operators.config").read_text()
    assert ("NonMaxSuppression" in ops) == (nms == "graph")  # the reduced build keeps NMS only when the graph has it
    pre = json.loads((d / "preprocessing.json").read_text())
    assert pre["task"] == "detection"
    assert pre["resize"]["center_crop"] is False and pre["resize"]["crop_fraction"] is None  # stretch, no crop
    assert any("resize the whole image to 160x160" in s for s in pre["steps"])
    out = pre["output"]
    roles = {o["name"]: (o["role"], o["batch"]) for o in out["outputs"]}
    if nms == "graph":
        assert roles == {"boxes": ("boxes", False), "scores": ("scores", False), "labels": ("labels", False),
                         "batch_index": ("batch_index", False)}
    else:
        assert roles == {"boxes": ("boxes", True), "scores": ("scores", True)}
    assert out["nms"]["placement"] == nms and out["nms"]["iou_threshold"] == 0.55 and out["box_format"] == "xyxy"
    assert {k: pre["contract"][k] for k in ("task", "resize", "box_format")} == {
        "task": "detection", "resize": "stretch", "box_format": "xyxy"}
    assert pre["contract"]["nms"]["placement"] == nms and pre["contract"]["outputs"]
    labels = (d / "labels.txt").read_text().splitlines()
    assert len(labels) == out["classes"] == 91 and labels[1] == "person"
    for readme in ("README.md", "cpp/README.md", "android/README.md", "ios/README.md"):
        text = (d / readme).read_text()
        assert "Outputs (detection)" in text and ("NonMaxSuppression" in text) == (nms == "graph"), readme
        assert "softmax" not in text, readme


@pytest.mark.parametrize("nms", ["graph", "host"])
def test_detection_bundle_verifies_through_the_detection_post_processing(bundles: dict, nms: str, capsys) -> None:
    report = verify_bundle(bundles[nms])
    assert report["task"] == "detection" and report["nms"] == nms
    assert report["detections"] == report["ort_matched"] > 0  # every .onnx detection found in the .ort run
    assert report["ort_min_iou"] >= 0.99 and report["ort_max_score_diff"] <= 1e-3
    code, out, err = _run(capsys, "bundle", "--verify", str(bundles[nms]))
    assert code == 0, err
    assert f"({report['detections']} detections, NMS {nms})" in out and "matched" in out


def test_segmentation_bundle_verifies(bundles: dict) -> None:
    d = bundles["segmentation"]
    pre = json.loads((d / "preprocessing.json").read_text())
    assert pre["task"] == "segmentation" and [o["role"] for o in pre["output"]["outputs"]] == ["masks"]
    report = verify_bundle(d)
    assert report["task"] == "segmentation" and report["ort_pixel_agreement"] >= 0.999
    assert abs(sum(c["share"] for c in report["classes"])) <= 1 + 1e-9 and report["classes"]


def test_a_changed_ort_file_fails_verify(bundles: dict, tmp_path: Path) -> None:
    import shutil

    from edgecnn.errors import EdgecnnError

    d = tmp_path / "b"
    shutil.copytree(bundles["host"], d)
    ort = d / f"{_name(d)}.ort"
    ort.write_bytes(ort.read_bytes()[:-10])
    with pytest.raises(EdgecnnError, match="was changed after bundling"):
        verify_bundle(d)
