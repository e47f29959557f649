"""Self-describing files: metadata_props in, ``read_metadata``/``describe`` out, MACs from the graph.

The MAC count here is deliberately small (Conv, ConvTranspose, Gemm, MatMul after shape inference at
batch 1); the full per-layer cost model lives in the profiler, which exporters must not import.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import onnx
from onnx import helper, shape_inference

from edgecnn import metadata
from edgecnn.errors import EdgecnnError

#: Initializers at most this large keep their values in the shape-inference skeleton (shape tensors).
_SMALL = 64


def set_metadata(model: onnx.ModelProto, meta: dict[str, Any]) -> None:
    """Replace the model's edgecnn metadata_props with ``metadata.encode(meta)`` (other keys kept)."""
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(metadata.PREFIX)]
    del model.metadata_props[:]
    for k, v in keep + sorted(metadata.encode(meta).items()):
        model.metadata_props.add(key=k, value=v)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The decoded edgecnn metadata of an ``.onnx`` file (empty dict for a foreign file)."""
    model = _load(path, with_data=False)
    return metadata.decode({p.key: p.value for p in model.metadata_props})


def count_macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates per image of Conv/ConvTranspose/Gemm/MatMul nodes, after shape inference at batch 1."""
    inferred = shape_inference.infer_shapes(_skeleton(model))
    shapes: dict[str, list[int]] = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    total = 0
    for node in inferred.graph.node:
        ins = [shapes.get(i) for i in node.input]
        out = shapes.get(node.output[0]) if node.output else None
        if node.op_type in ("Conv", "ConvTranspose") and ins and len(ins) > 1 and ins[1] and out:
            w = ins[1]
            kernel = _prod(w[2:])
            if node.op_type == "Conv":
                total += _prod(out) * w[1] * kernel  # out elements x (Cin/group) x k
            elif ins[0]:
                total += _prod(ins[0]) * w[1] * kernel  # in elements x (Cout/group) x k
        elif node.op_type == "Gemm" and len(ins) > 1 and ins[0] and out:
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            k = ins[0][0] if trans_a else ins[0][-1]
            total += _prod(out) * k
        elif node.op_type == "MatMul" and len(ins) > 1 and ins[0] and out:
            total += _prod(out) * ins[0][-1]
    return int(total)


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """What ``edgecnn inspect`` shows: metadata, inputs, outputs, opset, size, op histogram."""
    p = Path(path)
    model = _load(p, with_data=False)
    ext = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    size = p.stat().st_size
    data_files = sorted({e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"})
    for f in data_files:
        if (p.parent / f).is_file():
            size += (p.parent / f).stat().st_size
    inits = {t.name for t in model.graph.initializer}
    return {
        "path": str(p),
        "size_bytes": size,
        "external_data": data_files if ext else [],
        "ir_version": model.ir_version,
        "opset": {(imp.domain or "ai.onnx"): imp.version for imp in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [_value_info(v) for v in model.graph.input if v.name not in inits],
        "outputs": [_value_info(v) for v in model.graph.output],
        "num_nodes": len(model.graph.node),
        "num_initializers": len(model.graph.initializer),
        "ops": dict(Counter(n.op_type for n in model.graph.node).most_common()),
        "metadata": metadata.decode({pr.key: pr.value for pr in model.metadata_props}),
        "other_metadata": {pr.key: pr.value for pr in model.metadata_props
                           if not pr.key.startswith(metadata.PREFIX)},
    }


def _value_info(v: onnx.ValueInfoProto) -> dict[str, Any]:
    t = v.type.tensor_type
    return {"name": v.name, "dtype": helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?",
            "shape": [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in t.shape.dim]}


def _load(path: str | os.PathLike, with_data: bool) -> onnx.ModelProto:
    p = Path(path)
    if not p.is_file():
        raise EdgecnnError(f"ONNX file not found: {p}")
    try:
        return onnx.load(str(p), load_external_data=with_data)
    except Exception as e:  # noqa: BLE001 - DecodeError and friends: not an ONNX file
        raise EdgecnnError(f"{p} is not a readable ONNX file ({type(e).__name__}); re-export it") from None


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """A weightless copy for shape inference: large initializers become typed graph inputs, batch fixed to 1."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = []
    for v in g.input:
        if v.name in inits:
            continue
        v2 = onnx.ValueInfoProto()
        v2.CopyFrom(v)
        dims = v2.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1
        inputs.append(v2)
    small, typed = [], []
    for t in g.initializer:
        if _prod(list(t.dims)) <= _SMALL and t.data_location != onnx.TensorProto.EXTERNAL:
            small.append(t)
        else:
            typed.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    graph = helper.make_graph(list(g.node), g.name or "g", inputs + typed, list(g.output), initializer=small)
    sk = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return sk


def _prod(dims: list[int]) -> int:
    n = 1
    for d in dims:
        n *= max(int(d), 1)
    return n


__all__ = ["count_macs", "describe", "read_metadata", "set_metadata"]
