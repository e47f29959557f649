"""Everything ``edgecnn quantize`` does, as one call: quantize, rank layers, keep the worst in float, write
the TensorRT table and measure the accuracy cost.

    run = quantize_model("resnet50.onnx", calib="imgs/", eval_data="val/", keep_float=2)
    run.result.output, run.report.top1_delta_points, run.to_dict()
    run = quantize_model("mobilenet_v2.onnx", calib="imgs/", keep_float="auto", min_sqnr_db=25.0)
    run.keep_float["kept"], run.keep_float["tried"]     # the fewest layers in float meeting the target

The accuracy report is on ``eval_data`` when given (accuracies for an ImageFolder, agreement with fp32
for a flat folder); otherwise on the calibration inputs (said in its note, and not independent); in
dynamic mode without ``eval_data``, agreement with fp32 on 32 random inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import onnxfile
from edgecnn.errors import EdgecnnError
from edgecnn.quantize.calibration import CalibrationData, load_calibration
from edgecnn.quantize.keep_float import DEFAULT_MIN_SQNR_DB, keep_float_search, quantize_keep_float, target_accept
from edgecnn.quantize.layer_error import LayerError, explain
from edgecnn.quantize.options import QuantizeOptions, QuantizeResult
from edgecnn.quantize.qdq import default_output, preprocess_config, quantize
from edgecnn.quantize.taskeval import TaskMetric, compare_task_models, target_text, task_accept
from edgecnn.quantize.tensorrt import write_tensorrt_calibration
from edgecnn.runtime.vision import task_of

#: calibration for the TensorRT table when the int8 model needed none (dynamic mode)
TRT_FALLBACK_CALIB = "random:32"


@dataclass
class QuantizeRun:
    """What :func:`quantize_model` did: the quantization, and the optional ranking, table and report."""

    result: QuantizeResult
    #: layers by quantization error, worst first (with ``explain`` or ``keep_float``)
    ranking: list[LayerError] | None = None
    #: what :func:`~edgecnn.quantize.write_tensorrt_calibration` returned (with ``tensorrt``)
    tensorrt: dict[str, Any] | None = None
    #: the accuracy report (an :class:`edgecnn.profiler.accuracy.AccuracyReport`), None with ``report=False``
    report: Any = field(default=None)
    #: with ``keep_float="auto"``: the target, where it was measured, the layers kept and every ``k`` tried
    keep_float: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: quantize, then tensorrt, report and explain when present."""
        d: dict[str, Any] = {"quantize": self.result.as_dict()}
        if self.tensorrt is not None:
            d["tensorrt"] = self.tensorrt
        if self.report is not None:
            d["report"] = self.report.as_dict()
        if self.ranking is not None:
            d["explain"] = [r.as_dict() for r in self.ranking]
        if self.keep_float is not None:
            d["keep_float"] = self.keep_float
        return d


def calibration_for(model: str | os.PathLike, calib: str | os.PathLike | np.ndarray | CalibrationData | None, *,
                    mode: str = "static", calib_size: int = 128) -> CalibrationData | None:
    """The calibration inputs ``mode`` needs for ``model`` (opened first: a bad file is reported before
    a missing ``calib``): required in static mode, refused in dynamic mode."""
    source = onnxfile.open_model(model, load_data=False)
    if mode == "dynamic":
        if calib is not None:
            raise EdgecnnError("--calib is for static quantization; dynamic quantization needs no calibration "
                               "data.")
        return None
    if calib is None:
        raise EdgecnnError("static quantization needs calibration data: --calib DIR (images), "
                           "--calib FILE.npy, or --calib random:N (speed tests only).")
    if isinstance(calib, CalibrationData):
        return calib
    return load_calibration(calib, preprocess_config(source), limit=calib_size)


