"""Scale-out: hand edgecnn's ``.onnx`` files to the engines users already trust.

* :mod:`edgecnn.scale.triton` writes a Triton Inference Server model repository (online serving).
* :mod:`edgecnn.scale.ray` runs batch inference on a Ray cluster with Ray Data (``pip install edgecnn[ray]``).
* :mod:`edgecnn.scale.local` is the same batch job on this machine (Engine + Batcher), for comparison.

Nothing here imports torch; ``ray`` and ``pyarrow`` are imported only when used.
"""

from __future__ import annotations

from edgecnn._lazy import lazy_attributes

_LAZY = {
    "build_config": "edgecnn.scale.triton",
    "write_triton_repo": "edgecnn.scale.triton",
    "TritonConfig": "edgecnn.scale.triton",
    "TritonRepo": "edgecnn.scale.triton",
    "batch_predict": "edgecnn.scale.local",
    "ray_batch_predict": "edgecnn.scale.ray",
    "RayPredictor": "edgecnn.scale.ray",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


__all__ = list(_LAZY)
