"""fp32 -> fp16 conversion of an ONNX graph (weights and compute), float32 or float16 at the edges.

Converter: ``onnxruntime.transformers.float16.convert_float_to_float16``. It ships inside the
``onnxruntime`` wheel every edgecnn install already has (onnxconverter-common carries the same code as
an extra dependency), and it knows ONNX Runtime's kernels. Known traps handled here:

* ``Resize``/``Upsample`` (and ORT's default block list: TopK, Range, Min/Max...) stay in fp32 with
  Casts around them: their ``scales``/``roi`` inputs must be float32.
* ``Cast`` nodes that cast *to* float32 inside the graph are retargeted to float16 by the converter.
* With ``keep_io_types`` the converter appends the input/output Casts at the end of the node list; the
  graph is re-sorted topologically so that ONNX's checker and every runtime accept it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import deque
from collections.abc import Iterator

import numpy as np
import onnx

#: Ops kept in fp32 on top of ORT's default block list.
EXTRA_BLOCK_LIST = ("Resize", "Upsample", "RandomNormal", "RandomUniform", "RandomNormalLike")


def to_fp16(model: onnx.ModelProto, keep_io_types: bool = True) -> onnx.ModelProto:
    """Convert weights and compute to fp16; inputs/outputs stay float32 when ``keep_io_types``."""
    from onnxruntime.transformers import float16

    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(EXTRA_BLOCK_LIST))
    with warnings.catch_warnings(), _fast_tensor_conversion(float16):
        warnings.simplefilter("ignore")  # clamping of out-of-range weights is expected and reported below
        # onnxsim leaves full value_info: re-running shape inference would only re-serialize the weights
        converted = float16.convert_float_to_float16(model, keep_io_types=keep_io_types, op_block_list=block,
                                                     disable_shape_infer=len(model.graph.value_info) > 0)
    topological_sort(converted.graph)
    return converted


def np_to_fp16(a: np.ndarray, min_positive_val: float = 5.96e-08, max_finite_val: float = 65504.0) -> np.ndarray:
    """float32 -> float16 with ORT's semantics, bit for bit: no new zeros or infinities (non-zero values
    that round to 0 become +-``min_positive_val``, finite values that overflow become +-``max_finite_val``;
    0, inf and NaN unchanged). One cast plus two passes over the fp16 result instead of ORT's dozen
    passes over float32 (VGG-16's 138M weights: ~1 s instead of ~7 s)."""
    a = np.asarray(a, dtype=np.float32)
    with np.errstate(over="ignore"):
        out = a.astype(np.float16)
    flat_in, flat_out = a.reshape(-1), out.reshape(-1)
    over = np.flatnonzero(np.isinf(flat_out))
    over = over[np.isfinite(flat_in[over])]
    if over.size:
        flat_out[over] = np.copysign(max_finite_val, flat_in[over])
    under = np.flatnonzero(flat_out == 0)
    under = under[flat_in[under] != 0]
    if under.size:
        flat_out[under] = np.copysign(min_positive_val, flat_in[under])
    return out


@contextlib.contextmanager
def _fast_tensor_conversion(module: object) -> Iterator[None]:
    """Swap ORT's slow per-tensor numpy conversion for :func:`np_to_fp16` during one conversion."""
    original = module.convert_np_to_float16
    module.convert_np_to_float16 = np_to_fp16
    try:
        yield
    finally:
        module.convert_np_to_float16 = original


def topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` in place so that every node comes after the producers of its inputs."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    producers: dict[str, int] = {}
    for idx, node in enumerate(graph.node):
        for out in node.output:
            producers[out] = idx
    deps: list[set[int]] = []
    users: dict[int, list[int]] = {i: [] for i in range(len(graph.node))}
    for idx, node in enumerate(graph.node):
        d = {producers[n] for n in _node_inputs(node) if n not in available and n in producers}
        deps.append(d)
        for p in d:
            users[p].append(idx)
    pending = [len(d) for d in deps]
    queue = deque(i for i, n in enumerate(pending) if n == 0)
    order: list[int] = []
    while queue:
        i = queue.popleft()
        order.append(i)
        for u in users[i]:
            pending[u] -= 1
            if pending[u] == 0:
                queue.append(u)
    if len(order) != len(graph.node):
        raise ValueError("graph has a cycle; cannot sort it topologically")
    if order == list(range(len(graph.node))):
        return
    nodes = [graph.node[i] for i in order]
    copies = [onnx.NodeProto() for _ in nodes]
    for c, n in zip(copies, nodes, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def _node_inputs(node: onnx.NodeProto) -> list[str]:
    """Inputs of a node, including names its subgraphs read from the enclosing scope."""
    names = list(node.input)
    for attr in node.attribute:
        for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            local = {o for n in sub.node for o in n.output} | {i.name for i in sub.input} | \
                {t.name for t in sub.initializer}
            names += [i for n in sub.node for i in _node_inputs(n) if i not in local]
    return names
