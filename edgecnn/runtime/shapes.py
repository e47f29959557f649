"""Tensor shapes that ONNX shape inference cannot determine, read from one ONNX Runtime run on zeros.

The graph-cost counter (:mod:`edgecnn.graphcost`) needs only onnx and numpy; callers that may run the
graph (the profiler, the exporters) pass :func:`shapes_from_run` as its ``fill_shapes``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper

from edgecnn.errors import EdgecnnError


def shapes_from_run(model: onnx.ModelProto, inputs: Sequence[str], batch: int, names: Sequence[str]
                    ) -> dict[str, tuple[tuple[int, ...], int]]:
    """``{name: (shape, ONNX element type)}`` for ``names``, from running ``model`` once on zeros (CPU)."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    existing = {o.name for o in m.graph.output}
    for name in names:
        if name not in existing:
            m.graph.output.append(helper.make_empty_tensor_value_info(name))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    elem = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    try:
        sess = ort.InferenceSession(m.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
        feeds = {}
        for i in sess.get_inputs():
            if i.name not in inputs:
                continue
            shape = [batch if (k == 0 or not isinstance(d, int)) else d for k, d in enumerate(i.shape)]
            feeds[i.name] = np.zeros(shape, dtype=helper.tensor_dtype_to_np_dtype(elem[i.name]))
        outs = sess.run([o.name for o in sess.get_outputs()], feeds)
    except Exception as e:
        missing = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        raise EdgecnnError(f"cannot determine the shapes of {missing}: shape inference left them unknown and "
                           f"running the graph failed: {str(e).splitlines()[0]}") from None
    wanted = set(names)
    found: dict[str, tuple[tuple[int, ...], int]] = {}
    for o, value in zip(sess.get_outputs(), outs, strict=True):
        if o.name in wanted:
            arr = np.asarray(value)
            found[o.name] = (tuple(int(d) for d in arr.shape), helper.np_dtype_to_tensor_dtype(arr.dtype))
    return found
