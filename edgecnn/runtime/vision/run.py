"""``predict`` for detection and segmentation files: images in, boxes or per-class pixel shares out, and the
annotated pictures of ``--save`` (written atomically). Classifiers go through :mod:`edgecnn.runtime.classify`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecnn._io import atomic_path
from edgecnn.errors import EdgecnnError
from edgecnn.runtime.engine import Engine
from edgecnn.runtime.images import ImageLike, load_images, open_image
from edgecnn.runtime.vision import detection as D
from edgecnn.runtime.vision import segmentation as S


def _label(img: ImageLike) -> str:
    return str(img) if isinstance(img, str | os.PathLike) else getattr(img, "filename", "") or "<image>"


def save_paths(save: str | os.PathLike, count: int) -> list[Path]:
    """Where ``--save`` writes: the path itself for one image; ``<stem>-<i><suffix>`` (1-based) for several."""
    p = Path(save)
    if count == 1:
        return [p]
    return [p.with_name(f"{p.stem}-{i + 1}{p.suffix or '.png'}") for i in range(count)]


def predict_task(engine: Engine, images: Sequence[ImageLike], *, batch: int | None = None, min_score: float = 0.25,
                 save: Sequence[Path] | None = None, overwrite: bool = False) -> list[dict[str, Any]]:
    """Each image's detections (``{"image", "detections": [{label, index, score, box}]}``, boxes in the image's own
    pixels, scores >= ``min_score``) or class shares (``{"image", "classes": [{label, index, share}]}``); with
    ``save`` (one path per image) the annotated picture is written too."""
    task = engine.task
    if task == "classification":
        raise EdgecnnError(f"{engine.path.name} is a classifier: use edgecnn.runtime.predict.")
    if isinstance(images, str | os.PathLike):
        images = [images]
    if batch is not None and batch < 1:
        raise EdgecnnError(f"--batch must be >= 1, got {batch}.")
    config = engine.preprocess_config()
    h, w = config.input_size
    step = D.images_per_run(engine.metadata) or batch or engine.chunk_size
    results: list[dict[str, Any]] = []
    for start in range(0, len(images), step):
        group = list(images[start:start + step])
        pil = [open_image(img, config.channels) for img in group]
        outs = engine.run_named(load_images(pil, config))
        if task == "detection":
            per_image = D.detections(outs, engine.metadata, len(pil))
            names = engine.metadata.get("labels") if isinstance(engine.metadata.get("labels"), list) else None
            for i, (img, det) in enumerate(zip(pil, per_image, strict=True)):
                det = D.to_image(det, (h, w), img.size, letterbox=config.letterbox)
                keep = det.scores >= min_score
                det = D.Detections(det.boxes[keep], det.scores[keep], det.labels[keep],
                                   None if det.masks is None else det.masks[keep])
                rows = D.rows(det, names)
                if det.masks is not None:  # YOLO segmentation: each detection's mask area in the image's pixels
                    for row, mask in zip(rows, det.masks, strict=True):
                        row["mask_pixels"] = int(mask.sum())
                results.append({"image": _label(group[i]), "size": list(img.size), "detections": rows})
                if save is not None:
                    _write(D.draw(img, det, names), save[start + i], overwrite)
        else:
            masks = next((v for k, v in outs.items() if engine.output_roles.get(k) == "masks"), None)
            masks = outs[engine.output_names[0]] if masks is None else masks
            classes = S.class_map(masks)
            c = masks.shape[1]
            if config.letterbox:  # the padding is no part of the image
                classes = [S.unletterbox(m, (h, w), img.size) for m, img in zip(classes, pil, strict=True)]
            names = S.labels_of(engine.metadata, c)
            for i, img in enumerate(pil):
                results.append({"image": _label(group[i]), "size": list(img.size),
                                "classes": S.describe(classes[i], c, names)})
                if save is not None:
                    _write(S.overlay(img, classes[i], c), save[start + i], overwrite)
    return results


def _write(image: Any, path: Path, overwrite: bool) -> None:
    with atomic_path(path, suffix=path.suffix or ".png", overwrite=overwrite) as tmp:
        image.save(tmp, format="PNG")
