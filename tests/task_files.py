"""Detection and segmentation files in the styles of other tools, built with ``onnx.helper`` (no Ultralytics, no
downloads): each outputs known constant tensors (plus a 1x1 conv of the image times zero, so the graph reads its
input and has a weight to quantize), so decoding can be checked number by number.

Input 96 x 128 (H x W): an anchor-free YOLO head has 12*16 + 6*8 + 3*4 = 252 anchors, an anchor-based one 756.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

H, W = 96, 128
ANCHORS = 252
CLASSES = 3
#: (cx, cy, w, h, class, score) of the YOLO heads; the second overlaps the first (IoU 0.747) in the same class
#: (suppressed at IoU 0.7), the third is the second's box in another class (kept: NMS is class-wise)
YOLO_BOXES = [(30, 30, 20, 20, 1, 0.9), (32, 31, 20, 20, 1, 0.8), (32, 31, 20, 20, 2, 0.7), (80, 60, 30, 40, 0, 0.6)]
#: what a YOLO head decodes to at IoU 0.7: (x1, y1, x2, y2, class, score), best first
YOLO_EXPECTED = [(20, 20, 40, 40, 1, 0.9), (22, 21, 42, 41, 2, 0.7), (65, 40, 95, 80, 0, 0.6)]
#: rows of the NMS-in-graph files: (x1, y1, x2, y2, class, score)
ROWS = [(10, 12, 50, 60, 4, 0.95), (60, 20, 120, 90, 0, 0.5), (5, 5, 15, 15, 2, 0.2)]
MASKS = 2


def _model(consts: dict[str, np.ndarray], *, shapes: dict[str, Sequence] | None = None, batch: int | str = 1,
           opset: int = 13) -> onnx.ModelProto:
    """A graph image (batch, 3, H, W) -> each constant of ``consts`` (name -> array) as an output, plus
    ``0 * mean(conv1x1(image))`` so the outputs depend on the input formally. ``shapes`` overrides declared
    output shapes (symbolic dims as strings)."""
    inits = [numpy_helper.from_array(np.full((1, 3, 1, 1), 0.5, np.float32), "w"),
             numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    nodes = [helper.make_node("Conv", ["image", "w"], ["conv"]),
             helper.make_node("ReduceMean", ["conv"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    outputs = []
    for name, value in consts.items():
        integer = value.dtype.kind in "iu"
        inits.append(numpy_helper.from_array(value, f"{name}_const"))
        if integer:
            nodes += [helper.make_node("Cast", ["nothing"], [f"{name}_zero"], to=TensorProto.INT64),
                      helper.make_node("Add", [f"{name}_const", f"{name}_zero"], [name])]
        else:
            nodes.append(helper.make_node("Add", [f"{name}_const", "nothing"], [name]))
        shape = (shapes or {}).get(name, list(value.shape))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.INT64 if integer else TensorProto.FLOAT,
                                                     shape))
    graph = helper.make_graph(nodes, "task", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                            [batch, 3, H, W])], outputs,
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tests")
    model.ir_version = 8
    return model


def yolo_head(*, layout: str = "cn", objectness: bool = False, masks: int = 0) -> np.ndarray:
    """A YOLO head (1, 4+[1]+C+M, N) channels first or (1, N, ...) rows, with :data:`YOLO_BOXES`."""
    n = ANCHORS * (3 if objectness else 1)
    ch = 4 + int(objectness) + CLASSES + masks
    rows = np.zeros((n, ch), np.float32)
    rows[:, :4] = (64, 48, 8, 8)  # every anchor a small box; scores 0
    for i, (cx, cy, w, h, c, s) in enumerate(YOLO_BOXES):
        rows[i, :4] = (cx, cy, w, h)
        if objectness:
            rows[i, 4] = 1.0
        rows[i, 4 + int(objectness) + c] = s
        if masks:
            rows[i, 4 + int(objectness) + CLASSES] = 1.0  # coefficient of prototype 0
    if objectness:
        rows[:, 4][len(YOLO_BOXES):] = 0.5
    return (rows.T if layout == "cn" else rows)[None]


def prototypes() -> np.ndarray:
    """(1, M, H/4, W/4): prototype 0 is +10 on the left half of the input, -10 on the right."""
    p = np.full((1, MASKS, H // 4, W // 4), -10, np.float32)
    p[0, 0, :, : W // 8] = 10
    return p


def yolo_model(*, layout: str = "cn", objectness: bool = False, name: str = "output0") -> onnx.ModelProto:
    return _model({name: yolo_head(layout=layout, objectness=objectness)})


def yolo_seg_model() -> onnx.ModelProto:
    return _model({"output0": yolo_head(masks=MASKS), "output1": prototypes()})


def ssd_model(*, normalised: bool = False) -> onnx.ModelProto:
    """boxes (1, A, 4) x1y1x2y2 and scores (1, A, 1+C) with background column 0: two boxes of class 2 and 3."""
    a = 50
    boxes = np.tile(np.array([0, 0, 4, 4], np.float32), (a, 1))
    scores = np.zeros((a, 1 + CLASSES), np.float32)
    scores[:, 0] = 1
    boxes[0], scores[0] = (10, 10, 50, 40), (0.1, 0, 0.9, 0)
    boxes[1], scores[1] = (12, 10, 50, 40), (0.2, 0, 0.8, 0)  # overlaps box 0 (IoU 0.95): suppressed
    boxes[2], scores[2] = (70, 30, 120, 90), (0.3, 0, 0, 0.7)
    if normalised:
        boxes = boxes / np.array([W, H, W, H], np.float32)
    return _model({"bboxes": boxes[None], "confidences": scores[None]})


def torchvision_style_model(names: Sequence[str] = ("dets", "conf", "cls_ids")) -> onnx.ModelProto:
    """torchvision's detector outputs after NMS, under other names: boxes (K, 4), scores (K,), labels (K,) int64."""
    r = np.array(ROWS, np.float32)
    return _model({names[0]: r[:, :4], names[1]: r[:, 5], names[2]: r[:, 4].astype(np.int64)},
                  shapes={names[0]: ["num_dets", 4], names[1]: ["num_dets"], names[2]: ["num_dets"]})


