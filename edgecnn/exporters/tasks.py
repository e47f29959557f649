"""The exporter's side of the task seam: what is traced, how outputs are named, the metadata a detector or a
segmenter carries, where NMS goes, and the shape sweep that validates the file against torch.

Classifiers never come here (``api.py`` keeps their path as it was). A detector is traced up to NMS
(:class:`edgecnn.models.detection.RawDetector`) and gets NMS in the graph (``exporters/nms.py``) or leaves it to
the host; a segmenter's ``{"out": ...}`` is traced as one output, ``masks``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn.errors import EdgecnnError
from edgecnn.exporters.validate import Validation, check_file, cpu_session
from edgecnn.runtime.vision import detection as D
from edgecnn.runtime.vision import segmentation as S

NMS_CHOICES = ("auto", "graph", "host")
NMS_OP = "NonMaxSuppression"


class SegmentationOut(nn.Module):
    """A torchvision segmenter's main output ``out`` (N, C, H, W) as one tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def resolve_nms(nms: str | None) -> tuple[str, str]:
    """(placement, why) for ``--nms``: ``auto`` is ``graph`` unless a runtime available here lacks
    ``NonMaxSuppression`` (``Backend.missing_ops``), then ``host``."""
    choice = (nms or "auto").lower()
    if choice not in NMS_CHOICES:
        raise EdgecnnError(f"--nms {nms!r}: use graph, host or auto.")
    if choice != "auto":
        return choice, f"--nms {choice}"
    from edgecnn.runtime.backends import registry

    lacking = [n for n, why in registry.available().items()
               if why is None and NMS_OP in getattr(registry.get(n), "missing_ops", frozenset())]
    if lacking:
        return "host", f"--nms auto: host, because {', '.join(lacking)} cannot run {NMS_OP}"
    return "graph", f"--nms auto: graph ({NMS_OP} runs on every runtime available here)"


def exportable(model: nn.Module, task: str, input_size: tuple[int, int], placement: str
               ) -> tuple[nn.Module, tuple[str, ...]]:
    """The module to trace and its output names."""
    if task == "detection":
        from edgecnn.exporters.nms import RAW_BOXES, RAW_SCORES
        from edgecnn.models.detection import RawDetector

        names = (RAW_BOXES, RAW_SCORES) if placement == "graph" else ("boxes", "scores")
        return RawDetector(model, input_size).eval(), names
    if task == "segmentation":
        return SegmentationOut(model).eval(), ("masks",)
    raise EdgecnnError(f"no exporter for task {task!r}")


def postprocess_params(model: nn.Module, placement: str) -> dict[str, Any]:
    """The ``edgecnn.nms`` metadata of a detector: placement and torchvision's thresholds, read from the model."""
    return {"placement": placement, "score_threshold": float(model.score_thresh),
            "iou_threshold": float(model.nms_thresh), "topk_candidates": int(model.topk_candidates),
            "detections_per_image": int(model.detections_per_img)}


def task_metadata(task: str, model: nn.Module, placement: str | None, labels: list[str] | None,
                  resize: str) -> dict[str, Any]:
    """Metadata keys of a task file: task, outputs with roles, labels, resize, box format and NMS."""
    meta: dict[str, Any] = {"task": task, "resize": resize, "class_names": ""}
    if labels:
        meta["labels"] = labels
    if task == "detection":
        raw = placement == "host"
        roles = [("boxes", "boxes"), ("scores", "scores")] if raw else [(n, n) for n in D.ROLES]
        meta["outputs"] = [{"name": n, "role": r, "batch": raw} for n, r in roles]
        meta["box_format"] = "xyxy"
        meta["nms"] = postprocess_params(model, placement or "graph")
    else:
        meta["outputs"] = [{"name": "masks", "role": "masks", "batch": True}]
    return meta


def append_graph_nms(onx: Any, meta: dict[str, Any], anchors: int) -> Any:
    """The NMS tail, when the metadata places NMS in the graph."""
    p = meta.get("nms") or {}
    if p.get("placement") != "graph":
        return onx
    from edgecnn.exporters.nms import append_nms

    return append_nms(onx, anchors=anchors, score_threshold=p["score_threshold"], iou_threshold=p["iou_threshold"],
                      topk_candidates=p["topk_candidates"])


# --------------------------------------------------------------------------- the shape sweep

