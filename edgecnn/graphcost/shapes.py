"""Load an ONNX graph at a given batch size and know every tensor's shape, dtype and constness.

Shapes come from ONNX shape inference (with data propagation). Where that leaves a tensor unknown (e.g.
torch's LocalResponseNorm decomposition, whose padding goes through an ``If``), ``fill_shapes`` may read
them elsewhere: :func:`edgecnn.runtime.shapes.shapes_from_run` runs the graph once on zeros in ONNX
Runtime. This module itself needs only onnx and numpy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from edgecnn import onnxfile
from edgecnn.errors import EdgecnnError

_INT_TYPES = {TensorProto.INT64, TensorProto.INT32, TensorProto.INT16, TensorProto.UINT64, TensorProto.UINT32,
              TensorProto.UINT16, TensorProto.BOOL}
#: initializers larger than this (elements) are stripped of their data before shape inference
_STRIP_ABOVE = 4096


@dataclass
class Tensor:
    """One value of the graph: shape (ints; None when unknown), ONNX element type, and whether constant."""

    name: str
    shape: tuple[int, ...] | None
    elem_type: int
    constant: bool = False

    @property
    def numel(self) -> int:
        """Number of elements (0 when the shape is unknown)."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape is not None else 0

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        try:
            return int(np.dtype(helper.tensor_dtype_to_np_dtype(self.elem_type)).itemsize)
        except (KeyError, TypeError, ValueError):
            return 4

    @property
    def nbytes(self) -> int:
        """Size in bytes (0 when the shape is unknown)."""
        return self.numel * self.itemsize

    @property
    def is_integer(self) -> bool:
        """True for int/bool tensors (shapes, indices), which are never activations or parameters."""
        return self.elem_type in _INT_TYPES

    @property
    def dtype(self) -> str:
        """numpy dtype name."""
        try:
            return np.dtype(helper.tensor_dtype_to_np_dtype(self.elem_type)).name
        except (KeyError, TypeError, ValueError):
            return str(self.elem_type)


@dataclass
class Graph:
    """A shape-inferred ONNX graph: nodes in topological order and a table of tensors."""

    model: onnx.ModelProto
    path: str | None
    batch: int
    tensors: dict[str, Tensor]
    inputs: list[str]
    outputs: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    #: names of nodes whose inputs are all constant (folded away by any runtime)
    constant_nodes: set[str] = field(default_factory=set)

    @property
    def nodes(self) -> list[onnx.NodeProto]:
        return list(self.model.graph.node)

    def tensor(self, name: str) -> Tensor | None:
        return self.tensors.get(name) if name else None


def _dims(vtype: onnx.TypeProto) -> tuple[int, ...] | None:
    if not vtype.HasField("tensor_type") or not vtype.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in vtype.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_value") and d.dim_value == 0:
            dims.append(0)
        else:
            return None
    return tuple(dims)


#: ``fill_shapes(model, input_names, batch, names) -> {name: (shape, elem_type)}`` for tensors whose
#: shape inference left unknown.
ShapeFiller = Callable[[onnx.ModelProto, Sequence[str], int, Sequence[str]], dict[str, tuple[tuple[int, ...], int]]]


