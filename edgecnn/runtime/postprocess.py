"""Scores to answers: softmax (only when needed), top-k and class names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names shipped in ``edgecnn/data/imagenet_classes.txt``."""
    text = resources.files("edgecnn").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


def class_names(meta: Mapping[str, Any], num_classes: int) -> tuple[str, ...] | None:
    """Names for a model's classes: ImageNet's for 1000-class models, else None (use indices).

    A file's ``class_names`` metadata decides when present ('imagenet' or empty).
    """
    tag = meta.get("class_names")
    if tag is not None and tag != "imagenet":
        return None
    names = imagenet_classes()
    return names if num_classes == len(names) else None


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

    Each row gives ``[{"rank", "index", "label", "probability"}, ...]``, best first; ``label`` is the
    class name when ``names`` is given, else the index as a string.
    """
    probs = to_probabilities(np.asarray(scores).reshape(len(scores), -1))
    k = max(1, min(int(k), probs.shape[1]))
    out = []
    for row in probs:
        idx = np.argsort(-row, kind="stable")[:k]
        out.append([{"rank": r + 1, "index": int(i), "label": names[i] if names else str(int(i)),
                     "probability": float(row[i])} for r, i in enumerate(idx)])
    return out
