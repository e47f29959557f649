"""The shapes task (edgecnn/tasks/shapes.py): seeded scenes, their COCO files, and the train -> cache -> export ->
evaluate path on tiny sizes (the full training is tools/bench_shapes.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from edgecnn.errors import EdgecnnError
from edgecnn.tasks import shapes as S

pytest.importorskip("pycocotools")
torch = pytest.importorskip("torch")


def test_scenes_are_deterministic_and_splits_disjoint() -> None:
    a, b = S.make_scene(5), S.make_scene(5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label_map, b.label_map)
    assert a.categories == b.categories and all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks, strict=True))
    assert not np.array_equal(S.make_scene(6).image, a.image)
    assert S.TEST_SEED >= S.TRAIN_SEED + S.TRAIN_SCENES  # test scenes are never training scenes
    for seed in range(20):
        s = S.make_scene(seed)
        assert s.image.shape == (S.SIZE, S.SIZE, 3) and s.image.dtype == np.uint8
        assert S.MIN_SHAPES - 1 <= len(s.masks) <= S.MAX_SHAPES
        union = np.zeros_like(s.label_map, dtype=bool)
        for cat, m in zip(s.categories, s.masks, strict=True):
            assert m.sum() > 0 and not (m & union).any()  # visible masks do not overlap: later shapes cover
            union |= m
            assert (s.label_map[m] == cat).all()
        assert ((s.label_map > 0) == union).all()


def test_split_is_a_coco_file_pycocotools_reads(tmp_path) -> None:
    from pycocotools.coco import COCO

    files = S.write_split(tmp_path / "test", 6, seed=S.TEST_SEED)
    assert sorted(p.name for p in files.images.iterdir()) == [f"{i:05d}.png" for i in range(6)]
    coco = COCO(str(files.annotations))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(S.CLASSES)
    for i in range(6):
        scene = S.make_scene(S.TEST_SEED + i)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[i + 1]))
        assert [a["category_id"] for a in anns] == scene.categories
        for a, m, box in zip(anns, scene.masks, scene.boxes(), strict=True):
            assert np.array_equal(coco.annToMask(a).astype(bool), m)  # RLE decodes to the visible mask
            assert a["area"] == m.sum() and a["iscrowd"] == 0
            assert a["bbox"] == [box[0], box[1], box[2] - box[0], box[3] - box[1]]
        stored = np.asarray(Image.open(files.masks / f"{i:05d}.png"))
        assert np.array_equal(stored, scene.label_map)
        assert np.array_equal(np.asarray(Image.open(files.images / f"{i:05d}.png")), scene.image)
    again = S.write_split(tmp_path / "again", 6, seed=S.TEST_SEED)
    assert again.annotations.read_bytes() == files.annotations.read_bytes()


def test_training_inputs_are_the_runtime_preprocessing() -> None:
    from edgecnn.runtime.images import preprocess

    images, *_ = S.training_arrays(3)
    ours = S.normalise(images)
    theirs = np.stack([preprocess(Image.fromarray(im.transpose(1, 2, 0)), S.CONFIG) for im in images])
    assert ours.dtype == np.float32 and np.array_equal(ours, theirs)


def test_unknown_model_kind_is_one_line() -> None:
    with pytest.raises(EdgecnnError, match="use detector, segmenter or ssdlite"):
        S.weights_path("classifier")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Both models trained one step on 8 scenes, cached, exported; a 4-scene test split."""
    root = tmp_path_factory.mktemp("shapes")
    data = S.training_arrays(8)
    det = S.trained_weights("detector", epochs=1, scenes=8, data=data)
    seg = S.trained_weights("segmenter", epochs=1, scenes=8, data=data)
    files = S.write_split(root / "test", 4)
    return {"det": det, "seg": seg, "files": files, "root": root,
            "det_graph": S.export_onnx("detector", det.path, root / "det.onnx", nms="graph"),
            "det_host": S.export_onnx("detector", det.path, root / "det-host.onnx", nms="host"),
            "seg_onnx": S.export_onnx("segmenter", seg.path, root / "seg.onnx")}


def test_weights_are_cached_and_read_back(tiny) -> None:
    from edgecnn.models import create_model, load_weights

    for kind, trained in (("detector", tiny["det"]), ("segmenter", tiny["seg"])):
        assert trained.trained and trained.path == S.weights_path(kind, 1, 8) and trained.path.is_file()
        again = S.trained_weights(kind, epochs=1, scenes=8)
        assert again.path == trained.path and not again.trained  # the cache, not a second training
        assert again.record == trained.record and len(trained.record["epoch_seconds"]) == 1
        assert trained.record["model"] == S.MODELS[kind] and trained.record["seconds"] > 0
        load_weights(create_model(S.MODELS[kind]), trained.path)  # strict, weights_only


