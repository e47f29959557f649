"""What an image classifier file expects, read from its graph when it carries no edgecnn metadata
(onnx + numpy only; never loads files: pass a ``ModelProto``).

    from edgecnn.io_spec import detect, save_metadata

    spec = detect(model)                         # layout, size, channel order, range, classes
    print("\\n".join(spec.lines()))               # what was detected and what was assumed
    x = load_images(["cat.jpg"], spec.config)    # edgecnn.runtime's preprocessing honours it
    model = save_metadata(model, spec)           # later commands need no flags

Rules, in priority order for each choice: an explicit argument, the file's edgecnn metadata, the
graph (input shape, output shape, names and producer), and last a default that is reported as
*assumed*:

- **layout**: NCHW or NHWC from which axis holds 1 or 3 channels (``layout=`` overrides).
- **size**: the input's spatial dims; ``size=`` when they are symbolic (else one clear error).
- **channel order and range**: Caffe-converted files (input ``data``/``data_0``, producer
  ``onnx-caffe2``/caffe) take BGR pixels on 0-255 minus the ImageNet BGR mean (103.939, 116.779,
  123.68) (Simonyan & Zisserman, 2014; He et al., 2016's Caffe models); 1001-class outputs are
  TensorFlow-slim's background + ImageNet layout, whose MobileNets and Inceptions take [-1, 1]
  pixels (Szegedy et al., 2016; Howard et al., 2017); otherwise torchvision's ImageNet mean/std.
- **resize/crop**: resize the shorter side to size / 0.875 and center crop (torchvision's and
  TensorFlow-slim's evaluation transform); ``crop_fraction=None`` resizes without a crop.
- **labels**: a labels file (one per line); 1000 (or 1001 with background) outputs get ImageNet's.

Graph checks that make a file unusable as an image classifier (two image inputs, an input that is
not 4-D, symbolic spatial dims without ``size``) raise one-line :class:`EdgecnnError` s here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from edgecnn import metadata as M
from edgecnn.errors import EdgecnnError
from edgecnn.runtime.images import DEFAULT_CROP_FRACTION, GRAY_MEAN, GRAY_STD, LAYOUTS, PreprocessConfig
from edgecnn.runtime.vision.recognize import OutputInfo, Overrides, TaskSpec, from_metadata, recognize

#: named input ranges -> (mean, std) on [0, 1]-scaled pixels (the form PreprocessConfig uses)
RANGES: dict[str, tuple[float, float]] = {
    "0-1": (0.0, 1.0),
    "0-255": (0.0, 1.0 / 255.0),
    "-1-1": (0.5, 0.5),
}
#: the ImageNet mean of Caffe's VGG/ResNet models, BGR order, on 0-255 pixels
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_CLASSES = 1000
TF_BACKGROUND_CLASSES = 1001
_CAFFE_INPUTS = ("data", "data_0", "gpu_0/data_0")


@dataclass(frozen=True)
class InputSpec:
    """A file's input and output as edgecnn will use them, and how each choice was made."""

    input_name: str
    input_shape: tuple[Any, ...]
    config: PreprocessConfig
    #: classes of the (squeezed) output, None when the output shape does not say
    num_classes: int | None
    #: output 0 is TensorFlow's background class (dropped before top-k)
    background_class: bool = False
    #: class names from a labels file (None: ImageNet's for 1000 classes, else indices)
    labels: tuple[str, ...] | None = None
    imagenet_names: bool = False
    detected: tuple[str, ...] = ()
    assumed: tuple[str, ...] = ()
    given: tuple[str, ...] = field(default=())
    #: a detection or segmentation file: what its outputs are and how to decode them (None: a classifier)
    task: TaskSpec | None = None

    def metadata(self) -> dict[str, Any]:
        """These choices as edgecnn metadata (keys of :data:`edgecnn.metadata.KEYS`, without prefix)."""
        c = self.config
        meta: dict[str, Any] = {
            "input_layout": c.layout, "input_size": list(c.input_size), "channels": c.channels,
            "mean": [round(v, 8) for v in c.mean], "std": [round(v, 8) for v in c.std],
            "channel_order": "bgr" if c.bgr else "rgb", "crop_fraction": c.crop_fraction,
            "background_class": int(self.background_class),
            "class_names": "imagenet" if self.imagenet_names else "",
        }
        if self.num_classes is not None:
            meta["num_classes"] = self.num_classes - int(self.background_class)
        if self.labels is not None:
            meta["labels"] = list(self.labels)
        if self.task is not None:
            meta.update(self.task.metadata())
        return meta

    def lines(self) -> list[str]:
        """One line per choice: ``given:``, ``detected:`` and ``assumed:`` (the last say how to override)."""
        t = self.task
        given, detected, assumed = (self.given + t.given, self.detected + t.detected, self.assumed + t.assumed) \
            if t is not None else (self.given, self.detected, self.assumed)
        return ([f"given: {g}" for g in given] + [f"detected: {d}" for d in detected]
                + [f"assumed: {a}" for a in assumed])

    @property
    def all_assumed(self) -> tuple[str, ...]:
        """What was assumed about the input and the outputs (the ``note: assumed`` lines of every command)."""
        return self.assumed + (self.task.assumed if self.task is not None else ())


