"""Accuracy of ``.onnx`` classifiers: top-1/top-5 on an ImageFolder, and quantized/fp16 vs fp32 reports.

    from edgecnn.profiler.accuracy import evaluate, compare_models

    evaluate("lenet5.int8.onnx", "digits/test").top1             # labelled data
    compare_models("lenet5.onnx", "lenet5.int8.onnx", "digits/test").as_dict()

Without labels, :func:`compare_models` measures the candidate against the reference (fp32) model
only: top-1/top-5 agreement, cosine similarity and SQNR of the logits. Torch-free (runtime, onnx,
numpy).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.metrics import cosine_similarity, max_abs_error, sqnr_db, topk_accuracy, topk_indices
from edgecnn.onnxfile import file_size, read_metadata
from edgecnn.runtime.datasets import ImageFolder, iter_batches, list_images, load_image_folder

# --------------------------------------------------------------------------- running models


def _progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def run_batches(model: str | os.PathLike, batches: Iterable[np.ndarray], *, total: int | None = None,
                provider: str = "cpu", quiet: bool = True, desc: str = "evaluating", ran: dict[str, Any] | None = None,
                **engine_kw: Any) -> np.ndarray:
    """Run every batch through an :class:`~edgecnn.runtime.Engine`; return the stacked first outputs.
    ``ran``: a dict that receives the precision and device that ran."""
    from edgecnn.runtime.engine import Engine

    engine = Engine(model, provider=provider, **engine_kw)
    if ran is not None:
        ran.update(precision=engine.precision, device=engine.device)
    dtype = engine.input_dtype
    it: Iterable[np.ndarray] = batches
    if _progress(quiet):
        from tqdm import tqdm

        it = tqdm(batches, total=total, desc=desc, unit="batch", file=sys.stderr, leave=False)
    outs = [np.asarray(engine.run(np.ascontiguousarray(b.astype(dtype, copy=False))), dtype=np.float32)
            for b in it]
    if not outs:
        raise EdgecnnError("no data to run.")
    from edgecnn.runtime.postprocess import class_scores

    return class_scores(np.concatenate(outs), engine.metadata)


def _reference_precision(path: str | os.PathLike) -> str:
    """The precision a reference file runs at: its own (``auto`` never measures a reference)."""
    from edgecnn.runtime.precision import FILE_PRECISIONS

    p = str(read_metadata(path).get("precision") or "fp32")
    return p if p in FILE_PRECISIONS else "fp32"


def _array_batches(x: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(x), batch_size):
        yield x[i:i + batch_size]


def _config(model: str | os.PathLike) -> Any:
    from edgecnn.runtime.engine import reference_engine

    return reference_engine(model, threads=1).preprocess_config()


# --------------------------------------------------------------------------- evaluate


@dataclass
class EvaluationReport:
    """Top-1/top-5 accuracy of one model on an ImageFolder."""

    model: str
    data: str
    provider: str
    samples: int
    classes: int
    top1: float
    top5: float
    batch_size: int
    seconds: float
    images_per_second: float
    #: the precision that ran (the file's own on ONNX Runtime; the inference precision on OpenVINO), as verified
    precision: str | None = None
    file_precision: str | None = None
    device: str | None = None
    #: why that precision ran (the backend's plan, ``auto``'s figures, the probe-input check)
    precision_reason: str = ""
    #: ``--precision auto``: what it measured and chose, None when not asked
    auto: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _check_classes(folder: ImageFolder, num_outputs: int, model: str | os.PathLike) -> None:
    if folder.num_classes > num_outputs:
        raise EdgecnnError(f"{folder.root} has class index {folder.num_classes - 1} but {Path(model).name} "
                           f"has {num_outputs} outputs; the class folders do not match the model.")


def evaluate(model: str | os.PathLike, data: str | os.PathLike | ImageFolder, *, provider: str = "cpu",
             batch_size: int = 32, limit: int | None = None, quiet: bool = True, **engine_kw: Any
             ) -> EvaluationReport:
    """Top-1/top-5 accuracy of ``model`` on an ImageFolder (``root/<class>/<image>``), batched.

    Images are preprocessed like the runtime does, from the model's metadata. ``limit``: evaluate
    the first N images (in dataset order) only. ``engine_kw`` go to the :class:`~edgecnn.runtime.Engine`
    (``precision``, ``device``, ``threads``...); the report names the precision that ran.
    """
    from edgecnn.runtime.engine import Engine

    folder = data if isinstance(data, ImageFolder) else load_image_folder(data)
    samples = list(folder.samples[:limit] if limit else folder.samples)
    engine = Engine(model, provider=provider, **engine_kw)
    config = engine.preprocess_config()
    paths = [p for p, _ in samples]
    labels = np.asarray([y for _, y in samples], dtype=np.int64)
    start = time.perf_counter()
    it: Iterable[np.ndarray] = iter_batches(paths, config, batch_size)
    if _progress(quiet):
        from tqdm import tqdm

        it = tqdm(it, total=-(-len(paths) // batch_size), desc=f"evaluating {Path(model).name}", unit="batch",
                  file=sys.stderr, leave=False)
    from edgecnn.runtime.postprocess import class_scores

    logits = class_scores(np.concatenate([np.asarray(engine.run(b), dtype=np.float32) for b in it]), engine.metadata)
    seconds = time.perf_counter() - start
    _check_classes(folder, logits.shape[1], model)
    return EvaluationReport(
        model=str(model), data=str(folder.root), provider=engine.providers[0], samples=len(labels),
        classes=len(folder.classes), top1=round(topk_accuracy(logits, labels, 1), 6),
        top5=round(topk_accuracy(logits, labels, 5), 6), batch_size=batch_size, seconds=round(seconds, 3),
        images_per_second=round(len(labels) / seconds, 1) if seconds > 0 else 0.0,
        precision=engine.precision, file_precision=engine.info.file_precision, device=engine.device,
        precision_reason=engine.info.precision_reason, auto=engine.info.auto)


# --------------------------------------------------------------------------- compare


@dataclass
class AccuracyReport:
    """A quantized or fp16 model (``candidate``) against its fp32 ``reference`` on the same inputs.

    Accuracies are None without labels. ``top5_agreement`` is the fraction of inputs whose reference
    top-1 class is in the candidate's top 5 (so it is >= ``top1_agreement``). Cosine similarity and
    SQNR are over the raw outputs (logits).
    """

    reference: str
    candidate: str
    data: str
    samples: int
    labelled: bool
    top1_reference: float | None
    top5_reference: float | None
    top1_candidate: float | None
    top5_candidate: float | None
    #: candidate - reference top-1 accuracy, in percentage points (None without labels)
    top1_delta_points: float | None
    top1_agreement: float
    top5_agreement: float
    cosine_mean: float
    cosine_min: float
    sqnr_db: float
    max_abs_error: float
    size_reference: int
    size_candidate: int
    compression: float
    precision_candidate: str | None = None
    #: a note about the data (e.g. calibration data reused, random data)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (an infinite SQNR becomes the string 'inf')."""
        d = asdict(self)
        if np.isinf(d["sqnr_db"]):
            d["sqnr_db"] = "inf"
        return d

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        def pct(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.2f}%"

        ran = f" ({self.precision_candidate})" if self.precision_candidate else ""
        out = [f"accuracy report: {Path(self.candidate).name}{ran} vs {Path(self.reference).name} on {self.data} "
               f"({self.samples} inputs{', labelled' if self.labelled else ', no labels: agreement only'})"]
        if self.note:
            out.append(f"  note: {self.note}")
        if self.labelled:
            out.append(f"  top-1 accuracy  {pct(self.top1_reference)} -> {pct(self.top1_candidate)} "
                       f"({self.top1_delta_points:+.2f} points)")
            out.append(f"  top-5 accuracy  {pct(self.top5_reference)} -> {pct(self.top5_candidate)}")
        out.append(f"  agreement with reference: top-1 {pct(self.top1_agreement)}, top-5 {pct(self.top5_agreement)}")
        sq = "inf" if np.isinf(self.sqnr_db) else f"{self.sqnr_db:.1f}"
        out.append(f"  logits: cosine mean {self.cosine_mean:.5f} (min {self.cosine_min:.5f}), SQNR {sq} dB, "
                   f"max |error| {self.max_abs_error:.4g}")
        if self.reference != self.candidate:  # the same file at an inference precision: no size to compare
            out.append(f"  size: {self.size_reference / 1e6:.2f} MB -> {self.size_candidate / 1e6:.2f} MB "
                       f"({self.compression:.2f}x smaller)")
        return out


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None = None
                    ) -> dict[str, Any]:
    """Metrics of ``candidate`` outputs against ``reference`` outputs (and labels when given)."""
    ref = np.asarray(reference, dtype=np.float32).reshape(len(reference), -1)
    cand = np.asarray(candidate, dtype=np.float32).reshape(len(candidate), -1)
    if ref.shape != cand.shape:
        raise EdgecnnError(f"outputs differ in shape: reference {list(ref.shape)}, candidate {list(cand.shape)}.")
    ref_top1 = topk_indices(ref, 1)[:, 0]
    cand_top = topk_indices(cand, 5)
    cos = cosine_similarity(ref, cand)
    out: dict[str, Any] = {
        "samples": len(ref),
        "top1_agreement": round(float(np.mean(cand_top[:, 0] == ref_top1)), 6),
        "top5_agreement": round(float(np.mean(np.any(cand_top == ref_top1[:, None], axis=1))), 6),
        "cosine_mean": round(float(np.mean(cos)), 6),
        "cosine_min": round(float(np.min(cos)), 6),
        "sqnr_db": round(sqnr_db(ref, cand), 3),
        "max_abs_error": max_abs_error(ref, cand),
        "top1_reference": None, "top5_reference": None, "top1_candidate": None, "top5_candidate": None,
        "top1_delta_points": None,
    }
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        t1r, t1c = topk_accuracy(ref, labels, 1), topk_accuracy(cand, labels, 1)
        out.update(top1_reference=round(t1r, 6), top5_reference=round(topk_accuracy(ref, labels, 5), 6),
                   top1_candidate=round(t1c, 6), top5_candidate=round(topk_accuracy(cand, labels, 5), 6),
                   top1_delta_points=round(100 * (t1c - t1r), 3))
    return out


