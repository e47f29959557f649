"""The ``preprocessing`` option group: how to feed an ``.onnx`` file that carries no edgecnn metadata.

``--layout``, ``--size``, ``--bgr/--rgb``, ``--range``, ``--mean``, ``--std``, ``--crop`` and ``--labels`` mean
the same in every command that declares them (see :func:`edgecnn.io_spec.detect`), and so do the overrides of what
a detection or segmentation file from elsewhere is: ``--task``, ``--head``, ``--box-format``,
``--letterbox/--no-letterbox``, ``--score-threshold``, ``--iou-threshold``
(see :mod:`edgecnn.runtime.vision.recognize`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from edgecnn.cli._params import Choice, F, _stack
from edgecnn.errors import EdgecnnError
from edgecnn.runtime.vision import TASKS
from edgecnn.runtime.vision.recognize import HEADS


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        values = ()
    if not values:
        raise EdgecnnError(f"{what} takes one number or one per channel, comma-separated like "
                           f"0.485,0.456,0.406; got {text!r}")
    return values


def parse_size(text: str) -> tuple[int, int]:
    """``'224'`` -> (224, 224); ``'240x320'`` -> (240, 320)."""
    parts = str(text).lower().replace(" ", "").split("x")
    if len(parts) in (1, 2) and all(p.isdigit() and int(p) > 0 for p in parts):
        return (int(parts[0]), int(parts[-1]))
    raise EdgecnnError(f"--size takes HxW or N (e.g. 224x224 or 224); got {text!r}")


def parse_crop(text: str) -> float | str:
    """``'none'`` (resize without a crop) or a fraction in (0, 1]."""
    if str(text).lower() == "none":
        return "none"
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise EdgecnnError(f"--crop takes a fraction in (0, 1] (0.875 = torchvision's) or none; got {text!r}")
    return value


class _Parsed(click.ParamType):
    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name, self.parse = name, parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value if not isinstance(value, str) else self.parse(value)


#: option parameter -> ``io_spec.detect`` keyword
_PREPROCESS = {"layout": "layout", "size": "size", "bgr": "bgr", "input_range": "input_range", "mean": "mean",
               "std": "std", "crop": "crop_fraction", "labels": "labels", "task": "task", "head": "head",
               "box_format": "box_format", "letterbox": "letterbox", "score_threshold": "score_threshold",
               "iou_threshold": "iou_threshold"}


def preprocessing() -> Callable[[F], F]:
    """``--layout``, ``--size``, ``--bgr/--rgb``, ``--range``, ``--mean``, ``--std``, ``--crop``, ``--labels``:
    how to feed a file without edgecnn metadata; the command receives them as one ``preprocess`` dict
    (the keyword arguments of :func:`edgecnn.io_spec.detect`, None where not given)."""
    opts = [
        click.option("--layout", type=Choice(["nchw", "nhwc"]), default=None,
                     help="Input layout [default: from the input shape; NCHW when it does not tell]."),
        click.option("--size", type=_Parsed("HxW|N", parse_size), default=None,
                     help="Input image size, for inputs with symbolic spatial dims [default: the input shape]."),
        click.option("--bgr/--rgb", "bgr", default=None,
                     help="Channel order [default: BGR for Caffe-converted files, else RGB]."),
        click.option("--range", "input_range", type=Choice(["0-1", "0-255", "-1-1"]), default=None,
                     help="Input pixel range instead of --mean/--std (-1-1: TensorFlow's MobileNets, Inceptions)."),
        click.option("--mean", type=_Parsed("M[,M,M]", lambda t: _floats(t, "--mean")), default=None,
                     help="Per-channel mean, on 0-1 pixels (values above 1 read as 0-255) [default: ImageNet's]."),
        click.option("--std", type=_Parsed("S[,S,S]", lambda t: _floats(t, "--std")), default=None,
                     help="Per-channel std, same units as --mean [default: ImageNet's]."),
        click.option("--crop", type=_Parsed("FRACTION|none", parse_crop), default=None,
                     help="Center-crop fraction after resizing the shorter side to size / FRACTION, or none "
                          "(resize only) [default: 0.875]."),
        click.option("--labels", type=click.Path(dir_okay=False), default=None, metavar="FILE",
                     help="Class names, one per line [default: ImageNet's for 1000 classes, else indices]."),
        click.option("--task", type=Choice(list(TASKS)), default=None,
                     help="What the file does [default: the file's metadata, else recognised from its outputs]."),
        click.option("--head", type=Choice(list(HEADS)), default=None,
                     help="How a detection/segmentation file's outputs are decoded (see docs/tasks.md) [default: "
                          "recognised from the output shapes and names]."),
        click.option("--box-format", "box_format", type=Choice(["xyxy", "cxcywh"]), default=None,
                     help="Detection boxes as corners or centre + size [default: cxcywh for YOLO heads, else xyxy]."),
        click.option("--letterbox/--no-letterbox", "letterbox", default=None,
                     help="Resize keeping the aspect ratio with grey padding (Ultralytics) instead of stretching "
                          "[default: letterbox for YOLO heads]."),
        click.option("--score-threshold", "score_threshold", type=click.FloatRange(0, 1), default=None,
                     help="Detections scoring at most this are dropped before NMS [default: the file's, else 0.001]."),
        click.option("--iou-threshold", "iou_threshold", type=click.FloatRange(0, 1), default=None,
                     help="NMS drops a box overlapping a better one of its class by more than this IoU "
                          "[default: the file's, else 0.7 for YOLO (0.45 YOLOv5), 0.55 SSD]."),
    ]

    def apply(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            preprocess = {key: kwargs.pop(param) for param, key in _PREPROCESS.items()}
            return f(*args, preprocess=preprocess, **kwargs)

        return _stack(*opts)(wrapper)  # type: ignore[return-value]

    return apply