def load_model(model: str | os.PathLike | onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """Open an ONNX file (with external data) or pass a ModelProto through; user errors are one line."""
    if isinstance(model, onnx.ModelProto):
        return model, None
    return onnxfile.open_model(model), str(model)


def _light_copy(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy without large weight data (shape inference needs only dims), input batch set to ``batch``."""
    light = onnx.ModelProto()
    graph = model.graph
    # copy everything but the initializers' data, which can be hundreds of MB
    light.CopyFrom(onnx.ModelProto(**{f.name: v for f, v in model.ListFields() if f.name != "graph"}))
    light.graph.CopyFrom(onnx.GraphProto(**{f.name: v for f, v in graph.ListFields() if f.name != "initializer"}))
    for init in graph.initializer:
        t = light.graph.initializer.add()
        if init.data_type not in _INT_TYPES and int(np.prod(init.dims, dtype=np.int64)) > _STRIP_ABOVE:
            # keep the element count visible to inference: an empty data field is allowed there
            t.name, t.data_type = init.name, init.data_type
            t.dims.extend(init.dims)
        else:
            t.CopyFrom(init)
    init_names = {i.name for i in light.graph.initializer}
    for inp in light.graph.input:
        if inp.name in init_names:
            continue
        dims = inp.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_value = batch
    for out in light.graph.output:
        dims = out.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch
    del light.graph.value_info[:]
    return light


def load_graph(model: str | os.PathLike | onnx.ModelProto, batch: int | None = None, *,
               fill_shapes: ShapeFiller | None = None) -> Graph:
    """Load ``model`` and infer every tensor's shape at batch size ``batch`` (default: the graph's fixed
    batch, else 1). Shapes inference leaves unknown come from ``fill_shapes`` when given, else stay unknown
    (their nodes then have no cost)."""
    proto, path = load_model(model)
    if batch is None:
        batch = _fixed_batch(proto) or 1
    if batch < 1:
        raise EdgecnnError(f"batch must be >= 1, got {batch}")
    light = _light_copy(proto, batch)
    try:
        inferred = shape_inference.infer_shapes(light, data_prop=True)
    except Exception as e:
        raise EdgecnnError(f"shape inference failed on {path or 'model'}: {str(e).splitlines()[0]}") from None
    g = inferred.graph
    tensors: dict[str, Tensor] = {}
    for init in g.initializer:
        tensors[init.name] = Tensor(init.name, tuple(int(d) for d in init.dims), init.data_type, True)
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if vi.name in tensors and tensors[vi.name].constant:
            continue
        tensors[vi.name] = Tensor(vi.name, _dims(vi.type), vi.type.tensor_type.elem_type)
    init_names = {i.name for i in g.initializer}
    inputs = [i.name for i in g.input if i.name not in init_names]
    outputs = [o.name for o in g.output]

    # constant propagation: Constant nodes and nodes fed only by constants are folded by any runtime
    constant_nodes: set[str] = set()
    for i, node in enumerate(g.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
        ins = [t for t in node.input if t]
        if node.op_type == "Constant" or (ins and all(tensors.get(t) is not None and tensors[t].constant
                                                       for t in ins)):
            constant_nodes.add(node.name)
            for o in node.output:
                t = tensors.get(o)
                if t is None:
                    t = tensors[o] = Tensor(o, None, TensorProto.FLOAT)
                t.constant = True
                if node.op_type == "Constant" and t.shape is None:
                    for a in node.attribute:
                        if a.name == "value":
                            t.shape, t.elem_type = tuple(a.t.dims), a.t.data_type
    for node in g.node:
        for o in node.output:
            if o and o not in tensors:
                tensors[o] = Tensor(o, None, TensorProto.FLOAT)

    unknown = [n for n, t in tensors.items() if t.shape is None and not t.constant]
    if unknown and fill_shapes is not None:
        for name, (shape, elem_type) in fill_shapes(proto, inputs, batch, unknown).items():
            t = tensors.get(name)
            if t is not None and t.shape is None:
                t.shape, t.elem_type = tuple(shape), elem_type
    meta = onnxfile.read_metadata(proto)
    # node names were filled on the inferred copy: keep the full model's nodes in step
    for node, inferred_node in zip(proto.graph.node, g.node, strict=True):
        if not node.name:
            node.name = inferred_node.name
    return Graph(model=inferred, path=path, batch=batch, tensors=tensors, inputs=inputs, outputs=outputs,
                 metadata=meta, constant_nodes=constant_nodes)


def _fixed_batch(proto: onnx.ModelProto) -> int | None:
    init_names = {i.name for i in proto.graph.initializer}
    for inp in proto.graph.input:
        if inp.name not in init_names:
            dims = inp.type.tensor_type.shape.dim
            return int(dims[0].dim_value) if len(dims) and dims[0].HasField("dim_value") and dims[0].dim_value > 0 \
                else None
    return None


def constant_value(graph: Graph, name: str) -> np.ndarray | None:
    """The value of a small constant tensor (initializer or Constant node), else None."""
    for init in graph.model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init) if (init.raw_data or init.float_data or init.int64_data
                                                   or init.int32_data) else None
    for node in graph.model.graph.node:
        if node.op_type == "Constant" and node.output and node.output[0] == name:
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
    return None


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """A node attribute's value, or ``default``."""
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default
