"""Accuracy of a detection or segmentation file against its fp32 original, without labels, and the seam for labelled
metrics.

    report = compare_task_models("ssd.onnx", "ssd.int8.onnx", x)       # per-output SQNR, matched-box F1 at IoU 0.5
    accept = task_accept("ssd.onnx", x)                                 # the target of --keep-float auto

Label-free: each output's SQNR against fp32 (when both runs give it the same shape: not the detections after graph
NMS, whose count varies); for a detector, the F1 of int8's post-processed detections matched to fp32's by label at
IoU >= :data:`MATCH_IOU` (:func:`edgecnn.boxes.matched_f1`); for a segmenter, the share of pixels whose class agrees.

Labelled: a :data:`TaskMetric`, any callable taking a file path and returning its metrics by name
(``{"map50": ..., "map": ...}`` for a detector, ``{"miou": ...}`` for a segmenter, in points 0..100); the evaluation
of COCO-style annotations plugs in here. :data:`PRIMARY` names the metric a budget in points is counted in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError

#: ``metric(path) -> {name: value in points}``: a labelled evaluation of one file (the seam for mAP and mIoU)
TaskMetric = Callable[[Path], dict[str, float]]
#: the metric a budget in points is counted in, per task
PRIMARY = {"classification": "top1", "detection": "map50", "segmentation": "miou"}
#: the IoU at which int8 detections are matched to fp32's
MATCH_IOU = 0.5
#: default targets of --keep-float auto on task files: matched-box F1 vs fp32, and the share of agreeing pixels
DEFAULT_MIN_F1 = 0.9
DEFAULT_MIN_PIXEL_AGREEMENT = 0.98


def run_outputs(path: str | os.PathLike, x: np.ndarray, batch_size: int = 8) -> tuple[dict[str, np.ndarray],
                                                                                       dict[str, Any]]:
    """Every named output of ``path`` on ``x`` (ONNX Runtime CPU), and the file's metadata."""
    from edgecnn.runtime import Engine

    engine = Engine(path, provider="cpu", max_batch=batch_size)
    outs = engine.run_named(np.ascontiguousarray(x.astype(engine.input_dtype, copy=False)))
    return outs, dict(engine.metadata)


def compare_outputs(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], meta: Mapping[str, Any],
                    n: int) -> dict[str, Any]:
    """Label-free agreement of two runs of a task file on the same ``n`` inputs (module docstring)."""
    from edgecnn.metrics import sqnr_db
    from edgecnn.runtime.vision import output_roles, task_of

    task = task_of(meta)
    roles = output_roles(meta)
    per_output: dict[str, float | None] = {}
    for name, r in ref.items():
        r, g = np.asarray(r), got.get(name)
        if not np.issubdtype(r.dtype, np.floating):
            continue  # labels, indices
        per_image = roles.get(name, {}).get("batch", True)  # detections after graph NMS: count and order vary
        ok = per_image and g is not None and np.shape(g) == r.shape
        per_output[name] = round(sqnr_db(r, np.asarray(g)), 2) if ok else None
    finite = [v for v in per_output.values() if v is not None]
    metrics: dict[str, Any] = {"task": task, "samples": n, "sqnr_db": per_output,
                               "min_sqnr_db": min(finite) if finite else None}
    if task == "detection":
        from edgecnn.boxes import match_detections, matched_f1
        from edgecnn.runtime.vision.detection import detections

        rd, gd = detections(ref, meta, n), detections(got, meta, n)
        matches = [match_detections(a.as_tuple(), b.as_tuple(), MATCH_IOU) for a, b in zip(rd, gd, strict=True)]
        metrics.update(matched_f1=round(matched_f1(matches), 4), match_iou=MATCH_IOU,
                       boxes_fp32=sum(len(d) for d in rd), boxes=sum(len(d) for d in gd))
    elif task == "segmentation":
        from edgecnn.runtime.vision.segmentation import agreement

        name = next(iter(ref))
        metrics["pixel_agreement"] = round(agreement(ref[name], got[name])["pixel_agreement"], 5)
    return metrics


@dataclass
class TaskReport:
    """An int8 (or any) task file against its fp32 original: label-free metrics, and labelled ones when given."""

    reference: str
    candidate: str
    metrics: dict[str, Any]
    note: str = ""
    #: labelled metrics of the reference and the candidate (a :data:`TaskMetric`'s), when one was given
    labelled: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        from edgecnn.onnxfile import file_size

        return {"reference": self.reference, "candidate": self.candidate, **self.metrics, "note": self.note,
                "labelled": self.labelled or None, "size_reference": file_size(self.reference),
                "size_candidate": file_size(self.candidate)}

    def lines(self) -> list[str]:
        """The printed report."""
        m = self.metrics
        out = [f"{m['task']} accuracy vs fp32 on {m['samples']} inputs ({self.note})" if self.note else
               f"{m['task']} accuracy vs fp32 on {m['samples']} inputs"]
        if "matched_f1" in m:
            out.append(f"  matched boxes F1 at IoU {m['match_iou']:g}: {m['matched_f1']:.3f} "
                       f"({m['boxes']} boxes vs {m['boxes_fp32']} in fp32)")
        if "pixel_agreement" in m:
            out.append(f"  pixel agreement: {100 * m['pixel_agreement']:.2f}%")
        for name, v in m["sqnr_db"].items():
            out.append(f"  SQNR {name}: " + (f"{v:.1f} dB" if v is not None else
                                             "n/a (detections after NMS: count and order differ)"))
        for which, values in self.labelled.items():
            out.append(f"  {which}: " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))
        return out


