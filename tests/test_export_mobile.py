"""The mobile group through export and the profiler: native hard activations, channel shuffle, MACs against
torchvision's documented figures. (tests/test_export_zoo.py exports and validates every model in both precisions;
the exports here come from the same session cache.)"""

from __future__ import annotations

import json

import onnx
import pytest
from cli_helpers import run_cli
from onnx import numpy_helper

from edgecnn.exporters import read_metadata
from edgecnn.models import get_spec, list_models
from edgecnn.profiler import profile

# torchvision 0.29.1, the "_ops" field of each model's ImageNet weights metadata (torchvision/models/mobilenetv2.py,
# mobilenetv3.py, efficientnet.py, squeezenet.py, shufflenetv2.py, mnasnet.py, regnet.py), shown as "GFLOPS" in the
# tables of https://pytorch.org/vision/stable/models.html; torchvision counts multiply-adds and rounds to 3 decimals.
TORCHVISION_GMACS = {
    "mobilenet_v2": 0.301,
    "mobilenet_v3_large": 0.217,
    "mobilenet_v3_small": 0.057,
    "efficientnet_b0": 0.386,
    "squeezenet1_0": 0.819,
    "squeezenet1_1": 0.349,
    "shufflenet_v2_x0_5": 0.04,
    "shufflenet_v2_x1_0": 0.145,
    "mnasnet0_5": 0.104,
    "mnasnet1_0": 0.314,
    "regnet_y_400mf": 0.402,
}


def _ops(path) -> list[onnx.NodeProto]:
    return list(onnx.load(str(path)).graph.node)


def test_every_mobile_model_has_a_documented_figure() -> None:
    assert set(TORCHVISION_GMACS) == set(list_models(group="mobile"))


@pytest.mark.parametrize("name", sorted(TORCHVISION_GMACS))
def test_profiled_macs_match_torchvision(exported, name: str) -> None:
    r = exported(name, "fp32")
    cost = profile(r.path).cost
    assert cost.unknown_ops == []
    doc = TORCHVISION_GMACS[name]
    assert abs(cost.macs / 1e9 - doc) <= max(0.01 * doc, 0.0005), (cost.macs, doc)
    # the same figure in the spec table behind `edgecnn list` and in the file's metadata (the export's counter)
    assert cost.macs == get_spec(name).macs == read_metadata(r.path)["macs"]
    assert cost.flops > 2 * cost.macs  # elementwise work (activations, SE's Mul, residual Add) counted apart


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_hard_swish_and_hard_sigmoid_are_native_onnx_ops(exported, name: str) -> None:
    nodes = _ops(exported(name, "fp32").path)
    ops = {n.op_type for n in nodes}
    assert {"HardSwish", "HardSigmoid"} <= ops
    assert not ops & {"Div", "Clip", "Sigmoid", "Min", "Max"}  # nothing decomposed
    for n in nodes:
        if n.op_type == "HardSigmoid":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            assert attrs["alpha"] == pytest.approx(1 / 6) and attrs.get("beta", 0.5) == pytest.approx(0.5)


def test_relu6_is_clip(exported) -> None:
    ops = [n.op_type for n in _ops(exported("mobilenet_v2", "fp32").path)]
    assert ops.count("Clip") == 35 and "Relu" not in ops  # 17 blocks x 2 + the head


@pytest.mark.parametrize("name", ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0"])
def test_channel_shuffle_survives_simplification_with_dynamic_batch(exported, name: str) -> None:
    r = exported(name, "fp32")
    assert r.passed and r.validation["batch_sizes"] == [1, 3]  # run at two batch sizes against torch
    model = onnx.load(r.path)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    transposes = [n for n in model.graph.node if n.op_type == "Transpose"]
    assert len(transposes) == 16  # one shuffle per unit: 4 + 8 + 4
    assert all(list(n.attribute[0].ints) == [0, 2, 1, 3, 4] for n in transposes)
    shapes = [consts[n.input[1]] for n in model.graph.node if n.op_type == "Reshape"]
    assert len(shapes) == 32 and all(s[0] in (-1, 0) for s in shapes)  # batch never baked in
    assert sorted({len(s) for s in shapes}) == [4, 5]  # (N, 2, C/2, H, W) and back


def test_cli_profile_json_reports_the_macs(exported, capsys) -> None:
    # `edgecnn profile mobilenet_v3_small --json` counts an export like this one (from its cache); the file here
    # spares the test a second export
    code, out, err = run_cli(capsys, "profile", exported("mobilenet_v3_small", "fp32").path, "--json")
    assert code == 0, err
    totals = json.loads(out)["totals"]
    assert totals["macs"] == get_spec("mobilenet_v3_small").macs
