"""Everything ``edgecnn quantize`` does, as one call: quantize, rank layers, keep the worst in float, write
the TensorRT table and measure the accuracy cost.

    run = quantize_model("resnet50.onnx", calib="imgs/", eval_data="val/", keep_float=2)
    run.result.output, run.report.top1_delta_points, run.to_dict()

The accuracy report is on ``eval_data`` when given (accuracies for an ImageFolder, agreement with fp32
for a flat folder); otherwise on the calibration inputs (said in its note, and not independent); in
dynamic mode without ``eval_data``, agreement with fp32 on 32 random inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import onnxfile
from edgecnn.errors import EdgecnnError
from edgecnn.quantize.calibration import CalibrationData, load_calibration
from edgecnn.quantize.keep_float import quantize_keep_float
from edgecnn.quantize.layer_error import LayerError, explain
from edgecnn.quantize.options import QuantizeOptions, QuantizeResult
from edgecnn.quantize.qdq import default_output, preprocess_config, quantize
from edgecnn.quantize.tensorrt import write_tensorrt_calibration

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: quantize, then tensorrt, report and explain when present."""
        d: dict[str, Any] = {"quantize": self.result.as_dict()}
        if self.tensorrt is not None:
            d["tensorrt"] = self.tensorrt
        if self.report is not None:
            d["report"] = self.report.as_dict()
        if self.ranking is not None:
            d["explain"] = [r.as_dict() for r in self.ranking]
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
                   options: QuantizeOptions | None = None, keep_float: int | None = None, explain_layers: bool = False,
                   tensorrt: bool = False, tensorrt_dir: str | os.PathLike | None = None, report: bool = True,
                   eval_data: str | os.PathLike | None = None, eval_limit: int | None = None,
                   note: str | None = None, progress: bool = False) -> QuantizeRun:
    """Quantize the fp32 file ``model`` (see :func:`~edgecnn.quantize.quantize`) and everything around it.

    ``keep_float=N``: rank the layers and re-quantize with the N worst kept in float.
    ``explain_layers``: rank the layers (static QDQ only). ``tensorrt``: also write the TensorRT
    calibration table of the fp32 model (into ``tensorrt_dir``, default ``<stem>.trt-calib/`` beside the
    output). ``report``: compare the int8 file with the fp32 one (module docstring); ``note``
    replaces the report's note about its data.
    """
    opts = (options or QuantizeOptions()).check()
    src = Path(model)
    out = Path(output) if output is not None else default_output(src)
    data = calibration_for(src, calib, mode=opts.mode, calib_size=opts.calib_size)
    ranking: list[LayerError] | None = None
    if keep_float:
        result, ranking = quantize_keep_float(src, out, keep_float=keep_float, calib=data, options=opts,
                                              progress=progress)
    else:
        result = quantize(src, out, calib=data, options=opts, progress=progress)
    if explain_layers and ranking is None:
        if not opts.static_qdq:
            raise EdgecnnError("--explain needs static QDQ quantization (the default --mode/--format).")
        assert result.calib_data is not None
        ranking = explain(src, result.output, result.calib_data)
    run = QuantizeRun(result, ranking)
    if tensorrt:
        run.tensorrt = write_tensorrt_calibration(
            src, data if data is not None else TRT_FALLBACK_CALIB,
            tensorrt_dir if tensorrt_dir is not None else default_output(out, "trt-calib").with_suffix(""),
            method=opts.method, calib_size=opts.calib_size, progress=progress)
    if report:
        run.report = _accuracy_report(src, result, eval_data, eval_limit, note, progress)
    return run


def _accuracy_report(src: Path, result: QuantizeResult, eval_data: str | os.PathLike | None,
                     eval_limit: int | None, note: str | None, progress: bool) -> Any:
    # the accuracy comparison of two files lives in the profiler (it runs both on the runtime)
    from edgecnn.profiler.accuracy import compare_models

    if eval_data:
        return compare_models(src, result.output, eval_data, limit=eval_limit, quiet=not progress, note=note)
    if result.calib_data is not None:
        auto = ("random calibration data reused: agreement on noise, not accuracy" if result.calibration_random
                else "no --eval data: measured on the calibration data (not independent)")
        return compare_models(src, result.output, result.calib_data, limit=eval_limit, quiet=not progress,
                              note=note or auto)
    cfg = preprocess_config(onnxfile.open_model(src, load_data=False))
    x = np.random.default_rng(0).standard_normal((32, cfg.channels, *cfg.input_size), dtype=np.float32)
    return compare_models(src, result.output, x, quiet=not progress,
                          note=note or "no --eval data: agreement with fp32 on random inputs only")
