"""torch -> ONNX: export, strip training-only heads, simplify, fp16, validate, self-describing metadata.

Public API (loaded lazily, so ``edgecnn.exporters.cache`` and ``read_metadata`` do not import torch)::

    export(model, output=None, *, weights=None, precision="fp32", ...) -> ExportResult
    read_metadata(path) -> dict
    describe(path) -> dict                 # what 'edgecnn inspect' prints
    cached_export(name, precision="fp32", weights=None, batch=None, input_size=None, opset=None, **options) -> Path
"""

from __future__ import annotations

from edgecnn._lazy import lazy_attributes

_LAZY = {
    "export": "edgecnn.exporters.api",
    "ExportResult": "edgecnn.exporters.api",
    "ValidationFailed": "edgecnn.exporters.api",
    "DEFAULT_OPSET": "edgecnn.exporters.onnx_export",
    "read_metadata": "edgecnn.onnxfile",
    "describe": "edgecnn.exporters.inspection",
    "cached_export": "edgecnn.exporters.cache",
    "cache_dir": "edgecnn.exporters.cache",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


__all__ = list(_LAZY)
