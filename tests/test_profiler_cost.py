"""Theoretical cost from ONNX graphs: seed tables and worked examples, hand-derived zoo counts, counting rules."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecnn.profiler import graph_cost
from edgecnn.profiler.cost import format_shape

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgecnn.models import Inception, create_model, inference_params  # noqa: E402
from edgecnn.profiler import profile_module  # noqa: E402

# ----------------------------------------------------------------------------- seed 004: VGG-16 table
# (output HxWxC, "memory" = activations, "params" = weights without biases), row for row from the seed.
VGG16_SEED = [
    ("224x224x3", 224 * 224 * 3, 0),  # INPUT
    ("224x224x64", 224 * 224 * 64, (3 * 3 * 3) * 64),
    ("224x224x64", 224 * 224 * 64, (3 * 3 * 64) * 64),
    ("112x112x64", 112 * 112 * 64, 0),
    ("112x112x128", 112 * 112 * 128, (3 * 3 * 64) * 128),
    ("112x112x128", 112 * 112 * 128, (3 * 3 * 128) * 128),
    ("56x56x128", 56 * 56 * 128, 0),
    ("56x56x256", 56 * 56 * 256, (3 * 3 * 128) * 256),
    ("56x56x256", 56 * 56 * 256, (3 * 3 * 256) * 256),
    ("56x56x256", 56 * 56 * 256, (3 * 3 * 256) * 256),
    ("28x28x256", 28 * 28 * 256, 0),
    ("28x28x512", 28 * 28 * 512, (3 * 3 * 256) * 512),
    ("28x28x512", 28 * 28 * 512, (3 * 3 * 512) * 512),
    ("28x28x512", 28 * 28 * 512, (3 * 3 * 512) * 512),
    ("14x14x512", 14 * 14 * 512, 0),
    ("14x14x512", 14 * 14 * 512, (3 * 3 * 512) * 512),
    ("14x14x512", 14 * 14 * 512, (3 * 3 * 512) * 512),
    ("14x14x512", 14 * 14 * 512, (3 * 3 * 512) * 512),
    ("7x7x512", 7 * 7 * 512, 0),
    ("4096", 4096, 7 * 7 * 512 * 4096),  # the seed writes [1x1x4096]
    ("4096", 4096, 4096 * 4096),
    ("1000", 1000, 4096 * 1000),
]
# the values the seed prints, to check the rows above were copied right
VGG16_SEED_PRINTED_PARAMS = [0, 1728, 36864, 0, 73728, 147456, 0, 294912, 589824, 589824, 0, 1179648, 2359296,
                             2359296, 0, 2359296, 2359296, 2359296, 0, 102760448, 16777216, 4096000]


@pytest.fixture(scope="module")
def vgg16_cost(zoo_onnx):
    return graph_cost(zoo_onnx("vgg16"), batch=1)


@pytest.fixture(scope="module")
def alexnet_paper_cost(zoo_onnx):
    return graph_cost(zoo_onnx("alexnet_paper"), batch=1)


def test_vgg16_reproduces_seed_table_row_for_row(vgg16_cost):
    assert [p for _, _, p in VGG16_SEED] == VGG16_SEED_PRINTED_PARAMS
    rows = [(lay.shape_hwc, lay.activations, lay.weights_only) for lay in vgg16_cost.layers]
    assert rows == VGG16_SEED
    kinds = [lay.kind for lay in vgg16_cost.layers]
    assert kinds == ["input"] + ["conv"] * 2 + ["pool"] + ["conv"] * 2 + ["pool"] + (["conv"] * 3 + ["pool"]) * 3 \
        + ["fc"] * 3


def test_vgg16_totals_are_sums_of_rows_and_correct_the_seed(vgg16_cost):
    c = vgg16_cost
    assert c.activations == sum(a for _, a, _ in VGG16_SEED) == 15_237_608  # the seed says "24M": it is 15.2M
    assert c.activation_bytes == 4 * 15_237_608  # ~61 MB/image forward, not the seed's ~96 MB
    assert c.weights_only == sum(p for _, _, p in VGG16_SEED) == 138_344_128  # "138M parameters"
    assert c.params == 138_357_544 == inference_params(create_model("vgg16"))  # with the 13,416 biases
    assert c.params == sum(lay.params for lay in c.layers)
    assert c.macs == sum(lay.macs for lay in c.layers)
    assert c.flops == sum(lay.flops for lay in c.layers)
    assert c.weight_bytes == 4 * c.params
    assert c.unknown_ops == []


def _vgg16_macs_by_hand() -> int:
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    size, cin, macs = 224, 3, 0
    for v in cfg:
        if v == "M":
            size //= 2
        else:
            macs += size * size * v * 3 * 3 * cin
            cin = v
    return macs + 7 * 7 * 512 * 4096 + 4096 * 4096 + 4096 * 1000


def test_vgg16_macs_by_hand(vgg16_cost):
    assert vgg16_cost.macs == _vgg16_macs_by_hand() == 15_470_264_320
    assert vgg16_cost.flops >= 2 * vgg16_cost.macs  # plus ReLU and pooling FLOPs
    assert vgg16_cost.gflops_per_image == pytest.approx(vgg16_cost.flops / 1e9)


def test_batch_scales_everything_but_parameters(zoo_onnx, vgg16_cost):
    c8 = graph_cost(zoo_onnx("vgg16"), batch=8)
    assert c8.params == vgg16_cost.params
    assert c8.macs == 8 * vgg16_cost.macs and c8.flops == 8 * vgg16_cost.flops
    assert c8.activations == 8 * vgg16_cost.activations
    assert c8.layers[1].output_shape == [8, 64, 224, 224]
    assert c8.gflops_per_image == pytest.approx(vgg16_cost.gflops_per_image)


# ----------------------------------------------------------------------------- seed 004: AlexNet table
ALEXNET_SEED = [  # [shape] NAME: ... ; the seed's INPUT row says 224x224x3, which cannot give 55x55 (see docs)
    ("input", "227x227x3"), ("conv", "55x55x96"), ("pool", "27x27x96"), ("norm", "27x27x96"),
    ("conv", "27x27x256"), ("pool", "13x13x256"), ("norm", "13x13x256"), ("conv", "13x13x384"),
    ("conv", "13x13x384"), ("conv", "13x13x256"), ("pool", "6x6x256"), ("fc", "4096"), ("fc", "4096"),
    ("fc", "1000"),
]


def test_alexnet_paper_reproduces_seed_table(alexnet_paper_cost):
    c = alexnet_paper_cost
    assert [(lay.kind, lay.shape_hwc) for lay in c.layers] == ALEXNET_SEED
    assert c.layers[1].params == (11 * 11 * 3 + 1) * 96 == 34_944  # "(11*11*3 + 1)*96 = 35K"
    assert [lay.params for lay in c.layers if lay.kind in ("pool", "norm")] == [0] * 5
    assert c.params == inference_params(create_model("alexnet_paper")) == 62_378_344
    assert c.unknown_ops == []


def test_alexnet_macs_by_hand(alexnet_paper_cost):
    conv = [55 * 55 * 96 * 11 * 11 * 3, 27 * 27 * 256 * 5 * 5 * 96, 13 * 13 * 384 * 3 * 3 * 256,
            13 * 13 * 384 * 3 * 3 * 384, 13 * 13 * 256 * 3 * 3 * 384]
    fc = [6 * 6 * 256 * 4096, 4096 * 4096, 4096 * 1000]
    c = alexnet_paper_cost
    assert [lay.macs for lay in c.layers if lay.kind == "conv"] == conv
    assert [lay.macs for lay in c.layers if lay.kind == "fc"] == fc
    assert c.macs == sum(conv + fc)
    # LRN (size 5) decomposed by the exporter: square, window sum, scale, offset, power, divide = (5 + 5)/elem
    assert c.layers[3].flops == 10 * 27 * 27 * 96


# ----------------------------------------------------------------------------- worked examples (seeds 001/002)
def test_seed_5x5_conv_with_and_without_1x1_reduction():
    plain = profile_module(nn.Conv2d(480, 48, 5, padding=2), (480, 14, 14))
    assert plain.macs == 14 * 14 * 48 * 5 * 5 * 480 == 112_896_000  # "113M" / "112.9M"
    assert plain.weights_only == 48 * 480 * 5 * 5 == 576_000  # the seed's "0.5 M" is 0.58M
    assert plain.layers[-1].shape_hwc == "14x14x48"
    reduced = profile_module(nn.Sequential(nn.Conv2d(480, 16, 1), nn.ReLU(), nn.Conv2d(16, 48, 5, padding=2),
                                           nn.ReLU()), (480, 14, 14))
    assert [lay.macs for lay in reduced.layers[1:]] == [14 * 14 * 16 * 480, 14 * 14 * 48 * 5 * 5 * 16]
    assert [lay.macs for lay in reduced.layers[1:]] == [1_505_280, 3_763_200]  # "1.5M" + "3.8M"
    assert reduced.macs == 5_268_480  # "5.3M"
    assert len(reduced.layers) == 3  # input, conv+relu, conv+relu


def test_seed_naive_inception_module():
    block = Inception(256, 128, 0, 192, 0, 96, 0, ch5x5_kernel=5, naive=True, plain_conv=True)
    c = profile_module(block, (256, 28, 28))
    convs = [lay.macs for lay in c.layers if lay.kind == "conv"]
    assert convs == [28 * 28 * 128 * 1 * 1 * 256, 28 * 28 * 192 * 3 * 3 * 256, 28 * 28 * 96 * 5 * 5 * 256]
    assert c.macs == sum(convs) == 854_196_224  # "Total: 854M ops"
    assert c.layers[-1].kind == "concat" and c.layers[-1].shape_hwc == "28x28x672"  # 128+192+96+256


def test_seed_global_average_pooling_vs_fully_connected():
    gap = profile_module(nn.AdaptiveAvgPool2d(1), (1024, 7, 7))
    assert gap.params == 0 and gap.macs == 0
    assert gap.layers[-1].kind == "pool" and gap.layers[-1].shape_hwc == "1x1x1024"
    assert gap.flops == 7 * 7 * 1024  # one add per input element
    fc = profile_module(nn.Sequential(nn.Flatten(), nn.Linear(7 * 7 * 1024, 1024)), (1024, 7, 7))
    assert fc.weights_only == 7 * 7 * 1024 * 1024 == 51_380_224  # seed 001 "50M", seed 002 "51.3M": 51.4M
    assert fc.params == 51_380_224 + 1024
    assert fc.macs == 51_380_224 and [lay.kind for lay in fc.layers] == ["input", "fc"]


# ----------------------------------------------------------------------------- blocks: GoogLeNet 3a, ResNet
def _inception3a_macs_by_hand() -> int:
    hw = 28 * 28
    return hw * (192 * 64 + 192 * 96 + 96 * 9 * 128 + 192 * 16 + 16 * 9 * 32 + 192 * 32)


def test_googlenet_3a_block_by_hand():
    model = create_model("googlenet").eval()
    c = profile_module(model.inception3a, (192, 28, 28))
    assert c.macs == _inception3a_macs_by_hand()
    assert [lay.kind for lay in c.layers].count("conv") == 6
    assert c.layers[-1].shape_hwc == "28x28x256"
    # batch norm folded into the convolutions: per BN channel, (weight, bias) -> one conv bias
    bn = sum(m.num_features for m in model.inception3a.modules() if isinstance(m, nn.BatchNorm2d))
    assert c.params == sum(p.numel() for p in model.inception3a.parameters()) - bn


def test_googlenet_graph_3a_layers_match_the_block(zoo_onnx):
    c = graph_cost(zoo_onnx("googlenet"))
    rows = [lay for lay in c.layers if lay.name.startswith("inception3a")]
    assert sum(lay.macs for lay in rows) == _inception3a_macs_by_hand()
    assert [lay.kind for lay in rows] == ["conv"] * 5 + ["pool", "conv", "concat"]


def test_resnet_basic_and_bottleneck_blocks_by_hand():
    r18 = create_model("resnet18").eval()
    basic = profile_module(r18.layer2[0], (64, 56, 56))  # stride 2 with a 1x1 downsample
    hw = 28 * 28
    assert basic.macs == hw * (128 * 9 * 64 + 128 * 9 * 128 + 128 * 64)
    kinds = [lay.kind for lay in basic.layers]
    assert kinds.count("conv") == 3 and kinds.count("add") == 1  # conv+relu, conv, downsample, add+relu
    assert basic.layers[-1].ops == ["Add", "Relu"] and basic.layers[-1].shape_hwc == "28x28x128"
    r50 = create_model("resnet50").eval()
    bottleneck = profile_module(r50.layer1[0], (64, 56, 56))
    hw = 56 * 56
    assert bottleneck.macs == hw * (64 * 64 + 64 * 9 * 64 + 256 * 64 + 256 * 64)
    assert bottleneck.layers[-1].shape_hwc == "56x56x256"


# ----------------------------------------------------------------------------- the zoo against torch
def _torch_macs(model: nn.Module, shape: tuple[int, ...]) -> tuple[int, int]:
    """(MACs of Conv2d/Linear by forward hooks, batch-norm channels) — an independent count in torch."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            total[0] += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total[0] += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    skip = tuple(f"{m}." for m in model.spec.train_only) or ("\0",)  # GoogLeNet's aux heads are not exported
    bn = sum(m.num_features for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)
             and not n.startswith(skip))
    return total[0], bn


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "zfnet", "googlenet", "resnet18", "resnet50"])
def test_zoo_params_and_macs_match_torch(zoo_onnx, name):
    model = create_model(name).eval()
    macs, bn = _torch_macs(model, model.spec.input_shape)
    c = graph_cost(zoo_onnx(name))
    assert c.macs == macs
    assert c.params == inference_params(model) - bn  # exact; BN folded at export (2 per channel -> 1 bias)
    assert c.unknown_ops == []
    assert c.params == sum(lay.params for lay in c.layers)


