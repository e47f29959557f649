"""Runtimes behind one seam: one :class:`Backend` per runtime (ONNX Runtime's CPU/CUDA/TensorRT providers,
OpenVINO, and any plug-in), found through one registry. See ``docs/architecture.md`` ("How to add a backend").

    from edgecnn.runtime.backends import Backend, Runner, register
"""

from __future__ import annotations

from edgecnn.runtime.backends.base import Backend, OpenOptions, Runner, TensorInfo, TritonSpec
from edgecnn.runtime.backends.registry import (
    ENTRY_POINT_GROUP,
    available,
    choices,
    failures,
    get,
    names,
    of_provider,
    reference,
    register,
    unregister,
)

__all__ = ["ENTRY_POINT_GROUP", "Backend", "OpenOptions", "Runner", "TensorInfo", "TritonSpec", "available",
           "choices", "failures", "get", "names", "of_provider", "reference", "register", "unregister"]
