"""On-demand exports for ``bench``/``profile``/``predict``: a zoo name becomes a cached, validated ``.onnx`` file.

Exports live under the user cache folder (``<cache>/exports``, where ``<cache>`` is ``$EDGECNN_CACHE_DIR``,
else ``$XDG_CACHE_HOME/edgecnn``, else ``~/.cache/edgecnn``), one file per key. The key covers everything
that changes the file:
model name, precision, the weights file's SHA-256, batch, input size, opset, the other export options
and the edgecnn version. A second ``edgecnn bench resnet34`` therefore finds the file and exports nothing.

int8 entries are the fp32 entry quantized by :mod:`edgecnn.quantize` (the cache calls quantization;
quantization never imports the exporters).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edgecnn import __version__
from edgecnn._io import atomic_path, sha256_file, user_cache_dir
from edgecnn.errors import EdgecnnError
from edgecnn.runtime.precision import FILE_PRECISIONS

PRECISIONS = FILE_PRECISIONS  # defined once, in edgecnn.runtime.precision


def cache_dir() -> Path:
    """The folder holding cached exports (not created here)."""
    return user_cache_dir() / "exports"


#: torch seed of the random initialisation of a zoo model exported without weights (part of the cache key)
INIT_SEED = 0


def cache_key(name: str, precision: str, weights_sha256: str | None, batch: int | None,
              input_size: tuple[int, int] | None, opset: int | None, options: dict[str, Any]) -> str:
    """A short hex digest of everything that changes the exported file."""
    payload = {"name": name, "precision": precision, "weights": weights_sha256, "batch": batch,
               "input_size": list(input_size) if input_size else None, "opset": opset,
               "options": {k: options[k] for k in sorted(options)}, "edgecnn": __version__, "init_seed": INIT_SEED}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_export(name: str, precision: str = "fp32", weights: str | os.PathLike | None = None,
                  batch: int | None = None, input_size: tuple[int, int] | None = None, opset: int | None = None,
                  **options: Any) -> Path:
    """Path of a validated export of zoo model ``name``; exports it on first use, then reuses the file.

    ``options`` are passed to :func:`edgecnn.exporters.export` (e.g. ``io_dtype="float16"``,
    ``simplify=False``, ``progress=True``) and are part of the cache key.
    """
    from edgecnn.models import get_spec

    get_spec(name)  # unknown names fail here, before anything is hashed or written
    if precision not in PRECISIONS:
        raise EdgecnnError(f"unknown precision {precision!r}: expected {', '.join(PRECISIONS)}")
    if input_size is not None:
        input_size = (int(input_size[0]), int(input_size[1]))
    wsha = None
    if weights is not None:
        wpath = Path(weights)
        if not wpath.is_file():
            raise EdgecnnError(f"weights file not found: {wpath}")
        wsha = sha256_file(wpath)
    key = cache_key(name, precision, wsha, batch, input_size, opset, options)
    target = cache_dir() / f"{name}-{precision}-{key}.onnx"
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgecnnError(f"cannot create the export cache {target.parent}: {e.strerror}; "
                           "set EDGECNN_CACHE_DIR to a writable folder") from None
    if precision == "int8":
        with atomic_path(target, suffix=".onnx") as tmp:
            _quantized_export(tmp, name=name, weights=weights, batch=batch, input_size=input_size, opset=opset,
                              **options)
        return target
    from edgecnn.exporters.api import export

    kwargs: dict[str, Any] = {"progress": False, **options}
    if opset is not None:
        kwargs["opset"] = opset
    import torch

    with torch.random.fork_rng(devices=[]):  # without weights: every precision of a name is the same model
        torch.manual_seed(INIT_SEED)
        export(name, target, weights=weights, precision=precision, batch=batch, input_size=input_size,
               force=True, **kwargs)
    return target


def _quantized_export(target: Path, *, name: str, weights: Any = None, batch: int | None = None,
                      input_size: tuple[int, int] | None = None, opset: int | None = None, **options: Any) -> None:
    """``cached_export(name, "int8", calib=..., **quantize_options)``: the cached fp32 export, quantized.

    ``calib`` defaults to ``random:32`` (warns: speed tests only); keys that are fields of
    :class:`~edgecnn.quantize.QuantizeOptions` configure the quantizer; the rest go to the fp32 export.
    """
    from dataclasses import fields

    from edgecnn.quantize import QuantizeOptions, quantize

    qkeys = {f.name for f in fields(QuantizeOptions)}
    qopts = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if k in qkeys}
    calib = options.get("calib", "random:32")
    export_opts = {k: v for k, v in options.items() if k not in qkeys and k != "calib"}
    fp32 = cached_export(name, "fp32", weights, batch, input_size, opset, **export_opts)
    quantize(fp32, target, calib=None if qopts.get("mode") == "dynamic" else calib, options=QuantizeOptions(**qopts))


def clear_cache() -> int:
    """Delete every cached export; returns how many files were removed."""
    d = cache_dir()
    n = 0
    if d.is_dir():
        for p in d.glob("*.onnx*"):
            p.unlink()
            n += 1
    return n
