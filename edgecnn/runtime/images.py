"""Image preprocessing with numpy and Pillow (no torch), driven by the model file's metadata.

The pipeline is torchvision's ImageNet evaluation transform: RGB (or grayscale for 1-channel models)
-> resize the shorter side to ``round(size * 256 / 224)`` (bilinear) -> center crop to the input size
-> scale to [0, 1] -> normalize with the file's mean/std -> NCHW.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgecnn.errors import EdgecnnError
from edgecnn.metadata import IMAGENET_MEAN, IMAGENET_STD

ImageLike = str | os.PathLike | Image.Image

#: grayscale defaults for foreign 1-channel files (the mean of the ImageNet RGB statistics)
GRAY_MEAN = [sum(IMAGENET_MEAN) / 3]
GRAY_STD = [sum(IMAGENET_STD) / 3]


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything preprocessing needs; build it from metadata with :meth:`from_metadata`."""

    input_size: tuple[int, int] = (224, 224)
    channels: int = 3
    mean: tuple[float, ...] = tuple(IMAGENET_MEAN)
    std: tuple[float, ...] = tuple(IMAGENET_STD)
    dtype: str = "float32"

    @property
    def resize(self) -> int:
        """Target of the shorter side before the center crop: 256 for 224 models, scaled otherwise."""
        return int(round(min(self.input_size) * 256 / 224))

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], *, input_shape: Sequence[Any] | None = None,
                      dtype: str | None = None) -> PreprocessConfig:
        """Build from decoded edgecnn metadata, filling gaps from the graph's NCHW ``input_shape``
        and, for foreign files, ImageNet defaults."""
        shape = list(input_shape) if input_shape is not None else []
        channels = meta.get("channels")
        if not isinstance(channels, int):
            channels = shape[1] if len(shape) == 4 and isinstance(shape[1], int) else 3
        size = meta.get("input_size")
        if isinstance(size, int):
            size = [size, size]
        if not (isinstance(size, list | tuple) and len(size) == 2):
            if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
                size = [shape[2], shape[3]]
            else:
                size = [224, 224]
        default_mean, default_std = (GRAY_MEAN, GRAY_STD) if channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)
        mean = meta.get("mean") or default_mean
        std = meta.get("std") or default_std
        if len(mean) != channels or len(std) != channels:
            raise EdgecnnError(f"metadata mean/std have {len(mean)}/{len(std)} values for a {channels}-channel "
                               "model; fix the file's edgecnn.mean/edgecnn.std metadata.")
        return cls(input_size=(int(size[0]), int(size[1])), channels=int(channels),
                   mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),
                   dtype=dtype or str(meta.get("io_dtype") or "float32"))


def open_image(source: ImageLike, channels: int = 3) -> Image.Image:
    """Open an image file (or take a PIL image) and convert it to RGB, or to grayscale for 1 channel."""
    if isinstance(source, Image.Image):
        img = source
    else:
        path = Path(source)
        if not path.is_file():
            raise EdgecnnError(f"image not found: {path}" if not path.exists() else f"not a file: {path}")
        try:
            img = Image.open(path)
            img.load()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise EdgecnnError(f"cannot read image {path}: not a valid image file Pillow can open "
                               f"({reason}).") from None
    return img.convert("L" if channels == 1 else "RGB")


def resize_crop(img: Image.Image, config: PreprocessConfig) -> Image.Image:
    """Resize the shorter side to ``config.resize`` (bilinear), then center crop to ``config.input_size``."""
    w, h = img.size
    short = config.resize
    if w <= h:
        new_w, new_h = short, int(short * h / w)
    else:
        new_w, new_h = int(short * w / h), short
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    th, tw = config.input_size
    if new_w < tw or new_h < th:  # crop larger than the image: pad like torchvision (zeros)
        canvas = Image.new(img.mode, (max(new_w, tw), max(new_h, th)))
        canvas.paste(img, ((max(new_w, tw) - new_w) // 2, (max(new_h, th) - new_h) // 2))
        img, (new_w, new_h) = canvas, canvas.size
    top = int(round((new_h - th) / 2.0))
    left = int(round((new_w - tw) / 2.0))
    return img.crop((left, top, left + tw, top + th))


def to_array(img: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """A cropped PIL image -> normalized CHW array of ``config.dtype``."""
    arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    arr = (arr - mean) / std
    return np.ascontiguousarray(arr.transpose(2, 0, 1)).astype(config.dtype, copy=False)


def preprocess(image: ImageLike, config: PreprocessConfig | None = None) -> np.ndarray:
    """One image (path or PIL image) -> normalized CHW array."""
    config = config or PreprocessConfig()
    return to_array(resize_crop(open_image(image, config.channels), config), config)


def load_images(images: ImageLike | Iterable[ImageLike], config: PreprocessConfig | None = None) -> np.ndarray:
    """Image file(s) or PIL image(s) -> one NCHW batch ready for :meth:`Engine.run`."""
    if isinstance(images, str | os.PathLike | Image.Image):
        images = [images]
    arrays = [preprocess(img, config) for img in images]
    if not arrays:
        raise EdgecnnError("no images given.")
    return np.stack(arrays)
