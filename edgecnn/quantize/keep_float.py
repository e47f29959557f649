"""int8 with the most sensitive layers kept in float: a fixed number (``--keep-float N``), or the fewest that meet an
accuracy target (``--keep-float auto``).

    res = keep_float_search("model.onnx", calib, accept, output_dir="work/")     # shared with edgecnn optimize
    res.kept, res.path, res.within_budget
    accept = target_accept("model.onnx", x, labels, min_sqnr_db=20.0)          # a target: logit SQNR, top-1 drop

Layers are ranked by the quantization error they add (``quantize --explain``: SQNR lost across each quantized
node, measured on the calibration inputs). Keeping the ``k`` worst in float is assumed to get better as ``k``
grows; the search doubles ``k`` (1, 2, 4, ...) until the candidate is accepted, then bisects between the last
rejected and the first accepted ``k``: about ``2 log2(k)`` quantizations. ``accept(path)`` is the caller's
budget: ``(within, metrics)``. ``edgecnn optimize`` calls the search with its own quantizer and budget
(:mod:`edgecnn.optimize.search`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.quantize.calibration import CalibrationData
from edgecnn.quantize.heads import head_nodes
from edgecnn.quantize.layer_error import LayerError, explain
from edgecnn.quantize.options import QuantizeOptions, QuantizeResult
from edgecnn.quantize.qdq import quantize

#: ``accept(int8_path) -> (within the target, metrics)``
Accept = Callable[[Path], tuple[bool, dict[str, Any]]]
#: ``quantize_fn(nodes kept in float, output path) -> the int8 file``
QuantizeFn = Callable[[Sequence[str], Path], Path]
#: ``rank_fn(int8 path, inputs) -> rows worst first`` (``node``, ``op_type``, ``loss_db``, ...)
RankFn = Callable[[Path, np.ndarray], list[dict[str, Any]]]
#: the default target of ``--keep-float auto``: logits within 20 dB SQNR of fp32 (1% noise power)
DEFAULT_MIN_SQNR_DB = 20.0


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


@dataclass
class KeepFloatResult:
    """What :func:`keep_float_search` found."""

    #: node names kept in float, worst first (empty when plain int8 was accepted)
    kept: list[str]
    #: the int8 file with ``kept`` in float (None when no ``k`` was accepted)
    path: Path | None
    within_budget: bool
    #: quantized nodes ranked worst first (``LayerError.as_dict()`` rows)
    ranking: list[dict[str, Any]] = field(default_factory=list)
    #: every ``k`` tried, in order: ``{"keep": k, "within_budget": bool, **metrics}``
    tried: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"kept": list(self.kept), "path": str(self.path) if self.path else None,
                "within_budget": self.within_budget, "tried": self.tried,
                "ranking": [{k: r.get(k) for k in ("node", "op_type", "kind", "loss_db")} for r in self.ranking]}


def keep_float_search(fp32: str | os.PathLike, calib: Any, accept: Accept, *, output_dir: str | os.PathLike,
                      int8: str | os.PathLike | None = None, options: QuantizeOptions | None = None,
                      exclude: Sequence[str] = (), max_keep: int | None = None, rank_data: np.ndarray | None = None,
                      quantize_fn: QuantizeFn | None = None, rank_fn: RankFn | None = None) -> KeepFloatResult:
    """Find the fewest top-ranked layers to keep in float for ``accept`` to pass.

    ``calib``: the calibration data (a :class:`CalibrationData` or an array), reused by every quantization.
    ``int8``: the plain int8 file when it exists already (it is ranked, and counted as ``k = 0`` rejected
    without being measured again); otherwise it is made and tried first. ``options``: how to quantize
    (default :class:`QuantizeOptions`). ``exclude``: nodes always kept in float. ``max_keep``: the largest
    ``k`` tried (default: every ranked layer). ``rank_data``: inputs for the ranking (default: the calibration
    inputs). ``quantize_fn``/``rank_fn`` replace the quantizer and the ranking (``edgecnn optimize`` passes
    its own).
    """
    opts = (options or QuantizeOptions()).check()
    if not opts.static_qdq:
        raise EdgecnnError("--keep-float needs static QDQ quantization (the ranking uses QDQ debugging).")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = rank_data if rank_data is not None else getattr(calib, "data", calib)

    def own_quantize(names: Sequence[str], output: Path) -> Path:
        return Path(quantize(fp32, output, calib=calib, options=replace(opts, exclude=tuple(names))).output)

    def own_rank(path: Path, x: np.ndarray) -> list[dict[str, Any]]:
        return [r.as_dict() for r in explain(fp32, path, x, preprocess=opts.preprocess)]

    quantize_fn, rank_fn = quantize_fn or own_quantize, rank_fn or own_rank
    tried: list[dict[str, Any]] = []
    files: dict[int, Path] = {}
    always = (*opts.exclude, *exclude)

    def quantized(k: int, names: Sequence[str]) -> Path:
        if k not in files:
            files[k] = quantize_fn((*always, *names), out / f"int8-keep{k}.onnx")
        return files[k]

    if int8 is None:
        plain = quantized(0, ())
        ok, metrics = accept(plain)
        tried.append({"keep": 0, "within_budget": ok, **metrics})
        if ok:
            return KeepFloatResult([], plain, True, [], tried)
    else:
        plain = Path(int8)
    skip = set(always) | head_nodes(plain)
    ranking = [r for r in rank_fn(plain, data) if r["node"] not in skip]
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


def run_logits(path: str | os.PathLike, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The first output of ``path`` on ``x`` (ONNX Runtime CPU), as N x outputs float32."""
    from edgecnn.runtime import Engine

    engine = Engine(path, provider="cpu", max_batch=batch_size)
    out = engine.run(np.ascontiguousarray(x.astype(engine.input_dtype, copy=False)))
    return np.asarray(out, dtype=np.float32).reshape(len(x), -1)


def target_accept(fp32: str | os.PathLike, x: np.ndarray, labels: np.ndarray | None = None, *,
                  min_sqnr_db: float | None = DEFAULT_MIN_SQNR_DB, max_drop_points: float | None = None) -> Accept:
    """``accept(int8_path)`` for the target of ``--keep-float auto``: the int8 logits' SQNR against fp32 on ``x``
    at least ``min_sqnr_db``, and (with ``labels``) top-1 at most ``max_drop_points`` below fp32's. fp32 runs once."""
    from edgecnn.metrics import sqnr_db, topk_accuracy

    if max_drop_points is not None and labels is None:
        raise EdgecnnError("--max-drop needs labelled evaluation data: --eval DIR as an ImageFolder "
                           "(root/<class>/<image>).")
    if min_sqnr_db is None and max_drop_points is None:
        raise EdgecnnError("--keep-float auto needs a target: --min-sqnr DB and/or --max-drop POINTS.")
    ref = run_logits(fp32, x)
    ref_top1 = topk_accuracy(ref, labels, 1) if labels is not None else None

    def accept(path: Path) -> tuple[bool, dict[str, Any]]:
        out = run_logits(path, x)
        metrics: dict[str, Any] = {"sqnr_db": round(sqnr_db(ref, out), 2)}
        ok = min_sqnr_db is None or metrics["sqnr_db"] >= min_sqnr_db
        if labels is not None and ref_top1 is not None:
            metrics["top1_drop_points"] = round(100 * (ref_top1 - topk_accuracy(out, labels, 1)), 2)
            ok = ok and (max_drop_points is None or metrics["top1_drop_points"] <= max_drop_points)
        return ok, metrics

    return accept
