"""Detection and segmentation files in the C++ and Node.js examples: the same boxes as Python's runtime.

For SSDlite exported at 160x160 with NMS in the graph and with NMS on the host (the examples' own per-class greedy
NMS, examples/cpp/src/tasks.cpp and examples/js/edgecnn.mjs), each example's detections on two pictures must match
``edgecnn.runtime.vision.detection`` + ``to_image`` (what ``predict`` prints, before rounding): the same count, the
same labels in the same order, IoU >= 0.999 box by box and scores within 1e-4; boxes are in the picture's own
pixels (a stretch resize). For LR-ASPP at 128x128 each class's share of the pixels must equal Python's within 1e-3.
Measured figures go to artifacts/embed_detection.json.

Needs the toolchains of tests/test_embed_parity.py (``tools/setup_parity.sh``); without them these tests skip,
unless EDGECNN_REQUIRE_PARITY=1, where they fail.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_embed_parity import ARTIFACTS, RUNNERS, check_toolchain, synthetic_image

pytestmark = pytest.mark.parity

MIN_IOU, MAX_SCORE_DIFF, MAX_SHARE_DIFF = 0.999, 1e-4, 1e-3
IMAGES = {"land.ppm": (97, 71, 0), "tall.ppm": (60, 200, 3)}
MEASURED: dict[str, dict] = {}


@pytest.fixture(scope="module")
def files(exported, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """SSDlite at 160x160 (graph and host NMS), LR-ASPP at 128x128, and two pictures."""
    pytest.importorskip("torch")
    from PIL import Image

    d = tmp_path_factory.mktemp("embed_det")
    for name, (w, h, seed) in IMAGES.items():
        Image.fromarray(synthetic_image(w, h, seed)).save(d / name)
    ssd = "ssdlite320_mobilenet_v3_large"
    return {"dir": d,
            "graph": Path(exported(ssd, input_size=(160, 160), nms="graph").path),
            "host": Path(exported(ssd, input_size=(160, 160), nms="host").path),
            "segmentation": Path(exported("lraspp_mobilenet_v3_large", input_size=(128, 128)).path)}


@pytest.fixture(scope="module", autouse=True)
def write_measurements():
    yield
    if MEASURED:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "embed_detection.json").write_text(json.dumps(MEASURED, indent=2, sort_keys=True))


def python_detections(model: Path, image: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Python's boxes (image pixels, unrounded), scores and labels, best first."""
    from edgecnn.runtime import Engine, load_images
    from edgecnn.runtime.images import open_image
    from edgecnn.runtime.vision import detection as D

    engine = Engine(model, provider="cpu")
    config = engine.preprocess_config()
    pil = open_image(image, config.channels)
    det = D.detections(engine.run_named(load_images([pil], config)), engine.metadata, 1)[0]
    det = D.to_image(det, config.input_size, pil.size)
    return det.boxes, det.scores, det.labels


