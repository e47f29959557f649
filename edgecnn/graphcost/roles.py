"""What a node does in a mobile network, from its shapes: depthwise, pointwise, squeeze-and-excitation, ...

    role = node_role(node, graph.tensors)       # "depthwise", "pointwise", "se", "grouped", "conv", "fc" or None

The roles explain where time and quantization error go in depthwise-separable networks (Howard et al.
2017, MobileNets; Sandler et al. 2018, MobileNetV2; Hu et al. 2018, squeeze-and-excitation):

| role | rule |
| --- | --- |
| depthwise | a convolution with ``group`` = input channels > 1 (one filter per channel) |
| grouped | any other convolution with ``group`` > 1 (ResNeXt/RegNet groups) |
| se | a 1x1 convolution on a 1x1 map (SE's small FCs after global pooling), or a Mul scaling an \
N x C x H x W map by an N x C x 1 x 1 vector (SE's broadcast scale) |
| pointwise | a 1x1 convolution on a larger map, ``group`` = 1 |
| conv | any other convolution |
| fc | Gemm, MatMul and their integer forms |

Works on float graphs and on quantized ones (QDQ: shapes come through DequantizeLinear; QLinearConv and
ConvInteger read their own weight slot). Needs shapes from :func:`edgecnn.graphcost.load_graph`.
"""

from __future__ import annotations

from collections.abc import Mapping

import onnx

from edgecnn.graphcost.rules import CONV, MATMUL
from edgecnn.graphcost.shapes import Tensor, attr

ROLES = ("depthwise", "grouped", "se", "pointwise", "conv", "fc")
_WEIGHT_SLOT = {"QLinearConv": 3}
_FC = MATMUL | {"Gemm", "QGemm"}


def _shape(tensors: Mapping[str, Tensor], name: str) -> tuple[int, ...] | None:
    t = tensors.get(name) if name else None
    return t.shape if t is not None else None


def conv_role(node: onnx.NodeProto, tensors: Mapping[str, Tensor]) -> str:
    """The role of a convolution node (see the module table); ``conv`` when its shapes are unknown."""
    groups = int(attr(node, "group", 1) or 1)
    x = _shape(tensors, node.input[0])
    w = _shape(tensors, node.input[_WEIGHT_SLOT.get(node.op_type, 1)]) if len(node.input) > 1 else None
    cin = x[1] if x is not None and len(x) >= 2 else None
    if groups > 1:
        return "depthwise" if cin == groups else "grouped"
    kernel = tuple(attr(node, "kernel_shape", None) or (w[2:] if w is not None else ()))
    if kernel and all(k == 1 for k in kernel):
        if x is not None and len(x) > 2 and all(d == 1 for d in x[2:]):
            return "se"
        return "pointwise"
    return "conv"


def _se_scale(node: onnx.NodeProto, tensors: Mapping[str, Tensor]) -> bool:
    shapes = [_shape(tensors, i) for i in node.input]
    if len(shapes) != 2 or any(s is None or len(s) != 4 for s in shapes):
        return False
    a, b = shapes
    assert a is not None and b is not None
    for big, small in ((a, b), (b, a)):
        if big[:2] == small[:2] and small[2:] == (1, 1) and big[2] * big[3] > 1:
            return True
    return False


def node_role(node: onnx.NodeProto, tensors: Mapping[str, Tensor]) -> str | None:
    """The role of ``node`` (one of :data:`ROLES`), or None for nodes outside the table (activations, Add, ...)."""
    if node.op_type in CONV:
        return conv_role(node, tensors)
    if node.op_type in _FC:
        return "fc"
    if node.op_type == "Mul" and _se_scale(node, tensors):
        return "se"
    return None
