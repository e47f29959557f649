"""edgecnn: classic CNNs from a PyTorch reference zoo to small, fast ONNX files on ONNX Runtime.

Importing ``edgecnn`` does not import torch: the runtime and profiler work on a torch-free install.
Torch-backed entry points (``create_model``, ``export``) load lazily on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": ("edgecnn.models", "create_model"),
    "list_models": ("edgecnn.models", "list_models"),
    "load_weights": ("edgecnn.models", "load_weights"),
    "export": ("edgecnn.exporters", "export"),
    "Engine": ("edgecnn.runtime", "Engine"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'edgecnn' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
