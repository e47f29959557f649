"""Image preprocessing with numpy and Pillow (no torch), driven by the model file's metadata.

The pipeline is torchvision's ImageNet evaluation transform: RGB (or grayscale for 1-channel models)
-> resize the shorter side to ``round(size * 256 / 224)`` (bilinear) -> center crop to the input size
-> scale to [0, 1] -> normalize with the file's mean/std -> NCHW.

Files from other frameworks change three steps (see :class:`PreprocessConfig`): the channel order
(BGR for Caffe models), the layout (NHWC for TensorFlow/Keras) and the crop (``crop_fraction``; None
resizes straight to the input size). Input ranges other than [0, 1] are mean/std on [0, 1] pixels:
[0, 255] is mean 0, std 1/255; [-1, 1] (TensorFlow's MobileNets and Inceptions) is mean 0.5, std 0.5.
16-bit images (``I;16`` PNG/TIFF from industrial and medical cameras) are scaled to 8 bits by the
range of their type, not clipped.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgecnn import metadata as M
from edgecnn.errors import EdgecnnError
from edgecnn.metadata import IMAGENET_MEAN, IMAGENET_STD

ImageLike = str | os.PathLike | Image.Image

#: layouts of a 4-D image input
LAYOUTS = ("NCHW", "NHWC")
#: torchvision's evaluation crop: resize to size / 0.875 (256 for 224), then center crop
DEFAULT_CROP_FRACTION = 224 / 256
#: Pillow modes holding more than 8 bits per pixel, and the full scale of their type
_WIDE_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}

#: grayscale defaults for foreign 1-channel files (the mean of the ImageNet RGB statistics)
GRAY_MEAN = [sum(IMAGENET_MEAN) / 3]
GRAY_STD = [sum(IMAGENET_STD) / 3]


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything preprocessing needs; build it from metadata with :meth:`from_metadata`.

    ``mean``/``std`` apply to [0, 1]-scaled pixels in the model's channel order (BGR when ``bgr``).
    ``layout``: ``NCHW`` or ``NHWC`` arrays. ``crop_fraction``: the center crop's share of the resized
    shorter side (0.875, torchvision's 224 of 256); None resizes the whole image to ``input_size``.
    """

    input_size: tuple[int, int] = (224, 224)
    channels: int = 3
    mean: tuple[float, ...] = tuple(IMAGENET_MEAN)
    std: tuple[float, ...] = tuple(IMAGENET_STD)
    dtype: str = "float32"
    layout: str = "NCHW"
    bgr: bool = False
    crop_fraction: float | None = DEFAULT_CROP_FRACTION
    #: resize keeping the aspect ratio and pad with grey 114 centred (Ultralytics); ``crop_fraction`` is ignored
    letterbox: bool = False

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise EdgecnnError(f"unknown input layout {self.layout!r}: use NCHW or NHWC.")
        if self.crop_fraction is not None and not 0 < self.crop_fraction <= 1:
            raise EdgecnnError(f"crop fraction must be in (0, 1], got {self.crop_fraction}.")
        for key in ("input_size", "mean", "std"):  # the metadata schema: finite, std > 0, sides 1..16384
            if (reason := M.value_problem(key, list(getattr(self, key)))) is not None:
                raise EdgecnnError(f"preprocessing {key}: {reason} (got {list(getattr(self, key))}).")

    @property
    def resize(self) -> int:
        """Target of the shorter side before the center crop: 256 for 224 models, scaled otherwise."""
        return int(round(min(self.input_size) / (self.crop_fraction or 1.0)))

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """Shape of one preprocessed image: (C, H, W) or (H, W, C)."""
        h, w = self.input_size
        return (self.channels, h, w) if self.layout == "NCHW" else (h, w, self.channels)

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], *, input_shape: Sequence[Any] | None = None,
                      dtype: str | None = None) -> PreprocessConfig:
        """Build from decoded edgecnn metadata, filling gaps from the graph's ``input_shape`` (NCHW,
        or NHWC when the metadata or the shape says so) and, for foreign files, ImageNet defaults."""
        from edgecnn.io_spec import guess_layout

        shape = list(input_shape) if input_shape is not None else []
        M.validate(meta)  # one error naming the key of a malformed or out-of-range value
        layout = str(meta.get("input_layout") or guess_layout(shape) or "NCHW").upper()
        c_axis, h_axis, w_axis = (1, 2, 3) if layout == "NCHW" else (3, 1, 2)
        if len(shape) == 4 and all(isinstance(shape[a], int) and shape[a] > 0 for a in (h_axis, w_axis)) \
                and meta.get("input_size") is not None:
            M.validate({"input_size": meta["input_size"]}, fixed_size=(shape[h_axis], shape[w_axis]))
        channels = meta.get("channels")
        if not isinstance(channels, int):
            channels = shape[c_axis] if len(shape) == 4 and isinstance(shape[c_axis], int) else 3
        size = meta.get("input_size")
        if isinstance(size, int):
            size = [size, size]
        if not (isinstance(size, list | tuple) and len(size) == 2):
            if len(shape) == 4 and isinstance(shape[h_axis], int) and isinstance(shape[w_axis], int):
                size = [shape[h_axis], shape[w_axis]]
            else:
                size = [224, 224]
        default_mean, default_std = (GRAY_MEAN, GRAY_STD) if channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)
        mean = meta.get("mean") or default_mean
        std = meta.get("std") or default_std
        if len(mean) != channels or len(std) != channels:
            raise EdgecnnError(f"metadata mean/std have {len(mean)}/{len(std)} values for a {channels}-channel "
                               "model; fix the file's edgecnn.mean/edgecnn.std metadata.")
        crop = meta.get("crop_fraction", None if meta.get("resize") in ("stretch", "letterbox")
                        else DEFAULT_CROP_FRACTION)
        return cls(input_size=(int(size[0]), int(size[1])), channels=int(channels),
                   mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),
                   dtype=dtype or str(meta.get("io_dtype") or "float32"), layout=layout,
                   bgr=str(meta.get("channel_order", "rgb")).lower() == "bgr",
                   crop_fraction=None if crop is None else float(crop), letterbox=meta.get("resize") == "letterbox")


