"""The one door to torchvision: its detection and segmentation builders, imported lazily.

Why a door: ``torchvision==0.28.0`` (the pair of torch 2.13.0) ships one wheel whose C++ ops library
(``torchvision/_C.so``) links CUDA's ``libtorch_cuda.so``; with the CPU build of torch it does not load, and
``import torchvision`` then dies at ``register_fake("torchvision::nms")`` ("operator torchvision::nms does not
exist"). No CPU build or sdist of that torchvision exists. This module is a **workaround for that CPU-build
mismatch, not a re-implementation of torchvision's models**: before the import, when ``torchvision::nms`` is
missing, it defines that operator's schema (and the schema of ``qnms``, whose fake kernel torchvision
registers unguarded too) with :mod:`torch.library` and gives it a CPU kernel written in
torch (greedy NMS, the algorithm of torchvision's own CPU kernel: boxes by decreasing score, a box is dropped when
its IoU with a kept box exceeds the threshold). ``torchvision.ops.nms``/``batched_nms`` then run for the torch
reference of detection exports. The other C++ ops (``roi_align``, ``deform_conv2d``...) stay unavailable; the
zoo's three torchvision models do not use them. Where torchvision's ops do load (a matching build), nothing is
defined.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import torch

from edgecnn import boxes
from edgecnn.errors import EdgecnnError

#: the torch.library handle that owns the shim's definition (kept alive for the process)
_LIB: Any = None


def _has_nms() -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018 - attribute lookup raises when the operator is missing
    except (AttributeError, RuntimeError):
        return False
    return True


def greedy_nms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """The shim's CPU kernel: :func:`edgecnn.boxes.greedy_nms` on the tensors' values (int64 indices)."""
    if dets.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    keep = boxes.greedy_nms(dets.detach().double().cpu().numpy(), scores.detach().double().cpu().numpy(),
                            float(iou_threshold))
    return torch.as_tensor(keep, dtype=torch.long)


def _install_nms() -> None:
    global _LIB
    if _has_nms():
        return
    _LIB = torch.library.Library("torchvision", "DEF")  # noqa: TOR901 - a namespace torchvision failed to create
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.impl("nms", greedy_nms, "CPU")
    # torchvision registers a fake (meta) kernel for qnms too, unguarded: its schema must exist; no kernel is given,
    # so quantized NMS stays unavailable (one clear torch error if called)
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def torchvision() -> ModuleType:
    """``import torchvision``, with the ``nms`` shim first where its C++ ops cannot load; one error line when
    torchvision is not installed."""
    _install_nms()
    try:
        tv = importlib.import_module("torchvision")
    except ImportError as e:
        raise EdgecnnError(f"this model is built with torchvision, which is not installed ({e}): pip install "
                           "'edgecnn[export]' (torchvision==0.28.0 with torch 2.13.0; tools/setup.sh installs "
                           "the CPU pair)") from None
    tv_boxes = importlib.import_module("torchvision.ops.boxes")
    if not tv.extension._has_ops():
        # ops/boxes.py checks that the C++ library loaded before calling torch.ops.torchvision.nms: the check
        # becomes "nms exists" for that module only; every other op keeps torchvision's own check.
        def _assert_nms() -> None:
            if not _has_nms():  # pragma: no cover - defined above
                tv.extension._assert_has_ops()

        tv_boxes._assert_has_ops = _assert_nms
    return tv


def weights_meta(enum_name: str, module: str) -> dict[str, Any]:
    """The ``meta`` of a torchvision weights enum's default entry (read from the package, nothing downloaded)."""
    tv = torchvision()
    enum = getattr(importlib.import_module(f"torchvision.models.{module}"), enum_name)
    del tv
    return dict(enum.DEFAULT.meta)
