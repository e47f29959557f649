"""What ``edgecnn inspect`` shows about an ``.onnx`` file: metadata, inputs, outputs, opset, size, ops.

Opening and metadata live in :mod:`edgecnn.onnxfile`; MACs in the metadata come from
:mod:`edgecnn.graphcost`.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import onnx
from onnx import helper

from edgecnn import onnxfile
from edgecnn.onnxfile import read_metadata, set_metadata


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """What ``edgecnn inspect`` shows: metadata, inputs, outputs, opset, size, op histogram."""
    p = Path(path)
    model = onnxfile.open_model(p, load_data=False)
    data_files = onnxfile.external_data_files(model)
    inits = {t.name for t in model.graph.initializer}
    return {
        "path": str(p),
        "size_bytes": onnxfile.file_size(p),
        "external_data": data_files,
        "ir_version": model.ir_version,
        "opset": {(imp.domain or "ai.onnx"): imp.version for imp in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [_value_info(v) for v in model.graph.input if v.name not in inits],
        "outputs": [_value_info(v) for v in model.graph.output],
        "num_nodes": len(model.graph.node),
        "num_initializers": len(model.graph.initializer),
        "ops": dict(Counter(n.op_type for n in model.graph.node).most_common()),
        "metadata": onnxfile.read_metadata(model),
        "other_metadata": onnxfile.other_metadata(model),
    }


def _value_info(v: onnx.ValueInfoProto) -> dict[str, Any]:
    t = v.type.tensor_type
    try:
        dtype = helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?"
    except (KeyError, ValueError, TypeError):
        dtype = f"unknown element type {t.elem_type}"
    return {"name": v.name, "dtype": dtype,
            "shape": [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in t.shape.dim]}


__all__ = ["describe", "read_metadata", "set_metadata"]
