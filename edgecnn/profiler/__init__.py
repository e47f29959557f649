"""edgecnn's profiler: what a model should cost (from its ONNX graph) and what it does cost (on ONNX Runtime).

    from edgecnn.profiler import graph_cost, profile, bench

    cost = graph_cost("vgg16.onnx", batch=1)          # per-layer params, MACs, FLOPs, memory
    print(cost.params, cost.macs, cost.layers[1].shape_hwc)
    result = bench("resnet18.onnx", batches=[1, 8])    # latency percentiles, throughput, efficiency
    print(result.to_dict())

Imports onnx, onnxruntime (through :mod:`edgecnn.runtime`), numpy, psutil and tqdm, never torch: only
:func:`profile_module` and ``bench(..., compare="torch")`` load torch, inside the call.
Names load lazily.
"""

from __future__ import annotations

from edgecnn._lazy import lazy_attributes

_EXPORTS: dict[str, str] = {
    "graph_cost": "cost",
    "GraphCost": "cost",
    "LayerCost": "cost",
    "NodeCost": "cost",
    "format_shape": "cost",
    "load_graph": "cost",
    "profile": "perlayer",
    "ProfileResult": "perlayer",
    "LayerTiming": "perlayer",
    "bench": "measure",
    "BenchResult": "measure",
    "BatchResult": "measure",
    "latency_stats": "measure",
    "measure_peak": "peak",
    "Peak": "peak",
    "parse_trace": "trace",
    "TraceEvent": "trace",
    "map_to_layers": "trace",
    "profile_module": "torch_bridge",
    "resolve_model": "source",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_attributes(__name__, {name: f".{module}" for name, module in _EXPORTS.items()})