def quantize_model(model: str | os.PathLike, output: str | os.PathLike | None = None, *,
                   calib: str | os.PathLike | np.ndarray | CalibrationData | None = None,
                   options: QuantizeOptions | None = None, keep_float: int | str | None = None,
                   min_sqnr_db: float | None = None, max_drop_points: float | None = None, explain_layers: bool = False,
                   tensorrt: bool = False, tensorrt_dir: str | os.PathLike | None = None, report: bool = True,
                   eval_data: str | os.PathLike | np.ndarray | None = None, eval_labels: np.ndarray | None = None,
                   eval_limit: int | None = None, note: str | None = None, progress: bool = False,
                   force: bool = True, task_metric: TaskMetric | None = None) -> QuantizeRun:
    """Quantize the fp32 file ``model`` (see :func:`~edgecnn.quantize.quantize`) and everything around it.

    ``keep_float=N``: rank the layers and re-quantize with the N worst kept in float. ``keep_float="auto"``:
    the fewest worst-ranked layers in float that meet the target (:func:`keep_float_search`): logit SQNR vs
    fp32 of at least ``min_sqnr_db`` (default 20 dB when no target is given) and/or a top-1 drop of at most
    ``max_drop_points`` (needs labels), measured on ``eval_data`` when given, else on the calibration inputs.
    ``eval_data``: a folder (ImageFolder: with labels) or a preprocessed array (``eval_labels`` optional).
    ``explain_layers``: rank the layers (static QDQ only). ``tensorrt``: also write the TensorRT
    calibration table of the fp32 model (into ``tensorrt_dir``, default ``<stem>.trt-calib/`` beside the
    output). ``report``: compare the int8 file with the fp32 one (module docstring); ``note``
    replaces the report's note about its data. ``force=False``: an existing ``output`` is an error (checked
    first, and again when the file is published).

    Detection and segmentation files (``edgecnn.task``): the head rules of :mod:`~edgecnn.quantize.heads` apply
    (``options.head``), the report and the ``auto`` target are :mod:`~edgecnn.quantize.taskeval`'s (per-output SQNR,
    matched-box F1 at IoU 0.5 or pixel agreement vs fp32; ``eval_data`` a folder of images) and ``task_metric``, a
    labelled evaluation (``path -> {"map50": ...}``), adds labelled figures and makes ``max_drop_points`` count
    points of the task's primary metric.
    """
    from edgecnn.outputs import refuse_existing, refuse_inputs

    opts = (options or QuantizeOptions()).check()
    src = Path(model)
    out = Path(output) if output is not None else default_output(src)
    refuse_inputs(out, [src])
    refuse_existing([out], force)
    data = calibration_for(src, calib, mode=opts.mode, calib_size=opts.calib_size)
    task = task_of(onnxfile.read_metadata(src))
    ranking: list[LayerError] | None = None
    auto: dict[str, Any] | None = None
    if keep_float == "auto":
        result, ranking, auto = _keep_float_auto(src, out, data, opts, eval_data, eval_labels, eval_limit,
                                                 min_sqnr_db, max_drop_points, task, task_metric)
    elif isinstance(keep_float, str):
        raise EdgecnnError(f"--keep-float takes a number of layers or 'auto', got {keep_float!r}.")
    elif keep_float:
        result, ranking = quantize_keep_float(src, out, keep_float=keep_float, calib=data, options=opts,
                                              progress=progress)
    else:
        result = quantize(src, out, calib=data, options=opts, progress=progress, force=force)
    if explain_layers and ranking is None:
        if not opts.static_qdq:
            raise EdgecnnError("--explain needs static QDQ quantization (the default --mode/--format).")
        assert result.calib_data is not None
        ranking = explain(src, result.output, result.calib_data)
    run = QuantizeRun(result, ranking, keep_float=auto)
    if tensorrt:
        run.tensorrt = write_tensorrt_calibration(
            src, data if data is not None else TRT_FALLBACK_CALIB,
            tensorrt_dir if tensorrt_dir is not None else default_output(out, "trt-calib").with_suffix(""),
            method=opts.method, calib_size=opts.calib_size, progress=progress)
    if report and task != "classification":
        x, _, where = _target_data(src, eval_data, None, eval_limit, data, task, task_metric is not None)
        run.report = compare_task_models(src, result.output, x, note=note or where, metric=task_metric)
    elif report:
        run.report = _accuracy_report(src, result, eval_data, eval_labels, eval_limit, note, progress)
    return run


def _target_data(src: Path, eval_data: str | os.PathLike | np.ndarray | None, eval_labels: np.ndarray | None,
                 limit: int | None, calib: CalibrationData | None, task: str = "classification",
                 labelled: bool = False) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The inputs (and labels) ``--keep-float auto`` measures its target on: the evaluation data, else calibration.
    A task file's evaluation data is a folder of images (any depth), compared with fp32 without labels."""
    from edgecnn.runtime.datasets import list_images, load_array, load_image_folder

    if task != "classification" and eval_data is not None and not isinstance(eval_data, np.ndarray):
        root = Path(eval_data)
        if not root.is_dir():
            raise EdgecnnError(f"--eval for a {task} file takes a folder of images (agreement with fp32), got "
                               f"{root}; its labels are --annotations FILE (detection) or --masks DIR (segmentation).")
        paths = list_images(root, limit=limit)
        config = preprocess_config(onnxfile.open_model(src, load_data=False))
        how = "labelled by --annotations/--masks, and agreement with fp32" if labelled else \
            "no labels: agreement with fp32"
        return load_array(paths, config), None, f"{root} ({len(paths)} images, {how})"

    if isinstance(eval_data, np.ndarray):
        labels = None if eval_labels is None else np.asarray(eval_labels)[:limit]
        return eval_data[:limit], labels, f"evaluation array ({len(eval_data[:limit])} inputs)"
    if eval_data is not None:
        root = Path(eval_data)
        config = preprocess_config(onnxfile.open_model(src, load_data=False))
        if root.is_dir() and any(d.is_dir() and not d.name.startswith(".") for d in root.iterdir()):
            samples = load_image_folder(root).samples[:limit]
            return (load_array([p for p, _ in samples], config), np.asarray([y for _, y in samples]),
                    f"{root} ({len(samples)} labelled images)")
        paths = list_images(root, limit=limit)
        return load_array(paths, config), None, f"{root} ({len(paths)} images)"
    assert calib is not None
    return calib.data, None, f"the calibration inputs ({len(calib)}; not independent)"


