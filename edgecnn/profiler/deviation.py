"""How far a reduced-precision run is from fp32 on the same inputs.

``bench`` and ``evaluate`` use it whenever the precision that ran is not fp32 (an fp16 or int8 file, or an
inference precision such as OpenVINO's bf16 on an fp32 file): the fp32 reference runs on what is installed (the
reference backend of :func:`edgecnn.runtime.backends.reference`: ONNX Runtime's CPU provider, else OpenVINO at f32)
and the two outputs are compared with :mod:`edgecnn.metrics` (cosine similarity, SQNR, max relative
error, top-1 agreement), in the manner of Polygraphy's comparison reports (plain data, tolerances stated).

The fp32 reference of a run is, in this order: the file given explicitly; for a zoo name, its fp32 export; the
file itself when it is fp32 and the reduced precision is the runtime's inference precision; an fp32 file beside
an ``X.int8.onnx``/``X.fp16.onnx`` (``X.onnx`` or ``X.fp32.onnx``) whose metadata names the same weights
(``weights_sha256``). A zoo export whose fp32 export has other weights (random initialisation) has no reference.
Otherwise there is no known reference, and the report says so instead of guessing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.metrics import cosine_similarity, max_rel_error, sqnr_db, topk_agreement
from edgecnn.onnxfile import read_metadata

#: least number of inputs a deviation is measured on (bench tops its timed inputs up to this)
MIN_SAMPLES = 16
#: how the reference runtime is named in reports (ONNX Runtime's CPU provider's label)
REFERENCE_RUNTIME = "ONNX Runtime CPU, fp32"


def reference_runtime() -> str:
    """The name of the runtime the fp32 reference runs on here (``ONNX Runtime CPU, fp32``, ``OpenVINO, fp32``)."""
    from edgecnn.runtime.backends import reference

    backend = reference()
    return REFERENCE_RUNTIME if backend.reference_rank == 0 else f"{backend.label}, fp32"


@dataclass(frozen=True)
class Reference:
    """The fp32 file a run is compared with (``path``), or why there is none (``reason``)."""

    path: Path | None
    #: how the reference was found, or why there is none (one sentence)
    reason: str


def _precision_of(path: Path) -> str:
    from edgecnn.runtime.precision import file_precision, read_graph

    return file_precision(read_metadata(path), read_graph(path))


def _weights(path: Path) -> str:
    return str(read_metadata(path).get("weights_sha256") or "")


def _sibling_source(path: Path) -> Path | None:
    """``X.onnx``/``X.fp32.onnx`` beside ``X.int8.onnx``/``X.fp16.onnx`` with the same ``weights_sha256``."""
    name = path.name
    for tag in (".int8.onnx", ".fp16.onnx"):
        if name.endswith(tag):
            stem = name[: -len(tag)]
            break
    else:
        return None
    sha = _weights(path)
    for candidate in (path.with_name(f"{stem}.onnx"), path.with_name(f"{stem}.fp32.onnx")):
        if sha and candidate.is_file() and _weights(candidate) == sha and _precision_of(candidate) == "fp32":
            return candidate
    return None


def find_reference(model: str | os.PathLike, path: str | os.PathLike, *, ran: str, file_precision: str,
                   explicit: str | os.PathLike | None = None) -> Reference | None:
    """The fp32 reference for running ``path`` (from ``model``: a zoo name or the file) at precision ``ran``.

    None when ``ran`` is fp32 (nothing to compare); a :class:`Reference` without ``path`` when no fp32 source is
    known (its ``reason`` says so and what to pass).
    """
    from edgecnn.profiler.source import looks_like_file, resolve_model

    path = Path(path)
    if explicit is not None:
        ref = Path(explicit)
        if not ref.is_file():
            raise EdgecnnError(f"reference file not found: {ref} (give the fp32 .onnx file to compare with)")
        return Reference(ref, f"the given reference {ref.name}")
    if ran == "fp32":
        return None
    if not looks_like_file(model):
        ref = resolve_model(model, "fp32")
        if ref != path and _weights(ref) and _weights(path) and _weights(ref) != _weights(path):
            return Reference(None, f"no fp32 reference: the fp32 export of zoo model {model} has other weights than "
                                   f"its {file_precision} export (no pretrained weights: each export is randomly "
                                   "initialised); export both from one weights file and pass --reference FP32.onnx")
        return Reference(ref, f"the fp32 export of zoo model {model}")
    if file_precision == "fp32":
        return Reference(path, f"the same file ({path.name}) at fp32")
    sibling = _sibling_source(path)
    if sibling is not None:
        return Reference(sibling, f"{sibling.name} beside it (same weights_sha256)")
    return Reference(None, f"no fp32 reference: {path.name} is an {file_precision} file and its fp32 source is not "
                           "known (pass it with --reference FP32.onnx, or name the zoo model)")


def deviation_metrics(reference: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    """Cosine similarity (mean, min), SQNR (dB), max relative error and top-1 agreement of ``test`` against
    ``reference`` (N rows each)."""
    ref = np.asarray(reference, dtype=np.float32).reshape(len(reference), -1)
    out = np.asarray(test, dtype=np.float32).reshape(len(test), -1)
    if ref.shape != out.shape:
        raise EdgecnnError(f"outputs differ in shape: fp32 reference {list(ref.shape)}, run {list(out.shape)}.")
    cos = cosine_similarity(ref, out)
    sqnr = sqnr_db(ref, out)
    return {"samples": len(ref), "cosine_mean": round(float(np.mean(cos)), 6),
            "cosine_min": round(float(np.min(cos)), 6),
            "sqnr_db": "inf" if np.isinf(sqnr) else round(sqnr, 2),
            "max_rel_error": float(f"{max_rel_error(ref, out):.4g}"),
            "top1_agreement": round(topk_agreement(ref, out, 1), 6)}


def run_reference(reference: str | os.PathLike, x: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """The first output of the fp32 ``reference`` on the reference backend (ONNX Runtime's CPU provider, else
    OpenVINO at f32) for inputs ``x`` (float32)."""
    from edgecnn.runtime.engine import reference_engine

    engine = reference_engine(reference, threads=threads, max_batch=max(1, min(len(x), 32)))
    return engine.run(np.ascontiguousarray(x, dtype=engine.input_dtype))


def deviation(ref: Reference | None, x: np.ndarray, outputs: np.ndarray, *, ran: str,
              threads: int | None = None, inputs: str = "") -> dict[str, Any] | None:
    """The ``deviation`` object of a report: what ran, the reference and the metrics (or why there are none).

    ``x``: the inputs that produced ``outputs``; ``inputs`` describes them (e.g. "16 seeded standard-normal
    inputs"). None when ``ref`` is None (an fp32 run).
    """
    if ref is None:
        return None
    out: dict[str, Any] = {"precision": ran, "reference": str(ref.path) if ref.path else None,
                           "reference_runtime": None, "found": ref.reason,
                           "inputs": inputs}
    if ref.path is not None:
        try:
            expected = run_reference(ref.path, x.astype(np.float32), threads=threads)
        except EdgecnnError as e:  # no runtime can run the reference
            out.update(reference=None, found=f"the fp32 reference {ref.path.name} could not run: {e}")
            return out
        out["reference_runtime"] = reference_runtime()
        out.update(deviation_metrics(expected, outputs))
    return out


def deviation_lines(dev: dict[str, Any] | None) -> list[str]:
    """Human-readable lines of a ``deviation`` object (nothing for None)."""
    if not dev:
        return []
    if dev.get("reference") is None:
        return [f"deviation from fp32: {dev['found']}"]
    sq = dev["sqnr_db"]
    return [f"deviation of {dev['precision']} from fp32 ({dev['reference_runtime']}, reference: {dev['found']}; "
            f"{dev['inputs'] or str(dev['samples']) + ' inputs'}):",
            f"  cosine mean {dev['cosine_mean']:.6f} (min {dev['cosine_min']:.6f}), SQNR "
            f"{sq if isinstance(sq, str) else f'{sq:.1f}'} dB, max rel. error {dev['max_rel_error']:.3g}, "
            f"top-1 agreement {100 * dev['top1_agreement']:.1f}%"]
