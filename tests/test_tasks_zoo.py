"""Detectors and segmenters in the zoo: the task seam, torchvision's builders behind the nms shim, exports with NMS
in the graph or on the host, the shape sweep, and the runtimes that run them.

Exports are made once per session (``exported`` fixture); SSDlite runs at its own 320x320, the segmenters at a
reduced 128x128 (their heads pool globally, so any size works; MACs are checked at 520x520 on the meta device)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from edgecnn.boxes import box_iou, greedy_nms, match_detections, matched_f1
from edgecnn.models import create_model, get_spec, list_models
from edgecnn.models._torchvision import torchvision, weights_meta
from edgecnn.onnxfile import open_model, read_metadata

DET = "ssdlite320_mobilenet_v3_large"
SEG = ("deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large")
SEG_SIZE = (128, 128)
#: torchvision's weights enums (their meta holds _ops = GMACs at the model's size, and num_params)
TV_META = {DET: ("SSDLite320_MobileNet_V3_Large_Weights", "detection.ssdlite"),
           SEG[0]: ("DeepLabV3_MobileNet_V3_Large_Weights", "segmentation.deeplabv3"),
           SEG[1]: ("LRASPP_MobileNet_V3_Large_Weights", "segmentation.lraspp")}


def test_the_shim_gives_torchvision_nms_and_batched_nms() -> None:
    tv = torchvision()
    rng = np.random.default_rng(0)
    xy = rng.random((300, 2)) * 100
    boxes = np.concatenate([xy, xy + 5 + rng.random((300, 2)) * 40], 1)
    scores = rng.random(300)
    keep = tv.ops.nms(torch.from_numpy(boxes).float(), torch.from_numpy(scores).float(), 0.5).numpy()
    assert 20 < len(keep) < 300 and list(keep) == list(greedy_nms(boxes.astype(np.float32), scores.astype(np.float32),
                                                                   0.5))
    kept = boxes[keep]
    iou = box_iou(kept, kept) - np.eye(len(kept))
    assert iou.max() <= 0.5  # no two kept boxes overlap beyond the threshold
    labels = torch.from_numpy(rng.integers(0, 3, 300))
    per_class = tv.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), labels, 0.5)
    assert len(per_class) > len(keep)  # classes do not suppress each other


def test_match_detections_needs_same_label_and_iou() -> None:
    b = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32)
    s, lab = np.array([0.9, 0.8]), np.array([1, 2])
    assert match_detections((b, s, lab), (b[::-1], s[::-1], lab[::-1])).matched == 2
    assert match_detections((b, s, lab), (b, s, np.array([1, 3]))).matched == 1
    assert match_detections((b, s, lab), (b + 1, s, lab)).matched == 0  # IoU < 0.99


def test_matched_f1_counts_both_sides() -> None:
    b = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32)
    s, lab = np.array([0.9, 0.8]), np.array([1, 2])
    one = match_detections((b, s, lab), (b[:1], s[:1], lab[:1]), 0.5)  # 1 matched of 2 reference, 1 candidate
    both = match_detections((b, s, lab), (b, s, lab), 0.5)
    assert matched_f1([one]) == pytest.approx(2 * 1 / 3)
    assert matched_f1([one, both]) == pytest.approx(2 * 3 / 7)
    assert matched_f1([]) == 1.0


@pytest.mark.parametrize("name", [DET, *SEG])
def test_params_and_macs_within_one_percent_of_torchvision(name: str) -> None:
    meta = weights_meta(*TV_META[name])
    spec = get_spec(name)
    with torch.device("meta"):
        n = sum(p.numel() for p in create_model(name).parameters())
    # torchvision's DeepLabV3 figure counts its auxiliary head (aux_loss=True checkpoint): 3,851 parameters
    assert abs(n - meta["num_params"]) / meta["num_params"] < 0.01
    assert abs(spec.macs / 1e9 - meta["_ops"]) / meta["_ops"] < 0.01
    assert spec.task in ("detection", "segmentation") and spec.group == "tasks" and spec.resize == "stretch"


def test_list_shows_the_task(capsys) -> None:
    from tests.cli_helpers import run_cli

    code, out, _ = run_cli(capsys, "list", "--group", "tasks")
    assert code == 0 and "detection and segmentation models" in out
    assert DET in out and "detection" in out and "segmentation" in out
    # with the shapes task's two small models (edgecnn/models/shapes.py)
    assert list_models(task="detection") == [DET, "shapes_ssd"]
    assert set(list_models(task="segmentation")) == {*SEG, "shapes_lraspp"}


def test_weights_load_a_torchvision_state_dict(tmp_path) -> None:
    tv = torchvision()
    torch.manual_seed(123)
    ref = tv.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    path = tmp_path / "lraspp.pth"
    torch.save(ref.state_dict(), path)
    ours = create_model(SEG[1], weights=str(path))
    default = create_model(SEG[1])
    key = "classifier.low_classifier.weight"
    assert torch.equal(ours.state_dict()[key], ref.state_dict()[key])
    assert not torch.equal(default.state_dict()[key], ref.state_dict()[key])  # seeded default differs
    assert torch.equal(default.state_dict()[key], create_model(SEG[1]).state_dict()[key])  # and is reproducible


# --------------------------------------------------------------------------- exports

def _det(exported, nms: str):
    return exported(DET, nms=nms)


@pytest.mark.slow
@pytest.mark.parametrize("nms", ["graph", "host"])
def test_detector_exports_with_nms_placed_and_passes_the_shape_sweep(exported, nms: str) -> None:
    r = _det(exported, nms)
    assert r.passed, r.validation["failures"]
    sweep = r.validation["task"]["sweep"]
    assert [b["batch"] for b in sweep] == [1, 2]
    for b in sweep:
        for m in b["images"]:
            assert m["matched"] >= 10 and m["min_iou"] >= 0.99 and m["max_score_diff"] <= 1e-3
    meta = read_metadata(r.path)
    assert meta["task"] == "detection" and meta["box_format"] == "xyxy" and meta["resize"] == "stretch"
    assert meta["nms"]["placement"] == nms and meta["nms"]["iou_threshold"] == 0.55
    assert len(meta["labels"]) == 91 and meta["labels"][0] == "__background__" and meta["mean"] == [0.5] * 3
    ops = {n.op_type for n in open_model(r.path).graph.node}
    assert ("NonMaxSuppression" in ops) == (nms == "graph")
    assert not ops & {"If", "Loop"}
    roles = {o["name"]: (o["role"], o["batch"]) for o in meta["outputs"]}
    if nms == "graph":
        assert roles == {"boxes": ("boxes", False), "scores": ("scores", False), "labels": ("labels", False),
                         "batch_index": ("batch_index", False)}
    else:
        assert roles == {"boxes": ("boxes", True), "scores": ("scores", True)}


def _reference(x: np.ndarray):
    from edgecnn.models.detection import reference_detections
    from edgecnn.runtime.vision.detection import Detections

    model = create_model(DET).eval()
    return [Detections(d["boxes"].numpy(), d["scores"].numpy(), d["labels"].numpy())
            for d in reference_detections(model, torch.from_numpy(x))]


def _images(n: int, size=(320, 320)) -> np.ndarray:
    from edgecnn.exporters.tasks import synthetic_images

    return ((synthetic_images(n, size, offset=1) - 0.5) / 0.5).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("nms", ["graph", "host"])
@pytest.mark.parametrize("provider", ["cpu", "openvino"])
def test_detector_gives_torchs_boxes_on_each_runtime(exported, nms: str, provider: str) -> None:
    from edgecnn.runtime import Engine
    from edgecnn.runtime.vision.detection import agreement, detections, judge

    r = _det(exported, nms)
    engine = Engine(r.path, provider=provider, precision="fp32")
    x = _images(2)
    got = detections(engine.run_named(x), engine.metadata, 2)
    matches = agreement(_reference(x), got)
    assert judge(matches) == [], matches
    assert all(m.matched >= 10 and m.min_iou >= 0.99 and m.max_score_diff <= 1e-3 for m in matches)


@pytest.mark.slow
def test_engine_does_not_slice_detections_by_batch(exported) -> None:
    from edgecnn.runtime import Engine

    r = _det(exported, "graph")
    x = _images(3)
    whole = Engine(r.path, provider="cpu", precision="fp32").run_named(x)
    chunked_engine = Engine(r.path, provider="cpu", precision="fp32", max_batch=1)
    chunked = chunked_engine.run_named(x)
    assert set(np.unique(chunked["batch_index"])) == {0, 1, 2}  # renumbered per chunk
    for key in ("boxes", "scores", "labels", "batch_index"):
        assert len(chunked[key]) == len(whole[key]) > 300  # every chunk's detections, none cut to 1 row
    order_w = np.lexsort((whole["scores"], whole["labels"], whole["batch_index"]))
    order_c = np.lexsort((chunked["scores"], chunked["labels"], chunked["batch_index"]))
    np.testing.assert_allclose(whole["boxes"][order_w], chunked["boxes"][order_c], atol=1e-3)
    assert chunked_engine.output_roles["batch_index"] == "batch_index" and chunked_engine.task == "detection"
    # run() still returns output 0
    assert chunked_engine.run(x).shape == chunked["boxes"].shape


@pytest.mark.slow
@pytest.mark.parametrize("name", SEG)
def test_segmenter_exports_and_masks_agree_on_each_runtime(exported, name: str) -> None:
    from edgecnn.runtime import Engine
    from edgecnn.runtime.vision.segmentation import agreement

    r = exported(name, input_size=SEG_SIZE)
    assert r.passed, r.validation["failures"]
    assert all(b["pixel_agreement"] >= 0.999 for b in r.validation["task"]["sweep"])
    meta = read_metadata(r.path)
    assert meta["task"] == "segmentation" and len(meta["labels"]) == 21 and meta["num_classes"] == 21
    assert [o.name for o in onnx.load(r.path).graph.output] == ["masks"]
    from edgecnn.exporters.tasks import synthetic_images

    x = synthetic_images(2, SEG_SIZE, offset=3)
    x = ((x - np.array(meta["mean"])[:, None, None]) / np.array(meta["std"])[:, None, None]).astype(np.float32)
    with torch.no_grad():
        ref = create_model(name).eval()(torch.from_numpy(x))["out"].numpy()
    for provider in ("cpu", "openvino"):
        got = Engine(r.path, provider=provider, precision="fp32").run_named(x)["masks"]
        assert agreement(ref, got)["pixel_agreement"] >= 0.999, provider


@pytest.mark.slow
def test_graph_macs_match_the_spec_at_full_size(exported) -> None:
    r = _det(exported, "graph")
    assert r.macs == get_spec(DET).macs


def test_nms_option_meets_a_classifier_with_one_line(capsys, tmp_path) -> None:
    from tests.cli_helpers import run_cli

    code, _, err = run_cli(capsys, "export", "lenet5", "-o", tmp_path, "--nms", "graph")
    assert code == 2 and err.count("error:") == 1 and "classification model" in err and "Traceback" not in err


def test_nms_auto_is_host_when_a_runtime_lacks_the_operator() -> None:
    from edgecnn.exporters.tasks import resolve_nms
    from edgecnn.runtime.backends import register, registry
    from tests.toy_backend import ToyBackend

    assert resolve_nms("auto")[0] == "graph"

    class NoNms(ToyBackend):
        name = "toy-nonms"
        missing_ops = frozenset({"NonMaxSuppression"})

    register(NoNms())
    try:
        placement, why = resolve_nms("auto")
        assert placement == "host" and "toy-nonms" in why
        assert resolve_nms("graph")[0] == "graph"
    finally:
        registry.unregister("toy-nonms")


# --------------------------------------------------------------------------- predict

@pytest.fixture(scope="module")
def street(tmp_path_factory):
    from PIL import Image

    from edgecnn.exporters.tasks import synthetic_images

    img = (synthetic_images(1, (240, 400), offset=1)[0].transpose(1, 2, 0) * 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("images") / "street.png"
    Image.fromarray(img).save(path)
    return path


@pytest.mark.slow
def test_predict_prints_boxes_and_saves_the_drawing(exported, street, tmp_path, capsys) -> None:
    from PIL import Image

    from tests.cli_helpers import run_cli

    r = _det(exported, "graph")
    out_png = tmp_path / "boxes.png"
    code, out, err = run_cli(capsys, "predict", r.path, street, "--min-score", "0", "--save", out_png,
                             "--provider", "cpu")
    assert code == 0, err
    assert "(400x240)" in out and "box x1, y1, x2, y2 (image pixels)" in out
    assert f"wrote {out_png}" in out
    saved = Image.open(out_png)
    assert saved.size == (400, 240)
    assert np.asarray(saved).tolist() != np.asarray(Image.open(street).convert("RGB")).tolist()  # boxes drawn
    code, out, _ = run_cli(capsys, "predict", r.path, street, "--min-score", "0", "--json", "--provider", "cpu")
    import json

    res = json.loads(out)["results"][0]
    assert 10 <= len(res["detections"]) <= 300
    boxes = np.array([d["box"] for d in res["detections"]])
    assert boxes[:, 2].max() <= 400.1 and boxes[:, 3].max() <= 240.1 and boxes[:, 2].max() > 320  # image pixels


@pytest.mark.slow
def test_predict_prints_pixel_shares_and_saves_the_overlay(exported, street, tmp_path, capsys) -> None:
    from tests.cli_helpers import run_cli

    r = exported(SEG[1], input_size=SEG_SIZE)
    out_png = tmp_path / "mask.png"
    code, out, err = run_cli(capsys, "predict", r.path, street, "--save", out_png, "--json", "--provider", "cpu")
    assert code == 0, err
    import json

    res = json.loads(out)["results"][0]
    assert abs(sum(c["share"] for c in res["classes"]) - 1) < 1e-6
    assert out_png.is_file()


@pytest.mark.slow
@pytest.mark.parametrize("args", [("--top", "3"), ("--labels", "LABELS")])
def test_classification_options_meet_a_detector_with_one_line(exported, street, tmp_path, capsys, args) -> None:
    from tests.cli_helpers import run_cli

    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    r = _det(exported, "host")
    code, out, err = run_cli(capsys, "predict", r.path, street, *[labels if a == "LABELS" else a for a in args])
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err + out
    assert ("detection model" in err) if args[0] == "--top" else ("91 classes" in err)


@pytest.mark.slow
def test_bench_reports_end_to_end_apart_from_the_graph(exported) -> None:
    from edgecnn.profiler.measure import bench
    from edgecnn.profiler.report import bench_text

    for nms in ("graph", "host"):
        res = bench(_det(exported, nms).path, [1], provider="cpu", iters=3, warmup=1, progress=False,
                    measure_peak_now=False)
        e2e = res.batches[0].end_to_end
        assert e2e["nms"] == nms and e2e["host_ms"]["p50"] > 0
        assert e2e["latency_ms"]["p50"] >= e2e["host_ms"]["p50"]
        assert "detection end to end" in bench_text(res)


def test_a_file_that_holds_only_at_the_traced_batch_is_exported_fixed(monkeypatch, tmp_path) -> None:
    from edgecnn.exporters import export
    from edgecnn.exporters import tasks as T

    real = T.validate_task

    def only_batch_one(path, model, task, meta, input_shape, precision, batch):
        v = real(path, model, task, meta, input_shape, precision, batch)
        if batch is None:  # pretend the dynamic graph breaks at batch 2
            v.failures.append("batch 2: argmax agrees on 50.0000% of pixels (< 99.9%)")
            v.passed = False
        return v

    monkeypatch.setattr(T, "validate_task", only_batch_one)
    r = export(SEG[1], tmp_path / "lraspp.onnx", input_size=(64, 64), progress=False)
    assert r.passed and r.batch == "1" and r.validation["batch_sizes"] == [1, 1]
    assert any("fixed batch of 1" in n for n in r.notes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lraspp.onnx"]  # the failed dynamic file is gone


@pytest.mark.parametrize("name", [DET, *SEG])
def test_spec_macs_are_a_count_of_the_torch_model(name: str) -> None:
    from torch import nn

    total = [0]

    def hook(mod: nn.Module, _inp: object, out: torch.Tensor) -> None:
        total[0] += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

    spec = get_spec(name)
    with torch.device("meta"):
        model = create_model(name).eval()
        for m in model.modules():
            if isinstance(m, nn.Conv2d):  # no Linear layers in these three
                m.register_forward_hook(hook)
        x = torch.zeros(1, *spec.input_shape, device="meta")
        with torch.no_grad():
            if spec.task == "detection":
                model.head(list(model.backbone(x).values()))
            else:
                model(x)
    assert total[0] == spec.macs


@pytest.mark.slow
def test_profile_names_nms_as_not_counted_and_times_it(exported, capsys) -> None:
    from edgecnn.profiler.measure import bench
    from tests.cli_helpers import run_cli

    path = _det(exported, "graph").path
    code, out, err = run_cli(capsys, "profile", path)
    assert code == 0, err
    assert "NonMaxSuppression not counted" in out and "no counting rule" not in out
    res = bench(path, [1], provider="cpu", iters=3, warmup=1, progress=False, measure_peak_now=False, per_layer=True)
    nms = [lay for lay in res.batches[0].layers if "NonMaxSuppression" in lay["name"]]
    assert nms and nms[0]["time_ms"] > 0 and not nms[0]["flops"]


@pytest.mark.slow
def test_classifier_commands_meet_a_segmenter_with_one_line(exported, street, tmp_path, capsys) -> None:
    from tests.cli_helpers import run_cli

    r = exported(SEG[1], input_size=SEG_SIZE)
    images = tmp_path / "in"
    images.mkdir()
    (images / "a.png").write_bytes(street.read_bytes())
    # batch-predict writes a segmenter's class shares (tests/test_scale_tasks.py); its classifier option stops
    code, out, err = run_cli(capsys, "batch-predict", r.path, images, "-o", tmp_path / "out.jsonl", "--provider", "cpu",
                             "--top", "3")
    assert code == 2 and err.count("error:") == 1 and "segmentation model" in err and "Traceback" not in err + out
    assert not (tmp_path / "out.jsonl").exists()


def test_host_nms_is_torchvisions_per_class_algorithm() -> None:
    from edgecnn.runtime.vision.detection import NmsParams, host_nms

    tv = torchvision()
    rng = np.random.default_rng(1)
    a, c = 800, 12
    xy = rng.random((a, 2)) * 200
    boxes = np.concatenate([xy, xy + 10 + rng.random((a, 2)) * 60], 1).astype(np.float32)
    scores = rng.random((a, c)).astype(np.float32) ** 3
    scores[:, 4] = 0  # a class with no candidate above the threshold
    p = NmsParams(placement="host", score_threshold=0.01, iou_threshold=0.5, topk_candidates=100,
                  detections_per_image=150)
    got = host_nms(boxes, scores, p)
    # torchvision's SSD.postprocess_detections, step by step, with torchvision's batched_nms
    b, s = torch.from_numpy(boxes), torch.from_numpy(scores)
    kb, ks, kl = [], [], []
    for label in range(1, c):
        sc = s[:, label]
        keep = sc > p.score_threshold
        top, idx = sc[keep].topk(min(p.topk_candidates, int(keep.sum())))
        kb.append(b[keep][idx])
        ks.append(top)
        kl.append(torch.full_like(top, label, dtype=torch.int64))
    kb, ks, kl = torch.cat(kb), torch.cat(ks), torch.cat(kl)
    keep = tv.ops.batched_nms(kb, ks, kl, p.iou_threshold)[:p.detections_per_image]
    assert len(got) == len(keep) == 150 and 4 not in got.labels
    np.testing.assert_array_equal(got.labels, kl[keep].numpy())
    np.testing.assert_allclose(got.boxes, kb[keep].numpy())
    np.testing.assert_allclose(got.scores, ks[keep].numpy())


def test_task_exports_refuse_fp16_and_nms_on_a_segmenter_with_one_line(capsys, tmp_path) -> None:
    from tests.cli_helpers import run_cli

    code, _, err = run_cli(capsys, "export", SEG[1], "-o", tmp_path, "--fp16")
    assert code == 2 and err.count("error:") == 1 and "fp32" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "export", SEG[1], "-o", tmp_path, "--nms", "host")
    assert code == 2 and err.count("error:") == 1 and "segmentation model" in err
    assert not list(tmp_path.iterdir())
