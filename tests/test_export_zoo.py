"""Every zoo model exports, simplifies and validates in fp32 and fp16 (edgecnn.exporters.export)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from edgecnn.exporters import export, read_metadata
from edgecnn.models import create_model, get_spec, list_models

# Reduced input sizes where the architecture allows it (global/adaptive-to-1x1 pooling); None = full size.
# AlexNet pools adaptively to 6x6 and VGG to 7x7 (only exportable at sizes that divide evenly), and
# alexnet_paper/zfnet/lenet5 are fixed-size: they run at their own size.
FAST: dict[str, tuple[int, int] | None] = {
    "lenet5": None, "resnet18": None, "googlenet": None, "resnet34": (64, 64), "resnet50": (64, 64),
    "alexnet": None,
}
# The mobile group exports at full size (about a second per model and precision on an idle 2-core VM).
FAST.update({name: None for name in list_models(group="mobile")})
SLOW: dict[str, tuple[int, int] | None] = {"resnet101": (64, 64), "resnet152": (64, 64), "alexnet_paper": None,
                                           "zfnet": None, "vgg11": None}
# The other VGG configurations share vgg11's classifier (25088x4096x4096: 120M of their ~130M weights, exported
# at full size above): test_vgg_configuration_exports covers what differs (features with LRN, batch norm, 1x1
# convs, 11-19 layers) with a small classifier, so the suite never serialises 500 MB VGGs 20 times.
# tools/bench_export.py exports every zoo model by name at full size in both precisions.
VGG_VARIANTS = [n for n in list_models("vgg") if n != "vgg11"]


def _cases() -> list:
    # detectors and segmenters: tests/test_tasks_zoo.py
    classifiers = list_models(task="classification")
    assert set(FAST) | set(SLOW) | set(VGG_VARIANTS) == set(classifiers), "a zoo model has no export test"
    cases = []
    for name in [n for n in classifiers if n not in VGG_VARIANTS]:
        marks = [pytest.mark.slow] if name in SLOW else []
        size = FAST.get(name, SLOW.get(name))
        for precision in ("fp32", "fp16"):
            cases.append(pytest.param(name, precision, size, marks=marks, id=f"{name}-{precision}"))
    return cases


@pytest.mark.parametrize(("name", "precision", "size"), _cases())
def test_zoo_model_exports_and_validates(exported, name: str, precision: str, size) -> None:
    options = {"input_size": size} if size else {}
    r = exported(name, precision, **options)
    spec = get_spec(name)
    assert r.passed and r.validation["checker"] == "ok"
    v = r.validation
    assert v["cosine"] >= v["tolerances"]["min_cosine"]
    assert v["max_rel_diff"] <= v["tolerances"]["max_rel_diff"]
    model = onnx.load(r.path)
    assert [o.name for o in model.graph.output] == ["logits"]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == spec.num_classes
    assert r.opset == 17 and {i.domain or "ai.onnx": i.version for i in model.opset_import}["ai.onnx"] == 17
    # inputs and outputs stay float32 by default, even for fp16 files
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert r.nodes_after <= r.nodes_before
    meta = read_metadata(r.path)
    assert meta["model"] == name and meta["precision"] == precision and meta["opset"] == 17
    assert meta["input_size"] == list(size or spec.input_size)
    assert meta["macs"] > 0 and meta["num_params"] > 0
    if precision == "fp16":
        fp32 = exported(name, "fp32", **options)
        assert 0.45 < r.size_bytes / fp32.size_bytes < 0.56, (r.size_bytes, fp32.size_bytes)
        weights = [t for t in model.graph.initializer if len(t.dims) > 1]
        assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)


@pytest.mark.parametrize("name", VGG_VARIANTS)
def test_vgg_configuration_exports(tmp_path: Path, name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    model.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, 1000))
    ops = set()
    for precision in ("fp32", "fp16"):
        r = export(model, tmp_path / f"{name}-{precision}.onnx", name=name, input_size=(64, 64),
                   precision=precision, progress=False)
        assert r.passed and r.validation["checker"] == "ok" and r.opset == 17
        graph = onnx.load(r.path).graph
        assert [o.name for o in graph.output] == ["logits"]
        ops = {n.op_type for n in graph.node}
        meta = read_metadata(r.path)
        assert meta["family"] == "vgg" and meta["source"] == "module" and meta["class_names"] == "imagenet"
        Path(r.path).unlink()
    # torch exports LocalResponseNorm as Pow/Pad/AveragePool/Div (no other AveragePool: the 2x2 -> 7x7 pool is MatMuls)
    assert ("AveragePool" in ops) == name.endswith("_lrn")
    assert "BatchNormalization" not in ops  # folded into the convolutions
