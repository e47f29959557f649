"""Detection: a file's outputs -> per-image boxes (x1, y1, x2, y2), scores and labels; NMS on the host in numpy.

Two placements of NMS, said by the file's ``edgecnn.nms`` metadata:

* ``graph``: the graph ends in ONNX ``NonMaxSuppression`` and outputs the kept detections of the whole batch,
  ``boxes`` (K, 4), ``scores`` (K,), ``labels`` (K,) and ``batch_index`` (K,) (their first dimension is not the
  batch). The host only sorts each image's detections and keeps the best ``detections_per_image``.
* ``host``: the graph outputs every anchor's ``boxes`` (N, A, 4) and class ``scores`` (N, A, C) (class 0 the
  background); :func:`host_nms` does torchvision's post-processing (per class: score > threshold, the best
  ``topk_candidates``, NMS at ``iou_threshold``; then the best ``detections_per_image``).

Boxes come out in input pixels; :func:`to_image` maps them to the original image's pixels.
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


def to_image(det: Detections, input_size: Sequence[int], image_size: Sequence[int]) -> Detections:
    """Boxes from input pixels (H, W) to the original image's pixels (width, height) (a stretch resize)."""
    h, w = input_size
    iw, ih = image_size
    scale = np.array([iw / w, ih / h, iw / w, ih / h], dtype=np.float32)
    return Detections(det.boxes * scale, det.scores, det.labels)


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
    """The image with its best ``limit`` boxes and labels drawn."""
    from PIL import ImageDraw

    from edgecnn.runtime.vision.segmentation import palette

    out = image.convert("RGB").copy()
    pen = ImageDraw.Draw(out)
    colours = palette(max(int(det.labels.max()) + 1 if len(det) else 1, 2))
    for r in rows(det, names, limit):
        colour = tuple(int(v) for v in colours[r["index"]]) if r["index"] else (255, 255, 255)
        x1, y1, x2, y2 = r["box"]
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        pen.text((x1 + 2, y1 + 1), f"{r['label']} {r['score']:.2f}", fill=colour)
    return out
