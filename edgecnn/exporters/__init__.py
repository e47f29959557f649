"""torch -> ONNX: export, strip training-only heads, simplify, fp16, validate, self-describing metadata.

Public API (loaded lazily, so ``edgecnn.exporters.cache`` and ``read_metadata`` do not import torch)::

    export(model, output=None, *, weights=None, precision="fp32", ...) -> ExportResult
    read_metadata(path) -> dict
    describe(path) -> dict                 # what 'edgecnn inspect' prints
    cached_export(name, precision="fp32", weights=None, batch=None, input_size=None, opset=None, **options) -> Path
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "export": ("edgecnn.exporters.api", "export"),
    "ExportResult": ("edgecnn.exporters.api", "ExportResult"),
    "ValidationFailed": ("edgecnn.exporters.api", "ValidationFailed"),
    "DEFAULT_OPSET": ("edgecnn.exporters.onnx_export", "DEFAULT_OPSET"),
    "read_metadata": ("edgecnn.exporters.describe", "read_metadata"),
    "describe": ("edgecnn.exporters.describe", "describe"),
    "cached_export": ("edgecnn.exporters.cache", "cached_export"),
    "cache_dir": ("edgecnn.exporters.cache", "cache_dir"),
    "register_precision_hook": ("edgecnn.exporters.cache", "register_precision_hook"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'edgecnn.exporters' has no attribute {name!r}")


__all__ = list(_LAZY)
