"""Classification: (N, C) scores -> top-k classes (the post-processing of :mod:`edgecnn.runtime.postprocess`)."""

from __future__ import annotations

from edgecnn.runtime.postprocess import class_names, class_scores, topk

#: the outputs a classifier's file names (output 0: the class scores)
ROLES = ("logits",)

__all__ = ["ROLES", "class_names", "class_scores", "topk"]
