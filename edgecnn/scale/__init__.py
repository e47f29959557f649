"""Scale-out: hand edgecnn's ``.onnx`` files to the engines users already trust.

* :mod:`edgecnn.scale.triton` writes a Triton Inference Server model repository (online serving).
* :mod:`edgecnn.scale.ray` runs batch inference on a Ray cluster with Ray Data (``pip install edgecnn[ray]``).
* :mod:`edgecnn.scale.batch_predict` is the same batch job on this machine (Engine + Batcher), for comparison.

Nothing here imports torch; ``ray`` and ``pyarrow`` are imported only when used.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "build_config": ("edgecnn.scale.triton", "build_config"),
    "write_triton_repo": ("edgecnn.scale.triton", "write_triton_repo"),
    "TritonConfig": ("edgecnn.scale.triton", "TritonConfig"),
    "TritonRepo": ("edgecnn.scale.triton", "TritonRepo"),
    "batch_predict": ("edgecnn.scale.batch_predict", "batch_predict"),
    "ray_batch_predict": ("edgecnn.scale.ray", "ray_batch_predict"),
    "RayPredictor": ("edgecnn.scale.ray", "RayPredictor"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'edgecnn.scale' has no attribute {name!r}")


__all__ = list(_LAZY)
