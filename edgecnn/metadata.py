"""The metadata contract of an edgecnn ``.onnx`` file (torch-free, onnx-free).

Exporters write these keys into ONNX ``metadata_props``; the runtime and profiler read them back
(through ``onnxruntime``'s ``custom_metadata_map`` or ``onnx``'s ``metadata_props``), so a file
describes itself and ``bench``/``profile``/``predict`` need nothing but the file.

All values are stored as strings; lists and numbers as JSON. ``decode`` turns them back into Python.
"""

from __future__ import annotations

import json
import math
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
    "task": ("str", "classification, detection or segmentation; a file without it is a classifier"),
    "outputs": ("json", "every output with its role: [{name, role (logits, boxes, scores, labels, batch_index, "
                "masks), batch (true when dimension 0 is the batch)}]"),
    "resize": ("str", "crop (shorter side, center crop), stretch (resize to input_size, aspect not kept) or "
               "letterbox (aspect kept, grey 114 padding centred: Ultralytics)"),
    "box_format": ("str", "xyxy: boxes are (x1, y1, x2, y2) in input pixels; cxcywh: centre x, centre y, width, "
                   "height (YOLO heads)"),
    "head": ("json", "how a foreign detection/segmentation file's outputs are decoded: {kind (yolo, yolov5, "
             "yolo_seg, ssd, torchvision, nms_rows6, nms_rows7, logits), layout (cn|nc), objectness, masks, "
             "background}"),
    "nms": ("json", "detection: where NMS runs (placement graph or host) and its thresholds: score_threshold, "
            "iou_threshold, topk_candidates, detections_per_image"),
    "optimize": ("json", "the decision of 'edgecnn optimize': runtime, precision, threads, CPU model and flags, "
                 "runtime versions, accuracy measured, budget, date, target architecture and what it was chosen by "
                 "(latency, or accuracy and size where timings cannot speak for the target)"),
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


# --------------------------------------------------------------------------- validation

#: largest input side edgecnn accepts from metadata or options (per side, pixels)
MAX_SIDE = 16384
#: most class names a file may carry
MAX_LABELS = 100_000
#: longest class name or string value kept
MAX_TEXT = 1000

_CHOICES = {"input_layout": ("NCHW", "NHWC"), "channel_order": ("rgb", "bgr"), "io_dtype": ("float32", "float16"),
            "task": ("classification", "detection", "segmentation"), "resize": ("crop", "stretch", "letterbox"),
            "box_format": ("xyxy", "cxcywh")}
