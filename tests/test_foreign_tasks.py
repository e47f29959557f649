"""Detection and segmentation files from elsewhere (issue 23, item 1): each output kind is recognised and said,
decoded to the known boxes, masks and class maps it holds, and every command that takes a file takes the overrides
and never traces back on any kind. Files are built with ``onnx.helper`` (tests/task_files.py) and from the
torchvision zoo models exported by plain ``torch.onnx``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import task_files as T
from cli_helpers import run_cli
from PIL import Image

from edgecnn import metadata as M
from edgecnn.cli import cli
from edgecnn.errors import EdgecnnError
from edgecnn.modelfile import prepare
from edgecnn.runtime.engine import Engine
from edgecnn.runtime.images import PreprocessConfig, letterbox_geometry, load_images
from edgecnn.runtime.vision import detection as D
from edgecnn.runtime.vision.recognize import OutputInfo, Overrides, anchor_counts, from_metadata, recognize

#: boxes and scores are copied constants: float32 arithmetic only
ATOL = 1e-4
TASK_OF = {k: "segmentation" if k == "logits" else "detection" for k in T.KINDS}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tasks")
    out = {kind: T.write(kind, folder) for kind in T.KINDS}
    for name, make in (("ambiguous", T.ambiguous_model), ("unknown", T.unknown_model)):
        out[name] = folder / f"{name}.onnx"
        onnx.save(make(), str(out[name]))
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageFolder of two 60 x 40 RGB images (a shape no test model takes: letterboxed with padding)."""
    root = tmp_path_factory.mktemp("task_images")
    rng = np.random.default_rng(3)
    for c in ("0", "1"):
        (root / c).mkdir()
        Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(root / c / "a.png")
    return root


def _decode(path: Path, **overrides) -> D.Detections:
    prepared = prepare(path, preprocess=overrides)
    engine = Engine(prepared.path)
    outs = engine.run_named(np.zeros((1, 3, T.H, T.W), np.float32))
    return D.detections(outs, engine.metadata, 1)[0]


def _check(det: D.Detections, expected: list[tuple]) -> None:
    e = np.array(expected, dtype=np.float64).reshape(-1, 6)
    np.testing.assert_allclose(det.boxes, e[:, :4], atol=ATOL)
    assert det.labels.tolist() == e[:, 4].astype(int).tolist()
    np.testing.assert_allclose(det.scores, e[:, 5], atol=ATOL)


# --------------------------------------------------------------------------- recognition


@pytest.mark.parametrize("kind", list(T.KINDS))
def test_each_kind_is_recognised_and_said(files, kind):
    spec = prepare(files[kind], write=False).spec
    assert spec.task is not None and spec.task.kind == T.HEAD_OF[kind] and spec.task.task == TASK_OF[kind]
    lines = spec.lines()
    assert any(line.startswith(f"detected: head {T.HEAD_OF[kind]}") for line in lines), lines
    assert any(line.startswith("assumed: ") for line in lines)  # what was assumed is said, with its option


def test_yolo_layouts_and_objectness_come_from_the_anchor_count():
    free, based = anchor_counts((T.H, T.W))
    assert (free, based) == (252, 756) == (T.ANCHORS, 3 * T.ANCHORS)
    size = (T.H, T.W)
    v8 = recognize([OutputInfo("output0", (1, 84, free))], input_size=size)
    assert v8.head == {"kind": "yolo", "layout": "cn", "objectness": False, "masks": 0} and v8.num_classes == 80
    v5 = recognize([OutputInfo("output", (1, based, 85))], input_size=size)
    assert v5.head == {"kind": "yolov5", "layout": "nc", "objectness": True, "masks": 0} and v5.num_classes == 80
    seg = recognize([OutputInfo("output0", (1, 116, free)), OutputInfo("output1", (1, 32, 24, 32))], input_size=size)
    assert seg.head["kind"] == "yolo_seg" and seg.head["masks"] == 32 and seg.num_classes == 80
    assert seg.roles == {"output1": "protos", "output0": "head"}


