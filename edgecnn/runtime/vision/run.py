"""``predict`` for detection and segmentation files: images in, boxes or per-class pixel shares out, and the
annotated pictures of ``--save`` (written atomically). Classifiers go through :mod:`edgecnn.runtime.classify`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
    step = batch or engine.chunk_size
    results: list[dict[str, Any]] = []
    for start in range(0, len(images), step):
        group = list(images[start:start + step])
        pil = [open_image(img, config.channels) for img in group]
        if task == "detection":
            names = labels_of(engine)
            for i, (img, det) in enumerate(zip(pil, detect(engine, pil), strict=True)):
                det = above(det, min_score)
                rows = D.rows(det, names)
                if det.masks is not None:  # YOLO segmentation: each detection's mask area in the image's pixels
                    for row, mask in zip(rows, det.masks, strict=True):
                        row["mask_pixels"] = int(mask.sum())
                results.append({"image": _label(group[i]), "size": list(img.size), "detections": rows})
                if save is not None:
                    _write(D.draw(img, det, names), save[start + i], overwrite)
        else:
            classes, c = segment(engine, pil)
            names = S.labels_of(engine.metadata, c)
            for i, img in enumerate(pil):
                results.append({"image": _label(group[i]), "size": list(img.size),
                                "classes": S.describe(classes[i], c, names)})
                if save is not None:
                    _write(S.overlay(img, classes[i], c), save[start + i], overwrite)
    return results


def labels_of(engine: Engine) -> list[str] | None:
    """A detection file's class names (``edgecnn.labels``), when it has them."""
    labels = engine.metadata.get("labels")
    return list(labels) if isinstance(labels, list) else None


def above(det: D.Detections, min_score: float) -> D.Detections:
    """The detections scoring at least ``min_score``."""
    keep = det.scores >= min_score
    return D.Detections(det.boxes[keep], det.scores[keep], det.labels[keep],
                        None if det.masks is None else det.masks[keep])


def detect(engine: Engine, images: Sequence[Any]) -> list[D.Detections]:
    """Each opened image's detections (all of them, best first), boxes in the image's own pixels (letterbox or
    resize undone). Files whose outputs do not say which image a detection belongs to run one image at a time."""
    config = engine.preprocess_config()
    images = list(images)
    step = D.images_per_run(engine.metadata) or len(images) or 1
    out: list[D.Detections] = []
    for start in range(0, len(images), step):
        group = images[start:start + step]
        outs = engine.run_named(load_images(group, config))
        out += [D.to_image(det, config.input_size, img.size, letterbox=config.letterbox)
                for img, det in zip(group, D.detections(outs, engine.metadata, len(group)), strict=True)]
    return out


def segment(engine: Engine, images: Sequence[Any]) -> tuple[np.ndarray | list[np.ndarray], int]:
    """The class maps of opened images (N, H, W at the model's output size; with letterbox, a list of maps at
    each image's own size, the padding removed), and the number of classes."""
    config = engine.preprocess_config()
    outs = engine.run_named(load_images(list(images), config))
    masks = next((v for k, v in outs.items() if engine.output_roles.get(k) == "masks"), None)
    masks = outs[engine.output_names[0]] if masks is None else masks
    classes = S.class_map(masks)
    if config.letterbox:  # the padding is no part of the image
        return [S.unletterbox(m, config.input_size, img.size) for m, img in zip(classes, images, strict=True)], \
            int(masks.shape[1])
    return classes, int(masks.shape[1])


def task_rows(engine: Engine, images: Sequence[Any], *, min_score: float = 0.25) -> list[list[dict[str, Any]]]:
    """Per opened image, the rows ``batch-predict`` writes: a detector's boxes ``{class, label, score, x1, y1, x2,
    y2}`` (the image's pixels, scores >= ``min_score``, best first), a segmenter's classes ``{class, label,
    share}`` (the classes present, largest share first)."""
    if engine.task == "detection":
        names = labels_of(engine)
        out = []
        for det in detect(engine, images):
            det = above(det, min_score)
            out.append([{"class": int(c), "label": names[int(c)] if names and 0 <= c < len(names) else str(int(c)),
                         "score": float(s), "x1": float(b[0]), "y1": float(b[1]), "x2": float(b[2]),
                         "y2": float(b[3])} for b, s, c in zip(det.boxes, det.scores, det.labels, strict=True)])
        return out
    if engine.task == "segmentation":
        classes, c = segment(engine, images)
        names = S.labels_of(engine.metadata, c)
        return [[{"class": r["index"], "label": r["label"], "share": r["share"]} for r in S.describe(m, c, names)]
                for m in classes]
    raise EdgecnnError(f"{engine.path.name} is a classifier: its rows are top-k classes.")


def _write(image: Any, path: Path, overwrite: bool) -> None:
    with atomic_path(path, suffix=path.suffix or ".png", overwrite=overwrite) as tmp:
        image.save(tmp, format="PNG")