# --------------------------------------------------------------------------- graph reading


def _dims(value: onnx.ValueInfoProto) -> tuple[Any, ...]:
    shape = value.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim)


def _fmt(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"


def guess_layout(shape: Sequence[Any]) -> str | None:
    """``NCHW`` or ``NHWC`` when exactly one of axes 1 and 3 holds 1 or 3 channels; None if ambiguous."""
    if len(shape) != 4:
        return None

    def is_channels(d: Any) -> bool:
        return isinstance(d, int) and d in (1, 3)

    if is_channels(shape[1]) and not is_channels(shape[3]):
        return "NCHW"
    if is_channels(shape[3]) and not is_channels(shape[1]):
        return "NHWC"
    return None


def image_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The one 4-D image input (initializers listed as inputs are skipped); one-line errors otherwise."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if not inputs:
        raise EdgecnnError("the model has no input; edgecnn runs image classifiers with one image input.")
    if len(inputs) > 1:
        images = [i.name for i in inputs if len(_dims(i)) == 4]
        names = ", ".join(f"{i.name} {_fmt(_dims(i))}" for i in inputs)
        if len(images) > 1:
            raise EdgecnnError(f"the model has {len(images)} image inputs ({names}); edgecnn runs classifiers "
                               "of one image.")
        raise EdgecnnError(f"the model has {len(inputs)} inputs ({names}); edgecnn runs classifiers with one "
                           "image input (inputs no node reads are dropped by edgecnn.normalize).")
    dims = _dims(inputs[0])
    if len(dims) != 4:
        raise EdgecnnError(f"input {inputs[0].name!r} has rank {len(dims)} {_fmt(dims)}; edgecnn runs image "
                           "classifiers whose input is 4-D (NCHW or NHWC).")
    return inputs[0]


def output_infos(model: onnx.ModelProto) -> list[OutputInfo]:
    """The graph's outputs as :class:`OutputInfo` (name, shape, integer element type)."""
    ints = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.INT16, onnx.TensorProto.INT8,
            onnx.TensorProto.UINT8}
    return [OutputInfo(o.name, _dims(o), o.type.tensor_type.elem_type in ints) for o in model.graph.output]


def output_classes(model: onnx.ModelProto) -> int | None:
    """Classes of the first output: C of (N, C), (N, C, 1, 1) or (N, 1, 1, C); None when not fixed."""
    if not model.graph.output:
        return None
    dims = _dims(model.graph.output[0])[1:]
    sized = [d for d in dims if not (isinstance(d, int) and d == 1)]
    if len(sized) == 1 and isinstance(sized[0], int) and sized[0] > 0:
        return sized[0]
    if dims and all(isinstance(d, int) and d == 1 for d in dims):
        return 1
    return None