def test_classifier_outputs_are_left_to_the_classifier_path():
    size = (224, 224)
    assert recognize([OutputInfo("logits", ("N", 1000))], input_size=size, batch="N") is None
    assert recognize([OutputInfo("prob", (1, 1000, 1, 1))], input_size=size) is None
    assert recognize([OutputInfo("prob", ("N", 7))], input_size=size, batch="N") is None  # 7 classes, not rows
    assert recognize([OutputInfo("out", (1, 84, T.ANCHORS))], input_size=(T.H, T.W),
                     overrides=Overrides(task="classification")) is None


@pytest.mark.parametrize(("make", "message"), [
    (T.ambiguous_model, "rows and columns of [84, 84] cannot be told apart"),
    (T.unknown_model, "too few columns for a box and a class"),
])
def test_unrecognisable_files_are_one_line_naming_the_options(capsys, files, make, message):
    path = files["ambiguous" if make is T.ambiguous_model else "unknown"]
    code, out, err = run_cli(capsys, "predict", path, "x.png")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert all(opt in lines[0] for opt in ("--task", "--head", "--box-format"))


def test_an_override_settles_the_ambiguous_file(capsys, files):
    code, out, err = run_cli(capsys, "inspect", files["ambiguous"], "--head", "yolo", "--json")
    spec = json.loads(out)["task_spec"]
    assert code == 0 and spec["head"] == {"kind": "yolo", "layout": "cn", "objectness": False, "masks": 0}
    assert "head yolo" in spec["given"] and spec["num_classes"] == 80


def test_torch_onnx_names_and_shapes_with_boxes_named_like_scores_are_read_by_role():
    both4 = [OutputInfo("bboxes", (1, 50, 4)), OutputInfo("confidences", (1, 50, 4))]
    spec = recognize(both4, input_size=(T.H, T.W))
    assert spec.kind == "ssd" and spec.roles == {"bboxes": "boxes", "confidences": "scores"}
    with pytest.raises(EdgecnnError, match="cannot tell"):
        recognize([OutputInfo("a", (1, 50, 4)), OutputInfo("b", (1, 50, 4))], input_size=(T.H, T.W))


# --------------------------------------------------------------------------- decoding, number by number


@pytest.mark.parametrize("kind", ["yolo", "yolo_rows", "yolov5", "yolo_seg"])
def test_yolo_heads_decode_with_class_wise_nms(files, kind):
    _check(_decode(files[kind]), T.YOLO_EXPECTED)


def test_yolo_thresholds_override_the_nms(files):
    # IoU 0.747 between the two class-1 boxes: kept at --iou-threshold 0.8
    cx, cy, w, h, c, s = T.YOLO_BOXES[1]
    kept = sorted([*T.YOLO_EXPECTED, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, c, s)], key=lambda r: -r[5])
    _check(_decode(files["yolo"], iou_threshold=0.8), kept)
    _check(_decode(files["yolo"], score_threshold=0.65), T.YOLO_EXPECTED[:2])


def test_box_format_override_reads_corners(files):
    det = _decode(files["yolo"], box_format="xyxy")
    assert det.boxes[0].tolist() == [30, 30, 20, 20]  # the raw numbers, read as x1, y1, x2, y2


def test_yolo_seg_masks_are_the_prototype_inside_each_box(files):
    det = _decode(files["yolo_seg"])
    assert det.masks is not None and det.masks.shape == (3, T.H, T.W)
    # prototype 0 is on for x < W/2 = 64: the two boxes left of it are filled, the one right of it is empty
    assert [int(m.sum()) for m in det.masks] == [400, 400, 0]
    assert det.masks[0, 20:40, 20:40].all() and not det.masks[0, :20].any()


def test_ssd_boxes_and_scores_with_a_background_column(files):
    _check(_decode(files["ssd"]), [(10, 10, 50, 40, 2, 0.9), (70, 30, 120, 90, 3, 0.7)])


