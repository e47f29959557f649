"""Segmentation: per-pixel class scores (N, C, H, W) -> class maps, per-class pixel shares, overlays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

ROLES = ("masks",)
#: argmax agreement an export must reach against torch (share of pixels)
MIN_PIXEL_AGREEMENT = 0.999


def class_map(masks: np.ndarray) -> np.ndarray:
    """(N, C, H, W) scores -> (N, H, W) class indices (int64)."""
    return np.asarray(masks).argmax(axis=1).astype(np.int64)


def unletterbox(classes: np.ndarray, input_size: Sequence[int], image_size: Sequence[int]) -> np.ndarray:
    """An (h, w) class map of a letterboxed input (H, W) -> the image's own (height, width), padding removed
    (nearest neighbour; a map at a fraction of the input size is scaled first)."""
    from edgecnn.runtime.images import letterbox_geometry

    h, w = input_size
    mh, mw = classes.shape
    _, left, top, new_w, new_h = letterbox_geometry(image_size, input_size)
    sy, sx = mh / h, mw / w
    rows_cut = slice(int(round(top * sy)), int(round((top + new_h) * sy)))
    crop = classes[rows_cut, int(round(left * sx)):int(round((left + new_w) * sx))]
    iw, ih = image_size
    rows = np.minimum(((np.arange(ih) + 0.5) * crop.shape[0] / ih).astype(np.int64), crop.shape[0] - 1)
    cols = np.minimum(((np.arange(iw) + 0.5) * crop.shape[1] / iw).astype(np.int64), crop.shape[1] - 1)
    return crop[rows][:, cols]


def pixel_shares(classes: np.ndarray, num_classes: int) -> np.ndarray:
    """(H, W) class indices -> the share of pixels of each class (C,)."""
    counts = np.bincount(np.asarray(classes).ravel(), minlength=num_classes)[:num_classes]
    return counts / max(int(counts.sum()), 1)


def agreement(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Share of pixels whose argmax class agrees, and the largest score difference relative to the largest score."""
    r, g = np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64)
    return {"pixel_agreement": float((class_map(r) == class_map(g)).mean()),
            "max_rel_diff": float(np.abs(r - g).max() / max(float(np.abs(r).max()), 1e-30))}


def describe(classes: np.ndarray, num_classes: int, names: Sequence[str] | None, min_share: float = 0.0
             ) -> list[dict[str, Any]]:
    """Rows ``{index, label, share}`` for the classes present, largest share first."""
    shares = pixel_shares(classes, num_classes)
    order = np.argsort(-shares, kind="stable")
    return [{"index": int(i), "label": names[i] if names and i < len(names) else str(int(i)),
             "share": float(shares[i])} for i in order if shares[i] > min_share]


def palette(num_classes: int) -> np.ndarray:
    """A fixed colour per class (C, 3) uint8; class 0 (background) black."""
    rng = np.random.default_rng(7)
    colours = rng.integers(40, 256, size=(num_classes, 3), dtype=np.int64).astype(np.uint8)
    colours[0] = 0
    return colours


def overlay(image: Any, classes: np.ndarray, num_classes: int, alpha: float = 0.5) -> Any:
    """The image with its class map blended over it (class 0 left as is), at the image's own size."""
    from PIL import Image

    rgb = image.convert("RGB")
    mask = Image.fromarray(np.asarray(classes, dtype=np.uint8 if num_classes <= 256 else np.int32))
    mask = np.asarray(mask.resize(rgb.size, Image.NEAREST)).astype(np.int64)
    base = np.asarray(rgb, dtype=np.float32)
    colour = palette(num_classes)[mask].astype(np.float32)
    fg = (mask > 0)[..., None]
    out = np.where(fg, (1 - alpha) * base + alpha * colour, base)
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def labels_of(meta: Mapping[str, Any], num_classes: int) -> list[str] | None:
    """The file's class names when they fit ``num_classes``."""
    labels = meta.get("labels")
    return list(labels) if isinstance(labels, list) and len(labels) == num_classes else None