# ----------------------------------------------------------------------------- counting rules on small graphs
def _model(nodes, inputs, outputs, inits, opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _w(name, shape):
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def test_grouped_dilated_strided_conv_rule():
    # 8 -> 16 channels, 4 groups, 3x3 dilated by 2, stride 2, pad 2: out 16x8x8
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=4, dilations=[2, 2], strides=[2, 2],
                            pads=[2, 2, 2, 2], name="conv")
    m = _model([node], [_vi("x", ["N", 8, 16, 16])], [_vi("y", None)], [_w("w", (16, 2, 3, 3)), _w("b", (16,))])
    c = graph_cost(m, batch=2)
    assert c.layers[1].output_shape == [2, 16, 8, 8]
    assert c.macs == 2 * 16 * 8 * 8 * (8 // 4) * 3 * 3
    assert c.flops == 2 * c.macs
    assert c.params == 16 * 2 * 9 + 16 and c.bias_params == 16


def test_gemm_matmul_softmax_and_unknown_op_rules():
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1, name="flat"),
        helper.make_node("Gemm", ["f", "w", "b"], ["g"], transB=1, name="fc"),
        helper.make_node("MatMul", ["g", "m"], ["h"], name="mm"),
        helper.make_node("Softmax", ["h"], ["s"], axis=1, name="softmax"),
        helper.make_node("Hardmax", ["s"], ["y"], axis=1, name="odd"),
    ]
    m = _model(nodes, [_vi("x", [3, 4, 2, 2])], [_vi("y", None)],
               [_w("w", (10, 16)), _w("b", (10,)), _w("m", (10, 5))])
    c = graph_cost(m)  # a fixed batch of 3 is kept
    assert c.batch == 3
    assert [lay.kind for lay in c.layers] == ["input", "fc", "fc", "softmax", "hardmax"]
    assert c.layers[1].ops == ["Flatten", "Gemm"]
    assert c.layers[1].macs == 3 * 10 * 16 and c.layers[2].macs == 3 * 5 * 10
    assert c.layers[3].flops == 3 * 3 * 5
    assert c.unknown_ops == ["Hardmax"] and c.layers[4].unknown_ops == ["Hardmax"]
    assert c.flops == 2 * (3 * 10 * 16 + 3 * 5 * 10) + 45  # Hardmax is listed, not counted


