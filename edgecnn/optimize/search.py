"""Kept-float int8 for ``edgecnn optimize``: the search of :func:`edgecnn.quantize.keep_float.keep_float_search`
(shared with ``edgecnn quantize --keep-float auto``) run with the optimizer's own quantizer and ranking.

    from edgecnn.optimize import keep_float_search

    res = keep_float_search("model.onnx", calib, accept, output_dir="work/")
    res.kept, res.path, res.within_budget

``accept(path)`` is the optimizer's budget (top-1 drop, agreement, SQNR): ``(within, metrics)``. Quantization
and ranking go through :mod:`edgecnn.optimize.backends` like every other call of the optimizer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.optimize import backends
from edgecnn.quantize.keep_float import Accept, KeepFloatResult
from edgecnn.quantize.keep_float import keep_float_search as _search

__all__ = ["Accept", "KeepFloatResult", "keep_float_search"]


def keep_float_search(fp32: str | os.PathLike, calib: Any, accept: Accept, *, output_dir: str | os.PathLike,
                      int8: str | os.PathLike | None = None, activation_type: str = "uint8",
                      exclude: Sequence[str] = (), max_keep: int | None = None,
                      rank_data: np.ndarray | None = None) -> KeepFloatResult:
    """Find the fewest top-ranked layers to keep in float for ``accept`` to pass (see
    :func:`edgecnn.quantize.keep_float.keep_float_search`), quantizing with ``backends.quantize_int8``
    (``activation_type`` activations) and ranking with ``backends.rank_layers``."""

    def quantize_fn(names: Sequence[str], output: Path) -> Path:
        return backends.quantize_int8(fp32, calib, output, exclude=names, activation_type=activation_type)

    def rank_fn(path: Path, data: np.ndarray) -> list[dict[str, Any]]:
        return backends.rank_layers(fp32, path, data)

    return _search(fp32, calib, accept, output_dir=output_dir, int8=int8, exclude=exclude, max_keep=max_keep,
                   rank_data=rank_data, quantize_fn=quantize_fn, rank_fn=rank_fn)