def test_ssd_boxes_on_0_1_are_scaled_to_input_pixels(tmp_path):
    path = tmp_path / "ssd01.onnx"
    onnx.save(T.ssd_model(normalised=True), str(path))
    _check(_decode(path), [(10, 10, 50, 40, 2, 0.9), (70, 30, 120, 90, 3, 0.7)])


@pytest.mark.parametrize("kind", ["torchvision", "nms_rows6", "nms_rows7"])
def test_nms_in_graph_rows_are_read_as_they_are(files, kind):
    _check(_decode(files[kind]), [(x1, y1, x2, y2, c, s) for x1, y1, x2, y2, c, s in T.ROWS])


def test_segmentation_logits_give_the_class_map(capsys, files, images):
    code, out, _ = run_cli(capsys, "predict", files["logits"], images / "0" / "a.png", "--json")
    classes = json.loads(out)["results"][0]["classes"]
    assert code == 0 and {c["index"]: c["share"] for c in classes} == pytest.approx({3: 0.5, 0: 0.5})


# --------------------------------------------------------------------------- letterbox


def test_letterbox_preprocessing_pads_with_grey_and_keeps_the_aspect(images):
    config = PreprocessConfig(input_size=(T.H, T.W), mean=(0.0,) * 3, std=(1.0,) * 3, crop_fraction=None,
                              letterbox=True)
    gain, left, top, new_w, new_h = letterbox_geometry((60, 40), (T.H, T.W))
    assert (round(gain, 4), left, top, new_w, new_h) == (2.1333, 0, 5, 128, 85)  # 60x40 -> 128x85, 5 rows on top
    x = load_images([images / "0" / "a.png"], config)[0]
    np.testing.assert_allclose(x[:, :top], 114 / 255, atol=1e-6)
    np.testing.assert_allclose(x[:, top + new_h:], 114 / 255, atol=1e-6)
    assert np.abs(x[:, top:top + new_h] - 114 / 255).max() > 0.1


def test_letterbox_undo_maps_a_known_box_exactly():
    gain, left, top, _, _ = letterbox_geometry((60, 40), (T.H, T.W))
    image_box = np.array([[6.0, 4.0, 30.0, 36.0]], np.float32)
    input_box = image_box * gain + np.array([left, top, left, top], np.float32)
    det = D.Detections(input_box, np.ones(1, np.float32), np.zeros(1, np.int64))
    np.testing.assert_allclose(D.to_image(det, (T.H, T.W), (60, 40), letterbox=True).boxes, image_box, atol=ATOL)
    # the positional form (stretch) is unchanged
    np.testing.assert_allclose(D.to_image(det, (T.H, T.W), (60, 40)).boxes,
                               input_box * np.array([60 / 128, 40 / 96] * 2, np.float32), atol=ATOL)


def test_predict_boxes_are_in_the_original_images_pixels(capsys, files, images):
    code, out, _ = run_cli(capsys, "predict", files["yolo"], images / "0" / "a.png", "--min-score", "0.25", "--json")
    got = json.loads(out)["results"][0]
    gain, left, top, _, _ = letterbox_geometry((60, 40), (T.H, T.W))
    want = [[(v - (left, top)[i % 2]) / gain for i, v in enumerate(r[:4])] for r in T.YOLO_EXPECTED]
    assert code == 0 and got["size"] == [60, 40]
    np.testing.assert_allclose([d["box"] for d in got["detections"]], want, atol=0.051)  # rows round to 0.1 px
    code, out, _ = run_cli(capsys, "predict", files["yolo"], images / "0" / "a.png", "--no-letterbox", "--json")
    stretch = [[v * s for v, s in zip(r[:4], (60 / 128, 40 / 96) * 2, strict=True)] for r in T.YOLO_EXPECTED]
    np.testing.assert_allclose([d["box"] for d in json.loads(out)["results"][0]["detections"]], stretch, atol=0.051)


