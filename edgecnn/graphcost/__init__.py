"""What an ONNX graph costs, from the graph alone (onnx and numpy; no weights, runtime or torch needed).

    from edgecnn.graphcost import count, load_graph, node_costs

    count("vgg16.onnx").macs                     # 15_470_264_320 multiply-accumulates at batch 1
    node_costs(load_graph("vgg16.onnx", 8))      # params, MACs, FLOPs, bytes per node at batch 8

The one MAC/parameter counter of edgecnn: the export metadata, ``inspect`` (which shows it) and the
profiler's per-layer tables (:func:`edgecnn.profiler.graph_cost`) all count with it. Counting rules:
:mod:`edgecnn.graphcost.rules`; what a node does in a mobile network (depthwise, pointwise,
squeeze-and-excitation): :mod:`edgecnn.graphcost.roles`. Names load lazily.
"""

from __future__ import annotations

from edgecnn._lazy import lazy_attributes

_LAZY = {
    "Tensor": ".shapes",
    "Graph": ".shapes",
    "ShapeFiller": ".shapes",
    "load_graph": ".shapes",
    "constant_value": ".shapes",
    "attr": ".shapes",
    "node_cost": ".rules",
    "input_role": ".rules",
    "NodeCost": ".nodes",
    "Counts": ".nodes",
    "node_costs": ".nodes",
    "executed_nodes": ".nodes",
    "count": ".nodes",
    "node_role": ".roles",
    "conv_role": ".roles",
    "ROLES": ".roles",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


__all__ = list(_LAZY)
