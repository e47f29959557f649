"""Scores to answers: the output's shape and layout understood, softmax (only when needed), top-k and class names.

Classifier outputs come as (N, C), (N, C, 1, 1) (Caffe2's 4-D softmax) or (N, 1, 1, C) (TensorFlow's);
:func:`class_scores` squeezes all of them to (N, C), and drops output 0 of TensorFlow's 1001-class
background + ImageNet layout, so ImageNet's names and labels line up. Probabilities (non-negative rows
summing to 1) are recognised so softmax is never applied twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError

#: outputs of TensorFlow-slim's ImageNet classifiers: a background class, then ImageNet-1k's 1000
TF_BACKGROUND_CLASSES = 1001


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names shipped in ``edgecnn/data/imagenet_classes.txt``."""
    text = resources.files("edgecnn").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


def class_names(meta: Mapping[str, Any], num_classes: int) -> tuple[str, ...] | None:
    """Names for a model's classes (after :func:`class_scores`): the file's ``labels`` metadata, else
    ImageNet's for 1000-class models, else None (use indices).

    A file's ``class_names`` metadata decides when present ('imagenet' or empty).
    """
    labels = meta.get("labels")
    if isinstance(labels, list) and len(labels) == num_classes:
        return tuple(str(v) for v in labels)
    tag = meta.get("class_names")
    if tag is not None and tag != "imagenet":
        return None
    names = imagenet_classes()
    return names if num_classes == len(names) else None


def has_background(meta: Mapping[str, Any], num_classes: int) -> bool:
    """True when output 0 is a background class to drop: the file's ``background_class`` metadata, else
    1001 outputs (TensorFlow's background + ImageNet-1k layout)."""
    flag = meta.get("background_class")
    if isinstance(flag, int):
        return bool(flag) and num_classes > 1
    return num_classes == TF_BACKGROUND_CLASSES


def squeeze_scores(scores: np.ndarray) -> np.ndarray:
    """(N, C), (N, C, 1, 1), (N, 1, 1, C) or (N,) -> (N, C); a spatial map (N, C, H, W) is an error."""
    s = np.asarray(scores)
    if s.ndim <= 1:
        return s.reshape(len(s), -1) if s.ndim == 1 else s.reshape(1, 1)
    sized = [d for d in s.shape[1:] if d != 1]
    if len(sized) > 1:
        raise EdgecnnError(f"model output of shape {list(s.shape)} is not a classifier's (expected (N, C), "
                           "(N, C, 1, 1) or (N, 1, 1, C)); a detection or segmentation file is recognised by the "
                           "commands ('edgecnn inspect FILE', --task, --head).")
    return s.reshape(len(s), -1)


def class_scores(scores: np.ndarray, meta: Mapping[str, Any] | None = None) -> np.ndarray:
    """A classifier's raw output -> (N, C) scores, background output dropped where there is one.

    Probabilities stay probabilities: after dropping the background they are renormalised; logits just
    lose their first column (softmax over the rest is the same renormalisation)."""
    task = (meta or {}).get("task") or "classification"
    if task != "classification":
        raise EdgecnnError(f"this is a {task} file (edgecnn.task metadata): class scores, top-k and accuracy are for "
                           "classifiers; 'edgecnn predict' prints its boxes or per-class pixel shares.")
    s = squeeze_scores(scores)
    if s.shape[1] > 1 and has_background(meta or {}, s.shape[1]):
        prob = is_probability(s)
        s = s[:, 1:]
        if prob:
            total = s.sum(axis=1, keepdims=True, dtype=np.float64)
            s = (s / np.where(total > 0, total, 1.0)).astype(s.dtype)
    return s


def output_notice(meta: Mapping[str, Any], num_classes: int) -> str | None:
    """One line saying how the output is read when that is not plain (N, C) class scores, else None."""
    if has_background(meta, num_classes):
        return (f"{num_classes} outputs read as TensorFlow's background + ImageNet-1k layout: output 0 "
                "(background) dropped, the rest are the 1000 ImageNet classes.")
    return None


def is_probability(scores: np.ndarray, atol: float = 1e-3) -> bool:
    """True when every row is already a probability distribution (in [0, 1], summing to 1)."""
    s = np.asarray(scores, dtype=np.float64)
    return bool(s.size) and bool(np.all(s >= 0) and np.all(s <= 1)
                                 and np.allclose(s.sum(axis=-1), 1.0, atol=atol))


def softmax(scores: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis, computed in float64, returned as float32."""
    s = np.asarray(scores, dtype=np.float64)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Softmax the scores unless they already are probabilities."""
    s = np.asarray(scores)
    return s.astype(np.float32) if is_probability(s) else softmax(s)


def topk(scores: np.ndarray, k: int = 5, names: Sequence[str] | None = None) -> list[list[dict[str, Any]]]:
    """Top-``k`` classes per row of ``scores`` (N x classes, logits or probabilities).

    Each row gives ``[{"rank", "index", "label", "probability"}, ...]``, best first (by score); ``label`` is the
    class name when ``names`` is given, else the index as a string.
    """
    classes, probs = topk_arrays(scores, k)
    return [[{"rank": r + 1, "index": int(i), "label": names[i] if names else str(int(i)), "probability": float(p)}
             for r, (i, p) in enumerate(zip(row_idx, row_p, strict=True))]
            for row_idx, row_p in zip(classes, probs, strict=True)]


def topk_arrays(scores: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (indices int64, probabilities float32) per row of ``scores``, best first: softmax unless already
    probabilities, stable order on ties (the rule of :func:`topk`, as arrays for batch writers)."""
    raw = np.asarray(squeeze_scores(scores), dtype=np.float64)
    probs = to_probabilities(raw)
    k = max(1, min(int(k), probs.shape[1]))
    # ranked by the scores themselves: softmax keeps their order, but float32 probabilities of close logits
    # (an untrained net's, ~1e-10 apart) round to ties
    idx = np.argsort(-raw, axis=1, kind="stable")[:, :k]
    return idx.astype(np.int64), np.take_along_axis(probs, idx, axis=1).astype(np.float32)
