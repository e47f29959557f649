"""The profiler on mobile graphs: squeeze-and-excitation, hard activations, ReLU6 and channel shuffle counted as the
project counts (MACs of Conv/Gemm/MatMul only, elementwise work in FLOPs apart), depthwise layers flagged and placed
on the roofline."""

from __future__ import annotations

import csv
import io
import json

import onnx
import pytest
from cli_helpers import run_cli
from onnx import numpy_helper

from edgecnn.graphcost.rules import CONV, MATMUL
from edgecnn.profiler.cost import graph_cost
from edgecnn.profiler.roofline import Roof, layer_bounds

#: an assumed roof like the 2-core VMs of docs/benchmarks.md: ORT fp32 reaches 150-200 GFLOP/s; 20 GB/s of DRAM
#: bandwidth per two cores. Ridge point 10 FLOP/byte.
ASSUMED = Roof(200.0, 20.0, "user", "user")
ELEMENTWISE = {"Mul", "Add", "HardSwish", "HardSigmoid", "Sigmoid", "Clip", "Relu", "GlobalAveragePool",
               "ReduceMean", "MaxPool"}


def _macs_from_weights(path) -> int:
    """MACs recomputed from the file's weights and inferred shapes: Conv out_elems x Cin/g x k x k, Gemm M x N x K."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    shapes.update({o.name: [d.dim_value or 1 for d in o.type.tensor_type.shape.dim] for o in model.graph.output})
    weights = {t.name: numpy_helper.to_array(t).shape for t in model.graph.initializer}
    total = 0
    for n in model.graph.node:
        out = 1
        for d in shapes[n.output[0]]:
            out *= d
        if n.op_type == "Conv":
            w = weights[n.input[1]]
            total += out * w[1] * w[2] * w[3]
        elif n.op_type == "Gemm":
            total += out * weights[n.input[1]][1]  # transB=1: weight is N x K
    return total


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "shufflenet_v2_x0_5"])
def test_macs_are_conv_and_gemm_only_and_elementwise_is_apart(exported, name: str) -> None:
    path = exported(name, "fp32").path
    cost = graph_cost(path)
    assert cost.unknown_ops == []
    assert cost.macs == _macs_from_weights(path)
    by_op: dict[str, list] = {}
    for n in cost.nodes:
        by_op.setdefault(n.op, []).append(n)
        if n.op not in CONV | MATMUL | {"Gemm"}:
            assert n.macs == 0, n  # SE's Mul, HardSwish, HardSigmoid, Clip, pooling, shuffle: never MACs
        else:
            assert n.flops == 2 * n.macs
    for op in ELEMENTWISE & set(by_op):
        for n in by_op[op]:
            if op != "MaxPool":
                assert n.flops > 0 and n.flops <= 2 * max(n.activation_bytes, n.input_bytes), n
    elementwise = sum(n.flops for n in cost.nodes if n.op not in CONV | MATMUL | {"Gemm"})
    assert elementwise > 0 and cost.elementwise_flops == elementwise == cost.flops - 2 * cost.macs
    assert sum(lay.elementwise_flops for lay in cost.layers) == elementwise


def test_squeeze_excitation_and_hard_swish_on_mobilenet_v3_small(exported) -> None:
    cost = graph_cost(exported("mobilenet_v3_small", "fp32").path)
    se = [lay for lay in cost.layers if lay.role == "se"]
    # 9 SE blocks (features.1 and 4-11), each: fc1 and fc2 (1x1 convs on the pooled 1x1 map) and the broadcast Mul
    assert len(se) == 27 and sum(lay.kind == "mul" for lay in se) == 9
    for lay in se:
        if lay.kind == "mul":
            n, c, h, w = lay.output_shape
            assert lay.macs == 0 and lay.flops == lay.elementwise_flops == n * c * h * w
        else:
            assert lay.output_shape[2:] == [1, 1] and lay.macs > 0
    hswish = [n for n in cost.nodes if n.op == "HardSwish"]
    assert len(hswish) == 19 and all(n.macs == 0 and n.flops == n.activation_bytes // 4 for n in hswish)
    # the activation's FLOPs are the layer's elementwise part: a conv+HardSwish layer has exactly its output size
    first = cost.layer("features.0.0")
    assert first.ops == ["Conv", "HardSwish"] and first.elementwise_flops == first.activations == 112 * 112 * 16


def test_relu6_is_counted_as_one_flop_per_element(exported) -> None:
    cost = graph_cost(exported("mobilenet_v2", "fp32").path)
    clips = [n for n in cost.nodes if n.op == "Clip"]
    assert len(clips) == 35 and all(n.macs == 0 and n.flops * 4 == n.activation_bytes for n in clips)


def test_channel_shuffle_costs_nothing(exported) -> None:
    cost = graph_cost(exported("shufflenet_v2_x0_5", "fp32").path)
    shuffles = [lay for lay in cost.layers if "Transpose" in lay.ops]
    assert len(shuffles) == 16  # one per unit (4 + 8 + 4)
    assert all(lay.macs == 0 and lay.flops == 0 and lay.params == 0 for lay in shuffles)


@pytest.mark.parametrize("name, count", [("mobilenet_v3_small", 11), ("shufflenet_v2_x0_5", 19)])
def test_depthwise_layers_are_flagged_and_memory_bound(exported, name: str, count: int) -> None:
    path = exported(name, "fp32").path
    cost = graph_cost(path)
    dw = [lay for lay in cost.layers if lay.depthwise]
    assert len(dw) == count  # every inverted residual / shuffle unit (+ the downsampling branches of ShuffleNet)
    groups = {n.name: next((a.i for a in n.attribute if a.name == "group"), 1) for n in onnx.load(str(path)).graph.node}
    for lay in dw:
        conv = lay.nodes[lay.ops.index("Conv")]
        c = lay.output_shape[1]
        assert groups[conv] == c and lay.macs * 2 + lay.elementwise_flops == lay.flops
        # physics, not fit: 2 k^2 (+1 activation) FLOPs per output element against >= 8 bytes read and written
        k2 = lay.macs // (lay.activations)
        assert lay.intensity <= (2 * k2 + 1) / 8
    bounds = layer_bounds(cost, ASSUMED)
    assert all(bounds[lay.index]["bound"] == "memory" for lay in dw)
    assert all(bounds[lay.index]["attainable_gflops"] < 0.7 * ASSUMED.gflops for lay in dw)
    dense = [lay for lay in cost.layers if lay.role in ("pointwise", "conv") and lay.macs > 1_000_000]
    assert max(lay.intensity for lay in dw) < max(lay.intensity for lay in dense)


def test_profile_per_layer_json_csv_and_text_carry_the_roofline(exported, capsys, tmp_path) -> None:
    path = exported("mobilenet_v3_small", "fp32").path
    roof = ["--peak-gflops", "200", "--bandwidth-gbs", "20"]
    code, out, err = run_cli(capsys, "profile", path, "--per-layer", "--json", *roof)
    assert code == 0, err
    d = json.loads(out)
    assert d["roofline"]["ridge"] == 10.0 and d["roofline"]["gflops_source"] == "user"
    dw = [lay for lay in d["layers"] if lay["depthwise"]]
    assert len(dw) == 11 and {lay["bound"] for lay in dw} == {"memory"} and {lay["role"] for lay in dw} == {"depthwise"}
    assert d["totals"]["elementwise_flops"] == d["totals"]["flops"] - 2 * d["totals"]["macs"]
    code, out, err = run_cli(capsys, "profile", path, "--csv", "-", *roof)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and {r["bound"] for r in rows if r["depthwise"] == "True"} == {"memory"}
    assert all(r["bound"] in ("memory", "compute") for r in rows[1:])
    code, out, err = run_cli(capsys, "profile", path, "--per-layer", *roof)
    assert code == 0 and "ridge at 10.0 FLOP/byte" in out and "11 layers: group = channels" in out
    dw_line = next(line for line in out.splitlines() if line.split()[1:2] == ["features.1.block.0.0"])
    assert " DW " in dw_line and dw_line.rstrip().endswith("memory")
    code, out, err = run_cli(capsys, "profile", path, "--per-layer", "--bandwidth-gbs", "0")
    assert code != 0 and "--bandwidth-gbs must be > 0" in err and "Traceback" not in err


def test_measured_roof_is_cached_per_machine(exported, capsys) -> None:
    path = exported("mobilenet_v3_small", "fp32").path
    code, out, err = run_cli(capsys, "profile", path, "--per-layer", "--json", "--threads", "1")
    assert code == 0, err
    first = json.loads(out)["roofline"]
    assert first["bandwidth_source"] in ("measured", "cache") and first["bandwidth_gbs"] > 0 and first["gflops"] > 0
    code, out, err = run_cli(capsys, "profile", path, "--per-layer", "--json", "--threads", "1")
    again = json.loads(out)["roofline"]
    assert again["bandwidth_source"] == "cache" and again["bandwidth_gbs"] == first["bandwidth_gbs"]