def run_example(runtime: str, model: Path, image: Path, *extra: str) -> dict:
    p = subprocess.run(RUNNERS[runtime](model, image, *extra), capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("runtime", ["cpp", "node"])
@pytest.mark.parametrize("nms", ["graph", "host"])
def test_detections_match_python(files: dict, runtime: str, nms: str) -> None:
    from edgecnn.boxes import box_iou

    check_toolchain(runtime)
    worst_iou, worst_score, counts = 1.0, 0.0, []
    for name in IMAGES:
        boxes, scores, labels = python_detections(files[nms], files["dir"] / name)
        out = run_example(runtime, files[nms], files["dir"] / name, "--min-score", "0")
        assert out["task"] == "detection" and out["nms"] == nms
        got = out["detections"]
        assert len(got) == len(scores) > 0, f"{runtime} found {len(got)} boxes, Python {len(scores)} on {name}"
        assert [d["index"] for d in got] == labels.tolist(), f"{runtime} labels or order differ on {name}"
        iou = np.diag(box_iou(boxes, np.array([d["box"] for d in got])))
        diff = float(np.abs(np.array([d["score"] for d in got]) - scores).max())
        assert iou.min() >= MIN_IOU, f"{runtime} box IoU {iou.min():.6f} < {MIN_IOU} on {name}"
        assert diff <= MAX_SCORE_DIFF, f"{runtime} scores differ by {diff:.2e} on {name}"
        assert out["size"] == list(synthetic_image(*IMAGES[name]).shape[1::-1])
        worst_iou, worst_score = min(worst_iou, float(iou.min())), max(worst_score, diff)
        counts.append(len(got))
    MEASURED.setdefault(runtime, {})[f"detection_{nms}"] = {"counts": counts, "min_iou": worst_iou,
                                                            "max_score_diff": worst_score}


@pytest.mark.parametrize("runtime", ["cpp", "node"])
def test_min_score_filters_like_predict(files: dict, runtime: str) -> None:
    """``--min-score`` keeps the boxes ``predict --min-score`` keeps (scores >= it), in the same order."""
    check_toolchain(runtime)
    image = files["dir"] / "land.ppm"
    _, scores, _ = python_detections(files["host"], image)
    cut = float(np.sort(scores)[::-1][9])  # the 10th best score: at least 10 boxes stay
    out = run_example(runtime, files["host"], image, "--min-score", repr(cut))
    assert len(out["detections"]) == int((scores >= np.float32(cut)).sum()) >= 10


@pytest.mark.parametrize("runtime", ["cpp", "node"])
def test_segmentation_shares_match_python(files: dict, runtime: str) -> None:
    from edgecnn.runtime import Engine
    from edgecnn.runtime.vision.run import predict_task

    check_toolchain(runtime)
    worst = 0.0
    for name in IMAGES:
        ref = predict_task(Engine(files["segmentation"], provider="cpu"), [files["dir"] / name])[0]["classes"]
        out = run_example(runtime, files["segmentation"], files["dir"] / name)
        assert out["task"] == "segmentation"
        want = {c["index"]: c["share"] for c in ref}
        got = {c["index"]: c["share"] for c in out["classes"]}
        assert set(got) == set(want), f"{runtime} finds classes {sorted(got)}, Python {sorted(want)} on {name}"
        diff = max(abs(got[k] - want[k]) for k in want)
        assert diff <= MAX_SHARE_DIFF, f"{runtime} pixel shares differ by {diff:.2e} on {name}"
        worst = max(worst, diff)
    MEASURED.setdefault(runtime, {})["segmentation_max_share_diff"] = worst


@pytest.mark.parametrize("runtime", ["cpp", "node"])
def test_letterbox_and_unknown_resize_are_refused(files: dict, runtime: str, tmp_path: Path) -> None:
    """What the examples cannot do stops them at load with one line: a letterbox, an unknown resize or task, another
    box format, a foreign head."""
    import onnx

    check_toolchain(runtime)
    for key, value, needle in [("letterbox", "true", "letterbox"), ("resize", "pad", "'pad' resizing"),
                               ("task", "pose", "unknown edgecnn.task 'pose'"),
                               ("box_format", "cxcywh", "box_format"),
                               ("head", '{"kind": "yolo", "layout": "cn"}', "foreign detection head")]:
        model = onnx.load(str(files["graph"]))
        props = {p.key: p.value for p in model.metadata_props}
        props[f"edgecnn.{key}"] = value
        del model.metadata_props[:]
        for k, v in props.items():
            model.metadata_props.add(key=k, value=v)
        path = tmp_path / f"refuse-{key}.onnx"
        onnx.save(model, str(path))
        p = subprocess.run(RUNNERS[runtime](path, files["dir"] / "land.ppm"), capture_output=True, text=True,
                           timeout=120)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 1 and p.stdout == "" and len(lines) == 1, p.stderr
        assert lines[0].startswith("error: ") and needle in lines[0], p.stderr


@pytest.fixture(scope="module")
def tight(files: dict) -> Path:
    """The host-NMS file with other thresholds in its edgecnn.nms (the examples must read them, not torchvision's
    defaults): score > 0.02, the best 20 per class, IoU 0.3 (suppresses about a quarter of the candidates on
    these pictures), at most 300 per image."""
    import onnx

    model = onnx.load(str(files["host"]))
    for p in model.metadata_props:
        if p.key == "edgecnn.nms":
            p.value = json.dumps({"placement": "host", "score_threshold": 0.02, "iou_threshold": 0.3,
                                  "topk_candidates": 20, "detections_per_image": 300})
    path = files["dir"] / "tight.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("runtime", ["cpp", "node"])
def test_host_nms_reads_the_files_thresholds(files: dict, tight: Path, runtime: str) -> None:
    from edgecnn.boxes import box_iou
    from edgecnn.runtime import Engine, load_images

    check_toolchain(runtime)
    engine = Engine(tight, provider="cpu")
    for name in IMAGES:
        scores = engine.run_named(load_images([files["dir"] / name], engine.preprocess_config()))["scores"][0]
        candidates = int(np.minimum((scores[:, 1:] > np.float32(0.02)).sum(0), 20).sum())
        boxes, ref_scores, labels = python_detections(tight, files["dir"] / name)
        assert 0 < len(ref_scores) < min(candidates, 300), "NMS suppressed nothing: the test proves nothing"
        got = run_example(runtime, tight, files["dir"] / name, "--min-score", "0")["detections"]
        assert len(got) == len(ref_scores), f"{runtime}: {len(got)} boxes, Python {len(ref_scores)} on {name}"
        assert [d["index"] for d in got] == labels.tolist()
        assert np.diag(box_iou(boxes, np.array([d["box"] for d in got]))).min() >= MIN_IOU
        assert np.abs(np.array([d["score"] for d in got]) - ref_scores).max() <= MAX_SCORE_DIFF


def _tie_file(path: Path) -> Path:
    """A host-NMS 'detector' whose outputs are constants full of exact ties: 12 anchors, anchor 2j+1's box anchor
    2j's moved right by 1 px (IoU 0.78: NMS keeps one of the two); class 1 scores 0.7 on anchors 2 and 6, 0.5 on
    most others (more than topk_candidates = 5 can keep), class 2 scores 0.5 on anchors 0 and 3. Which tied anchors
    enter the top 5, and which of two overlapping boxes NMS keeps, depend on the order of ties: a stable sort by
    score (lower anchor first), as torchvision's CPU NMS kernel sorts."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    a, c = 12, 3
    boxes = np.array([[[10.0 * (i // 2) + i % 2, 0, 10.0 * (i // 2) + i % 2 + 8, 8] for i in range(a)]], np.float32)
    scores = np.zeros((1, a, c), np.float32)
    scores[0, :, 1] = [0.5, 0.5, 0.7, 0.5, 0.5, 0.5, 0.7, 0.5, 0.5, 0.5, 0.3, 0.5]
    scores[0, :, 2] = [0.5, 0.2, 0.2, 0.5, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["boxes"], value=numpy_helper.from_array(boxes)),
         helper.make_node("Constant", [], ["scores"], value=numpy_helper.from_array(scores))],
        "ties", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, a, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, a, c])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"task": "detection", "resize": "stretch", "box_format": "xyxy", "input_size": "[8, 8]", "channels": "3",
            "input_layout": "NCHW", "mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.5, 0.5]",
            "outputs": json.dumps([{"name": n, "role": n, "batch": True} for n in ("boxes", "scores")]),
            "nms": json.dumps({"placement": "host", "score_threshold": 0.1, "iou_threshold": 0.5,
                               "topk_candidates": 5, "detections_per_image": 6})}
    for k, v in meta.items():
        model.metadata_props.add(key=f"edgecnn.{k}", value=v)
    onnx.save(model, str(path))
    return path


#: worked by hand: class 1 keeps the top 5 [2, 6, 0, 1, 3] -> NMS drops 1 (overlaps 0) and 3 (overlaps 2);
#: class 2's top 5 [0, 3, 1, 2, 4] -> NMS drops 1 and 2 (x1 11 is anchor 3); then the best 6 by score, class 1
#: first on ties. An unstable order (numpy's partition alone puts anchor 1 before 0) keeps x1 1 instead of 0.
TIES_WANT = {"x1": [10.0, 30.0, 0.0, 0.0, 11.0, 20.0], "score": [0.7, 0.7, 0.5, 0.5, 0.5, 0.2],
             "label": [1, 1, 1, 2, 2, 2]}


def test_ties_python_reference(tmp_path: Path) -> None:
    """Python's host NMS breaks ties by anchor (a stable top-k), whatever numpy's partition returns."""
    from edgecnn.runtime import Engine
    from edgecnn.runtime.vision import detection as D

    engine = Engine(_tie_file(tmp_path / "ties.onnx"), provider="cpu")
    det = D.detections(engine.run_named(np.zeros((1, 3, 8, 8), np.float32)), engine.metadata, 1)[0]
    assert det.boxes[:, 0].tolist() == TIES_WANT["x1"] and det.labels.tolist() == TIES_WANT["label"]
    np.testing.assert_allclose(det.scores, TIES_WANT["score"], rtol=1e-6)


@pytest.mark.parametrize("runtime", ["cpp", "node"])
def test_ties_are_broken_like_python(files: dict, runtime: str, tmp_path: Path) -> None:
    check_toolchain(runtime)
    got = run_example(runtime, _tie_file(tmp_path / "ties.onnx"), files["dir"] / "land.ppm", "--min-score", "0")
    dets = got["detections"]
    w, h = got["size"]  # boxes are mapped to the 97x71 picture: undo that to compare with the 8x8 input's
    assert [round(d["box"][0] * 8 / w, 4) for d in dets] == TIES_WANT["x1"]
    assert [d["index"] for d in dets] == TIES_WANT["label"]
    np.testing.assert_allclose([d["score"] for d in dets], TIES_WANT["score"], rtol=1e-6)
