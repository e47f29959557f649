"""ONNX classifiers in the styles of files users bring, built with ``onnx.helper`` (no downloads, no torch).

Small nets with seeded weights, each imitating one exporter's conventions, plus broken files:

- :func:`zoo_style_model`: ONNX Model Zoo / Caffe2 conversion: IR 3, opset 7-9, every initializer
  also listed as a graph input, input ``data_0``, a ShuffleNet-style channel shuffle whose Reshape
  shapes are ``OC2_DUMMY_*`` initializers, output ``softmax_1`` of shape (N, classes, 1, 1).
- :func:`keras_nhwc_model`: tf2onnx/Keras: NHWC input ``input_1:0``, a symbolic batch ``unk__42``,
  a Transpose to NCHW, ``:0`` tensor names, opset 13, softmax output (N, classes).
- :func:`write_dynamo_style`: torch's dynamo exporter: opset 18, IR 10, weights in ``<name>.onnx.data``.
- :func:`symbolic_spatial_model`: input (N, 3, height, width).
- bad files: :data:`BAD_FILES` (0 bytes, truncated, not protobuf, no graph, 0 nodes, external data
  missing) and :data:`BAD_GRAPHS` (two image inputs, a rank-2 input).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx_factory import make_classifier_model

HIDDEN = 8


def _weights(rng: np.random.Generator, channels: int, classes: int, *, conv_fc: bool) -> dict[str, np.ndarray]:
    """Seeded conv weights; the classifier is a 1x1 conv (Caffe style) or a Gemm matrix."""
    fc_shape = (classes, HIDDEN, 1, 1) if conv_fc else (classes, HIDDEN)
    return {
        "conv_w": (rng.standard_normal((HIDDEN, channels, 3, 3)) * 0.5).astype(np.float32),
        "conv_b": (rng.standard_normal(HIDDEN) * 0.1).astype(np.float32),
        "fc_w": (rng.standard_normal(fc_shape) * 0.5).astype(np.float32),
        "fc_b": (rng.standard_normal(classes) * 0.1).astype(np.float32),
    }


def zoo_style_model(*, opset: int = 9, ir_version: int = 3, classes: int = 1000, size: int = 32, batch: int = 1,
                    unused_input: bool = False, seed: int = 0) -> onnx.ModelProto:
    """A Caffe2-converted model-zoo classifier (see the module docstring); ``unused_input`` adds an
    input ``OC2_DUMMY_2`` that no node reads, as some zoo files declare."""
    rng = np.random.default_rng(seed)
    w = _weights(rng, 3, classes, conv_fc=True)
    inits = [numpy_helper.from_array(v, f"{k}_0") for k, v in w.items()]
    inits += [numpy_helper.from_array(np.array([0, 2, HIDDEN // 2, size, size], np.int64), "OC2_DUMMY_0"),
              numpy_helper.from_array(np.array([0, HIDDEN, size, size], np.int64), "OC2_DUMMY_1")]
    nodes = [
        helper.make_node("Conv", ["data_0", "conv_w_0", "conv_b_0"], ["conv1_1"], pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv1_1"], ["conv1_2"]),
        helper.make_node("Reshape", ["conv1_2", "OC2_DUMMY_0"], ["shuffle_1"]),
        helper.make_node("Transpose", ["shuffle_1"], ["shuffle_2"], perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["shuffle_2", "OC2_DUMMY_1"], ["shuffle_3"]),
        helper.make_node("GlobalAveragePool", ["shuffle_3"], ["pool_1"]),
        helper.make_node("Conv", ["pool_1", "fc_w_0", "fc_b_0"], ["fc_1"], kernel_shape=[1, 1]),
        helper.make_node("Softmax", ["fc_1"], ["softmax_1"]),  # axis 1 of a (N, C, 1, 1) tensor (opset < 13)
    ]
    inputs = [helper.make_tensor_value_info("data_0", TensorProto.FLOAT, [batch, 3, size, size])]
    if unused_input:
        inputs.append(helper.make_tensor_value_info("OC2_DUMMY_2", TensorProto.INT64, [1]))
    inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    graph = helper.make_graph(nodes, "caffe2_net", inputs,
                              [helper.make_tensor_value_info("softmax_1", TensorProto.FLOAT, [batch, classes, 1, 1])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnx-caffe2")
    model.ir_version = ir_version
    return model


def keras_nhwc_model(*, opset: int = 13, classes: int = 1000, size: int = 32, batch: int | str = "unk__42",
                     seed: int = 0) -> onnx.ModelProto:
    """A tf2onnx/Keras classifier with an NHWC input ``input_1:0`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    w = _weights(rng, 3, classes, conv_fc=False)
    inits = [numpy_helper.from_array(v, f"model/{k}:0") for k, v in w.items()]
    nodes = [
        helper.make_node("Transpose", ["input_1:0"], ["model/nchw:0"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["model/nchw:0", "model/conv_w:0", "model/conv_b:0"], ["model/conv:0"],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["model/conv:0"], ["model/relu:0"]),
        helper.make_node("GlobalAveragePool", ["model/relu:0"], ["model/gap:0"]),
        helper.make_node("Flatten", ["model/gap:0"], ["model/flat:0"], axis=1),
        helper.make_node("Gemm", ["model/flat:0", "model/fc_w:0", "model/fc_b:0"], ["model/logits:0"], transB=1),
        helper.make_node("Softmax", ["model/logits:0"], ["predictions:0"], axis=-1),
    ]
    graph = helper.make_graph(nodes, "tf2onnx",
                              [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, [batch, size, size, 3])],
                              [helper.make_tensor_value_info("predictions:0", TensorProto.FLOAT, [batch, classes])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tf2onnx")
    model.ir_version = 7
    return model


def symbolic_spatial_model(*, seed: int = 0) -> onnx.ModelProto:
    """A fully convolutional classifier whose input is (N, 3, height, width)."""
    model = make_classifier_model(with_metadata=False, seed=seed)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].Clear()
    dims[2].dim_param = "height"
    dims[3].Clear()
    dims[3].dim_param = "width"
    return model


def write_dynamo_style(path: str | os.PathLike, *, classes: int = 10, seed: int = 0) -> Path:
    """Write a dynamo-exporter-style file: opset 18, IR 10, batch ``s77``, weights in ``<name>.data``."""
    path = Path(path)
    model = make_classifier_model(with_metadata=False, batch="s77", num_classes=classes, seed=seed)
    model.opset_import[0].version = 18
    model.ir_version = 10
    model.producer_name = "pytorch"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=path.name + ".data", size_threshold=0)
    return path


# --------------------------------------------------------------------------- bad files


def write_zero_bytes(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def write_truncated(path: Path) -> Path:
    data = zoo_style_model().SerializeToString()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_not_protobuf(path: Path) -> Path:
    path.write_text("name,score\ncat,0.9\n")
    return path


def write_no_graph(path: Path) -> Path:
    model = onnx.ModelProto(ir_version=8, producer_name="not-a-graph")
    model.opset_import.add(domain="", version=17)
    path.write_bytes(model.SerializeToString())
    return path


def write_zero_nodes(path: Path) -> Path:
    vi = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    model = helper.make_model(helper.make_graph([], "empty", [vi], [vi]),
                              opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path


def write_external_data_missing(path: Path) -> Path:
    write_dynamo_style(path)
    (path.parent / (path.name + ".data")).unlink()
    return path


#: file kind -> writer(path) of a file no command may accept
BAD_FILES: dict[str, Callable[[Path], Path]] = {
    "zero_bytes": write_zero_bytes,
    "truncated": write_truncated,
    "not_protobuf": write_not_protobuf,
    "no_graph": write_no_graph,
    "zero_nodes": write_zero_nodes,
    "external_data_missing": write_external_data_missing,
}


def two_image_inputs_model() -> onnx.ModelProto:
    """Two (N, 3, 8, 8) inputs added together, then a classifier head: not a single-image classifier."""
    base = make_classifier_model(with_metadata=False, size=8)
    graph = base.graph
    graph.input.append(helper.make_tensor_value_info("input_b", TensorProto.FLOAT, ["batch", 3, 8, 8]))
    graph.node.insert(0, helper.make_node("Add", ["input", "input_b"], ["sum"], name="add"))
    graph.node[1].input[0] = "sum"
    onnx.checker.check_model(base)
    return base


def rank2_input_model(*, features: int = 784, classes: int = 10) -> onnx.ModelProto:
    """An MLP on flat (N, 784) vectors: not an image classifier."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((classes, features)) * 0.05).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], "mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])],
                              initializer=[w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


#: graph kind -> model that opens fine but is not one image classifier
BAD_GRAPHS: dict[str, Callable[[], onnx.ModelProto]] = {
    "two_image_inputs": two_image_inputs_model,
    "rank2_input": rank2_input_model,
    "symbolic_spatial": symbolic_spatial_model,  # refused only without an explicit size
}