def test_yolo_seg_predict_reports_mask_areas_in_the_image(capsys, files, images):
    code, out, _ = run_cli(capsys, "predict", files["yolo_seg"], images / "0" / "a.png", "--json")
    dets = json.loads(out)["results"][0]["detections"]
    # 20 x 20 input pixels at gain 128/60 are about 9.4 x 9.4 image pixels; the third box lies right of the mask
    assert code == 0 and [d["mask_pixels"] > 0 for d in dets] == [True, True, False]
    assert 70 <= dets[0]["mask_pixels"] <= 100


# --------------------------------------------------------------------------- metadata and saved choices


def test_metadata_schema_takes_the_new_values():
    assert M.value_problem("box_format", "cxcywh") is None and M.value_problem("resize", "letterbox") is None
    assert M.value_problem("head", {"kind": "yolo", "layout": "cn", "objectness": False, "masks": 0}) is None
    assert "expected" in M.value_problem("head", {"kind": "retina"})
    assert "layout" in M.value_problem("head", {"kind": "yolo", "layout": "hw"})
    assert M.value_problem("box_format", "xywh") is not None


def test_save_metadata_then_metadata_wins_and_overrides_still_apply(capsys, files, tmp_path):
    saved = tmp_path / "yolo.edgecnn.onnx"
    code, out, _ = run_cli(capsys, "inspect", files["yolo"], "--save-metadata", "-o", saved, "--iou-threshold", "0.8")
    assert code == 0 and "given: IoU threshold 0.8" in out
    meta = M.decode({p.key: p.value for p in onnx.load(str(saved)).metadata_props})
    assert meta["task"] == "detection" and meta["head"]["kind"] == "yolo" and meta["resize"] == "letterbox"
    assert meta["box_format"] == "cxcywh" and meta["nms"]["iou_threshold"] == 0.8
    code, out, _ = run_cli(capsys, "inspect", saved)
    assert "head yolo (file metadata)" in out and "assumed: boxes centre" not in out
    assert len(_decode(saved)) == 4  # 0.8 saved: the overlapping class-1 box stays
    assert len(_decode(saved, iou_threshold=0.7)) == 3  # an override still overrides


def test_from_metadata_changes_only_what_is_overridden():
    meta = {"task": "detection", "nms": {"placement": "graph", "score_threshold": 0.001, "iou_threshold": 0.55},
            "outputs": [{"name": "boxes", "role": "boxes", "batch": False}]}
    assert from_metadata(meta).metadata() == {}
    spec = from_metadata(meta, Overrides(score_threshold=0.3))
    assert spec.metadata() == {"nms": {"placement": "graph", "score_threshold": 0.3, "iou_threshold": 0.55}}
    assert spec.kind == "edgecnn"


# --------------------------------------------------------------------------- every command, every kind


COMMANDS = ["inspect", "profile", "bench", "predict", "evaluate", "quantize", "triton", "batch-predict", "convert"]
OVERRIDES = ("--score-threshold", "0.01", "--iou-threshold", "0.5")


def _args(command: str, images: Path, tmp: Path) -> tuple:
    return {"inspect": (), "profile": (), "bench": ("--iters", "1", "--warmup", "0", "--peak-gflops", "1"),
            "predict": (images / "0" / "a.png",), "evaluate": ("--data", images, "--limit", "2"),
            "quantize": ("--calib", "random:2", "-o", tmp / "q.onnx"), "triton": (tmp / "repo",),
            "batch-predict": (images, "-o", tmp / "r.jsonl", "--no-progress"), "convert": ("-o", tmp / "ort")}[command]


