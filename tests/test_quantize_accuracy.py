"""Accuracy reports (profiler.accuracy), ImageFolder loading and its failures, 'edgecnn evaluate'."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx_factory import make_classifier
from PIL import Image

from edgecnn.errors import EdgecnnError
from edgecnn.metrics import cosine_similarity, sqnr_db, topk_accuracy, topk_indices
from edgecnn.profiler.accuracy import compare_models, compare_outputs, evaluate
from edgecnn.runtime.datasets import list_images, load_image_folder


def write_folder(root: Path, classes: dict[str, int], size: int = 36, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).convert(mode).save(root / name / f"{i}.png")
    return root


# --------------------------------------------------------------------------- metrics


def test_metric_relations() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((200, 10)).astype(np.float32)
    labels = ref.argmax(1)
    assert topk_accuracy(ref, labels, 1) == 1.0
    assert (topk_indices(ref, 3)[:, 0] == labels).all()
    same = compare_outputs(ref, ref, labels)
    assert same["top1_agreement"] == same["top5_agreement"] == 1.0
    assert same["sqnr_db"] == float("inf") and same["cosine_min"] == pytest.approx(1.0)
    assert same["top1_delta_points"] == 0.0
    noisy = ref + rng.standard_normal(ref.shape).astype(np.float32) * 0.3
    m = compare_outputs(ref, noisy, labels)
    assert m["top5_agreement"] >= m["top1_agreement"]
    assert m["top5_candidate"] >= m["top1_candidate"]
    assert m["top1_delta_points"] == pytest.approx(100 * (m["top1_candidate"] - 1.0), abs=1e-3)
    assert 0 < m["cosine_min"] <= m["cosine_mean"] <= 1
    # SQNR of noise with 0.3 std on unit-variance logits: 10 log10(1 / 0.09) ~ 10.5 dB
    assert m["sqnr_db"] == pytest.approx(10 * np.log10(1 / 0.09), abs=0.5)
    assert sqnr_db(ref, ref * 1.1) == pytest.approx(20.0, abs=1e-3)  # noise = 0.1 * signal
    assert cosine_similarity(np.zeros((1, 3)), np.zeros((1, 3)))[0] == 1.0
    with pytest.raises(EdgecnnError, match="differ in shape"):
        compare_outputs(ref, ref[:, :5])


# --------------------------------------------------------------------------- ImageFolder


def test_image_folder_layout(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", {"cat": 2, "dog": 3})
    (root / "dog" / "readme.txt").write_text("skip me")
    f = load_image_folder(root)
    assert f.classes == ("cat", "dog") and f.class_index == (0, 1) and len(f) == 5
    assert f.labels.tolist() == [0, 0, 1, 1, 1]
    numeric = write_folder(tmp_path / "num", {"2": 1, "10": 1})
    g = load_image_folder(numeric)
    assert dict(zip(g.classes, g.class_index, strict=True)) == {"10": 10, "2": 2} and g.num_classes == 11
    assert len(list_images(root)) == 5


@pytest.mark.parametrize("case, message", [
    ("missing", "not found"),
    ("file", "must be a folder"),
    ("empty", "no class sub-folders"),
    ("loose", "found 2 loose images"),
    ("nonimages", "no images in the class folders"),
    ("oneclass", "at least 2 classes"),
    ("emptyclass", "without images"),
    ("corrupt", "cannot read image"),
])
def test_bad_image_folders_fail_in_one_line(tmp_path: Path, case: str, message: str) -> None:
    root = tmp_path / "data"
    if case == "file":
        root.write_text("x")
    elif case == "empty":
        root.mkdir()
    elif case == "loose":
        root.mkdir()
        for i in range(2):
            Image.new("RGB", (8, 8)).save(root / f"{i}.png")
    elif case == "nonimages":
        for c in ("a", "b"):
            (root / c).mkdir(parents=True)
            (root / c / "x.txt").write_text("x")
    elif case == "oneclass":
        write_folder(root, {"only": 3})
    elif case == "emptyclass":
        write_folder(root, {"a": 1, "b": 1})
        (root / "c").mkdir()
    elif case == "corrupt":
        write_folder(root, {"a": 1, "b": 1})
        (root / "b" / "broken.png").write_bytes(b"not a png")
    model = make_classifier(tmp_path / "m.onnx")
    from edgecnn.runtime.datasets import strict_images

    with pytest.raises(EdgecnnError) as e, strict_images(case == "corrupt"):  # by default a bad image is skipped
        evaluate(model, root)
    text = str(e.value)
    assert message in text and "\n" not in text


# --------------------------------------------------------------------------- evaluate / compare


def test_evaluate_and_compare_on_folder(tmp_path: Path) -> None:
    from edgecnn.quantize import quantize

    root = write_folder(tmp_path / "data", {str(i): 4 for i in range(3)}, size=40)
    model = make_classifier(tmp_path / "m.onnx", num_classes=3, hidden=16)
    rep = evaluate(model, root, batch_size=5)
    assert rep.samples == 12 and rep.classes == 3 and rep.top5 == 1.0  # 3 classes: top-5 is everything
    assert 0 <= rep.top1 <= rep.top5 and rep.precision == "fp32"
    q = quantize(model, calib=str(root))
    cmp = compare_models(model, q.output, root, batch_size=5)
    d = cmp.as_dict()
    assert cmp.labelled and cmp.samples == 12 and cmp.precision_candidate == "int8"
    assert cmp.top1_reference == pytest.approx(rep.top1)
    assert cmp.top1_agreement <= cmp.top5_agreement
    assert cmp.cosine_mean > 0.99 and cmp.sqnr_db > 15
    assert d["size_reference"] > 0 and d["compression"] == pytest.approx(d["size_reference"] / d["size_candidate"],
                                                                           rel=1e-2)
    assert any("top-1 accuracy" in line for line in cmp.lines())
    # unlabelled folder: agreement only
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in list_images(root)[:4]:
        (flat / f"{p.parent.name}_{p.name}").write_bytes(p.read_bytes())
    unl = compare_models(model, q.output, flat)
    assert not unl.labelled and unl.top1_reference is None and unl.samples == 4
    # a model with fewer outputs than the folder's classes
    small = make_classifier(tmp_path / "small.onnx", num_classes=2)
    with pytest.raises(EdgecnnError, match="do not match the model"):
        evaluate(small, root)


def test_cli_evaluate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgecnn.cli import main

    root = write_folder(tmp_path / "data", {"a": 2, "b": 2})
    model = make_classifier(tmp_path / "m.onnx", num_classes=2)
    main(["evaluate", str(model), "--data", str(root), "--batch", "3", "--reference", str(model), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["samples"] == 4 and out["classes"] == 2 and out["provider"] == "CPUExecutionProvider"
    assert out["comparison"]["top1_agreement"] == 1.0 and out["comparison"]["sqnr_db"] == "inf"
    main(["evaluate", str(model), "--data", str(root)])
    assert "top-1" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(model), "--data", str(tmp_path / "nope")])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: evaluation data folder not found")
