"""Turn ``MODEL_OR_FILE`` into an ``.onnx`` path: a file as is, a zoo name through the export cache."""

from __future__ import annotations

import os
from pathlib import Path

from edgecnn.errors import EdgecnnError


def looks_like_file(model: str | os.PathLike) -> bool:
    """True when ``model`` names a file (existing, or ending in .onnx, or containing a path separator)."""
    text = str(model)
    return Path(text).exists() or text.endswith(".onnx") or os.sep in text or "/" in text


def resolve_model(model: str | os.PathLike, precision: str = "fp32", *, weights: str | os.PathLike | None = None,
                  input_size: tuple[int, int] | None = None) -> Path:
    """Path of an ``.onnx`` file for ``model``: a file path is returned as is (it must exist); a zoo name is
    exported (or quantized) once through :func:`edgecnn.exporters.cache.cached_export` and cached."""
    if looks_like_file(model):
        path = Path(model)
        if not path.is_file():
            raise EdgecnnError(f"model file not found: {path} (give an .onnx file or a zoo name; "
                               "'edgecnn list' shows the zoo)")
        return path
    try:
        from edgecnn.exporters.cache import cached_export
    except ImportError as e:  # torch (the export extra) missing
        raise EdgecnnError(f"cannot export zoo model {model!r}: {e}. Install the export extra "
                           "(pip install 'edgecnn[export]') or pass an .onnx file.") from None
    return Path(cached_export(str(model), precision=precision, weights=weights, input_size=input_size))
