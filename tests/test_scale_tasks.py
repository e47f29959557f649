"""Detection and segmentation files in ``batch-predict`` (local and Ray) and ``triton``.

batch-predict writes one row per box (path, class, label, score, x1, y1, x2, y2 in the image's pixels) or per class
present (path, class, label, share), post-processed by ``edgecnn.runtime.vision.run`` as ``predict`` is; the rows
must equal Python's detections (boxes within 1e-4 px, scores within 1e-6) in .jsonl and .parquet alike, and the Ray
path must write the same rows as the local one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli as _run
from test_scale_batch_predict import make_images

from edgecnn.scale.local import TASK_COLUMNS, batch_predict, read_results

SSD = "ssdlite320_mobilenet_v3_large"
HAS_RAY = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("pyarrow") is not None


@pytest.fixture(scope="module")
def files(exported, tmp_path_factory: pytest.TempPathFactory) -> dict:
    pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("scale_tasks")
    return {"dir": d / "images", "rel": make_images(d / "images", 6, seed=3), "tmp": d,
            "graph": Path(exported(SSD, input_size=(160, 160), nms="graph").path),
            "host": Path(exported(SSD, input_size=(160, 160), nms="host").path),
            "segmentation": Path(exported("lraspp_mobilenet_v3_large", input_size=(128, 128)).path)}


def reference(model: Path, folder: Path, rel: list[str], min_score: float) -> list[dict]:
    """Python's rows: detect() (to the image's pixels) then scores >= min_score, per image in path order."""
    from edgecnn.runtime import Engine
    from edgecnn.runtime.images import open_image
    from edgecnn.runtime.vision.run import above, detect

    engine = Engine(model, provider="cpu")
    rows = []
    for p in rel:
        det = above(detect(engine, [open_image(folder / p, 3)])[0], min_score)
        rows += [{"path": p, "class": int(c), "score": float(s), "box": b.tolist()}
                 for b, s, c in zip(det.boxes, det.scores, det.labels, strict=True)]
    return rows


def check_detection_rows(rows: list[dict], ref: list[dict]) -> None:
    assert len(rows) == len(ref) > 0
    for r, want in zip(rows, ref, strict=True):
        assert set(r) == set(TASK_COLUMNS["detection"])
        assert r["path"] == want["path"] and r["class"] == want["class"] and r["label"]
        assert abs(r["score"] - want["score"]) <= 1e-6
        np.testing.assert_allclose([r["x1"], r["y1"], r["x2"], r["y2"]], want["box"], atol=1e-4)


@pytest.mark.parametrize("nms", ["graph", "host"])
def test_local_detection_rows_match_python(files: dict, nms: str, tmp_path: Path) -> None:
    ref = reference(files[nms], files["dir"], files["rel"], 0.01)
    res = batch_predict(files[nms], files["dir"], tmp_path / "r.jsonl", batch=4, progress=False, min_score=0.01)
    assert res.images == len(files["rel"])
    check_detection_rows(read_results(tmp_path / "r.jsonl"), ref)
    if importlib.util.find_spec("pyarrow") is not None:
        batch_predict(files[nms], files["dir"], tmp_path / "r.parquet", batch=3, progress=False, min_score=0.01)
        check_detection_rows(read_results(tmp_path / "r.parquet"), ref)


def test_local_segmentation_rows_are_class_shares(files: dict, tmp_path: Path) -> None:
    from edgecnn.runtime import Engine
    from edgecnn.runtime.vision.run import predict_task

    code_rows = batch_predict(files["segmentation"], files["dir"], tmp_path / "s.jsonl", batch=4, progress=False)
    assert code_rows.images == len(files["rel"])
    rows = read_results(tmp_path / "s.jsonl")
    ref = predict_task(Engine(files["segmentation"], provider="cpu"), [files["dir"] / p for p in files["rel"]])
    want = [{"path": p, "class": c["index"], "label": c["label"], "share": c["share"]}
            for p, r in zip(files["rel"], ref, strict=True) for c in r["classes"]]
    assert rows == want
    for p in files["rel"]:  # the shares of one image sum to 1
        assert abs(sum(r["share"] for r in rows if r["path"] == p) - 1) < 1e-9


def test_cli_min_score_and_formats(files: dict, capsys, tmp_path: Path) -> None:
    out = tmp_path / "cli.jsonl"
    code, text, err = _run(capsys, "batch-predict", str(files["host"]), str(files["dir"]), "-o", str(out),
                           "--min-score", "0.02", "--no-progress")
    assert code == 0, err
    assert f"{len(files['rel'])} images" in text
    rows = read_results(out)
    assert rows and min(r["score"] for r in rows) >= np.float32(0.02)
    check_detection_rows(rows, reference(files["host"], files["dir"], files["rel"], 0.02))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="ray[data] and pyarrow are not installed (pip install 'edgecnn[ray]')")
@pytest.mark.parametrize("model", ["graph", "segmentation"])
def test_ray_rows_equal_local(files: dict, capsys, model: str) -> None:
    import ray

    local, remote = files["tmp"] / f"{model}-local.parquet", files["tmp"] / f"{model}-ray.parquet"
    args = ["batch-predict", str(files[model]), str(files["dir"]), "--no-progress", "--batch", "4",
            *(["--min-score", "0.01"] if model == "graph" else [])]
    code, _, err = _run(capsys, *args, "-o", str(local))
    assert code == 0, err
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        code, text, err = _run(capsys, *args, "-o", str(remote), "--ray", "--concurrency", "1")
    finally:
        ray.shutdown()
    assert code == 0, err
    assert f"{len(files['rel'])} images" in text
    key = (lambda r: (r["path"], -r["score"], r["class"])) if model == "graph" else (lambda r: (r["path"], r["class"]))
    a, b = sorted(read_results(local), key=key), sorted(read_results(remote), key=key)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys() and x["path"] == y["path"] and x["class"] == y["class"]
        for k in set(x) - {"path", "class", "label"}:
            assert abs(x[k] - y[k]) <= 1e-4, (k, x, y)


# ---------------------------------------------------------------------------------------- triton

def _config(files: dict, kind: str, tmp_path: Path, **options):
    """write_triton_repo + config.pbtxt parsed strictly by Triton's own ModelConfig (tritonclient's pb2)."""
    from test_scale_triton import _model_config_pb2, parse

    from edgecnn.scale.triton import write_triton_repo

    pb2 = _model_config_pb2()
    repo = write_triton_repo(files[kind], tmp_path / "repo", name=f"m_{kind}", **options)
    return pb2, parse(pb2, repo.config_file), repo


def test_triton_graph_nms_is_not_batched_by_triton(files: dict, tmp_path: Path) -> None:
    """Graph NMS: the outputs are the request's detections (K, not the batch): max_batch_size 0, full dims, the
    batch as -1, no dynamic batcher; every output listed with its type."""
    pb2, c, repo = _config(files, "graph", tmp_path)
    assert c.max_batch_size == 0 and c.WhichOneof("scheduling_choice") is None
    assert [(i.name, list(i.dims)) for i in c.input] == [("input", [-1, 3, 160, 160])]
    t = pb2.DataType.Value
    assert [(o.name, o.data_type, list(o.dims)) for o in c.output] == [
        ("boxes", t("TYPE_FP32"), [-1, 4]), ("scores", t("TYPE_FP32"), [-1]),
        ("labels", t("TYPE_INT64"), [-1]), ("batch_index", t("TYPE_INT64"), [-1])]
    assert repo.model_file.read_bytes() == files["graph"].read_bytes()


def test_triton_host_nms_and_segmentation_are_batched(files: dict, tmp_path: Path) -> None:
    pb2, c, _ = _config(files, "host", tmp_path, max_batch_size=8)
    assert c.max_batch_size == 8 and c.WhichOneof("scheduling_choice") == "dynamic_batching"
    dims = {o.name: list(o.dims) for o in c.output}
    assert set(dims) == {"boxes", "scores"} and dims["boxes"][1] == 4 and dims["scores"][1] == 91
    assert dims["boxes"][0] == dims["scores"][0] > 0  # the anchors
    pb2, c, _ = _config(files, "segmentation", tmp_path)
    assert c.max_batch_size == 32 and [i.dims[:] for i in c.input] == [[3, 128, 128]]
    assert [o.name for o in c.output] == ["masks"] and len(c.output[0].dims) == 3  # (C, H, W), dynamic as -1


def test_triton_graph_nms_refuses_max_batch_size(files: dict, capsys, tmp_path: Path) -> None:
    for extra in (["--max-batch-size", "8"], ["--preferred-batch", "2"]):
        code, _, err = _run(capsys, "triton", str(files["graph"]), str(tmp_path / "repo"), *extra)
        lines = err.strip().splitlines()
        assert code != 0 and len(lines) == 1 and lines[0].startswith("error: "), err
        assert "not batched" in lines[0]
    assert not (tmp_path / "repo").exists()


def test_cli_options_of_another_task_are_one_line_errors(files: dict, capsys, tmp_path: Path) -> None:
    from onnx_factory import make_classifier

    tiny = make_classifier(tmp_path / "tiny.onnx")
    cases = [(files["graph"], ["--top", "3"], "--top ranks a classifier's classes"),
             (files["segmentation"], ["--min-score", "0.5"], "--min-score filters a detector's boxes"),
             (tiny, ["--min-score", "0.5"], "--min-score filters a detector's boxes")]
    for model, extra, needle in cases:
        out = tmp_path / "x.jsonl"
        code, _, err = _run(capsys, "batch-predict", str(model), str(files["dir"]), "-o", str(out), *extra,
                            "--no-progress")
        lines = err.strip().splitlines()
        assert code != 0 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
        assert not out.exists()
