"""The metadata contract of an edgecnn ``.onnx`` file (torch-free, onnx-free).

Exporters write these keys into ONNX ``metadata_props``; the runtime and profiler read them back
(through ``onnxruntime``'s ``custom_metadata_map`` or ``onnx``'s ``metadata_props``), so a file
describes itself and ``bench``/``profile``/``predict`` need nothing but the file.

All values are stored as strings; lists and numbers as JSON. ``decode`` turns them back into Python.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PREFIX = "edgecnn."

#: key -> (type, description). Types: str, int, json.
KEYS: dict[str, tuple[str, str]] = {
    "model": ("str", "zoo name or user model name"),
    "family": ("str", "model family: lenet, alexnet, zfnet, vgg, googlenet, resnet, custom"),
    "input_layout": ("str", "NCHW (edgecnn's exports) or NHWC (TensorFlow/Keras files)"),
    "input_size": ("json", "[height, width]"),
    "channels": ("int", "input channels: 3 (RGB) or 1 (grayscale)"),
    "mean": ("json", "per-channel mean on [0,1]-scaled pixels"),
    "std": ("json", "per-channel std on [0,1]-scaled pixels"),
    "num_classes": ("int", "number of output classes"),
    "class_names": ("str", "'imagenet' when the ImageNet-1k names apply, else empty"),
    "labels": ("json", "class names from a labels file, one per class (foreign files)"),
    "background_class": ("int", "1 when output 0 is a background class before the labels (TensorFlow's 1001)"),
    "channel_order": ("str", "rgb, or bgr for Caffe-style models (mean/std are in this order)"),
    "crop_fraction": ("json", "center crop share of the resized shorter side (0.875); null: resize, no crop"),
    "precision": ("str", "fp32, fp16 or int8"),
    "io_dtype": ("str", "float32 or float16: the dtype of the graph's input and output"),
    "opset": ("int", "default-domain opset of the file"),
    "num_params": ("int", "parameter count of the torch model (aux heads excluded)"),
    "macs": ("int", "multiply-accumulates per image at input_size (1 MAC = 2 FLOPs)"),
    "batch": ("str", "'dynamic' or the fixed batch size"),
    "edgecnn_version": ("str", "edgecnn version that wrote the file"),
    "torch_version": ("str", "torch version that exported the file"),
    "weights_sha256": ("str", "SHA-256 of the exported weights (state_dict tensors in key order)"),
    "source": ("str", "how the model was built: zoo, or module:factory"),
    "optimize": ("json", "the decision of 'edgecnn optimize': runtime, precision, threads, CPU model and flags, "
                 "runtime versions, accuracy measured, budget, date"),
}

#: Defaults for foreign files (ImageNet preprocessing at 224x224 RGB).
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def encode(meta: Mapping[str, Any]) -> dict[str, str]:
    """Turn a plain dict (keys without prefix) into prefixed string metadata_props."""
    out: dict[str, str] = {}
    for key, value in meta.items():
        if value is None:
            continue
        kind = KEYS.get(key, ("str", ""))[0]
        out[PREFIX + key] = json.dumps(value) if kind == "json" else str(value)
    return out


def decode(props: Mapping[str, str]) -> dict[str, Any]:
    """Turn metadata_props (prefixed strings) back into typed values; unknown edgecnn keys stay str."""
    out: dict[str, Any] = {}
    for full, raw in props.items():
        if not full.startswith(PREFIX):
            continue
        key = full[len(PREFIX):]
        kind = KEYS.get(key, ("str", ""))[0]
        try:
            out[key] = json.loads(raw) if kind == "json" else int(raw) if kind == "int" else raw
        except ValueError:
            out[key] = raw
    return out