def test_exported_files_carry_the_task(tiny) -> None:
    from edgecnn.onnxfile import read_metadata

    meta = read_metadata(tiny["det_graph"])
    assert meta["task"] == "detection" and meta["nms"]["placement"] == "graph"
    assert meta["labels"] == ["__background__", *S.CLASSES] and meta["input_size"] == [S.SIZE, S.SIZE]
    assert read_metadata(tiny["det_host"])["nms"]["placement"] == "host"
    assert read_metadata(tiny["seg_onnx"])["task"] == "segmentation"


def test_evaluate_detection_and_agreement(tiny) -> None:
    from edgecnn.profiler import task_accuracy as T

    files = tiny["files"]
    rep = T.evaluate_detection(tiny["det_graph"], files.images, files.annotations)
    assert rep.samples == 4 and 0.0 <= rep.map <= rep.map50 <= 1.0 and rep.category_mapping.startswith("by name")
    host = T.evaluate_detection(tiny["det_host"], files.images, files.annotations)
    assert abs(host.map - rep.map) < 1e-3  # NMS in the graph or on the host: the same detections
    same = T.compare_task(tiny["det_graph"], tiny["det_graph"], files.images, min_score=0.0)
    assert same.f1 == 1.0 and same.reference_boxes > 0 and set(same.sqnr_db.values()) == {"inf"}
    other = T.compare_task(tiny["det_graph"], tiny["det_host"], files.images, min_score=0.0)
    assert other.f1 >= 0.95 and all(v is None for v in other.sqnr_db.values())  # different outputs: no SQNR
    with pytest.raises(EdgecnnError, match="is a detection model"):
        T.evaluate_segmentation(tiny["det_graph"], files.images, files.masks)


def test_evaluate_segmentation_and_resized_images(tiny, tmp_path) -> None:
    from edgecnn.profiler import task_accuracy as T

    files = tiny["files"]
    rep = T.evaluate_segmentation(tiny["seg_onnx"], files.images, files.masks)
    assert rep.samples == 4 and 0.0 <= rep.miou <= 1.0 and set(rep.per_class) == {"__background__", *S.CLASSES}
    same = T.compare_task(tiny["seg_onnx"], tiny["seg_onnx"], files.images)
    assert same.pixel_agreement == 1.0 and same.sqnr_db == {"masks": "inf"}
    # label maps at twice the size (nearest): the class maps are resized back to them
    big = tmp_path / "big"
    big.mkdir()
    for p in files.masks.iterdir():
        Image.open(p).resize((2 * S.SIZE, 2 * S.SIZE), Image.Resampling.NEAREST).save(big / p.name)
    assert T.evaluate_segmentation(tiny["seg_onnx"], files.images, big).miou == pytest.approx(rep.miou, abs=0.02)


def test_cli_evaluate_detection_segmentation_and_errors(tiny, capsys, tmp_path) -> None:
    from tests.cli_helpers import run_cli

    files = tiny["files"]
    code, out, err = run_cli(capsys, "evaluate", tiny["det_graph"], "--images", files.images, "--annotations",
                             files.annotations, "--json")
    assert code == 0, err
    from edgecnn.profiler import task_accuracy as T

    assert json.loads(out)["map50"] == T.evaluate_detection(tiny["det_graph"], files.images,
                                                            files.annotations).map50
    code, out, err = run_cli(capsys, "evaluate", tiny["seg_onnx"], "--images", files.images, "--masks", files.masks,
                             "--reference", tiny["seg_onnx"])
    assert code == 0, err
    assert "mIoU" in out and "pixel agreement 100.0000%" in out
    broken = tmp_path / "images"
    shutil.copytree(files.images, broken)
    (broken / "00002.png").unlink()
    bad = [
        (["--images", broken, "--annotations", files.annotations], "lists 00002.png but"),
        (["--images", files.images, "--annotations", tmp_path / "none.json"], "does not exist"),
        (["--images", files.images, "--annotations", files.masks / "00000.png"], "is not JSON"),
        (["--images", files.images], "nothing to measure"),
        (["--annotations", files.annotations], "--images DIR"),
        ([], "evaluate needs --data DIR"),
    ]
    for args, message in bad:
        code, out, err = run_cli(capsys, "evaluate", tiny["det_graph"], *args)
        assert code != 0 and message in err and len(err.strip().splitlines()) == 1, (args, err)


