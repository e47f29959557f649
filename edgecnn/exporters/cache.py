"""On-demand exports for ``bench``/``profile``/``predict``: a zoo name becomes a cached, validated ``.onnx`` file.

Exports live under the user cache folder (``<cache>/exports``, where ``<cache>`` is ``$EDGECNN_CACHE_DIR``,
else ``$XDG_CACHE_HOME/edgecnn``, else ``~/.cache/edgecnn``), one file per key. The key covers everything
that changes the file:
model name, precision, the weights file's SHA-256, batch, input size, opset, the other export options
and the edgecnn version. A second ``edgecnn bench resnet34`` therefore finds the file and exports nothing.

Other precisions (int8) plug in through :func:`register_precision_hook`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecnn import __version__
from edgecnn._io import atomic_path, sha256_file, user_cache_dir
from edgecnn.errors import EdgecnnError

#: precision -> hook(target, *, name, weights, batch, input_size, opset, **options) that writes ``target``.
PrecisionHook = Callable[..., None]
_PRECISION_HOOKS: dict[str, PrecisionHook] = {}
_BUILTIN = ("fp32", "fp16")


def register_precision_hook(precision: str, hook: PrecisionHook) -> None:
    """Let another part (quantization) produce ``precision`` files for :func:`cached_export`.

    ``hook(target: Path, *, name, weights, batch, input_size, opset, **options)`` must write a complete
    ``.onnx`` file at ``target`` (a temporary path moved onto the cache entry only if the hook returns).
    """
    if precision in _BUILTIN:
        raise ValueError(f"precision {precision!r} is built in")
    _PRECISION_HOOKS[precision] = hook


def cache_dir() -> Path:
    """The folder holding cached exports (not created here)."""
    return user_cache_dir() / "exports"


def cache_key(name: str, precision: str, weights_sha256: str | None, batch: int | None,
              input_size: tuple[int, int] | None, opset: int | None, options: dict[str, Any]) -> str:
    """A short hex digest of everything that changes the exported file."""
    payload = {"name": name, "precision": precision, "weights": weights_sha256, "batch": batch,
               "input_size": list(input_size) if input_size else None, "opset": opset,
               "options": {k: options[k] for k in sorted(options)}, "edgecnn": __version__}
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
    if precision == "int8" and precision not in _PRECISION_HOOKS:
        import edgecnn.exporters.quantize  # noqa: F401  (registers the int8 hook)
    if precision not in _BUILTIN and precision not in _PRECISION_HOOKS:
        if precision == "int8":
            raise EdgecnnError("int8 exports are not available yet: use precision fp32 or fp16 "
                               "(or 'edgecnn quantize' once installed)")
        raise EdgecnnError(f"unknown precision {precision!r}: expected fp32, fp16"
                           + "".join(f", {p}" for p in _PRECISION_HOOKS))
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
    if precision in _PRECISION_HOOKS:
        with atomic_path(target, suffix=".onnx") as tmp:
            _PRECISION_HOOKS[precision](tmp, name=name, weights=weights, batch=batch, input_size=input_size,
                                        opset=opset, **options)
        return target
    from edgecnn.exporters.api import export

    kwargs: dict[str, Any] = {"progress": False, **options}
    if opset is not None:
        kwargs["opset"] = opset
    export(name, target, weights=weights, precision=precision, batch=batch, input_size=input_size,
           force=True, **kwargs)
    return target


def clear_cache() -> int:
    """Delete every cached export; returns how many files were removed."""
    d = cache_dir()
    n = 0
    if d.is_dir():
        for p in d.glob("*.onnx*"):
            p.unlink()
            n += 1
    return n
