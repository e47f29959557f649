"""Theoretical cost of an ONNX graph: per node, per layer and in total (no weights or runtime needed).

``graph_cost(path_or_model, batch=1)`` infers shapes at ``batch``, counts every node with
:mod:`edgecnn.graphcost` (the counter the export metadata uses too), groups nodes into layers
(:mod:`edgecnn.profiler.layers`),
and adds up parameters, MACs, FLOPs, weight and activation memory, peak live activation memory and
arithmetic intensity.

Memory rules: weight bytes are the bytes of a layer's constant inputs (each constant counted once, for
its first consumer); activation bytes are the bytes of a layer's output tensors. "Activation memory" is
the sum over layers including the input row, as in layer-by-layer cost tables; "peak live activation memory"
replays the graph in order, allocating each tensor when produced and freeing it after its last consumer.
Bytes moved by a layer = its inputs from other layers + its weights + its outputs (the intermediates of a
fused layer stay in cache); arithmetic intensity = FLOPs / bytes moved.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import onnx

from edgecnn.graphcost.nodes import NodeCost, executed_nodes, node_costs
from edgecnn.graphcost.roles import node_role
from edgecnn.graphcost.shapes import Graph
from edgecnn.graphcost.shapes import load_graph as _load_graph
from edgecnn.profiler.layers import group_nodes, layer_kind, layer_name
from edgecnn.runtime.shapes import shapes_from_run

__all__ = ["GraphCost", "LayerCost", "NodeCost", "format_shape", "graph_cost", "load_graph", "peak_live_bytes"]


def load_graph(model: str | os.PathLike | onnx.ModelProto, batch: int | None = None) -> Graph:
    """:func:`edgecnn.graphcost.load_graph` with the shapes inference misses read from an ONNX Runtime run."""
    return _load_graph(model, batch, fill_shapes=shapes_from_run)


@dataclass
class LayerCost:
    """One row of the per-layer table: a conv with its norm and activation, a pool, an FC layer, ..."""

    index: int
    name: str
    kind: str
    ops: list[str]
    nodes: list[str]
    output_shape: list[int]
    output_dtype: str
    #: elements in the layer's output(s) (the "memory" column of layer-by-layer cost tables)
    activations: int
    params: int
    bias_params: int
    macs: int
    flops: int
    weight_bytes: int
    activation_bytes: int
    bytes_moved: int
    unknown_ops: list[str] = field(default_factory=list)
    #: what the layer's main node does (:mod:`edgecnn.graphcost.roles`: depthwise, pointwise, se, grouped,
    #: conv, fc), "" for the rest
    role: str = ""

    @property
    def depthwise(self) -> bool:
        """A depthwise convolution (``group`` = channels): little arithmetic per byte, far below the GEMM peak."""
        return self.role == "depthwise"

    @property
    def elementwise_flops(self) -> int:
        """FLOPs outside the MACs (activations, batch norm, SE's scale, residual adds, pooling): never in MACs."""
        return self.flops - 2 * self.macs

    @property
    def weights_only(self) -> int:
        """Parameters without biases (what per-layer weight counts of VGG-style tables list)."""
        return self.params - self.bias_params

    @property
    def intensity(self) -> float:
        """Arithmetic intensity: FLOPs per byte moved."""
        return self.flops / self.bytes_moved if self.bytes_moved else 0.0

    @property
    def shape_hwc(self) -> str:
        """Output shape per image as layer tables write it: ``HxWxC`` for feature maps, ``C`` for vectors."""
        return format_shape(self.output_shape)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(weights_only=self.weights_only, intensity=self.intensity, shape_hwc=self.shape_hwc,
                 depthwise=self.depthwise, elementwise_flops=self.elementwise_flops)
        return d


def format_shape(shape: list[int] | tuple[int, ...] | None) -> str:
    """NCHW -> ``HxWxC``; (N, C) -> ``C``; anything else as ``AxBxC`` without the batch."""
    if not shape:
        return "?"
    if len(shape) == 4:
        return f"{shape[2]}x{shape[3]}x{shape[1]}"
    if len(shape) == 2:
        return str(shape[1])
    return "x".join(str(d) for d in shape[1:]) or "1"


@dataclass
class GraphCost:
    """Theoretical cost of a whole graph at ``batch``; totals are the sums of the layer rows."""

    model: str
    path: str | None
    batch: int
    input_shape: list[int]
    layers: list[LayerCost]
    nodes: list[NodeCost]
    params: int
    bias_params: int
    macs: int
    flops: int
    weight_bytes: int
    activations: int
    activation_bytes: int
    peak_activation_bytes: int
    bytes_moved: int
    #: op types without a counting rule (their FLOPs are left out of the totals)
    unknown_ops: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved, whole model."""
        return self.flops / self.bytes_moved if self.bytes_moved else 0.0

    @property
    def macs_per_image(self) -> float:
        return self.macs / self.batch

    @property
    def elementwise_flops(self) -> int:
        """FLOPs outside the MACs (activations, SE scales, adds, pooling), reported apart from them."""
        return self.flops - 2 * self.macs

    @property
    def flops_per_image(self) -> float:
        return self.flops / self.batch

    @property
    def gflops_per_image(self) -> float:
        return self.flops / self.batch / 1e9

    @property
    def weights_only(self) -> int:
        return self.params - self.bias_params

    def layer(self, name: str) -> LayerCost:
        """The layer called ``name`` (KeyError if none)."""
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(name)

    def totals(self) -> dict[str, Any]:
        """The totals as a plain dict."""
        return {
            "batch": self.batch, "params": self.params, "bias_params": self.bias_params,
            "weights_only": self.weights_only, "macs": self.macs, "flops": self.flops,
            "elementwise_flops": self.elementwise_flops, "gflops_per_image": self.gflops_per_image,
            "weight_bytes": self.weight_bytes,
            "activations": self.activations, "activation_bytes": self.activation_bytes,
            "peak_activation_bytes": self.peak_activation_bytes, "bytes_moved": self.bytes_moved,
            "intensity": self.intensity, "unknown_ops": list(self.unknown_ops),
        }

    def to_dict(self, nodes: bool = False) -> dict[str, Any]:
        """JSON-ready dict: model, input shape, totals, layers (and nodes if asked)."""
        d: dict[str, Any] = {"model": self.model, "path": self.path, "input_shape": self.input_shape,
                             "totals": self.totals(), "layers": [lay.to_dict() for lay in self.layers]}
        if nodes:
            d["nodes"] = [n.to_dict() for n in self.nodes]
        if self.metadata:
            d["metadata"] = {k: v for k, v in self.metadata.items() if k not in ("class_names",)}
        return d


def graph_cost(model: str | os.PathLike | onnx.ModelProto | Graph, batch: int | None = None, *,
               name: str | None = None, use_scopes: bool = True) -> GraphCost:
    """Theoretical cost of an ONNX classifier (file, ModelProto or loaded :class:`Graph`) at ``batch``
    (default: the graph's fixed batch size, else 1)."""
    graph = model if isinstance(model, Graph) else load_graph(model, batch)
    batch = graph.batch
    t = graph.tensors
    nodes = executed_nodes(graph)
    node_cost_rows = node_costs(graph, nodes)

    groups = group_nodes(graph, nodes, use_scopes=use_scopes)
    layers: list[LayerCost] = []
    x = t[graph.inputs[0]] if graph.inputs else None
    if x is not None:
        layers.append(LayerCost(index=0, name="input", kind="input", ops=[], nodes=[],
                                output_shape=list(x.shape or []), output_dtype=x.dtype, activations=x.numel,
                                params=0, bias_params=0, macs=0, flops=0, weight_bytes=0,
                                activation_bytes=x.nbytes, bytes_moved=0))
    consumers: dict[str, set[int]] = {}
    for i, nd in enumerate(nodes):
        for name_in in nd.input:
            consumers.setdefault(name_in, set()).add(i)
    graph_outputs = set(graph.outputs)
    for idx in groups:
        members = [nodes[i] for i in idx]
        kind, primary = layer_kind(members)
        inside = set(idx)
        produced = {o for i in idx for o in nodes[i].output if o}
        outs = [o for i in idx for o in nodes[i].output
                if o and o in t and not t[o].is_integer and not t[o].constant
                and (o in graph_outputs or any(c not in inside for c in consumers.get(o, ())))]
        if not outs:  # a layer whose only outputs are shapes
            outs = [o for o in produced if o in t]
        ext_in = {i_ for i in idx for i_ in nodes[i].input
                  if i_ and i_ not in produced and i_ in t and not t[i_].constant and not t[i_].is_integer}
        costs = [node_cost_rows[i] for i in idx]
        lay_index = len(layers)
        for c in costs:
            c.layer = lay_index
        first = t[outs[0]] if outs else None
        out_bytes = sum(t[o].nbytes for o in outs)
        wbytes = sum(c.weight_bytes for c in costs)
        real_ops = [nd.op_type for nd in members
                    if not all(t.get(o) is not None and t[o].is_integer for o in nd.output if o)]
        layers.append(LayerCost(
            index=lay_index, name=layer_name(members[primary]), kind=kind, ops=real_ops or [members[0].op_type],
            nodes=[nd.name for nd in members], output_shape=list(first.shape or []) if first else [],
            output_dtype=first.dtype if first else "", activations=sum(t[o].numel for o in outs),
            params=sum(c.params for c in costs), bias_params=sum(c.bias_params for c in costs),
            macs=sum(c.macs for c in costs), flops=sum(c.flops or 0 for c in costs), weight_bytes=wbytes,
            activation_bytes=out_bytes, bytes_moved=sum(t[i_].nbytes for i_ in ext_in) + wbytes + out_bytes,
            unknown_ops=[c.op for c in costs if c.flops is None], role=node_role(members[primary], t) or ""))

    _strip_wrapper_scope(layers)
    model_name = name or str(graph.metadata.get("model") or
                             (os.path.splitext(os.path.basename(graph.path))[0] if graph.path else
                              graph.model.graph.name or "model"))
    return GraphCost(
        model=model_name, path=graph.path, batch=batch, input_shape=list(x.shape or []) if x else [],
        layers=layers, nodes=node_cost_rows,
        params=sum(lay.params for lay in layers), bias_params=sum(lay.bias_params for lay in layers),
        macs=sum(lay.macs for lay in layers), flops=sum(lay.flops for lay in layers),
        weight_bytes=sum(lay.weight_bytes for lay in layers), activations=sum(lay.activations for lay in layers),
        activation_bytes=sum(lay.activation_bytes for lay in layers),
        peak_activation_bytes=peak_live_bytes(graph, nodes),
        bytes_moved=sum(lay.bytes_moved for lay in layers),
        unknown_ops=sorted({c.op for c in node_cost_rows if c.flops is None}),
        metadata=dict(graph.metadata))


def _strip_wrapper_scope(layers: list[LayerCost]) -> None:
    """Drop a module prefix every layer shares (an exporter's wrapper: ``model.fc`` -> ``fc``)."""
    named = [lay for lay in layers if lay.kind != "input"]
    if len(named) < 2:
        return
    heads = {lay.name.split(".", 1)[0] for lay in named}
    if len(heads) == 1 and all("." in lay.name for lay in named):
        head = heads.pop() + "."
        for lay in named:
            lay.name = lay.name[len(head):]


def peak_live_bytes(graph: Graph, nodes: list[onnx.NodeProto]) -> int:
    """Peak bytes of simultaneously live activations when running ``nodes`` in order (no in-place reuse).

    A tensor lives from the node that produces it (graph inputs: from the start) until its last consumer
    has run (graph outputs: to the end). While a node runs, its inputs and outputs are both live.
    """
    t = graph.tensors
    last_use: dict[str, int] = {}
    for i, nd in enumerate(nodes):
        for name_in in nd.input:
            if name_in:
                last_use[name_in] = i
    end = len(nodes)
    for o in graph.outputs:
        last_use[o] = end

    def size(name: str) -> int:
        tensor = t.get(name)
        return tensor.nbytes if tensor is not None and not tensor.constant else 0

    live = sum(size(i) for i in graph.inputs)
    peak = live
    for i, nd in enumerate(nodes):
        live += sum(size(o) for o in nd.output if o)
        peak = max(peak, live)
        freed = {n for n in set(nd.input) | set(nd.output) if n and last_use.get(n, i) <= i}
        live -= sum(size(n) for n in freed)
    return peak