def test_ssd_targets_match_torchvision_per_image() -> None:
    from edgecnn.models import create_model
    from edgecnn.models._torchvision import torchvision

    tv = torchvision()
    from torchvision.models.detection.image_list import ImageList

    model = create_model("shapes_ssd")
    z = torch.zeros(1, 3, S.SIZE, S.SIZE)
    anchors = model.anchor_generator(ImageList(z, [(S.SIZE, S.SIZE)]), list(model.backbone(z).values()))[0]
    _, boxes, labels, _ = S.training_arrays(6)
    cls, reg = S.ssd_targets(model, anchors, boxes, labels, chunk=4)  # two chunks, different object counts
    for i, (b, lab) in enumerate(zip(boxes, labels, strict=True)):
        bt = torch.from_numpy(b)
        matched = model.proposal_matcher(tv.ops.box_iou(bt, anchors))
        fg = matched >= 0
        assert torch.equal(cls[i][fg], torch.from_numpy(lab)[matched[fg]]) and (cls[i][~fg] == 0).all()
        want = model.box_coder.encode_single(bt[matched[fg]], anchors[fg])
        assert torch.allclose(reg[i][fg], want, atol=1e-5) and fg.sum() >= len(b)


def test_boxes_are_scored_in_the_original_images_pixels(tiny, tmp_path, monkeypatch) -> None:
    """The file's boxes (input pixels, 128x128) are mapped to each image's own size before COCO scores them:
    fixed detections on 200x100 and 64x96 images score mAP 1 against the mapped boxes, and 0 unmapped."""
    from edgecnn.profiler import task_accuracy as T
    from edgecnn.runtime.vision import detection as D

    box = np.array([[16.0, 32.0, 80.0, 96.0]], np.float32)
    monkeypatch.setattr(D, "detections", lambda outs, meta, n: [
        D.Detections(box.copy(), np.array([0.9], np.float32), np.array([2], np.int64)) for _ in range(n)])
    (tmp_path / "img").mkdir()
    sizes = [(200, 100), (64, 96)]
    images, anns = [], []
    for i, (w, h) in enumerate(sizes):
        Image.new("RGB", (w, h), (90, 120, 30)).save(tmp_path / "img" / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": w, "height": h})
        sx, sy = w / S.SIZE, h / S.SIZE
        x1, y1, x2, y2 = 16 * sx, 32 * sy, 80 * sx, 96 * sy
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 2, "bbox": [x1, y1, x2 - x1, y2 - y1],
                     "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(S.CLASSES)]
    gt = tmp_path / "instances.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    rep = T.evaluate_detection(tiny["det_graph"], tmp_path / "img", gt)
    assert rep.map == pytest.approx(1.0, abs=1e-9) and rep.detections == 2
    monkeypatch.setattr(D, "to_image", lambda det, input_size, image_size: det)  # not mapped: no match
    assert T.evaluate_detection(tiny["det_graph"], tmp_path / "img", gt).map < 0.5


def test_tools_shapes_writes_the_splits(tmp_path, capsys) -> None:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("tools_shapes", Path(__file__).parents[1] / "tools" / "shapes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path), "--test", "3", "--calib", "2", "--train", "2"]) == 0
    test = json.loads((tmp_path / "test" / "instances.json").read_text())
    assert [im["file_name"] for im in test["images"]] == ["00000.png", "00001.png", "00002.png"]
    assert len(list((tmp_path / "calib").glob("*.png"))) == 2 and (tmp_path / "train" / "instances.json").is_file()
    first_test = np.asarray(Image.open(tmp_path / "test" / "images" / "00000.png"))
    assert np.array_equal(first_test, S.make_scene(S.TEST_SEED).image)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "calib" / "00000.png")), S.make_scene(S.TRAIN_SEED).image)


