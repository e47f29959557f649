"""Purpose-built models and extra backends for the optimizer's tests (``onnx.helper``, no torch)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecnn.metadata import encode
from edgecnn.runtime.backends.onnxruntime import OrtBackend

#: the node int8 destroys in :func:`make_sensitive_model`
SENSITIVE = "mix"


def make_sensitive_model(path: str | os.PathLike, *, size: int = 16, seed: int = 0, outlier: float = 2000.0) -> Path:
    """A classifier with one layer that per-tensor int8 activations destroy.

    ``spread`` (3 -> 8 channels) writes channel 0 scaled by ``outlier``; ``mix`` (1x1, 8 -> 8) ignores that
    channel. The activation between them is quantized with one scale for the whole tensor, set by the
    outlier channel, so every other channel rounds to a few levels: the logits lose most of their SQNR.
    Keeping ``mix`` in float (its input is then not quantized) restores them.
    """
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3
    w1[0] *= outlier
    w2 = rng.standard_normal((8, 8, 1, 1)).astype(np.float32) * 0.5
    w2[:, 0] = 0.0
    w3 = rng.standard_normal((10, 8)).astype(np.float32)
    b1, b2, b3 = (rng.uniform(0.05, 0.2, n).astype(np.float32) for n in (8, 8, 10))  # distinct: not merged
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
             numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2"),
             numpy_helper.from_array(w3, "w3"), numpy_helper.from_array(b3, "b3")]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["x"], pads=[1, 1, 1, 1], name="spread"),
        helper.make_node("Conv", ["x", "w2", "b2"], ["y"], name=SENSITIVE),
        helper.make_node("Relu", ["y"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(nodes, "sensitive", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                 ["batch", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgecnn-tests")
    model.ir_version = 8
    helper.set_model_props(model, encode({
        "model": "sensitive", "family": "custom", "input_layout": "NCHW", "input_size": [size, size],
        "channels": 3, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "num_classes": 10, "class_names": "",
        "precision": "fp32", "io_dtype": "float32", "opset": 17, "batch": "dynamic"}))
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


class AliasBackend(OrtBackend):
    """A second runtime that is ONNX Runtime's CPU provider under another name (registered by the tests)."""

    def __init__(self) -> None:
        super().__init__("cpu")
        self.name = "alias"
        self.reference_rank = None
