"""How close two sets of model outputs are (pure numpy): errors, cosine, SQNR, top-k accuracy and agreement.

Used by the export validation (torch vs ONNX), the accuracy reports (int8/fp16 vs fp32) and the per-layer
quantization error. Outputs are compared row by row, one row per input (N x anything is flattened to N x C).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


def max_abs_error(reference: np.ndarray, test: np.ndarray) -> float:
    """Largest absolute difference (computed in the inputs' own dtype)."""
    return float(np.max(np.abs(np.asarray(reference) - np.asarray(test))))


def max_rel_error(reference: np.ndarray, test: np.ndarray) -> float:
    """Largest absolute difference relative to the reference's largest magnitude."""
    return max_abs_error(reference, test) / max(float(np.max(np.abs(np.asarray(reference)))), 1e-30)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity of two N x C arrays (1.0 for two zero rows, 0.0 for one zero row)."""
    a, b = _rows(a), _rows(b)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = np.sum(a * b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * nb)
    cos[(na == 0) & (nb == 0)] = 1.0
    return np.nan_to_num(cos, nan=0.0)


def sqnr_db(reference: np.ndarray | Sequence[np.ndarray], test: np.ndarray | Sequence[np.ndarray]) -> float:
    """Signal-to-quantization-noise ratio in dB: 10 log10(sum(ref^2) / sum((ref - test)^2)); inf if equal.

    A list of arrays (the batches of one tensor) counts as their concatenation.
    """
    r, t = _flat(reference), _flat(test)
    noise = float(np.sum((r - t) ** 2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(max(float(np.sum(r ** 2)), 1e-300) / noise))


def _flat(x: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x.astype(np.float64, copy=False)
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in x])


def topk_indices(logits: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores per row, best first (N x k)."""
    logits = np.asarray(logits).reshape(len(logits), -1)
    k = max(1, min(k, logits.shape[1]))
    idx = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(logits, idx, axis=1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the top ``k`` scores."""
    top = topk_indices(logits, k)
    return float(np.mean(np.any(top == np.asarray(labels).reshape(-1, 1), axis=1)))


def topk_agreement(reference: np.ndarray, test: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose reference top-1 class is among the test's top ``k`` (k=1: same top-1)."""
    return topk_accuracy(test, topk_indices(reference, 1)[:, 0], k)


def topk_set_agreement(reference: np.ndarray, test: np.ndarray, k: int = 5) -> float:
    """Fraction of rows whose top-``k`` classes are the same set in both (order ignored)."""
    a, b = np.sort(topk_indices(reference, k), axis=1), np.sort(topk_indices(test, k), axis=1)
    return float(np.mean(np.all(a == b, axis=1)))