def compare_models(reference: str | os.PathLike, candidate: str | os.PathLike,
                   data: str | os.PathLike | np.ndarray | ImageFolder, *, labels: np.ndarray | None = None,
                   provider: str = "cpu", batch_size: int = 32, limit: int | None = None, quiet: bool = True,
                   note: str | None = None, precision: str = "auto", device: str | None = None,
                   reference_provider: str | None = None) -> AccuracyReport:
    """Run ``reference`` (fp32) and ``candidate`` (int8/fp16) on the same inputs and compare them.

    ``data``: an ImageFolder folder (labels from sub-folder names: accuracies too), a folder of
    unlabelled images (any depth: agreement only), or a preprocessed NCHW array (``labels``
    optional). Each model gets its inputs in its own io dtype (fp16 models take float16). ``precision`` and
    ``device`` apply to the candidate (e.g. OpenVINO bf16 on an fp32 file); the reference runs at its own
    precision on ``reference_provider`` (default: ``provider``).
    """
    desc = str(data) if not isinstance(data, np.ndarray) else f"array {list(data.shape)}"
    folder_checked: ImageFolder | None = None
    if isinstance(data, np.ndarray):
        x = data[:limit] if limit else data
        labels = None if labels is None else np.asarray(labels)[: len(x)]

        def batches() -> Iterator[np.ndarray]:
            return _array_batches(x, batch_size)
        n = len(x)
    else:
        folder: ImageFolder | None
        if isinstance(data, ImageFolder):
            folder = data
        else:
            root = Path(data)
            has_dirs = root.is_dir() and any(d.is_dir() and not d.name.startswith(".") for d in root.iterdir())
            folder = load_image_folder(root) if has_dirs else None
        if folder is not None:
            samples = folder.samples[:limit] if limit else folder.samples
            paths = [p for p, _ in samples]
            labels = np.asarray([y for _, y in samples], dtype=np.int64)
            desc = str(folder.root)
            folder_checked = folder
        else:
            paths = list_images(data, limit=limit)
            labels = None
        config = _config(reference)

        def batches() -> Iterator[np.ndarray]:
            return iter_batches(paths, config, batch_size)
        n = len(paths)
    nb = -(-n // batch_size)
    ref = run_batches(reference, batches(), total=nb, provider=reference_provider or provider, quiet=quiet,
                      desc=f"running {Path(reference).name}", precision=_reference_precision(reference))
    ran: dict[str, Any] = {}
    cand = run_batches(candidate, batches(), total=nb, provider=provider, quiet=quiet,
                       desc=f"running {Path(candidate).name}", ran=ran, precision=precision, device=device)
    if folder_checked is not None:
        _check_classes(folder_checked, ref.shape[1], reference)
    metrics = compare_outputs(ref, cand, labels)
    sr, sc = file_size(reference), file_size(candidate)
    meta = read_metadata(candidate)
    return AccuracyReport(reference=str(reference), candidate=str(candidate), data=desc, labelled=labels is not None,
                          size_reference=sr, size_candidate=sc, compression=round(sr / max(1, sc), 3),
                          precision_candidate=ran.get("precision") or meta.get("precision"), note=note, **metrics)