def test_every_file_command_declares_the_overrides():
    for name in [*COMMANDS, "optimize", "bundle"]:
        opts = {o for p in cli.commands[name].params for o in p.opts}
        assert {"--task", "--head", "--box-format", "--letterbox", "--score-threshold", "--iou-threshold"} <= opts, name


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_every_kind_without_a_traceback(capsys, files, images, tmp_path, command):
    for kind in [*T.KINDS, "ambiguous", "unknown"]:
        out_dir = tmp_path / kind
        out_dir.mkdir()
        code, out, err = run_cli(capsys, command, files[kind], *_args(command, images, out_dir), *OVERRIDES)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert "Traceback" not in err, (kind, err)
        if kind in T.KINDS and command in ("inspect", "profile", "bench", "predict", "triton", "convert",
                                           "batch-predict"):
            assert code == 0, (kind, err)
        else:  # not recognisable, or a task the command does not handle yet: one line
            assert code in (0, 2) and (code == 0 or len(errors) == 1), (kind, err)
        if kind in ("ambiguous", "unknown"):
            assert code == 2 and "--head" in errors[0], (kind, err)


def test_predict_on_several_images_of_a_one_image_file(capsys, files, images):
    code, out, err = run_cli(capsys, "predict", files["torchvision"], images / "0" / "a.png", images / "1" / "a.png",
                             "--json")
    results = json.loads(out)["results"]
    assert code == 0 and [len(r["detections"]) for r in results] == [2, 2]  # 0.95, 0.5 >= 0.25 > 0.2


# --------------------------------------------------------------------------- torchvision zoo files, plain torch.onnx


@pytest.fixture(scope="module")
def zoo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SSDlite and LR-ASPP from edgecnn's zoo, eval mode, 160 x 160, exported by ``torch.onnx`` as a user would:
    no edgecnn metadata, torch's own output names (numbers) for the detector, 'out' for the segmenter."""
    torch = pytest.importorskip("torch")
    from edgecnn.models import create_model
    from edgecnn.models._torchvision import torchvision

    tv_boxes = torchvision().ops.boxes
    folder = tmp_path_factory.mktemp("zoo_tasks")

    def ok() -> None:  # torchvision's NMS, scripted while tracing, checks for C++ ops this CPU build may lack
        pass

    torch.manual_seed(0)
    out = {}
    saved = tv_boxes._assert_has_ops
    try:
        with torch.no_grad():
            for name, kw in (("ssdlite320_mobilenet_v3_large", {}), ("lraspp_mobilenet_v3_large",
                                                                      {"output_names": ["out"]})):
                model = create_model(name).eval()
                saved, tv_boxes._assert_has_ops = tv_boxes._assert_has_ops, ok  # after create_model's own patch
                out[name] = folder / f"{name}.onnx"
                torch.onnx.export(model, (torch.rand(1, 3, 160, 160),), str(out[name]), opset_version=17,
                                  dynamo=False, **kw)
    finally:
        tv_boxes._assert_has_ops = saved
    return out


def test_torchvision_ssdlite_from_torch_onnx_is_recognised_not_a_traceback(capsys, zoo_files, images):
    path = zoo_files["ssdlite320_mobilenet_v3_large"]
    names = [o.name for o in onnx.load(str(path), load_external_data=False).graph.output]
    assert not {"boxes", "scores", "labels"} & set(names)  # torch's own numbering
    spec = prepare(path, write=False).spec.task
    assert spec.kind == "torchvision" and sorted(spec.roles.values()) == ["boxes", "labels", "scores"]
    code, out, err = run_cli(capsys, "predict", path, images / "0" / "a.png", images / "1" / "a.png", "--min-score",
                             "0", "--json")
    got = json.loads(out)
    assert code == 0 and got["task"] == "detection" and len(got["results"]) == 2, err
    for r in got["results"]:
        for d in r["detections"]:
            x1, y1, x2, y2 = d["box"]
            assert -0.05 <= x1 <= x2 <= 60.05 and -0.05 <= y1 <= y2 <= 40.05  # in the 60 x 40 image's pixels


