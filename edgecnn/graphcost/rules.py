"""Counting rules: MACs and FLOPs of one ONNX node from its input/output shapes.

MACs count only the multiply-accumulates of convolutions and matrix products (the convention of the
published per-layer tables, e.g. Szegedy et al. 2015, Table 1, and Simonyan & Zisserman 2015); 1 MAC =
2 FLOPs. FLOPs = 2 x MACs for those ops, and for every other op the FLOPs of its rule below. Bias
additions of Conv/Gemm are not counted (as in those tables, and < 1/(Cin*k*k) of the work).

| op | MACs | FLOPs |
| --- | --- | --- |
| Conv, ConvInteger, QLinearConv | N*Cout*Hout*Wout * (Cin/groups)*kh*kw (1) | 2 x MACs |
| ConvTranspose | N*Cin*Hin*Win * (Cout/groups)*kh*kw | 2 x MACs |
| Gemm, MatMul, MatMulInteger, QLinearMatMul | M*N*K (times the broadcast batch dims) | 2 x MACs |
| MaxPool, AveragePool, LpPool | 0 | one compare/add per window element: out_elems*kh*kw |
| GlobalAveragePool, GlobalMaxPool, Reduce* | 0 | in_elems |
| unary elementwise and activations (Relu, Sigmoid, Clip, Exp, ...) | 0 | out_elems |
| binary/variadic elementwise (Add, Mul, Div, Pow, Max, Sum, ...) | 0 | out_elems * (inputs-1) |
| BatchNormalization (inference: one scale and one shift) | 0 | 2*out_elems |
| InstanceNormalization, LayerNormalization, GroupNormalization | 0 | 5*out_elems |
| LRN (size n) | 0 | (n + 5)*out_elems: square, n-term window sum, scale, offset, power, divide (2) |
| Softmax, LogSoftmax | 0 | 3*out_elems: exp, sum, divide |
| QuantizeLinear, DequantizeLinear | 0 | 2*out_elems |
| data movement (Reshape, Flatten, Concat, Transpose, Pad, Cast, Identity, Dropout, Shape, ...) | 0 | 0 |

(1) stride and padding act through the output size; dilation spreads the taps and costs nothing.
(2) the same count as torch's export of LocalResponseNorm (Mul, AveragePool, Mul, Add, Pow, Div).

Nodes whose outputs are all integers (shape arithmetic: Shape, Gather, Equal on shapes) count 0, and so
does an ``If`` whose branches only move data.
Any other op has no rule: it is listed in the report's ``unknown_ops`` and left out of the totals,
never silently counted as zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx

from edgecnn.graphcost.shapes import Tensor, attr

Shape = tuple[int, ...]

UNARY = {
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Softplus", "Softsign", "Clip", "Exp", "Log", "Sqrt", "Reciprocal", "Neg", "Abs", "Erf", "Sin", "Cos",
    "Floor", "Ceil", "Round", "Sign", "Not", "ThresholdedRelu", "Mish", "IsNaN", "IsInf",
}
BINARY = {
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Equal", "Greater", "Less",
    "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Where", "Mod", "BitShift",
}
POOL = {"MaxPool", "AveragePool", "LpPool"}
GLOBAL_POOL = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}
REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin"}
DATA_MOVEMENT = {
    "Identity", "Dropout", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split",
    "Slice", "Gather", "GatherElements", "Shape", "Size", "Constant", "ConstantOfShape", "Pad", "Expand",
    "Tile", "Cast", "CastLike", "Range", "NonZero", "SpaceToDepth", "DepthToSpace", "TopK", "GatherND",
}
CONV = {"Conv", "ConvInteger", "QLinearConv", "FusedConv", "NhwcConv"}
MATMUL = {"MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul"}


def _prod(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _weight_input(op: str) -> int:
    return 3 if op == "QLinearConv" else 1


def _conv(node: onnx.NodeProto, ins: list[Tensor | None], outs: list[Tensor]) -> tuple[int, int]:
    w = ins[_weight_input(node.op_type)]
    if w is None or w.shape is None or outs[0].shape is None:
        raise _NoShape
    # weight: (Cout, Cin/groups, k...) ; every output element needs Cin/groups * prod(k) MACs
    macs = outs[0].numel * _prod(w.shape[1:])
    return macs, 2 * macs


def _conv_transpose(node: onnx.NodeProto, ins: list[Tensor | None], outs: list[Tensor]) -> tuple[int, int]:
    x, w = ins[0], ins[1]
    if x is None or w is None or x.shape is None or w.shape is None:
        raise _NoShape
    # weight: (Cin, Cout/groups, k...) ; every input element is scattered to Cout/groups * prod(k) outputs
    macs = x.numel * _prod(w.shape[1:])
    return macs, 2 * macs


def _gemm(node: onnx.NodeProto, ins: list[Tensor | None], outs: list[Tensor]) -> tuple[int, int]:
    a = ins[0]
    if a is None or a.shape is None or outs[0].shape is None:
        raise _NoShape
    k = a.shape[0] if attr(node, "transA", 0) else a.shape[-1]
    macs = outs[0].numel * k
    return macs, 2 * macs


def _matmul(node: onnx.NodeProto, ins: list[Tensor | None], outs: list[Tensor]) -> tuple[int, int]:
    a = ins[0]
    if a is None or a.shape is None or outs[0].shape is None:
        raise _NoShape
    macs = outs[0].numel * a.shape[-1]
    return macs, 2 * macs


class _NoShape(Exception):
    """A shape the rule needs is unknown."""


Rule = Callable[[onnx.NodeProto, list["Tensor | None"], list[Tensor]], tuple[int, int]]


def node_cost(node: onnx.NodeProto, ins: list[Tensor | None], outs: list[Tensor]) -> tuple[int, int] | None:
    """(MACs, FLOPs) of ``node``, or None when no rule applies (or a needed shape is unknown)."""
    op = node.op_type
    out_elems = sum(o.numel for o in outs if o is not None and o.shape is not None)
    try:
        if op in CONV:
            return _conv(node, ins, outs)
        if op == "ConvTranspose":
            return _conv_transpose(node, ins, outs)
        if op == "Gemm":
            return _gemm(node, ins, outs)
        if op in MATMUL:
            return _matmul(node, ins, outs)
        if not outs or outs[0].shape is None:
            return None
        if op in DATA_MOVEMENT:
            return 0, 0
        if op == "If" and all(n.op_type in DATA_MOVEMENT for a in node.attribute if a.name in
                              ("then_branch", "else_branch") for n in a.g.node):
            return 0, 0  # a branch that only reshapes (torch's LRN export squeezes inside an If)
        if op in POOL:
            kernel = attr(node, "kernel_shape", [])
            return 0, outs[0].numel * _prod(kernel)
        if op in GLOBAL_POOL or op in REDUCE:
            x = ins[0]
            if x is None or x.shape is None:
                return None
            return 0, x.numel
        if op in UNARY:
            return 0, out_elems
        if op in BINARY:
            n_in = len([i for i in node.input if i])
            return 0, outs[0].numel * max(1, n_in - 1)
        if op == "BatchNormalization":
            return 0, 2 * outs[0].numel
        if op in ("InstanceNormalization", "LayerNormalization", "GroupNormalization"):
            return 0, 5 * outs[0].numel
        if op == "LRN":
            return 0, (int(attr(node, "size", 1)) + 5) * outs[0].numel
        if op in ("Softmax", "LogSoftmax"):
            return 0, 3 * outs[0].numel
        if op in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
            return 0, 2 * outs[0].numel
    except _NoShape:
        return None
    return None


#: ops whose constant inputs are never parameters (shapes, indices, pads, scales, clip bounds)
NON_PARAM_OPS = DATA_MOVEMENT | {"Resize", "Upsample", "Clip", "ReduceMean", "ReduceSum", "ReduceMax",
                                 "ReduceMin", "TopK", "Equal", "Where", "If", "Loop", "Scan"}


def input_role(node: onnx.NodeProto, index: int, tensor: Tensor) -> str:
    """What a constant input of ``node`` is: ``param`` (learned), ``buffer`` (running stats, quantization
    scales/zero points) or ``other`` (shapes, indices, hyper-parameter scalars)."""
    op = node.op_type
    if tensor.is_integer and not (op == "QLinearConv" and index == 8):
        return "other"
    if op in NON_PARAM_OPS:
        return "other"
    if op == "BatchNormalization":
        return "param" if index in (1, 2) else "buffer"
    if op in ("QuantizeLinear", "DynamicQuantizeLinear"):
        return "buffer"
    if op == "DequantizeLinear":
        return "param" if index == 0 else "buffer"
    if op == "QLinearConv":
        return "param" if index in (3, 8) else "buffer"
    if op == "QLinearMatMul":
        return "param" if index in (0, 3) else "buffer"
    if op in ("ConvInteger", "MatMulInteger"):
        return "param" if index in (0, 1) else "buffer"
    if op in BINARY or op in UNARY:
        # scalar constants of elementwise ops (LRN's alpha, beta, k; a scale) are hyper-parameters
        return "param" if tensor.numel > 1 else "other"
    return "param"