def synthetic_images(n: int, size: tuple[int, int], offset: int = 0, seed: int = 0) -> np.ndarray:
    """``n`` images in [0, 1], (n, 3, H, W), of different contents: noise, a gradient, a checkerboard, blobs."""
    h, w = size
    rng = np.random.default_rng(seed + offset)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kinds = [
        lambda: rng.random((3, h, w), dtype=np.float32),
        lambda: np.stack([xx / w, yy / h, (xx + yy) / (w + h)]),
        lambda: np.broadcast_to((((xx // 32) + (yy // 32)) % 2)[None], (3, h, w)) * np.array([.9, .6, .3])[:, None,
                                                                                              None],
        lambda: np.stack([np.sin(xx / 17 + c) * np.cos(yy / 23 - c) * .5 + .5 for c in range(3)]),
    ]
    return np.stack([kinds[(offset + i) % len(kinds)]() for i in range(n)]).astype(np.float32)


def _normalise(x: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    return ((x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]) \
        .astype(np.float32)


def validate_task(path: str | Path, model: nn.Module, task: str, meta: dict[str, Any], input_shape: tuple[int, ...],
                  precision: str, batch: int | None) -> Validation:
    """The shape sweep: the file on ONNX Runtime CPU against torch on several image contents at every batch size
    the file claims (1 and 2 for a dynamic batch; the fixed batch twice otherwise).

    Detection: per image, torchvision's own detections matched by label and IoU >= 0.99, scores within 1e-3, at
    least 10 matched (``runtime/vision/detection.py``). Segmentation: argmax agreement >= 99.9% of pixels."""

    t0 = time.perf_counter()
    sizes = [1, 2] if batch is None else [batch, batch]
    res = Validation(passed=False, checker=check_file(path), batch_sizes=sizes, num_inputs=sum(sizes))
    res.tolerances = ({"min_iou": D.MIN_IOU, "max_score_diff": D.MAX_SCORE_DIFF, "min_matched": D.MIN_MATCHED}
                      if task == "detection" else {"min_pixel_agreement": S.MIN_PIXEL_AGREEMENT})
    if precision != "fp32":
        res.failures.append(f"{task} exports are validated at fp32 only; export without --fp16")
    if res.checker != "ok":
        res.failures.append(f"ONNX checker: {res.checker}")
    if res.failures:
        res.seconds = time.perf_counter() - t0
        return res
    sess = cpu_session(path, res)
    if sess is None:
        res.seconds = time.perf_counter() - t0
        return res
    names = [o.name for o in sess.get_outputs()]
    size = (int(input_shape[1]), int(input_shape[2]))
    per_batch: list[dict[str, Any]] = []
    model.eval()
    for step, n in enumerate(sizes):
        x = _normalise(synthetic_images(n, size, offset=step * 2), meta["mean"], meta["std"])
        try:
            outs = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x}), strict=True))
        except Exception as e:  # noqa: BLE001 - a graph that breaks at this batch size (Reshape, Split, TopK)
            res.failures.append(f"batch {n}: ONNX Runtime failed: {str(e).strip().splitlines()[0][:300]}")
            continue
        with torch.no_grad():
            if task == "detection":
                from edgecnn.models.detection import reference_detections

                ref = [D.Detections(d["boxes"].numpy(), d["scores"].numpy(), d["labels"].numpy())
                       for d in reference_detections(model, torch.from_numpy(x))]
                got = D.detections(outs, meta, n)
                matches = D.agreement(ref, got)
                per_batch.append({"batch": n, "images": [asdict(m) for m in matches]})
                res.failures += [f"batch {n}: {f}" for f in D.judge(matches)]
            else:
                ref_masks = model(torch.from_numpy(x))["out"].numpy()
                agree = S.agreement(ref_masks, outs["masks"])
                per_batch.append({"batch": n, **agree})
                if agree["pixel_agreement"] < S.MIN_PIXEL_AGREEMENT:
                    res.failures.append(f"batch {n}: argmax agrees on {agree['pixel_agreement']:.4%} of pixels "
                                        f"(< {S.MIN_PIXEL_AGREEMENT:.1%})")
    res.task = {"task": task, "sweep": per_batch}
    if task == "segmentation" and per_batch:
        res.max_rel_diff = max(b["max_rel_diff"] for b in per_batch)
    res.passed = not res.failures
    res.seconds = time.perf_counter() - t0
    return res