def compare_task_models(reference: str | os.PathLike, candidate: str | os.PathLike, x: np.ndarray, *,
                        note: str = "", metric: TaskMetric | None = None) -> TaskReport:
    """Run both files on ``x`` and compare (module docstring); ``metric`` adds labelled metrics of both."""
    ref, meta = run_outputs(reference, x)
    got, _ = run_outputs(candidate, x)
    report = TaskReport(str(reference), str(candidate), compare_outputs(ref, got, meta, len(x)), note)
    if metric is not None:
        report.labelled = {"fp32": metric(Path(reference)), "int8": metric(Path(candidate))}
    return report


def task_accept(fp32: str | os.PathLike, x: np.ndarray, *, min_sqnr_db: float | None = None,
                min_f1: float | None = None, min_pixel_agreement: float | None = None,
                metric: TaskMetric | None = None, max_drop_points: float | None = None
                ) -> Callable[[Path], tuple[bool, dict[str, Any]]]:
    """``accept(int8_path)`` for a task file: label-free targets on ``x`` (defaults :data:`DEFAULT_MIN_F1` for a
    detector, :data:`DEFAULT_MIN_PIXEL_AGREEMENT` for a segmenter; ``min_sqnr_db`` on the worst comparable output)
    and, with a labelled ``metric``, at most ``max_drop_points`` of the task's primary metric below fp32's."""
    from edgecnn.runtime.vision import task_of

    ref, meta = run_outputs(fp32, x)
    task = task_of(meta)
    primary = PRIMARY[task]
    if max_drop_points is not None and metric is None:
        raise EdgecnnError(f"--max-drop counts points of {primary} and needs labelled evaluation of the "
                           f"{task} file; without labels use --min-sqnr or the default agreement target.")
    if task == "detection" and min_f1 is None and max_drop_points is None:
        min_f1 = DEFAULT_MIN_F1
    if task == "segmentation" and min_pixel_agreement is None and max_drop_points is None:
        min_pixel_agreement = DEFAULT_MIN_PIXEL_AGREEMENT
    ref_labelled = metric(Path(fp32)) if metric is not None and max_drop_points is not None else None
    if ref_labelled is not None and primary not in ref_labelled:
        raise EdgecnnError(f"the labelled metric returned {sorted(ref_labelled)}; a {task} budget needs {primary!r}.")

    def accept(path: Path) -> tuple[bool, dict[str, Any]]:
        got, _ = run_outputs(path, x)
        m = compare_outputs(ref, got, meta, len(x))
        metrics: dict[str, Any] = {"sqnr_db": m["min_sqnr_db"]}
        ok = True
        if min_sqnr_db is not None:
            ok = m["min_sqnr_db"] is not None and m["min_sqnr_db"] >= min_sqnr_db
        if "matched_f1" in m:
            metrics["matched_f1"] = m["matched_f1"]
            ok = ok and (min_f1 is None or m["matched_f1"] >= min_f1)
        if "pixel_agreement" in m:
            metrics["pixel_agreement"] = m["pixel_agreement"]
            ok = ok and (min_pixel_agreement is None or m["pixel_agreement"] >= min_pixel_agreement)
        if ref_labelled is not None and metric is not None and max_drop_points is not None:
            got_labelled = metric(path)
            metrics[primary] = got_labelled.get(primary)
            metrics[f"{primary}_drop_points"] = round(ref_labelled[primary] - got_labelled[primary], 2)
            ok = ok and metrics[f"{primary}_drop_points"] <= max_drop_points
        return ok, metrics

    return accept


def target_text(task: str, *, min_sqnr_db: float | None, min_f1: float | None, min_pixel_agreement: float | None,
                max_drop_points: float | None) -> str:
    """The target of ``--keep-float auto`` on a task file, in words (the defaults filled in as :func:`task_accept`)."""
    if task == "detection" and min_f1 is None and max_drop_points is None:
        min_f1 = DEFAULT_MIN_F1
    if task == "segmentation" and min_pixel_agreement is None and max_drop_points is None:
        min_pixel_agreement = DEFAULT_MIN_PIXEL_AGREEMENT
    parts = []
    if min_f1 is not None:
        parts.append(f"matched-box F1 >= {min_f1:g} at IoU {MATCH_IOU:g} vs fp32")
    if min_pixel_agreement is not None:
        parts.append(f"pixel agreement >= {100 * min_pixel_agreement:g}%")
    if min_sqnr_db is not None:
        parts.append(f"every comparable output's SQNR >= {min_sqnr_db:g} dB")
    if max_drop_points is not None:
        parts.append(f"{PRIMARY[task]} drop <= {max_drop_points:g} points")
    return " and ".join(parts)