def to_8bit(img: Image.Image) -> Image.Image:
    """A 16-bit (``I;16*``) or 32-bit integer (``I``) grayscale image -> 8-bit ``L``, scaled by the range of a
    16-bit type (65535 -> 255), so a 16-bit camera frame keeps its contrast instead of clipping to white.
    Other modes are returned as they are."""
    full = _WIDE_MODES.get(img.mode)
    if full is None:
        return img
    arr = np.asarray(img)
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > full):
        raise EdgecnnError(f"cannot read a {img.mode} image with values {int(arr.min())}..{int(arr.max())}: "
                           f"edgecnn reads integer images of 8 or 16 bits (0..{full}); convert it first.")
    scaled = np.rint(arr.astype(np.float64) * (255.0 / full)).astype(np.uint8)
    return Image.fromarray(scaled, "L")


def pixel_budget() -> int:
    """The most pixels edgecnn decodes from one image: Pillow's decompression-bomb limit,
    ``PIL.Image.MAX_IMAGE_PIXELS`` (89,478,485 by default, about 256 MB as RGB), read at call time so a program
    can change it. A file declaring more is refused before anything is decoded."""
    limit = Image.MAX_IMAGE_PIXELS
    return int(limit) if limit else 0


def _too_big(path: Path, declared: str, budget: int) -> EdgecnnError:
    return EdgecnnError(f"image {path} declares {declared}, over the {budget:,}-pixel limit (Pillow's "
                        "decompression-bomb limit); resize it first, or raise PIL.Image.MAX_IMAGE_PIXELS in Python "
                        "if you trust the file.")


def open_image(source: ImageLike, channels: int = 3) -> Image.Image:
    """Open an image file (or take a PIL image) and convert it to RGB, or to grayscale for 1 channel.

    The size the file declares is checked against :func:`pixel_budget` before any pixel is decoded: Pillow's
    :class:`~PIL.Image.DecompressionBombError` (over twice the limit) and an image between one and two times the
    limit (which Pillow would decode with a warning) are both one error line naming the image and its size."""
    if isinstance(source, Image.Image):
        img = source
    else:
        path = Path(source)
        if not path.is_file():
            raise EdgecnnError(f"image not found: {path}" if not path.exists() else f"not a file: {path}")
        budget = pixel_budget()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked just below, as an error
                img = Image.open(path)  # reads the header only
            if budget and img.width * img.height > budget:
                img.close()
                raise _too_big(path, f"{img.width}x{img.height} = {img.width * img.height:,} pixels", budget)
            try:
                img.load()
            except BaseException:
                img.close()
                raise
        except Image.DecompressionBombError as e:
            found = re.search(r"\((\d+) pixels\)", str(e))
            raise _too_big(path, f"{int(found.group(1)):,} pixels" if found else "too many pixels", budget) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise EdgecnnError(f"cannot read image {path}: not a valid image file Pillow can open "
                               f"({reason}).") from None
    return to_8bit(img).convert("L" if channels == 1 else "RGB")