def rows6_model() -> onnx.ModelProto:
    """(1, 300, 6): x1, y1, x2, y2, score, class, zero rows after :data:`ROWS`."""
    out = np.zeros((300, 6), np.float32)
    for i, (x1, y1, x2, y2, c, s) in enumerate(ROWS):
        out[i] = (x1, y1, x2, y2, s, c)
    return _model({"output0": out[None]})


def rows7_model() -> onnx.ModelProto:
    """(K, 7): batch, x1, y1, x2, y2, class, score (YOLOv7 --end2end), K symbolic."""
    out = np.array([(0, x1, y1, x2, y2, c, s) for x1, y1, x2, y2, c, s in ROWS], np.float32)
    return _model({"output": out}, shapes={"output": ["Concatoutput_dim_0", 7]})


def seg_logits_model(classes: int = 5) -> onnx.ModelProto:
    """(1, C, H, W) logits: class 3 on the left half, class 0 on the right."""
    logits = np.zeros((1, classes, H, W), np.float32)
    logits[0, 3, :, : W // 2] = 5
    logits[0, 0, :, W // 2:] = 5
    return _model({"out": logits, "aux": logits.copy()})


def ambiguous_model() -> onnx.ModelProto:
    """(1, 84, 84) at input 96x128: neither dim is the anchor count, rows and columns cannot be told apart."""
    return _model({"output0": np.zeros((1, 84, 84), np.float32)})


def unknown_model() -> onnx.ModelProto:
    """(1, 3, 2): no head fits."""
    return _model({"y": np.zeros((1, 3, 2), np.float32)})


KINDS = {
    "yolo": lambda: yolo_model(), "yolo_rows": lambda: yolo_model(layout="nc"),
    "yolov5": lambda: yolo_model(layout="nc", objectness=True), "yolo_seg": yolo_seg_model, "ssd": ssd_model,
    "torchvision": torchvision_style_model, "nms_rows6": rows6_model, "nms_rows7": rows7_model,
    "logits": seg_logits_model,
}
#: kind -> the head recognised
HEAD_OF = {"yolo": "yolo", "yolo_rows": "yolo", "yolov5": "yolov5", "yolo_seg": "yolo_seg", "ssd": "ssd",
           "torchvision": "torchvision", "nms_rows6": "nms_rows6", "nms_rows7": "nms_rows7", "logits": "logits"}


def write(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.onnx"
    onnx.save(KINDS[kind](), str(path))
    return path
