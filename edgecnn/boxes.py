"""Boxes in numpy (shared, torch-free): IoU, greedy NMS and matching two sets of detections.

Boxes are (x1, y1, x2, y2). The NMS is torchvision's algorithm (boxes by decreasing score, stable on ties; a box
is dropped when its IoU with a kept box exceeds the threshold), used by the runtime's host NMS and by the torch
shim of ``torchvision::nms`` (``models/_torchvision.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of two sets of boxes, in float64."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-30)


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices (int64) of the boxes kept by greedy NMS, by decreasing score."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    x1, y1, x2, y2 = (b[order, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(order[i])
        rest = slice(i + 1, None)
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        suppressed[rest] |= inter / np.maximum(areas[i] + areas[rest] - inter, 1e-30) > iou_threshold
    return np.asarray(keep, dtype=np.int64)


def greedy_nms_per_class(boxes: np.ndarray, scores: np.ndarray, valid: np.ndarray, iou_threshold: float
                         ) -> np.ndarray:
    """Greedy NMS of many classes at once, in lockstep: ``boxes`` (C, K, 4), ``scores`` (C, K) sorted by decreasing
    score within each class, ``valid`` (C, K) the real candidates. Returns the kept mask (C, K): the same boxes as
    :func:`greedy_nms` on each class, with K steps of array work instead of C x K steps of Python."""
    c, k = scores.shape
    b = np.asarray(boxes, dtype=np.float32)
    x1, y1, x2, y2 = (b[..., i] for i in range(4))
    area = (x2 - x1) * (y2 - y1)
    over = np.empty((c, k, k), dtype=bool)
    for s in range(0, c, 16):  # 16 classes of K x K overlaps at a time bound the temporaries
        sl = slice(s, s + 16)
        w = np.minimum(x2[sl, :, None], x2[sl, None, :])
        w -= np.maximum(x1[sl, :, None], x1[sl, None, :])
        np.clip(w, 0, None, out=w)
        h = np.minimum(y2[sl, :, None], y2[sl, None, :])
        h -= np.maximum(y1[sl, :, None], y1[sl, None, :])
        np.clip(h, 0, None, out=h)
        w *= h  # the intersection
        union = area[sl, :, None] + area[sl, None, :] - w
        np.greater(w, iou_threshold * union, out=over[sl])  # IoU > threshold, without a division
    over &= np.triu(np.ones((k, k), dtype=bool), 1)[None]
    keep = np.asarray(valid, dtype=bool).copy()
    for i in range(k):
        keep &= ~(over[:, i, :] & keep[:, i:i + 1])
    return keep


@dataclass
class Match:
    """How two detection sets of one image agree: reference boxes matched (same label, IoU >= ``min_iou``),
    the worst IoU and the largest score difference among the matches."""

    reference: int
    candidate: int
    matched: int
    min_iou: float | None
    max_score_diff: float | None

    @property
    def share(self) -> float:
        """Matched share of the reference's boxes (1.0 when the reference has none)."""
        return self.matched / self.reference if self.reference else 1.0


def match_detections(ref: tuple[np.ndarray, np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray, np.ndarray],
                     min_iou: float = 0.99) -> Match:
    """Match ``got`` to ``ref`` (each ``(boxes, scores, labels)``): each reference box, best score first, takes
    the unmatched candidate of its label with the highest IoU, when that IoU is >= ``min_iou``."""
    rb, rs, rl = (np.asarray(v) for v in ref)
    gb, gs, gl = (np.asarray(v) for v in got)
    taken = np.zeros(len(gb), dtype=bool)
    ious, diffs = [], []
    iou = box_iou(rb, gb) if len(rb) and len(gb) else np.zeros((len(rb), len(gb)))
    same = rl.reshape(-1, 1) == gl.reshape(1, -1) if len(rb) and len(gb) else np.zeros_like(iou, dtype=bool)
    for i in np.argsort(-rs.astype(np.float64), kind="stable"):
        if not len(gb):
            break
        cand = np.where(same[i] & ~taken, iou[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] >= min_iou:
            taken[j] = True
            ious.append(float(cand[j]))
            diffs.append(abs(float(rs[i]) - float(gs[j])))
    return Match(len(rb), len(gb), len(ious), min(ious) if ious else None, max(diffs) if diffs else None)


def matched_f1(matches: list[Match] | tuple[Match, ...]) -> float:
    """F1 of detection agreement over many images: 2 x matched / (reference + candidate boxes), from each image's
    :func:`match_detections` (typically at IoU 0.5 against an fp32 reference). 1.0 when neither side has a box."""
    matched = sum(m.matched for m in matches)
    total = sum(m.reference + m.candidate for m in matches)
    return 2.0 * matched / total if total else 1.0
