"""`edgecnn batch-predict` on this machine (Engine + Batcher): rows, order, formats, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run_cli as _run
from onnx_factory import make_classifier
from PIL import Image

from edgecnn.errors import EdgecnnError
from edgecnn.scale.local import batch_predict, read_results


def make_images(root, n: int, seed: int = 0, gray_every: int = 0) -> list[str]:
    """``n`` small random images of mixed sizes and formats in two sub-folders; returns relative paths."""
    rng = np.random.default_rng(seed)
    rel = []
    for i in range(n):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        h, w = int(rng.integers(20, 64)), int(rng.integers(20, 64))
        if gray_every and i % gray_every == 0:
            img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
        else:
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        name = f"img{i:04d}.{'png' if i % 3 else 'jpg'}"
        img.save(sub / name)
        rel.append(f"{sub.name}/{name}")
    (root / "notes.txt").write_text("not an image")
    return sorted(rel)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("bp")
    return {"dir": d / "images", "rel": make_images(d / "images", 40, gray_every=7),
            "model": make_classifier(d / "tiny.onnx"), "tmp": d}


def test_local_rows_match_predict(data, tmp_path):
    from edgecnn.runtime import Engine, predict

    out = tmp_path / "r.parquet"
    res = batch_predict(data["model"], data["dir"], out, top=3, batch=8, progress=False)
    assert res.images == 40 and res.mode == "local" and out.is_file()
    rows = read_results(out)
    assert [r["path"] for r in rows] == data["rel"]  # sorted, relative, each once
    engine = Engine(data["model"], "cpu")
    ref = predict(engine, [str(data["dir"] / p) for p in data["rel"]], top=3)
    for row, r in zip(rows, ref, strict=True):
        assert row["classes"] == [p["index"] for p in r["predictions"]]
        assert row["labels"] == [p["label"] for p in r["predictions"]]
        np.testing.assert_allclose(row["probabilities"], [p["probability"] for p in r["predictions"]], rtol=1e-5)


def test_jsonl_equals_parquet(data, tmp_path):
    batch_predict(data["model"], data["dir"], tmp_path / "r.parquet", batch=5, progress=False)
    batch_predict(data["model"], data["dir"], tmp_path / "r.jsonl", batch=16, loaders=3, progress=False)
    a, b = read_results(tmp_path / "r.parquet"), read_results(tmp_path / "r.jsonl")
    assert [r["path"] for r in a] == [r["path"] for r in b]
    assert [r["classes"] for r in a] == [r["classes"] for r in b]
    np.testing.assert_allclose([r["probabilities"] for r in a], [r["probabilities"] for r in b], rtol=1e-5)


def test_imagenet_labels(tmp_path):
    model = make_classifier(tmp_path / "inet.onnx", num_classes=1000, size=16)
    make_images(tmp_path / "im", 3)
    batch_predict(model, tmp_path / "im", tmp_path / "r.jsonl", top=2, progress=False)
    rows = read_results(tmp_path / "r.jsonl")
    from edgecnn.runtime import imagenet_classes

    names = imagenet_classes()
    assert all(r["labels"] == [names[i] for i in r["classes"]] for r in rows)


def test_errors_leave_no_file(data, tmp_path):
    out = tmp_path / "r.parquet"
    with pytest.raises(EdgecnnError, match="must end in .parquet or .jsonl"):
        batch_predict(data["model"], data["dir"], tmp_path / "r.csv")
    with pytest.raises(EdgecnnError, match="no images in"):
        (tmp_path / "empty").mkdir()
        batch_predict(data["model"], tmp_path / "empty", out)
    bad = tmp_path / "bad"
    make_images(bad, 5)
    (bad / "a" / "zz_broken.png").write_bytes(b"\x89PNG broken")
    from edgecnn.runtime.datasets import strict_images

    with pytest.raises(EdgecnnError, match="cannot read image .*zz_broken.png"), strict_images():
        batch_predict(data["model"], bad, out, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".r.parquet*"))
    with pytest.warns(UserWarning, match="skipped 1 of 6 images"):  # by default the bad image is skipped
        result = batch_predict(data["model"], bad, out, progress=False)
    assert result.images == 5
    out.unlink()
    out.write_text("old")
    with pytest.raises(EdgecnnError, match="already exists; pass --force"):
        batch_predict(data["model"], data["dir"], out)




def test_cli_local(capsys, data, tmp_path):
    out = tmp_path / "r.jsonl"
    code, stdout, err = _run(capsys, "batch-predict", str(data["model"]), str(data["dir"]), "-o", str(out),
                             "--json", "--no-progress", "-k", "2")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["images"] == 40 and summary["mode"] == "local" and summary["images_per_s"] > 0
    assert len(read_results(out)) == 40
    code, _, err = _run(capsys, "batch-predict", str(data["model"]), str(data["dir"]), "-o", str(out))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code, _, err = _run(capsys, "batch-predict", str(data["model"]), str(data["dir"]), "-o", str(tmp_path / "x.jsonl"),
                        "--address", "auto")
    assert code == 2 and "--ray runs only" in err


def test_precision_and_device_reach_the_engine(data, tmp_path, capsys):
    code, out, err = _run(capsys, "batch-predict", str(data["model"]), str(data["dir"]), "-o",
                          str(tmp_path / "x.jsonl"), "--provider", "cpu", "--precision", "bf16", "--no-progress")
    assert code == 2 and out == "" and err.startswith("error: precision bf16 cannot run on ONNX Runtime's CPU")
    assert not (tmp_path / "x.jsonl").exists()
    pytest.importorskip("openvino")
    ref = read_results(batch_predict(data["model"], data["dir"], tmp_path / "cpu.jsonl", top=2, provider="cpu",
                                     progress=False).output)
    ov = batch_predict(data["model"], data["dir"], tmp_path / "ov.jsonl", top=2, provider="openvino",
                       precision="fp32", device="CPU", progress=False)
    assert ov.providers == ["OpenVINO:CPU"]
    rows = read_results(ov.output)
    assert [r["classes"] for r in rows] == [r["classes"] for r in ref]
    np.testing.assert_allclose([r["probabilities"] for r in rows], [r["probabilities"] for r in ref], atol=1e-5)