def test_written_split_folder_has_ordinary_permissions(tmp_path) -> None:
    import os

    files = S.write_split(tmp_path / "split", 1)
    umask = os.umask(0)
    os.umask(umask)
    assert files.root.stat().st_mode & 0o777 == 0o777 & ~umask
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_quantize_and_optimize_judge_a_task_file_by_its_labels(tiny, tmp_path, capsys) -> None:
    """``--annotations`` / ``--masks`` give ``quantize`` and ``optimize`` the labelled metric (mAP@.5, mIoU in
    points): the same figures ``evaluate`` gives the fp32 file, and the budget counted in them."""
    from edgecnn.profiler import task_accuracy as T
    from tests.cli_helpers import run_cli

    files = tiny["files"]
    fp32 = T.evaluate_detection(tiny["det_host"], files.images, files.annotations)
    code, out, err = run_cli(capsys, "quantize", tiny["det_host"], "--calib", files.images, "--eval", files.images,
                             "--annotations", files.annotations, "-o", tmp_path / "det.int8.onnx", "--json")
    assert code == 0, err
    labelled = json.loads(out)["report"]["labelled"]
    assert labelled["fp32"]["map50"] == pytest.approx(100 * fp32.map50, abs=1e-6)
    assert 0.0 <= labelled["int8"]["map50"] <= 100.0
    seg = T.evaluate_segmentation(tiny["seg_onnx"], files.images, files.masks)
    code, out, err = run_cli(capsys, "quantize", tiny["seg_onnx"], "--calib", files.images, "--eval", files.images,
                             "--masks", files.masks, "-o", tmp_path / "seg.int8.onnx", "--json")
    assert code == 0, err
    assert json.loads(out)["report"]["labelled"]["fp32"]["miou"] == pytest.approx(100 * seg.miou, abs=1e-6)
    # labels of the wrong kind, or without the images they describe: one line each
    for args, needle in ((["--eval", files.images, "--masks", files.masks], "labels a segmentation file"),
                         (["--annotations", files.annotations], "give it with --eval DIR")):
        code, _, err = run_cli(capsys, "quantize", tiny["det_host"], "--calib", files.images, *args,
                               "-o", tmp_path / "x.onnx")
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    code, out, err = run_cli(capsys, "optimize", tiny["det_host"], "--data", files.images, "--annotations",
                             files.annotations, "--providers", "cpu", "--precisions", "fp32,int8", "--batch", "1",
                             "--duration", "0.1", "-o", tmp_path / "opt", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["budget"]["primary_metric"] == "map50", report["budget"]
    rows = [c for c in report["candidates"] if c.get("precision") == "fp32" and c.get("map50") is not None]
    assert rows and rows[0]["map50"] == pytest.approx(100 * fp32.map50, abs=1e-6)


def test_ssdlite_reference_trains_caches_and_exports(tmp_path) -> None:
    """The SSDlite reference's path on 4 scenes: trained (the wall-time cap stops it after one of two steps),
    cached and read back strictly, exported with the task's labels at 128x128, scored with COCO mAP."""
    from edgecnn.exporters.api import export
    from edgecnn.models import load_weights
    from edgecnn.onnxfile import read_metadata
    from edgecnn.profiler.task_accuracy import evaluate_detection

    lite = S.ssdlite_on_shapes(scenes=4, epochs=2, data=S.training_arrays(4), max_seconds=0)
    assert lite.trained and lite.path == S.weights_path("ssdlite", 2, 4) and lite.path.is_file()
    assert lite.path.name == f"{S.SSDLITE}-d{S.DATA_VERSION}-r{S.SSDLITE_RECIPE_VERSION}-i{S.SSDLITE_SIZE}-n4-e2-s0.pt"
    rec = lite.record
    assert rec["model"] == S.SSDLITE and rec["steps"] == 1 and rec["steps_planned"] == 2 and rec["stopped_early"]
    assert rec["input_size"] == [S.SSDLITE_SIZE] * 2 and rec["num_classes"] == 5 and rec["threads"] <= 2
    again = S.ssdlite_on_shapes(scenes=4, epochs=2)
    assert again.path == lite.path and not again.trained and again.record == rec  # the cache
    load_weights(S.ssdlite_model(), lite.path)  # strict, weights_only
    onnx_path = S.export_onnx("ssdlite", lite.path, tmp_path / "lite.onnx", nms="graph")
    meta = read_metadata(onnx_path)
    assert meta["task"] == "detection" and meta["nms"]["placement"] == "graph"
    assert meta["labels"] == ["__background__", *S.CLASSES] and meta["input_size"] == [S.SSDLITE_SIZE] * 2
    assert meta["mean"] == list(S.SSDLITE_CONFIG.mean) and meta["std"] == list(S.SSDLITE_CONFIG.std)
    files = S.write_split(tmp_path / "test", 2)
    rep = evaluate_detection(onnx_path, files.images, files.annotations)
    assert rep.samples == 2 and 0.0 <= rep.map <= rep.map50 <= 1.0 and rep.category_mapping.startswith("by name")
    with pytest.raises(EdgecnnError, match="1 labels for"):
        export(S.SSDLITE, tmp_path / "x.onnx", num_classes=5, input_size=(128, 128), labels=["circle"],
               progress=False)
