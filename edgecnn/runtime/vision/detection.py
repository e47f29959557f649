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

from edgecnn.boxes import Match, greedy_nms, match_detections
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


def host_nms(boxes: np.ndarray, scores: np.ndarray, p: NmsParams) -> Detections:
    """torchvision's ``SSD.postprocess_detections`` for one image: boxes (A, 4), scores (A, C)."""
    kb, ks, kl = [], [], []
    for c in range(1, scores.shape[1]):
        s = scores[:, c]
        idx = np.flatnonzero(s > p.score_threshold)
        idx = idx[np.argsort(-s[idx].astype(np.float64), kind="stable")[:p.topk_candidates]]
        if not len(idx):
            continue
        keep = idx[greedy_nms(boxes[idx], s[idx], p.iou_threshold)]
        kb.append(boxes[keep])
        ks.append(s[keep])
        kl.append(np.full(len(keep), c, dtype=np.int64))
    if not kb:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    return _best(np.concatenate(kb), np.concatenate(ks), np.concatenate(kl), p.detections_per_image)


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
