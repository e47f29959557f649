"""``edgecnn bundle``: everything an app needs to ship one model, with the reasons behind it (torch-free).

    from edgecnn.bundle import build_bundle, verify_bundle

    result = build_bundle("resnet18.onnx", "ship/resnet18")     # the folder appears complete or not at all
    report = verify_bundle("ship/resnet18")                      # hashes re-checked, the model run once

A bundle folder holds the model as ``.onnx`` and in ORT format, ONNX Runtime's reduced-operator configuration,
the preprocessing as plain JSON (``preprocessing.json``: every key of the metadata contract, resolved), the
runtime and precision chosen and what to fall back to (``runtime.json``), the class names (``labels.txt``),
a README per target (C++, Android/Kotlin, iOS/Swift, generated from the same metadata, marked as not built on a
device) and ``manifest.json``: the SHA-256 of every other file and the versions that produced them.

Imports the runtime and the shared modules; the ORT-format conversion of ``edgecnn.exporters`` lazily; never torch.
"""

from __future__ import annotations

from edgecnn._lazy import lazy_attributes

_LAZY = {
    "build_bundle": "edgecnn.bundle.build",
    "BundleResult": "edgecnn.bundle.build",
    "verify_bundle": "edgecnn.bundle.verify",
    "MANIFEST": "edgecnn.bundle.contents",
    "FORMAT": "edgecnn.bundle.contents",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

__all__ = list(_LAZY)
