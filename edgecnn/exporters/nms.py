"""NMS placed in the graph: the standard ONNX ``NonMaxSuppression`` (opset >= 11) after a detector's raw outputs.

The tail reproduces torchvision's SSD post-processing up to the final per-image cut: per class (background
dropped) only the best ``topk_candidates`` anchors compete (TopK's k-th score masks the rest to 0), NMS at
``iou_threshold`` with ``score_threshold``, up to ``topk_candidates`` kept per class. It outputs the kept
detections of the whole batch: ``boxes`` (K, 4), ``scores`` (K,), ``labels`` (K,) int64 (class 0 = background
is never kept) and ``batch_index`` (K,) int64. No ``If`` or ``Loop`` nodes (NPUs reject them) and no plugin:
ONNX Runtime, OpenVINO and TensorRT all run ``NonMaxSuppression``. Sorting each image's detections and keeping
``detections_per_image`` is left to the host (``runtime/vision/detection.py``), a few microseconds in numpy.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: names of the raw outputs the tail consumes (the exporter names them so for --nms graph)
RAW_BOXES, RAW_SCORES = "raw_boxes", "raw_scores"
OUTPUTS = ("boxes", "scores", "labels", "batch_index")


def append_nms(model: onnx.ModelProto, *, anchors: int, score_threshold: float, iou_threshold: float,
               topk_candidates: int) -> onnx.ModelProto:
    """Append the NMS tail to ``model`` (in place) whose outputs are :data:`RAW_BOXES` (N, A, 4) and
    :data:`RAW_SCORES` (N, A, C); its outputs become :data:`OUTPUTS`."""
    g = model.graph
    k = int(min(topk_candidates, anchors))

    def const(name: str, value: np.ndarray) -> str:
        g.initializer.append(numpy_helper.from_array(value, name))
        return name

    p = "nms/"
    c_axes1, c_axes2 = const(p + "axes1", np.array([1], np.int64)), const(p + "axes2", np.array([2], np.int64))
    one, big = const(p + "one", np.array([1], np.int64)), const(p + "big", np.array([1 << 30], np.int64))
    km1, kk = const(p + "km1", np.array([k - 1], np.int64)), const(p + "k", np.array([k], np.int64))
    zero_f = const(p + "zero", np.array(0.0, np.float32))
    max_out = const(p + "max_out", np.array([k], np.int64))
    iou = const(p + "iou", np.array([iou_threshold], np.float32))
    thr = const(p + "score_threshold", np.array([score_threshold], np.float32))
    idx = {i: const(p + f"col{i}", np.array(i, np.int64)) for i in range(2)}  # batch and class columns
    ba = const(p + "cols_ba", np.array([0, 2], np.int64))
    n = helper.make_node
    nodes = [
        n("Transpose", [RAW_SCORES], [p + "by_class"], perm=[0, 2, 1], name=p + "Transpose"),          # N, C, A
        n("Slice", [p + "by_class", one, big, c_axes1], [p + "fg"], name=p + "DropBackground"),        # N, C-1, A
        n("TopK", [p + "fg", kk], [p + "top", p + "top_idx"], axis=2, name=p + "TopK"),
        n("Slice", [p + "top", km1, kk, c_axes2], [p + "kth"], name=p + "KthScore"),                    # N, C-1, 1
        n("Less", [p + "fg", p + "kth"], [p + "below"], name=p + "Less"),
        n("Where", [p + "below", zero_f, p + "fg"], [p + "cand"], name=p + "MaskCandidates"),
        n("NonMaxSuppression", [RAW_BOXES, p + "cand", max_out, iou, thr], [p + "selected"],
          name=p + "NonMaxSuppression"),                                                                 # K, 3
        n("Gather", [p + "selected", idx[0]], ["batch_index"], axis=1, name=p + "BatchIndex"),
        n("Gather", [p + "selected", idx[1]], [p + "class"], axis=1, name=p + "Class"),
        n("Add", [p + "class", const(p + "one_s", np.array(1, np.int64))], ["labels"], name=p + "Labels"),
        n("Gather", [p + "selected", ba], [p + "box_at"], axis=1, name=p + "BoxAt"),
        n("GatherND", [RAW_BOXES, p + "box_at"], ["boxes"], name=p + "Boxes"),
        n("GatherND", [p + "cand", p + "selected"], ["scores"], name=p + "Scores"),
    ]
    g.node.extend(nodes)
    del g.output[:]
    g.output.extend([
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["detections", 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["detections"]),
        helper.make_tensor_value_info("labels", TensorProto.INT64, ["detections"]),
        helper.make_tensor_value_info("batch_index", TensorProto.INT64, ["detections"]),
    ])
    return model
