"""Every zoo model exports, simplifies and validates in fp32 and fp16 (edgecnn.exporters.export)."""

from __future__ import annotations

import onnx
import pytest

from edgecnn.exporters import read_metadata
from edgecnn.models import get_spec, list_models

# Reduced input sizes where the architecture allows it (global/adaptive-to-1x1 pooling); None = full size.
# AlexNet pools adaptively to 6x6 and VGG to 7x7 (only exportable at sizes that divide evenly), and
# alexnet_paper/zfnet/lenet5 are fixed-size: they run at their own size.
FAST: dict[str, tuple[int, int] | None] = {
    "lenet5": None, "resnet18": None, "googlenet": None, "resnet34": (64, 64), "resnet50": (64, 64),
    "alexnet": None,
}
SLOW: dict[str, tuple[int, int] | None] = {"resnet101": (64, 64), "resnet152": (64, 64), "alexnet_paper": None,
                                           "zfnet": None}
# VGG-11 at full size; the other VGGs at 64x64 (their 7x7 adaptive pool becomes two MatMuls, see
# onnx_export.MatrixAdaptiveAvgPool2d) - the 130M weights still dominate their export time.
SLOW.update({n: (64, 64) for n in list_models("vgg")})
SLOW["vgg11"] = None


def _cases() -> list:
    assert set(FAST) | set(SLOW) == set(list_models()), "a zoo model has no export test"
    cases = []
    for name in list_models():
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
