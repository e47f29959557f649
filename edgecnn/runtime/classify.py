"""Classify image files with an :class:`Engine`: preprocess from the file's metadata, run, top-k."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.engine import Engine
from edgecnn.runtime.images import ImageLike, PreprocessConfig, load_images
from edgecnn.runtime.postprocess import class_names, class_scores, topk


def predict(engine: Engine, images: Sequence[ImageLike], *, top: int = 5, batch: int | None = None,
            config: PreprocessConfig | None = None) -> list[dict[str, Any]]:
    """Top-``top`` classes for each image: ``[{"image", "predictions": [{rank, index, label,
    probability}]}]`` in input order. Images are preprocessed (``config``, default: from the file's
    metadata and input shape) and run ``batch`` at a time (default: the engine's chunk size). Outputs
    shaped (N, C, 1, 1) or (N, 1, 1, C) and 1001-class (background + ImageNet) outputs are understood."""
    if isinstance(images, str | os.PathLike) or hasattr(images, "getpixel"):  # one image, not a list
        images = [images]
    if top < 1:
        raise EdgecnnError(f"--top must be >= 1, got {top}.")
    if batch is not None and batch < 1:
        raise EdgecnnError(f"--batch must be >= 1, got {batch}.")
    config = config or engine.preprocess_config()
    step = batch or engine.chunk_size
    results: list[dict[str, Any]] = []
    names: tuple[str, ...] | None = None
    for start in range(0, len(images), step):
        group = list(images[start:start + step])
        scores = class_scores(engine.run(load_images(group, config)), engine.metadata)
        if names is None:
            names = class_names(engine.metadata, scores.shape[1]) or ()
        for img, preds in zip(group, topk(scores, top, names or None), strict=True):
            label = str(img) if isinstance(img, str | os.PathLike) else getattr(img, "filename", "") or "<image>"
            results.append({"image": label, "predictions": preds})
    return results