#: decoders of the ``head`` key (``edgecnn.runtime.vision.recognize.HEADS``)
HEAD_KINDS = ("yolo", "yolov5", "yolo_seg", "ssd", "torchvision", "nms_rows6", "nms_rows7", "logits", "edgecnn")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return _number(v) and math.isfinite(v)


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def value_problem(key: str, value: Any) -> str | None:
    """Why ``value`` is not valid for metadata ``key`` (or the option that overrides it); None when it is.

    The schema: ``input_size`` one or two integers 1..:data:`MAX_SIDE`; ``channels`` 1 or 3; ``mean`` 1-4 finite
    numbers; ``std`` 1-4 finite numbers > 0; ``labels`` at most :data:`MAX_LABELS` strings; ``crop_fraction``
    null or in (0, 1]; ``num_classes`` 1..10,000,000; ``background_class`` 0 or 1; layout, channel order and
    I/O dtype from their lists; other known keys their type from :data:`KEYS`.
    """
    if key == "input_size":
        sides = [value] if not isinstance(value, list | tuple) else list(value)
        if len(sides) not in (1, 2) or not all(isinstance(v, int) and not isinstance(v, bool) for v in sides):
            return "expected [height, width], two integers"
        if not all(1 <= v <= MAX_SIDE for v in sides):
            return f"each side must be 1..{MAX_SIDE} pixels"
    elif key == "channels":
        if value not in (1, 3) or isinstance(value, bool):
            return "expected 1 (grayscale) or 3 (RGB)"
    elif key in ("mean", "std"):
        vals = list(value) if isinstance(value, list | tuple) else [value]
        if not 1 <= len(vals) <= 4 or not all(_number(v) for v in vals):
            return "expected a list of 1 to 4 numbers, one per channel"
        if not all(_finite(v) for v in vals):
            return "values must be finite (no NaN or infinity)"
        if key == "std" and not all(v > 0 for v in vals):
            return "values must be > 0 (the pixels are divided by them)"
    elif key == "labels":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            return "expected a list of class names (strings)"
        if len(value) > MAX_LABELS:
            return f"{len(value):,} names, more than the {MAX_LABELS:,} allowed"
        if any(len(v) > MAX_TEXT for v in value):
            return f"a class name longer than {MAX_TEXT} characters"
    elif key == "crop_fraction":
        if value is not None and not (_finite(value) and 0 < value <= 1):
            return "expected null (no crop) or a number in (0, 1]"
    elif key == "num_classes":
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10_000_000:
            return "expected an integer 1..10,000,000"
    elif key == "background_class":
        if value not in (0, 1) or isinstance(value, float):
            return "expected 0 or 1"
    elif key == "head":
        if not isinstance(value, Mapping) or value.get("kind") not in HEAD_KINDS:
            return f"expected {{\"kind\": one of {', '.join(HEAD_KINDS)}, ...}}"
        if value.get("layout", "cn") not in ("cn", "nc"):
            return "layout must be cn (channels first) or nc (rows)"
        m = value.get("masks", 0)
        if not isinstance(m, int) or isinstance(m, bool) or not 0 <= m <= 4096:
            return "masks must be an integer 0..4096"
    elif key in _CHOICES:
        if not isinstance(value, str) or value.lower() not in {c.lower() for c in _CHOICES[key]}:
            return f"expected one of {', '.join(_CHOICES[key])}"
    elif key in KEYS:
        kind = KEYS[key][0]
        if kind == "int" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            return "expected a non-negative integer"
        if kind == "str" and (not isinstance(value, str) or len(value) > MAX_TEXT):
            return f"expected a string of at most {MAX_TEXT} characters"
    return None


def problems(meta: Mapping[str, Any]) -> dict[str, str]:
    """key -> what is wrong with its value, for every invalid value of decoded metadata (empty: all valid)."""
    return {key: f"{reason} (got {_short(value)})" for key, value in meta.items()
            if (reason := value_problem(key, value)) is not None}


def validate(meta: Mapping[str, Any], *, fixed_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """``meta`` when every value passes :func:`value_problem`, else one :class:`EdgecnnError` naming the key.

    ``fixed_size``: the (H, W) of the graph's input when fixed; ``input_size`` must then equal it."""
    from edgecnn.errors import EdgecnnError

    for key, reason in problems(meta).items():
        raise EdgecnnError(f"invalid metadata {PREFIX}{key}: {reason}; fix the file's metadata (e.g. 'edgecnn "
                           "inspect FILE --save-metadata' with the right options) or pass the option that sets it.")
    size = meta.get("input_size")
    if fixed_size is not None and size is not None:
        pair = tuple(size) if isinstance(size, list | tuple) else (size, size)
        if len(pair) == 1:
            pair = (pair[0], pair[0])
        if tuple(pair) != tuple(fixed_size):
            raise EdgecnnError(f"invalid metadata {PREFIX}input_size: {list(pair)} but the graph's input is fixed at "
                               f"{fixed_size[0]}x{fixed_size[1]}; fix the file's metadata.")
    return dict(meta)


def check_option(key: str, value: Any, option: str) -> None:
    """One :class:`EdgecnnError` line when a command-line override (``--std``, ``--size``...) fails the same
    schema as the metadata it overrides."""
    from edgecnn.errors import EdgecnnError

    if (reason := value_problem(key, list(value) if isinstance(value, tuple) else value)) is not None:
        raise EdgecnnError(f"{option}: {reason} (got {_short(list(value) if isinstance(value, tuple) else value)}).")
