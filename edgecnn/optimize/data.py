"""The inputs a choice is judged on: calibration inputs and evaluation inputs, never the same images.

Three sources, in order of preference:

* ``--data DIR`` in the ImageFolder layout (``root/<class>/<image>``): labels, so top-1/top-5 accuracy;
* ``--data DIR`` of unlabelled images (any depth): agreement with fp32 and cosine of the logits;
* nothing: seeded synthetic inputs; the budget is then the logits' SQNR against fp32 and every report
  says loudly that accuracy was not measured on real data.

A folder is split once, deterministically (a permutation seeded by ``seed``): a calibration part of at
most ``calib_size`` images (at most a quarter of the folder) and the evaluation part, the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError

LABELLED, UNLABELLED, SYNTHETIC = "labelled", "unlabelled", "synthetic"
SYNTHETIC_NOTE = ("ACCURACY WAS NOT MEASURED ON REAL DATA: no --data was given, so every candidate was judged on "
                  "seeded synthetic inputs by the SQNR of its logits against fp32. Pass --data DIR (an ImageFolder "
                  "with labels, or a folder of images) to measure accuracy.")


@dataclass(frozen=True)
class TaskData:
    """Preprocessed calibration and evaluation inputs (N x C x H x W float32) and how they were made."""

    kind: str
    calib_x: np.ndarray
    eval_x: np.ndarray
    eval_labels: np.ndarray | None
    source: str
    calib_source: str
    #: the evaluation images' paths (empty for arrays): with ``calib_paths``, what the split test checks
    eval_paths: tuple[str, ...] = ()
    calib_paths: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        return {"kind": self.kind, "source": self.source, "eval_samples": int(len(self.eval_x)),
                "labelled": self.eval_labels is not None, "calibration": self.calib_source,
                "calib_samples": int(len(self.calib_x)), "accuracy_measured": self.kind != SYNTHETIC}


def split_indices(n: int, calib_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(calibration, evaluation)`` index arrays, disjoint, sorted: a seeded permutation of ``range(n)``
    cut after ``min(calib_size, n // 4)`` (at least 1) indices."""
    if n < 2:
        raise EdgecnnError(f"need at least 2 images to keep calibration and evaluation apart, found {n}.")
    cut = max(1, min(int(calib_size), n // 4))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:cut]), np.sort(perm[cut:])


def from_folder(root: str | os.PathLike, config: Any, *, calib_size: int = 128, eval_limit: int | None = 1000,
                seed: int = 0, flat: bool = False) -> TaskData:
    """Split the images under ``root`` into calibration and evaluation parts and preprocess both. ``flat``: every
    image at any depth, without labels (a detector's or segmenter's images: subfolders are not classes)."""
    from edgecnn.runtime.datasets import list_images, load_array, load_image_folder

    path = Path(root)
    if not path.is_dir():
        raise EdgecnnError(f"--data folder not found: {path}" if not path.exists()
                           else f"--data must be a folder of images, got a file: {path}")
    labelled = not flat and any(d.is_dir() and not d.name.startswith(".") for d in path.iterdir())
    if labelled:
        folder = load_image_folder(path)
        paths, labels = folder.paths, folder.labels
    else:
        paths, labels = list_images(path), None
    cal, ev = split_indices(len(paths), calib_size, seed)
    if eval_limit:
        ev = ev[:eval_limit]
    calib_paths = [paths[i] for i in cal]
    eval_paths = [paths[i] for i in ev]
    return TaskData(
        kind=LABELLED if labelled else UNLABELLED, calib_x=load_array(calib_paths, config),
        eval_x=load_array(eval_paths, config), eval_labels=None if labels is None else labels[ev],
        source=f"{path} ({len(eval_paths)} of {len(paths)} images{', labelled' if labelled else ', no labels'})",
        calib_source=f"{path} ({len(calib_paths)} other images of the same folder)",
        eval_paths=tuple(map(str, eval_paths)), calib_paths=tuple(map(str, calib_paths)))


def synthetic(config: Any, *, calib_size: int = 32, eval_size: int = 64, seed: int = 0) -> TaskData:
    """Seeded standard-normal inputs (what preprocessed images look like in scale): two independent draws."""
    c, (h, w) = config.channels, config.input_size
    calib = np.random.default_rng([seed, 1]).standard_normal((calib_size, c, h, w)).astype(np.float32)
    ev = np.random.default_rng([seed, 2]).standard_normal((eval_size, c, h, w)).astype(np.float32)
    return TaskData(SYNTHETIC, calib, ev, None, f"synthetic: {eval_size} seeded normal inputs (seed {seed})",
                    f"synthetic: {calib_size} other seeded normal inputs")


def from_digits(task: Any) -> TaskData:
    """The digits task: calibration on training images, accuracy on the held-out test split."""
    return TaskData(LABELLED, task.calib_x, task.eval_x, task.eval_labels,
                    f"digits test split ({len(task.eval_x)} images, labelled; scikit-learn's UCI digits)",
                    f"digits training split ({len(task.calib_x)} images)")