def _keep_float_auto(src: Path, out: Path, calib: CalibrationData | None, opts: QuantizeOptions,
                     eval_data: Any, eval_labels: np.ndarray | None, eval_limit: int | None,
                     min_sqnr_db: float | None, max_drop_points: float | None, task: str = "classification",
                     task_metric: TaskMetric | None = None
                     ) -> tuple[QuantizeResult, list[LayerError] | None, dict[str, Any]]:
    """``keep_float="auto"``: search in a scratch folder, then move the accepted file to ``out``."""
    import shutil
    import tempfile

    from edgecnn._io import atomic_path

    if not opts.static_qdq or calib is None:
        raise EdgecnnError("--keep-float auto needs static QDQ quantization (the ranking uses QDQ debugging).")
    if task != "classification":
        x, labels, where = _target_data(src, eval_data, None, eval_limit, calib, task, task_metric is not None)
        accept = task_accept(src, x, min_sqnr_db=min_sqnr_db, metric=task_metric, max_drop_points=max_drop_points)
        target = target_text(task, min_sqnr_db=min_sqnr_db, min_f1=None, min_pixel_agreement=None,
                             max_drop_points=max_drop_points)
    else:
        if min_sqnr_db is None and max_drop_points is None:
            min_sqnr_db = DEFAULT_MIN_SQNR_DB
        x, labels, where = _target_data(src, eval_data, eval_labels, eval_limit, calib)
        accept = target_accept(src, x, labels, min_sqnr_db=min_sqnr_db, max_drop_points=max_drop_points)
        target = (f"SQNR >= {min_sqnr_db:g} dB" if min_sqnr_db is not None else "") + \
            (" and " if min_sqnr_db is not None and max_drop_points is not None else "") + \
            (f"top-1 drop <= {max_drop_points:g} points" if max_drop_points is not None else "")
    results: dict[Path, QuantizeResult] = {}
    ranked: list[LayerError] = []

    def quantize_fn(names: Any, output: Path) -> Path:
        results[output] = quantize(src, output, calib=calib, options=replace(opts, exclude=tuple(names)))
        return output

    def rank_fn(path: Path, data: np.ndarray) -> list[dict[str, Any]]:
        ranked.extend(explain(src, path, data, preprocess=opts.preprocess))
        return [r.as_dict() for r in ranked]

    with tempfile.TemporaryDirectory(prefix="edgecnn-keepfloat-") as tmp:
        found = keep_float_search(src, calib, accept, output_dir=tmp, options=opts, quantize_fn=quantize_fn,
                                  rank_fn=rank_fn)
        if not found.within_budget or found.path is None:
            key = {"detection": "matched_f1", "segmentation": "pixel_agreement"}.get(task, "sqnr_db")
            best = max((t.get(key) if t.get(key) is not None else float("-inf") for t in found.tried),
                       default=float("-inf"))
            raise EdgecnnError(f"--keep-float auto: no int8 model meets {target} on {where}, even with "
                               f"{len(found.kept)} layers in float (best {key} {best:g}); lower the target or "
                               "ship the fp32 model.")
        with atomic_path(out, suffix=".onnx") as tmp_out:
            shutil.copyfile(found.path, tmp_out)
        result = replace(results[found.path], output=str(out))
    info = {"target": target, "measured_on": where, "kept": found.kept, "tried": found.tried}
    return result, ranked or None, info


def _accuracy_report(src: Path, result: QuantizeResult, eval_data: str | os.PathLike | np.ndarray | None,
                     eval_labels: np.ndarray | None, eval_limit: int | None, note: str | None, progress: bool) -> Any:
    # the accuracy comparison of two files lives in the profiler (it runs both on the runtime)
    from edgecnn.profiler.accuracy import compare_models

    if eval_data is not None:
        return compare_models(src, result.output, eval_data, labels=eval_labels, limit=eval_limit,
                              quiet=not progress, note=note)
    if result.calib_data is not None:
        auto = ("random calibration data reused: agreement on noise, not accuracy" if result.calibration_random
                else "no --eval data: measured on the calibration data (not independent)")
        return compare_models(src, result.output, result.calib_data, limit=eval_limit, quiet=not progress,
                              note=note or auto)
    cfg = preprocess_config(onnxfile.open_model(src, load_data=False))
    x = np.random.default_rng(0).standard_normal((32, cfg.channels, *cfg.input_size), dtype=np.float32)
    return compare_models(src, result.output, x, quiet=not progress,
                          note=note or "no --eval data: agreement with fp32 on random inputs only")