def test_torchvision_segmenter_from_torch_onnx_gives_a_class_map(capsys, zoo_files, images):
    path = zoo_files["lraspp_mobilenet_v3_large"]
    spec = prepare(path, write=False).spec.task
    assert spec.kind == "logits" and spec.num_classes == 21 and spec.task == "segmentation"
    code, out, err = run_cli(capsys, "predict", path, images / "0" / "a.png", "--json")
    shares = [c["share"] for c in json.loads(out)["results"][0]["classes"]]
    assert code == 0 and sum(shares) == pytest.approx(1.0), err


def test_dynamic_anchor_counts_and_renamed_batches():
    size = (T.H, T.W)
    dyn = recognize([OutputInfo("output0", ("batch", 84, "anchors"))], input_size=size, batch="batch")
    assert dyn.head["layout"] == "cn" and dyn.num_classes == 80 and not dyn.head["objectness"]
    # a tf2onnx classifier of 7 classes whose output batch has another symbol is still a classifier
    assert recognize([OutputInfo("dense:0", ("unk__43", 7))], input_size=size, batch="unk__42") is None
    assert recognize([OutputInfo("output", ("num_dets", 7))], input_size=size, batch=1).kind == "nms_rows7"


def test_yolo_seg_save_draws_masks_and_boxes(capsys, files, images, tmp_path):
    out = tmp_path / "seg.png"
    code, _, err = run_cli(capsys, "predict", files["yolo_seg"], images / "0" / "a.png", "--save", out)
    plain = tmp_path / "plain.png"
    run_cli(capsys, "predict", files["yolo"], images / "0" / "a.png", "--save", plain)
    a, b = np.asarray(Image.open(out)), np.asarray(Image.open(plain))
    assert code == 0 and a.shape == b.shape == (40, 60, 3), err
    assert (a != b).any(axis=2).sum() > 20  # mask pixels inside the 2-px box outlines are blended in


def test_squeezable_classifier_outputs_stay_classifiers():
    for shape in [(1, 1, 1001), (1, 1000, 1), ("N",), ("N", 1, 1, 10)]:
        assert recognize([OutputInfo("prob", shape)], input_size=(224, 224), batch="N") is None, shape


def test_evaluate_scores_a_letterboxed_yolo_file_in_the_images_pixels(capsys, files, images, tmp_path):
    """COCO mAP of a foreign YOLO head whose known boxes, letterbox undone, are the ground truth: 1.0; read as
    stretched (``--no-letterbox``) the same boxes miss."""
    pytest.importorskip("pycocotools")
    gain, left, top, _, _ = letterbox_geometry((60, 40), (T.H, T.W))
    anns = []
    for i, (x1, y1, x2, y2, c, _s) in enumerate(T.YOLO_EXPECTED):
        a = [(x1 - left) / gain, (y1 - top) / gain, (x2 - left) / gain, (y2 - top) / gain]
        a = [min(max(a[0], 0), 60), min(max(a[1], 0), 40), min(max(a[2], 0), 60), min(max(a[3], 0), 40)]
        w, h = a[2] - a[0], a[3] - a[1]
        anns.append({"id": i + 1, "image_id": 1, "category_id": int(c), "bbox": [a[0], a[1], w, h],
                     "area": w * h, "iscrowd": 0})
    coco = {"images": [{"id": 1, "file_name": "0/a.png", "width": 60, "height": 40}], "annotations": anns,
            "categories": [{"id": k, "name": f"c{k}"} for k in range(3)]}
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(coco))
    code, out, err = run_cli(capsys, "evaluate", files["yolo"], "--images", images, "--annotations", ann, "--json")
    assert code == 0, err
    assert json.loads(out)["map"] == pytest.approx(1.0, abs=1e-6)  # mAP@[.5:.95]: every box at IoU >= 0.95
    code, out, err = run_cli(capsys, "evaluate", files["yolo"], "--images", images, "--annotations", ann,
                             "--no-letterbox", "--json")
    assert code == 0, err
    assert json.loads(out)["map"] < 0.9