def test_peak_live_memory_on_a_branching_graph():
    # x -> a (relu), x -> b (relu), a + b -> y: x, a and b are live together while the Add runs? no: x dies
    # after b; peak is while b is computed (x, a, b live) = 3 tensors.
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r1"), helper.make_node("Sigmoid", ["x"], ["b"], name="r2"),
             helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    m = _model(nodes, [_vi("x", [1, 1000])], [_vi("y", None)], [])
    c = graph_cost(m)
    assert c.peak_activation_bytes == 3 * 4000
    assert c.activation_bytes == 4 * 4000  # input row + three layer outputs


def test_format_shape():
    assert format_shape([1, 64, 224, 224]) == "224x224x64"
    assert format_shape([8, 1000]) == "1000"


def test_foreign_graph_without_scopes_groups_conv_and_relu(tmp_path):
    from onnx_factory import make_classifier

    c = graph_cost(make_classifier(tmp_path / "tiny.onnx", size=16, hidden=8, num_classes=10), batch=4)
    assert [lay.kind for lay in c.layers] == ["input", "conv", "pool", "fc"]
    assert c.layers[1].ops == ["Conv", "Relu"] and c.layers[3].ops == ["Flatten", "Gemm"]
    assert c.macs == 4 * (16 * 16 * 8 * 3 * 3 * 3 + 10 * 8)
    assert c.params == 8 * 27 + 8 + 10 * 8 + 10


def test_bad_files_are_one_line_errors(tmp_path):
    from edgecnn.errors import EdgecnnError

    with pytest.raises(EdgecnnError, match="not found"):
        graph_cost(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(EdgecnnError, match="not a valid ONNX model"):
        graph_cost(bad)
    onnx.save(_model([], [_vi("x", [1])], [_vi("x", [1])], []), str(tmp_path / "empty.onnx"))


def test_simplified_export_keeps_the_lecture_layers(zoo_onnx):
    """onnxsim (used by the exporters) folds torch's LRN decomposition and adds unscoped nodes (Reshape_0)."""
    onnxsim = pytest.importorskip("onnxsim")
    simplified, ok = onnxsim.simplify(onnx.load(str(zoo_onnx("alexnet_paper"))))
    assert ok
    c = graph_cost(simplified)
    assert [(lay.kind, lay.shape_hwc) for lay in c.layers] == ALEXNET_SEED
    assert c.params == 62_378_344
