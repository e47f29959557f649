"""Small ONNX classifiers built with ``onnx.helper`` (no torch), for tests of any part.

``make_classifier`` builds Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm with input ``input``
(NCHW) and output ``logits``, opset 17, edgecnn metadata set through ``edgecnn.metadata.encode``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecnn.metadata import IMAGENET_MEAN, IMAGENET_STD, encode

OPSET = 17


def make_classifier_model(
    *,
    batch: int | str = "batch",
    channels: int = 3,
    size: int | tuple[int, int] = 32,
    num_classes: int = 10,
    hidden: int = 8,
    dtype: str = "float32",
    seed: int = 0,
    softmax: bool = False,
    metadata: dict[str, Any] | None = None,
    with_metadata: bool = True,
) -> onnx.ModelProto:
    """A tiny conv classifier. ``batch``: an int for a fixed batch, a str for a dynamic ``dim_param``.

    ``dtype`` ``float16`` makes an fp16 graph (fp16 input, weights and output). ``softmax`` appends a
    Softmax so the output is already probabilities. ``metadata`` overrides/extends the default edgecnn
    metadata (``with_metadata=False`` writes none, like a foreign file).
    """
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    np_dtype = np.float16 if dtype == "float16" else np.float32
    elem = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    inits = [
        numpy_helper.from_array((rng.standard_normal((hidden, channels, 3, 3)) * 0.5).astype(np_dtype), "conv_w"),
        numpy_helper.from_array((rng.standard_normal(hidden) * 0.1).astype(np_dtype), "conv_b"),
        numpy_helper.from_array((rng.standard_normal((num_classes, hidden)) * 0.5).astype(np_dtype), "fc_w"),
        numpy_helper.from_array((rng.standard_normal(num_classes) * 0.1).astype(np_dtype), "fc_b"),
    ]
    out_name = "scores" if softmax else "logits"
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["relu"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], [out_name], transB=1, name="fc"),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", [out_name], ["logits"], axis=1, name="softmax"))
    graph = helper.make_graph(
        nodes, "tiny_classifier",
        [helper.make_tensor_value_info("input", elem, [batch, channels, h, w])],
        [helper.make_tensor_value_info("logits", elem, [batch, num_classes])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgecnn-tests")
    model.ir_version = 8
    if with_metadata:
        meta: dict[str, Any] = {
            "model": "tiny", "family": "custom", "input_layout": "NCHW", "input_size": [h, w],
            "channels": channels,
            "mean": IMAGENET_MEAN if channels == 3 else [0.5] * channels,
            "std": IMAGENET_STD if channels == 3 else [0.5] * channels,
            "num_classes": num_classes, "class_names": "imagenet" if num_classes == 1000 else "",
            "precision": "fp16" if dtype == "float16" else "fp32", "io_dtype": dtype, "opset": OPSET,
            "batch": "dynamic" if isinstance(batch, str) else str(batch),
        }
        meta.update(metadata or {})
        helper.set_model_props(model, encode(meta))
    onnx.checker.check_model(model)
    return model


def make_classifier(path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write :func:`make_classifier_model` to ``path`` and return it."""
    path = Path(path)
    onnx.save(make_classifier_model(**kwargs), str(path))
    return path
