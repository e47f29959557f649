"""Detection: a file's outputs -> per-image boxes (x1, y1, x2, y2), scores and labels; NMS on the host in numpy.

Two placements of NMS, said by the file's ``edgecnn.nms`` metadata:

* ``graph``: the graph ends in ONNX ``NonMaxSuppression`` and outputs the kept detections of the whole batch,
  ``boxes`` (K, 4), ``scores`` (K,), ``labels`` (K,) and ``batch_index`` (K,) (their first dimension is not the
  batch). The host only sorts each image's detections and keeps the best ``detections_per_image``.
* ``host``: the graph outputs every anchor's ``boxes`` (N, A, 4) and class ``scores`` (N, A, C) (class 0 the
  background); :func:`host_nms` does torchvision's post-processing (per class: score > threshold, the best
  ``topk_candidates``, NMS at ``iou_threshold``; then the best ``detections_per_image``).

Files from elsewhere (``edgecnn.head`` metadata, written by :mod:`edgecnn.runtime.vision.recognize`) are decoded
by :func:`decode_foreign`: YOLO raw heads (class-wise NMS on the host), YOLO segmentation (per-detection masks),
SSD boxes + scores, and NMS-in-graph outputs (torchvision's boxes/scores/labels, rows of 6 or 7).

Boxes come out in input pixels; :func:`to_image` maps them to the original image's pixels (undoing a stretch resize
or, with ``letterbox=True``, Ultralytics' letterbox).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.boxes import Match, greedy_nms_per_class, match_detections
from edgecnn.errors import EdgecnnError

ROLES = ("boxes", "scores", "labels", "batch_index")
PLACEMENTS = ("graph", "host")
#: agreement an export must reach against torch, per image
MIN_IOU, MAX_SCORE_DIFF, MIN_MATCHED = 0.99, 1e-3, 10


@dataclass(frozen=True)
class NmsParams:
    """Where NMS runs and torchvision's post-processing parameters."""

    placement: str = "graph"
    score_threshold: float = 0.001
    iou_threshold: float = 0.55
    topk_candidates: int = 300
    detections_per_image: int = 300

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> NmsParams:
        raw = meta.get("nms")
        if not isinstance(raw, Mapping):
            raise EdgecnnError("a detection file needs edgecnn.nms metadata (placement and thresholds); "
                               "export it with 'edgecnn export MODEL --nms graph|host'.")
        p = cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        if p.placement not in PLACEMENTS:
            raise EdgecnnError(f"edgecnn.nms placement {p.placement!r}: expected graph or host.")
        return p


