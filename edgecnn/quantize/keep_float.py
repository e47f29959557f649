"""Re-quantization that keeps the layers with the largest quantization error in float."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.quantize.calibration import CalibrationData
from edgecnn.quantize.layer_error import LayerError, explain
from edgecnn.quantize.options import QuantizeOptions, QuantizeResult
from edgecnn.quantize.qdq import quantize


def quantize_keep_float(model: str | os.PathLike, output: str | os.PathLike | None = None, *, keep_float: int,
                        calib: Any = None, options: QuantizeOptions | None = None, progress: bool = False,
                        explain_data: np.ndarray | None = None,
                        on_ranking: Callable[[list[LayerError]], None] | None = None,
                        **overrides: Any) -> tuple[QuantizeResult, list[LayerError]]:
    """Quantize, rank layers with :func:`~edgecnn.quantize.explain`, then re-quantize keeping the
    ``keep_float`` worst in float. Returns the final result and the ranking of the first quantization."""
    opts = replace(options or QuantizeOptions(), **overrides).check()
    if not opts.static_qdq:
        raise EdgecnnError("--keep-float needs static QDQ quantization (the ranking uses QDQ debugging).")
    first = quantize(model, output, calib=calib, options=opts, progress=progress)
    data = explain_data if explain_data is not None else first.calib_data
    assert data is not None
    ranking = explain(model, first.output, data, preprocess=opts.preprocess)
    if on_ranking is not None:
        on_ranking(ranking)
    worst = [r.node for r in ranking[:keep_float] if r.node not in opts.exclude]
    if not worst:
        return first, ranking
    calib_again = CalibrationData(first.calib_data, first.calibration or "array", first.calibration_random) \
        if first.calib_data is not None else calib
    second = quantize(model, output, calib=calib_again, options=replace(opts, exclude=(*opts.exclude, *worst)),
                      progress=progress)
    return second, ranking