def read_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names from a text file, one per line (blank lines at the end ignored)."""
    p = Path(path)
    if not p.is_file():
        raise EdgecnnError(f"labels file not found: {p}" if not p.exists() else f"labels must be a file: {p}")
    limit = M.MAX_LABELS * (M.MAX_TEXT + 1)
    if p.stat().st_size > limit:
        raise EdgecnnError(f"labels file {p} is {p.stat().st_size:,} bytes, more than {M.MAX_LABELS:,} names of at "
                           f"most {M.MAX_TEXT} characters can take ({limit:,}).")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise EdgecnnError(f"labels file {p} is not UTF-8 text (one class name per line).") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise EdgecnnError(f"labels file {p} is empty; write one class name per line.")
    return tuple(line.strip() for line in lines)


def _size_pair(size: int | Sequence[int]) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or any(not isinstance(v, int) or v < 1 for v in pair):
        raise EdgecnnError(f"size must be one or two positive integers (H, W), got {size!r}.")
    return int(pair[0]), int(pair[1])


def _per_channel(values: Sequence[float], channels: int, what: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise EdgecnnError(f"--{what} takes numbers, got {values!r}.") from None
    if len(vals) == 1:
        vals *= channels
    if len(vals) != channels:
        raise EdgecnnError(f"--{what} needs 1 or {channels} values, got {len(vals)}.")
    return vals


# --------------------------------------------------------------------------- detection


def detect(model: onnx.ModelProto, *, layout: str | None = None, size: int | Sequence[int] | None = None,
           bgr: bool | None = None, input_range: str | None = None, mean: Sequence[float] | None = None,
           std: Sequence[float] | None = None, crop_fraction: float | None | str = "auto",
           labels: str | os.PathLike | Sequence[str] | None = None, task: str | None = None,
           head: str | None = None, box_format: str | None = None, letterbox: bool | None = None,
           score_threshold: float | None = None, iou_threshold: float | None = None) -> InputSpec:
    """Work out the preprocessing and the output layout of ``model`` (see the module docstring).

    Explicit arguments win: ``layout`` (``nchw``/``nhwc``), ``size`` (int or (H, W)), ``bgr``,
    ``input_range`` (one of :data:`RANGES`), ``mean``/``std`` (per channel, on [0, 1] pixels; values
    above 1 are read as 0-255 units, as Caffe writes them), ``crop_fraction`` (None: resize without a
    crop), ``labels`` (a file, one name per line, or a sequence of names). Detection and segmentation files from
    elsewhere are recognised by :func:`edgecnn.runtime.vision.recognize.recognize` (``task``, ``head``,
    ``box_format``, ``letterbox``, ``score_threshold``, ``iou_threshold`` override it); a file whose metadata
    declares its task is not recognised again (the overrides still apply).
    """
    meta = M.validate(M.decode({p.key: p.value for p in model.metadata_props}))  # types and ranges, by key
    given: list[str] = []
    detected: list[str] = []
    assumed: list[str] = []
    inp = image_input(model)
    shape = _dims(inp)

    # layout
    if layout is not None:
        lay = layout.upper()
        if lay not in LAYOUTS:
            raise EdgecnnError(f"unknown layout {layout!r}: use nchw or nhwc.")
        given.append(f"layout {lay}")
    elif meta.get("input_layout"):
        lay = str(meta["input_layout"]).upper()
        detected.append(f"layout {lay} (file metadata)")
    elif (guess := guess_layout(shape)) is not None:
        lay = guess
        detected.append(f"layout {lay} from input {inp.name!r} {_fmt(shape)}")
    else:
        lay = "NCHW"
        assumed.append(f"layout NCHW: input {inp.name!r} {_fmt(shape)} does not show the channel axis "
                       "(pass --layout nhwc for TensorFlow files)")
    c_axis, h_axis, w_axis = (1, 2, 3) if lay == "NCHW" else (3, 1, 2)

    # channels
    c = shape[c_axis]
    if isinstance(c, int):
        channels = c
    elif isinstance(meta.get("channels"), int):
        channels = int(meta["channels"])
    else:
        channels = 3
        assumed.append(f"3 channels (RGB): the channel axis of {inp.name!r} {_fmt(shape)} is symbolic")
    if channels not in (1, 3):
        raise EdgecnnError(f"input {inp.name!r} {_fmt(shape)} has {channels} channels in layout {lay}; edgecnn "
                           "feeds RGB (3) or grayscale (1) images (wrong --layout?).")

    # size
    hw = (shape[h_axis], shape[w_axis])
    fixed = all(isinstance(d, int) and d > 0 for d in hw)
    if fixed and isinstance(meta.get("input_size"), list):
        M.validate({"input_size": meta["input_size"]}, fixed_size=(int(hw[0]), int(hw[1])))
    if size is not None:
        hw_size = _size_pair(size)
        M.check_option("input_size", hw_size, "--size")
        if fixed and hw_size != hw:
            raise EdgecnnError(f"--size {hw_size[0]}x{hw_size[1]} does not match input {inp.name!r} {_fmt(shape)} "
                               f"({hw[0]}x{hw[1]}); leave --size out for this file.")
        given.append(f"input size {hw_size[0]}x{hw_size[1]}")
    elif fixed:
        hw_size = (int(hw[0]), int(hw[1]))
        detected.append(f"input size {hw_size[0]}x{hw_size[1]} from the input shape")
    elif isinstance(meta.get("input_size"), list) and len(meta["input_size"]) == 2:
        hw_size = (int(meta["input_size"][0]), int(meta["input_size"][1]))
        detected.append(f"input size {hw_size[0]}x{hw_size[1]} (file metadata)")
    else:
        raise EdgecnnError(f"input {inp.name!r} {_fmt(shape)} has symbolic spatial dims; give the image size "
                           "with --size HxW (e.g. --size 224).")

    # task: detection and segmentation files from elsewhere
    over = Overrides(task=task, head=head, box_format=box_format, letterbox=letterbox,
                     score_threshold=score_threshold, iou_threshold=iou_threshold)
    rec = from_metadata(meta, over) if meta.get("task") else recognize(
        output_infos(model), input_size=hw_size, batch=shape[0], overrides=over)
    foreign_task = rec is not None and rec.only is None

    # outputs and labels
    classes = rec.num_classes if foreign_task else output_classes(model)
    if foreign_task:
        background = False
    elif isinstance(meta.get("background_class"), int):
        background = bool(meta["background_class"])
    else:
        background = classes == TF_BACKGROUND_CLASSES
    names: tuple[str, ...] | None = None
    if labels is not None:
        names = read_labels(labels) if isinstance(labels, str | os.PathLike) else tuple(str(v) for v in labels)
        M.check_option("labels", names, "--labels")
        if foreign_task:
            if classes is not None and len(names) not in (classes, classes + 1):
                raise EdgecnnError(f"the labels give {len(names)} names but the model has {classes} classes.")
        elif classes is not None and len(names) == classes:
            background = False  # the file names output 0 itself
        elif classes is not None and background and len(names) == classes - 1:
            pass
        elif classes is not None:
            raise EdgecnnError(f"the labels give {len(names)} names but the model has {classes} outputs.")
        given.append(f"{len(names)} labels")
    elif isinstance(meta.get("labels"), list):
        names = tuple(str(v) for v in meta["labels"])
        detected.append(f"{len(names)} labels (file metadata)")
    effective = None if classes is None else classes - int(background)
    if background and "background_class" not in meta:
        detected.append(f"{classes} outputs: TensorFlow's background + ImageNet-1k layout; output 0 (background) "
                        "is dropped")
    imagenet = (not foreign_task and names is None and effective == IMAGENET_CLASSES
                and meta.get("class_names") in (None, "imagenet"))
    if imagenet:
        (detected if meta.get("class_names") == "imagenet" else assumed).append(
            "ImageNet-1k class names" + (" (file metadata)" if meta.get("class_names") == "imagenet"
                                         else f" for {effective} classes (pass --labels FILE for others)"))

    # channel order, range, mean/std
    caffe = (inp.name in _CAFFE_INPUTS or "caffe" in model.producer_name.lower()) and channels == 3
    tf_slim = classes == TF_BACKGROUND_CLASSES and background
    if bgr is not None:
        use_bgr = bool(bgr) and channels == 3
        given.append("channel order " + ("BGR" if use_bgr else "RGB"))
    elif meta.get("channel_order"):
        use_bgr = str(meta["channel_order"]).lower() == "bgr"
        detected.append(f"channel order {'BGR' if use_bgr else 'RGB'} (file metadata)")
    else:
        use_bgr = caffe
        if caffe:
            assumed.append(f"channel order BGR: a Caffe-converted file (input {inp.name!r}, producer "
                           f"{model.producer_name or '?'}); pass --rgb if it was trained on RGB")

    pm: tuple[float, ...]
    ps: tuple[float, ...]
    if mean is not None or std is not None:
        pm = _per_channel(mean if mean is not None else [0.0], channels, "mean")
        ps = _per_channel(std if std is not None else [1.0], channels, "std")
        M.check_option("mean", pm, "--mean")
        M.check_option("std", ps, "--std")
        if max(pm + ps) > 1.0:  # 0-255 units, as Caffe and OpenCV write them
            pm, ps = tuple(v / 255.0 for v in pm), tuple(v / 255.0 for v in ps)
        given.append(f"mean {_round(pm)}, std {_round(ps)} on [0, 1] pixels")
        if input_range is not None:
            raise EdgecnnError("give either --range or --mean/--std, not both.")
    elif input_range is not None:
        if input_range not in RANGES:
            raise EdgecnnError(f"unknown input range {input_range!r}: use one of {', '.join(RANGES)}.")
        m, s = RANGES[input_range]
        pm, ps = (m,) * channels, (s,) * channels
        given.append(f"input range {input_range}")
    elif meta.get("mean") and meta.get("std"):
        pm, ps = _per_channel(meta["mean"], channels, "mean"), _per_channel(meta["std"], channels, "std")
        detected.append(f"mean {_round(pm)}, std {_round(ps)} (file metadata)")
    elif foreign_task and rec.task == "detection":
        pm, ps = (0.0,) * channels, (1.0,) * channels
        assumed.append("input range 0-1 (RGB / 255, no mean/std: Ultralytics' and torchvision's detectors); pass "
                       "--range or --mean/--std if the file differs")
    elif foreign_task and channels == 3:
        pm, ps = tuple(M.IMAGENET_MEAN), tuple(M.IMAGENET_STD)
        assumed.append("ImageNet mean/std on RGB [0, 1] pixels (torchvision's segmentation models); pass "
                       "--mean/--std or --range if the file differs")
    elif caffe:
        bgr_mean = CAFFE_MEAN_BGR if use_bgr else CAFFE_MEAN_BGR[::-1]
        pm, ps = tuple(v / 255.0 for v in bgr_mean), (1.0 / 255.0,) * 3
        assumed.append(f"Caffe preprocessing: pixels 0-255 minus the ImageNet mean {bgr_mean}; pass --mean/--std "
                       "or --range if the file differs")
    elif tf_slim:
        m, s = RANGES["-1-1"]
        pm, ps = (m,) * channels, (s,) * channels
        assumed.append("input range -1..1 of TensorFlow-slim's MobileNets and Inceptions (1001 outputs); pass "
                       "--range 0-1 or --mean/--std if the file differs")
    elif channels == 1:
        pm, ps = tuple(GRAY_MEAN), tuple(GRAY_STD)
        assumed.append(f"grayscale mean {_round(pm)}, std {_round(ps)} (the ImageNet statistics averaged); pass "
                       "--mean/--std")
    else:
        pm, ps = tuple(M.IMAGENET_MEAN), tuple(M.IMAGENET_STD)
        assumed.append("ImageNet preprocessing (RGB on [0, 1], torchvision's mean/std, resize + center crop "
                       "0.875); pass --mean/--std, --range, --bgr or save the right choices with "
                       "'inspect --save-metadata'")

    # resize / crop
    if crop_fraction != "auto":
        crop = None if crop_fraction is None else float(crop_fraction)
        given.append("resize without crop" if crop is None else f"center crop fraction {crop}")
    elif "crop_fraction" in meta:
        crop = None if meta["crop_fraction"] is None else float(meta["crop_fraction"])
        detected.append(("resize without crop" if crop is None else f"center crop fraction {crop}")
                        + " (file metadata)")
    elif rec is not None and (foreign_task or rec.letterbox or meta.get("resize") == "stretch"):
        crop = None
        if meta.get("resize") == "stretch":
            detected.append("resize without crop (file metadata: edgecnn.resize stretch)")
    elif meta.get("resize") == "stretch":  # detectors and segmenters: the whole image to the input size
        crop = None
        detected.append("resize without crop (file metadata: edgecnn.resize stretch)")
    else:
        crop = DEFAULT_CROP_FRACTION

    dtype = "float16" if inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 else "float32"
    config = PreprocessConfig(input_size=hw_size, channels=channels, mean=pm, std=ps, dtype=dtype, layout=lay,
                              bgr=use_bgr, crop_fraction=crop, letterbox=rec is not None and rec.letterbox)
    return InputSpec(input_name=inp.name, input_shape=shape, config=config, num_classes=classes,
                     background_class=background, labels=names, imagenet_names=imagenet,
                     detected=tuple(detected), assumed=tuple(assumed), given=tuple(given), task=rec)


def _round(values: Sequence[float]) -> list[float]:
    return [round(v, 4) for v in values]


def save_metadata(model: onnx.ModelProto, spec: InputSpec, extra: Mapping[str, Any] | None = None) -> onnx.ModelProto:
    """A copy of ``model`` whose edgecnn metadata records ``spec``'s choices (other properties kept), so
    that later commands read them from the file instead of detecting or assuming again."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    props = {p.key: p.value for p in out.metadata_props}
    meta = {**spec.metadata(), **dict(extra or {})}
    props.update(M.encode(meta))
    for key in ("crop_fraction",):  # None is a choice here (resize without a crop), not a missing value
        if key in meta and meta[key] is None:
            props[M.PREFIX + key] = "null"
    del out.metadata_props[:]
    for key in sorted(props):
        out.metadata_props.add(key=key, value=props[key])
    return out
