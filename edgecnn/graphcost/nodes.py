"""Per-node cost of a loaded graph (parameters, MACs, FLOPs, bytes) and the whole-model counts.

    counts = count("resnet50.onnx")              # Counts(batch=1, params=..., macs=..., flops=...)
    costs = node_costs(load_graph(path, 8))      # one NodeCost per node that a runtime executes

Constant inputs are counted once, for their first consumer; their role (learned parameter, buffer such
as running statistics or quantization scales, or other: shapes, indices) comes from
:func:`edgecnn.graphcost.rules.input_role`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import onnx

from edgecnn.graphcost.rules import input_role, node_cost
from edgecnn.graphcost.shapes import Graph, ShapeFiller, Tensor, load_graph

_BIAS_SLOTS = {"Conv": 2, "ConvTranspose": 2, "Gemm": 2, "QLinearConv": 8, "FusedConv": 2}


@dataclass
class NodeCost:
    """Cost of one ONNX node at the graph's batch size."""

    name: str
    op: str
    layer: int
    output_shape: list[int] | None
    params: int
    bias_params: int
    macs: int
    flops: int | None
    weight_bytes: int
    activation_bytes: int
    input_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def executed_nodes(graph: Graph) -> list[onnx.NodeProto]:
    """The nodes a runtime executes: constant-foldable ones left out."""
    return [nd for nd in graph.model.graph.node if nd.name not in graph.constant_nodes]


def node_costs(graph: Graph, nodes: list[onnx.NodeProto] | None = None) -> list[NodeCost]:
    """One :class:`NodeCost` per node of ``nodes`` (default :func:`executed_nodes`), in order; ``layer`` is -1."""
    t = graph.tensors
    owned: set[str] = set()
    out: list[NodeCost] = []
    for nd in executed_nodes(graph) if nodes is None else nodes:
        ins: list[Tensor | None] = [t.get(i) if i else None for i in nd.input]
        outs = [t[o] for o in nd.output if o and o in t]
        if outs and all(o.is_integer for o in outs):
            cost: tuple[int, int] | None = (0, 0)  # shape arithmetic (Shape, Gather, Equal on shapes)
        else:
            cost = node_cost(nd, ins, outs)
        params = bias = wbytes = in_bytes = 0
        for k, name_in in enumerate(nd.input):
            tensor = t.get(name_in) if name_in else None
            if tensor is None:
                continue
            if not tensor.constant:
                in_bytes += tensor.nbytes
                continue
            if name_in in owned:
                continue
            role = input_role(nd, k, tensor)
            if role == "other":
                continue
            owned.add(name_in)
            wbytes += tensor.nbytes
            if role == "param":
                params += tensor.numel
                if _BIAS_SLOTS.get(nd.op_type) == k or (nd.op_type == "Add" and tensor.shape is not None
                                                         and len(tensor.shape) == 1):
                    bias += tensor.numel
        out.append(NodeCost(
            name=nd.name, op=nd.op_type, layer=-1, output_shape=list(outs[0].shape) if outs and outs[0].shape else None,
            params=params, bias_params=bias, macs=cost[0] if cost else 0, flops=cost[1] if cost else None,
            weight_bytes=wbytes, activation_bytes=sum(o.nbytes for o in outs if not o.constant), input_bytes=in_bytes))
    return out


@dataclass(frozen=True)
class Counts:
    """Whole-model totals at ``batch``: parameters, MACs and FLOPs (1 MAC = 2 FLOPs)."""

    batch: int
    params: int
    bias_params: int
    macs: int
    flops: int
    #: op types without a counting rule (left out of ``flops``)
    unknown_ops: tuple[str, ...] = field(default=())

    @property
    def macs_per_image(self) -> int:
        return self.macs // self.batch


def count(model: str | os.PathLike | onnx.ModelProto | Graph, batch: int | None = None, *,
          fill_shapes: ShapeFiller | None = None) -> Counts:
    """Parameters, MACs and FLOPs of a model at ``batch`` (default: its fixed batch, else 1)."""
    graph = model if isinstance(model, Graph) else load_graph(model, batch, fill_shapes=fill_shapes)
    costs = node_costs(graph)
    return Counts(batch=graph.batch, params=sum(c.params for c in costs), bias_params=sum(c.bias_params for c in costs),
                  macs=sum(c.macs for c in costs), flops=sum(c.flops or 0 for c in costs),
                  unknown_ops=tuple(sorted({c.op for c in costs if c.flops is None})))
