"""edgecnn: classic CNNs from a PyTorch reference zoo to small, fast ONNX files on ONNX Runtime.

Importing ``edgecnn`` does not import torch: the runtime and profiler work on a torch-free install.
Torch-backed entry points (``create_model``, ``export``) load lazily on first use.
"""

from __future__ import annotations

from edgecnn._lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "create_model": "edgecnn.models",
    "list_models": "edgecnn.models",
    "load_weights": "edgecnn.models",
    "export": "edgecnn.exporters",
    "Engine": "edgecnn.runtime",
    "optimize": "edgecnn.optimize",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


__all__ = ["__version__", *_LAZY]