#: the grey of Ultralytics' letterbox padding (114 of 255)
LETTERBOX_FILL = 114


def letterbox_geometry(image_size: Sequence[int], input_size: Sequence[int]) -> tuple[float, int, int, int, int]:
    """Ultralytics' letterbox of an image (width, height) into ``input_size`` (H, W): ``(gain, left, top, new_w,
    new_h)``: the image is resized by ``gain`` to ``new_w`` x ``new_h`` and pasted at (``left``, ``top``)."""
    iw, ih = image_size
    th, tw = input_size
    gain = min(th / ih, tw / iw)
    new_w, new_h = int(round(iw * gain)), int(round(ih * gain))
    left, top = int(round((tw - new_w) / 2 - 0.1)), int(round((th - new_h) / 2 - 0.1))
    return gain, left, top, new_w, new_h


def letterbox(img: Image.Image, input_size: Sequence[int]) -> Image.Image:
    """Resize keeping the aspect ratio (bilinear), pad to ``input_size`` (H, W) with grey 114, image centred."""
    gain, left, top, new_w, new_h = letterbox_geometry(img.size, input_size)
    th, tw = input_size
    if (new_w, new_h) != img.size:
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    if (new_w, new_h) == (tw, th):
        return img
    canvas = Image.new(img.mode, (tw, th), LETTERBOX_FILL if img.mode == "L" else (LETTERBOX_FILL,) * 3)
    canvas.paste(img, (left, top))
    return canvas


def resize_crop(img: Image.Image, config: PreprocessConfig) -> Image.Image:
    """Resize the shorter side to ``config.resize`` (bilinear), then center crop to ``config.input_size``
    (without a ``crop_fraction``: resize the whole image to ``input_size``; with ``letterbox``: :func:`letterbox`)."""
    w, h = img.size
    th, tw = config.input_size
    if config.letterbox:
        return letterbox(img, config.input_size)
    if config.crop_fraction is None:  # resize the whole image to the input size, no crop
        return img.resize((tw, th), Image.Resampling.BILINEAR) if (w, h) != (tw, th) else img
    short = config.resize
    if w <= h:
        new_w, new_h = short, int(short * h / w)
    else:
        new_w, new_h = int(short * w / h), short
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    if new_w < tw or new_h < th:  # crop larger than the image: pad like torchvision (zeros)
        canvas = Image.new(img.mode, (max(new_w, tw), max(new_h, th)))
        canvas.paste(img, ((max(new_w, tw) - new_w) // 2, (max(new_h, th) - new_h) // 2))
        img, (new_w, new_h) = canvas, canvas.size
    top = int(round((new_h - th) / 2.0))
    left = int(round((new_w - tw) / 2.0))
    return img.crop((left, top, left + tw, top + th))


def to_array(img: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """A cropped PIL image -> normalized CHW (or HWC for NHWC models) array of ``config.dtype``."""
    arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if config.bgr and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    arr = (arr - mean) / std
    if config.layout == "NCHW":
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr).astype(config.dtype, copy=False)


def preprocess(image: ImageLike, config: PreprocessConfig | None = None) -> np.ndarray:
    """One image (path or PIL image) -> normalized CHW array (HWC for NHWC models)."""
    config = config or PreprocessConfig()
    return to_array(resize_crop(open_image(image, config.channels), config), config)


def load_images(images: ImageLike | Iterable[ImageLike], config: PreprocessConfig | None = None) -> np.ndarray:
    """Image file(s) or PIL image(s) -> one NCHW (or NHWC) batch ready for :meth:`Engine.run`."""
    if isinstance(images, str | os.PathLike | Image.Image):
        images = [images]
    arrays = [preprocess(img, config) for img in images]
    if not arrays:
        raise EdgecnnError("no images given.")
    return np.stack(arrays)
