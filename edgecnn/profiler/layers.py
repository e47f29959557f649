"""Group ONNX nodes into layers as layer-by-layer cost tables count them.

A convolution with its batch norm and activation is one layer; a pooling layer is one layer; a fully
connected layer includes the Flatten/Reshape in front of it; a normalization (LRN, even when the
exporter decomposed it into a dozen nodes) is one layer; a residual Add with its ReLU is one layer; a
depth Concat is one layer.

How: nodes that share a torch module scope (``/features/features.3/Mul`` -> ``features.3``) and are
connected form a group. Groups made only of activations/normalization/no-op nodes join the group that
produces their input; groups made only of reshapes join the group that consumes their output.
Graphs without scoped names (foreign files, ORT-optimized graphs) start from one group per node.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from edgecnn.graphcost.rules import DATA_MOVEMENT, UNARY
from edgecnn.graphcost.shapes import Graph, attr

#: ops that belong to the layer producing their input
BACKWARD = (UNARY - {"Not"}) | {"BatchNormalization", "Identity", "Dropout", "Cast", "QuantizeLinear",
                                "DequantizeLinear", "DynamicQuantizeLinear"}
#: ops that belong to the layer consuming their output
FORWARD = DATA_MOVEMENT - {"Concat", "Identity", "Dropout", "Cast", "Pad"}

KIND_PRIORITY: list[tuple[str, set[str]]] = [
    ("conv", {"Conv", "ConvInteger", "QLinearConv", "FusedConv", "NhwcConv"}),
    ("deconv", {"ConvTranspose"}),
    ("fc", {"Gemm", "MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul"}),
    ("norm", {"LRN", "InstanceNormalization", "LayerNormalization", "GroupNormalization"}),
    ("pool", {"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}),
    ("bn", {"BatchNormalization"}),
    ("add", {"Add", "Sum"}),
    ("concat", {"Concat"}),
    ("softmax", {"Softmax", "LogSoftmax"}),
]


def scope_of(node: onnx.NodeProto) -> tuple[str, ...] | None:
    """The torch module scope encoded in a TorchScript-exported node name, or None."""
    name = node.name
    if not name.startswith("/") or name.count("/") < 2:
        return None
    parts = tuple(p for p in name.split("/")[1:-1] if p)
    return parts or None


def scope_name(parts: Sequence[str]) -> str:
    """``('layer1', 'layer1.0', 'conv1')`` -> ``layer1.0.conv1``."""
    out: list[str] = []
    for p in parts:
        if out and p.startswith(out[-1] + "."):
            out[-1] = p
        else:
            out.append(p)
    return ".".join(out)


def _is_noop_pool(node: onnx.NodeProto) -> bool:
    if node.op_type not in ("AveragePool", "MaxPool"):
        return False
    k = attr(node, "kernel_shape", [])
    s = attr(node, "strides", [1] * len(k))
    p = attr(node, "pads", [0] * 2 * len(k))
    return bool(k) and all(v == 1 for v in k) and all(v == 1 for v in s) and not any(p)


class _UF:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # keep the earliest node as the root so groups stay in graph order
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo


def group_nodes(graph: Graph, nodes: Sequence[onnx.NodeProto], use_scopes: bool = True) -> list[list[int]]:
    """Partition ``nodes`` (non-constant, topological order) into layers; returns index lists in order."""
    n = len(nodes)
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for o in node.output:
            if o:
                producer[o] = i
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for t in node.input:
            if t in producer:
                consumers.setdefault(t, []).append(i)

    def plumbing(i: int) -> bool:  # shape arithmetic: integer outputs only
        outs = [graph.tensors.get(o) for o in nodes[i].output if o]
        return bool(outs) and all(t is not None and t.is_integer for t in outs)

    uf = _UF(n)
    scopes = [scope_of(node) if use_scopes else None for node in nodes]
    # a node an optimizer created without a scope (onnxsim's "Reshape_0") inside one module joins it
    for i, node in enumerate(nodes):
        if scopes[i] is not None or not use_scopes:
            continue
        around = {scopes[j] for t in node.input if (j := producer.get(t)) is not None}
        around |= {scopes[j] for o in node.output for j in consumers.get(o, [])}
        if len(around) == 1 and None not in around:
            scopes[i] = around.pop()
    for i, node in enumerate(nodes):
        if scopes[i] is None:
            continue
        for t in node.input:
            j = producer.get(t)
            if j is not None and scopes[j] == scopes[i]:
                uf.union(i, j)

    def members() -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for i in range(n):
            groups.setdefault(uf.find(i), []).append(i)
        return groups

    def classify(idx: list[int]) -> str:
        real = [i for i in idx if not plumbing(i)]
        if not real:
            return "forward"
        if all(nodes[i].op_type in BACKWARD or _is_noop_pool(nodes[i]) for i in real):
            return "backward"
        if all(nodes[i].op_type in FORWARD for i in real):
            return "forward"
        return "compute"

    def data_inputs(idx: list[int]) -> list[int]:
        inside = set(idx)
        out = []
        for i in idx:
            for t in nodes[i].input:
                j = producer.get(t)
                tensor = graph.tensors.get(t)
                if j is not None and j not in inside and tensor is not None and not tensor.is_integer:
                    out.append(j)
        return out

    def data_consumers(idx: list[int]) -> list[int]:
        inside = set(idx)
        out = []
        for i in idx:
            for o in nodes[i].output:
                out += [j for j in consumers.get(o, []) if j not in inside]
        return out

    # forward groups (reshapes) join their single consuming group, in reverse order so chains resolve
    initial = members()
    kinds = {root: classify(idx) for root, idx in initial.items()}
    for root in sorted(initial, reverse=True):
        if kinds[root] != "forward":
            continue
        idx = [i for i in range(n) if uf.find(i) == uf.find(root)]
        targets = {uf.find(j) for j in data_consumers(idx)}
        if len(targets) == 1:
            uf.union(root, targets.pop())
        else:
            kinds[root] = "backward"
    # backward groups (activations, BN, no-op pools) join the group producing their input
    for root in sorted(initial):
        if kinds.get(root) != "backward" or uf.find(root) != root:
            continue
        idx = [i for i in range(n) if uf.find(i) == root]
        sources = {uf.find(j) for j in data_inputs(idx)}
        if len(sources) == 1:
            uf.union(root, sources.pop())
    return [sorted(idx) for _, idx in sorted(members().items())]


def layer_kind(nodes: Sequence[onnx.NodeProto]) -> tuple[str, int]:
    """(kind, index of the primary node) of a layer's nodes."""
    ops = [nd.op_type for nd in nodes]
    if {"Pow", "Div"} <= set(ops) and ("AveragePool" in ops or "ReduceSum" in ops):
        return "norm", ops.index("Pow")  # an exporter's LRN decomposition
    for kind, names in KIND_PRIORITY:
        for i, op in enumerate(ops):
            if op in names and not _is_noop_pool(nodes[i]):
                return kind, i
    for i, op in enumerate(ops):
        if op not in FORWARD:
            return op.lower(), i
    return (ops[0].lower() if ops else "empty"), 0


def layer_name(node: onnx.NodeProto) -> str:
    """A readable layer name: the torch module path when the node name carries one, else the node name."""
    scope = scope_of(node)
    return scope_name(scope) if scope else node.name.lstrip("/")