@dataclass
class Detections:
    """One image's detections, best score first."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    #: YOLO segmentation files: one boolean mask per detection (K, H, W), at the input's (or, after
    #: :func:`to_image`, the image's) size
    masks: np.ndarray | None = None

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.boxes, self.scores, self.labels

    def __len__(self) -> int:
        return len(self.scores)


def _best(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int) -> Detections:
    order = np.argsort(-scores.astype(np.float64), kind="stable")[:k]
    return Detections(boxes[order].astype(np.float32), scores[order].astype(np.float32), labels[order].astype(np.int64))


def _stable_topk(values: np.ndarray, k: int) -> np.ndarray:
    """Per row, the indices (ascending) of the ``k`` largest values, ties at the k-th value going to the lower
    index: the set a stable sort by decreasing value keeps (the C++ and JavaScript examples' rule), at the cost of a
    partition rather than a sort."""
    if k >= values.shape[1]:
        return np.tile(np.arange(values.shape[1]), (len(values), 1))
    part = np.sort(np.argpartition(-values, k - 1, axis=1)[:, :k], axis=1)
    kth = np.take_along_axis(values, part, 1).min(axis=1, keepdims=True)
    above = values > kth
    tied = values == kth
    left = k - above.sum(axis=1)  # places for the values equal to the k-th
    # rows where more values equal the k-th (a real score, not -inf) than there are places: the lower indices win
    for r in np.flatnonzero((tied.sum(axis=1) > left) & np.isfinite(kth[:, 0])):
        part[r] = np.flatnonzero(above[r] | (tied[r] & (np.cumsum(tied[r]) <= left[r])))
    return part


def host_nms(boxes: np.ndarray, scores: np.ndarray, p: NmsParams) -> Detections:
    """torchvision's ``SSD.postprocess_detections`` for one image: boxes (A, 4), scores (A, C). Every class at once
    (:func:`edgecnn.boxes.greedy_nms_per_class`): per class the best ``topk_candidates`` scores above the
    threshold, NMS, then the best ``detections_per_image`` of all classes."""
    fg = np.asarray(scores, dtype=np.float32)[:, 1:].T  # (C-1, A)
    k = min(p.topk_candidates, fg.shape[1])
    masked = np.where(fg > p.score_threshold, fg, -np.inf)
    part = _stable_topk(masked, k)
    order = np.take_along_axis(part, np.argsort(-np.take_along_axis(masked, part, 1), axis=1, kind="stable"), 1)
    top = np.take_along_axis(masked, order, 1)
    valid = np.isfinite(top)
    keep = greedy_nms_per_class(np.asarray(boxes)[order], top, valid, p.iou_threshold)
    cls, j = np.nonzero(keep)
    if not len(cls):
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    idx = order[cls, j]
    return _best(np.asarray(boxes)[idx], top[cls, j], cls.astype(np.int64) + 1, p.detections_per_image)


def detections(outputs: Mapping[str, np.ndarray], meta: Mapping[str, Any], n: int) -> list[Detections]:
    """Per-image detections of a batch of ``n`` images from a detection file's named outputs."""
    if foreign_head(meta) is not None:
        return decode_foreign(outputs, meta, n)
    p = NmsParams.from_metadata(meta)
    try:
        if p.placement == "host":
            boxes, scores = np.asarray(outputs["boxes"]), np.asarray(outputs["scores"])
            return [host_nms(boxes[i], scores[i], p) for i in range(n)]
        boxes, scores = np.asarray(outputs["boxes"]), np.asarray(outputs["scores"])
        labels, index = np.asarray(outputs["labels"]), np.asarray(outputs["batch_index"])
    except KeyError as e:
        raise EdgecnnError(f"the detection file has no output {e.args[0]!r} (its edgecnn.outputs metadata names "
                           "boxes, scores, labels and batch_index for --nms graph, boxes and scores for host).") \
            from None
    return [_best(boxes[index == i], scores[index == i], labels[index == i], p.detections_per_image)
            for i in range(n)]


def to_image(det: Detections, input_size: Sequence[int], image_size: Sequence[int], *,
             letterbox: bool = False) -> Detections:
    """Boxes (and masks) from input pixels (H, W) to the original image's pixels (width, height): a stretch resize
    undone, or with ``letterbox`` Ultralytics' letterbox (padding removed, divided by the gain, clipped to the
    image)."""
    h, w = input_size
    iw, ih = image_size
    masks = det.masks
    if letterbox:
        from edgecnn.runtime.images import letterbox_geometry

        gain, left, top, new_w, new_h = letterbox_geometry(image_size, input_size)
        pad = np.array([left, top, left, top], dtype=np.float32)
        boxes = (det.boxes - pad) / np.float32(gain)
        boxes = np.clip(boxes, 0, np.array([iw, ih, iw, ih], dtype=np.float32)).astype(np.float32)
        if masks is not None:
            masks = _resize_masks(masks[:, top:top + new_h, left:left + new_w], (ih, iw))
        return Detections(boxes, det.scores, det.labels, masks)
    scale = np.array([iw / w, ih / h, iw / w, ih / h], dtype=np.float32)
    if masks is not None:
        masks = _resize_masks(masks, (ih, iw))
    return Detections(det.boxes * scale, det.scores, det.labels, masks)


def _resize_masks(masks: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Boolean masks (K, h, w) -> (K, H, W), nearest neighbour."""
    k, h, w = masks.shape
    th, tw = int(size[0]), int(size[1])
    if (h, w) == (th, tw) or not k:
        return masks.reshape(k, th, tw) if (h, w) == (th, tw) else np.zeros((0, th, tw), bool)
    rows = np.minimum((np.arange(th) + 0.5) * h / th, h - 1).astype(np.int64)
    cols = np.minimum((np.arange(tw) + 0.5) * w / tw, w - 1).astype(np.int64)
    return masks[:, rows][:, :, cols]


# --------------------------------------------------------------------------- files from elsewhere

#: most candidates a YOLO head sends to NMS (Ultralytics' max_nms)
MAX_NMS = 30000
_EMPTY = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def foreign_head(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``edgecnn.head`` of a file from elsewhere (None for edgecnn's own detection files)."""
    head = meta.get("head")
    if isinstance(head, Mapping) and head.get("kind") not in (None, "edgecnn"):
        return dict(head)
    return None


def images_per_run(meta: Mapping[str, Any]) -> int | None:
    """1 when the file's outputs do not say which image a detection belongs to (torchvision's exports, rows of
    7 whose batch column the runtime does not renumber): run such files one image at a time; else None."""
    head = foreign_head(meta)
    return 1 if head is not None and head["kind"] in ("torchvision", "nms_rows7") else None


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(..., 4) centre-x, centre-y, width, height -> x1, y1, x2, y2."""
    b = np.asarray(boxes, dtype=np.float32)
    half = b[..., 2:4] / 2
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def nms_classwise(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float,
                  limit: int = MAX_NMS) -> np.ndarray:
    """Indices kept by class-wise greedy NMS (boxes of different classes never suppress each other: Ultralytics'
    offset trick), best ``limit`` candidates only, by decreasing score."""
    from edgecnn.boxes import greedy_nms

    if not len(scores):
        return np.zeros(0, np.int64)
    order = np.argsort(-scores.astype(np.float64), kind="stable")[:limit]
    b = boxes[order].astype(np.float64)
    offset = (labels[order].astype(np.float64) * (float(np.abs(b).max()) + 1.0))[:, None]
    return order[greedy_nms(b + offset, scores[order], iou_threshold)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def yolo_masks(coeffs: np.ndarray, protos: np.ndarray, boxes: np.ndarray, input_size: Sequence[int]) -> np.ndarray:
    """Ultralytics' masks with ``retina_masks``: ``sigmoid(coeffs @ protos)`` (K, h, w), upsampled bilinearly to the
    input size, zero outside each box, > 0.5. ``coeffs`` (K, M), ``protos`` (M, h, w), boxes xyxy in input pixels."""
    from PIL import Image

    h, w = (int(v) for v in input_size)
    m, ph, pw = protos.shape
    raw = _sigmoid(coeffs.astype(np.float32) @ protos.reshape(m, -1).astype(np.float32)).reshape(-1, ph, pw)
    out = np.zeros((len(raw), h, w), dtype=bool)
    ys, xs = np.arange(h)[:, None] + 0.5, np.arange(w)[None, :] + 0.5
    for i, (mask, box) in enumerate(zip(raw, boxes, strict=True)):
        up = np.asarray(Image.fromarray(mask.astype(np.float32), "F").resize((w, h), Image.Resampling.BILINEAR))
        inside = (xs >= box[0]) & (xs < box[2]) & (ys >= box[1]) & (ys < box[3])
        out[i] = (up > 0.5) & inside
    return out


def decode_yolo(pred: np.ndarray, head: Mapping[str, Any], p: NmsParams, *, box_format: str = "cxcywh",
                protos: np.ndarray | None = None, input_size: Sequence[int] | None = None) -> Detections:
    """One image of a YOLO head: ``pred`` (4+[1]+C+M, N) channels first or (N, ...) rows. The best class per box
    (score = class score, times the objectness when there is one), scores > ``p.score_threshold``, class-wise NMS
    at ``p.iou_threshold``, the best ``p.detections_per_image``; labels 0-based. With ``protos`` (M, h, w):
    :func:`yolo_masks`."""
    rows = np.asarray(pred, dtype=np.float32)
    rows = rows.T if head.get("layout", "cn") == "cn" else rows
    obj, m = int(bool(head.get("objectness"))), int(head.get("masks", 0) or 0)
    c = rows.shape[1] - 4 - obj - m
    cls = rows[:, 4 + obj:4 + obj + c]
    if obj:
        cls = cls * rows[:, 4:5]
    labels = cls.argmax(axis=1)
    scores = cls[np.arange(len(cls)), labels]
    keep = np.nonzero(scores > p.score_threshold)[0]
    boxes = rows[keep, :4]
    boxes = xywh_to_xyxy(boxes) if box_format == "cxcywh" else boxes
    kept = nms_classwise(boxes, scores[keep], labels[keep], p.iou_threshold)[:p.detections_per_image]
    idx = keep[kept]
    masks = None
    if protos is not None and m:
        masks = yolo_masks(rows[idx, 4 + obj + c:], np.asarray(protos), boxes[kept], input_size or protos.shape[1:])
    return Detections(boxes[kept].astype(np.float32), scores[idx].astype(np.float32), labels[idx].astype(np.int64),
                      masks)


def _by_role(outputs: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> dict[str, np.ndarray]:
    from edgecnn.runtime.vision import output_roles

    roles = {name: r["role"] for name, r in output_roles(meta).items()}
    return {roles[name]: np.asarray(v) for name, v in outputs.items() if name in roles}


def _to_xyxy(boxes: np.ndarray, box_format: str) -> np.ndarray:
    return xywh_to_xyxy(boxes) if box_format == "cxcywh" else np.asarray(boxes, dtype=np.float32)


def decode_foreign(outputs: Mapping[str, np.ndarray], meta: Mapping[str, Any], n: int) -> list[Detections]:
    """Per-image detections of ``n`` images from a file from elsewhere (its ``edgecnn.head``, ``outputs`` roles,
    ``box_format`` and ``nms`` thresholds); labels as the file numbers them (YOLO and rows: 0-based, no
    background; torchvision and SSD with a background column: 1-based, 0 the background)."""
    head = foreign_head(meta) or {}
    kind = head.get("kind")
    p = NmsParams.from_metadata(meta)
    fmt = str(meta.get("box_format") or "xyxy")
    got = _by_role(outputs, meta)
    size = meta.get("input_size")
    try:
        if kind in ("yolo", "yolov5", "yolo_seg"):
            pred, protos = got["head"], got.get("protos")
            return [decode_yolo(pred[i], head, p, box_format=fmt, protos=None if protos is None else protos[i],
                                input_size=size) for i in range(n)]
        if kind == "ssd":
            boxes, scores = got["boxes"], got["scores"]
            out = []
            for i in range(n):
                b = _to_xyxy(boxes[i], fmt)
                if len(b) and float(np.abs(b).max()) <= 1.5 and isinstance(size, list):  # 0-1: to input pixels
                    b = b * np.array([size[1], size[0], size[1], size[0]], dtype=np.float32)
                s = np.asarray(scores[i], dtype=np.float32)
                if not head.get("background", True):
                    s = np.concatenate([np.zeros((len(s), 1), np.float32), s], axis=1)
                d = host_nms(b, s, p)
                out.append(d if head.get("background", True) else Detections(d.boxes, d.scores, d.labels - 1))
            return out
        if kind == "torchvision":
            if n != 1:
                raise EdgecnnError("this file's outputs (torchvision's boxes, scores, labels) hold one image's "
                                   "detections: run it one image at a time.")
            boxes = _to_xyxy(got["boxes"].reshape(-1, 4), fmt)
            scores, labels = got["scores"].reshape(-1), got["labels"].reshape(-1)
            keep = scores >= p.score_threshold
            return [_best(boxes[keep], scores[keep], labels[keep], p.detections_per_image)]
        if kind == "nms_rows6":
            rows = got["rows"]
            out = []
            for i in range(n):
                r = np.asarray(rows[i], dtype=np.float32).reshape(-1, 6)
                r = r[r[:, 4] > p.score_threshold]
                out.append(_best(_to_xyxy(r[:, :4], fmt), r[:, 4], np.rint(r[:, 5]), p.detections_per_image))
            return out
        if kind == "nms_rows7":
            r = np.asarray(got["rows"], dtype=np.float32).reshape(-1, 7)
            r = r[r[:, 6] > p.score_threshold]
            return [_best(_to_xyxy(r[r[:, 0] == i, 1:5], fmt), r[r[:, 0] == i, 6], np.rint(r[r[:, 0] == i, 5]),
                          p.detections_per_image) for i in range(n)]
    except KeyError as e:
        raise EdgecnnError(f"the detection file has no output with role {e.args[0]!r} for head {kind} (its "
                           "edgecnn.outputs metadata); run 'edgecnn inspect FILE' to see what was recognised.") \
            from None
    raise EdgecnnError(f"unknown detection head {kind!r} in the file's edgecnn.head metadata.")


def agreement(ref: Sequence[Detections], got: Sequence[Detections]) -> list[Match]:
    """Per image, how ``got`` matches ``ref`` (:func:`edgecnn.boxes.match_detections` at IoU >= 0.99)."""
    return [match_detections(r.as_tuple(), g.as_tuple(), MIN_IOU) for r, g in zip(ref, got, strict=True)]


def judge(matches: Sequence[Match], min_matched: int = MIN_MATCHED) -> list[str]:
    """Failures (empty: agrees): fewer than ``min_matched`` matched boxes in an image, or a matched score further
    than :data:`MAX_SCORE_DIFF`."""
    bad = []
    for i, m in enumerate(matches):
        if m.matched < min(min_matched, m.reference):
            bad.append(f"image {i}: {m.matched} of {m.reference} boxes matched (need {min_matched})")
        if m.max_score_diff is not None and m.max_score_diff > MAX_SCORE_DIFF:
            bad.append(f"image {i}: matched scores differ by {m.max_score_diff:.2e} (> {MAX_SCORE_DIFF:g})")
    return bad


def rows(det: Detections, names: Sequence[str] | None, limit: int | None = None) -> list[dict[str, Any]]:
    """Printable rows ``{label, index, score, box}`` (box rounded to 0.1 px)."""
    out = []
    for b, s, c in list(zip(det.boxes, det.scores, det.labels, strict=True))[:limit]:
        label = names[int(c)] if names and 0 <= int(c) < len(names) else str(int(c))
        out.append({"index": int(c), "label": label, "score": float(s), "box": [round(float(v), 1) for v in b]})
    return out


def draw(image: Any, det: Detections, names: Sequence[str] | None, limit: int = 20) -> Any:
    """The image with its best ``limit`` boxes and labels drawn (and their masks blended in, where there are)."""
    from PIL import Image, ImageDraw

    from edgecnn.runtime.vision.segmentation import palette

    out = image.convert("RGB").copy()
    colours = palette(max(int(det.labels.max()) + 1 if len(det) else 1, 2))
    if det.masks is not None and len(det) and det.masks.shape[1:] == (out.height, out.width):
        base = np.asarray(out, dtype=np.float32)
        for mask, label in list(zip(det.masks, det.labels, strict=True))[:limit][::-1]:  # the best one on top
            colour = colours[int(label)] if int(label) else np.array([255, 255, 255])
            base[mask] = 0.5 * base[mask] + 0.5 * colour.astype(np.float32)
        out = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(out)
    for r in rows(det, names, limit):
        colour = tuple(int(v) for v in colours[r["index"]]) if r["index"] else (255, 255, 255)
        x1, y1, x2, y2 = r["box"]
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        pen.text((x1 + 2, y1 + 1), f"{r['label']} {r['score']:.2f}", fill=colour)
    return out
