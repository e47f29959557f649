"""Kept-float int8: the fewest most-sensitive layers left in float that bring int8 within an accuracy budget.

    from edgecnn.optimize import keep_float_search

    res = keep_float_search("model.onnx", calib, accept, output_dir="work/")
    res.kept, res.path, res.within_budget

Layers are ranked by the quantization error they add (``quantize --explain``: SQNR lost across each
quantized node, measured on the calibration inputs). Keeping the ``k`` worst in float is assumed to get
better as ``k`` grows; the search doubles ``k`` (1, 2, 4, ...) until the candidate is accepted, then
bisects between the last rejected and the first accepted ``k``: about ``2 log2(k)`` quantizations.
``accept(path)`` is the caller's budget (top-1 drop, agreement, SQNR): ``(within, metrics)``.
Shared by ``edgecnn optimize`` and ``edgecnn quantize --keep-float auto``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.optimize import backends

Accept = Callable[[Path], tuple[bool, dict[str, Any]]]


@dataclass
class KeepFloatResult:
    """What :func:`keep_float_search` found."""

    #: node names kept in float, worst first (empty when plain int8 was accepted)
    kept: list[str]
    #: the int8 file with ``kept`` in float (None when no ``k`` was accepted)
    path: Path | None
    within_budget: bool
    #: quantized nodes ranked worst first (``backends.rank_layers`` rows)
    ranking: list[dict[str, Any]] = field(default_factory=list)
    #: every ``k`` tried, in order: ``{"keep": k, "within_budget": bool, **metrics}``
    tried: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"kept": list(self.kept), "path": str(self.path) if self.path else None,
                "within_budget": self.within_budget, "tried": self.tried,
                "ranking": [{k: r.get(k) for k in ("node", "op_type", "loss_db")} for r in self.ranking]}


def keep_float_search(fp32: str | os.PathLike, calib: Any, accept: Accept, *, output_dir: str | os.PathLike,
                      int8: str | os.PathLike | None = None, activation_type: str = "uint8",
                      exclude: Sequence[str] = (), max_keep: int | None = None,
                      rank_data: np.ndarray | None = None) -> KeepFloatResult:
    """Find the fewest top-ranked layers to keep in float for ``accept`` to pass.

    ``calib``: the calibration data (``backends.calibrate_once``), reused by every quantization.
    ``int8``: the plain int8 file when it exists already (it is ranked, and counted as ``k = 0``
    rejected without being measured again); otherwise it is made and tried first. ``exclude``: nodes
    always kept in float. ``max_keep``: the largest ``k`` tried (default: every ranked layer).
    ``rank_data``: inputs for the ranking (default: the calibration inputs).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tried: list[dict[str, Any]] = []
    files: dict[int, Path] = {}

    def quantized(k: int, names: Sequence[str]) -> Path:
        if k not in files:
            files[k] = backends.quantize_int8(fp32, calib, out / f"int8-keep{k}.onnx",
                                              exclude=(*exclude, *names), activation_type=activation_type)
        return files[k]

    if int8 is None:
        plain = quantized(0, ())
        ok, metrics = accept(plain)
        tried.append({"keep": 0, "within_budget": ok, **metrics})
        if ok:
            return KeepFloatResult([], plain, True, [], tried)
    else:
        plain = Path(int8)
    data = rank_data if rank_data is not None else getattr(calib, "data", calib)
    ranking = [r for r in backends.rank_layers(fp32, plain, data) if r["node"] not in set(exclude)]
    names = [r["node"] for r in ranking]
    limit = min(len(names), max_keep if max_keep is not None else len(names))
    verdict: dict[int, bool] = {0: False}

    def test(k: int) -> bool:
        if k not in verdict:
            path = quantized(k, names[:k])
            ok, metrics = accept(path)
            verdict[k] = ok
            tried.append({"keep": k, "nodes": names[:k], "within_budget": ok, **metrics})
        return verdict[k]

    lo, hi, k = 0, None, 1
    while k <= limit:  # gallop: 1, 2, 4, ... until accepted
        if test(k):
            hi = k
            break
        lo = k
        k = limit if k < limit < 2 * k else 2 * k
    if hi is None:
        return KeepFloatResult(names[:limit], None, False, ranking, tried)
    while hi - lo > 1:  # bisect between the last rejected and the first accepted
        mid = (lo + hi) // 2
        if test(mid):
            hi = mid
        else:
            lo = mid
    return KeepFloatResult(names[:hi], files[hi], True, ranking, tried)
