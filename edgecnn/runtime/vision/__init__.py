"""The task seam of the runtime: what a file's outputs mean, one module per task (torch-free).

``classification`` (a file without ``edgecnn.task`` metadata), ``detection`` (boxes, scores, labels; NMS in the
graph or on the host) and ``segmentation`` (per-pixel class scores). Each module owns its task's post-processing,
its agreement metric (used by export validation against torch and by reports) and its drawing for
``predict --save``; :func:`task_module` looks one up. (The name "detect" elsewhere in edgecnn is ``io_spec``'s
detection of a foreign file's I/O layout: unrelated.)
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from edgecnn.errors import EdgecnnError

#: the tasks edgecnn knows, in the order ``list`` shows them
TASKS = ("classification", "detection", "segmentation")


def task_of(meta: Mapping[str, Any]) -> str:
    """The task a file's metadata declares; a file without the key is a classifier."""
    task = meta.get("task") or "classification"
    if task not in TASKS:
        raise EdgecnnError(f"unknown task {task!r} in the file's edgecnn.task metadata: edgecnn knows "
                           f"{', '.join(TASKS)}.")
    return str(task)


def task_module(task: str) -> ModuleType:
    """The module that post-processes, compares and draws ``task``'s outputs."""
    if task not in TASKS:
        raise EdgecnnError(f"unknown task {task!r}: edgecnn knows {', '.join(TASKS)}.")
    return importlib.import_module(f"edgecnn.runtime.vision.{task}")


def output_roles(meta: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> ``{"role", "batch"}`` from the file's ``edgecnn.outputs`` metadata (empty when absent)."""
    out: dict[str, dict[str, Any]] = {}
    for item in meta.get("outputs") or []:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            out[item["name"]] = {"role": str(item.get("role", "")), "batch": bool(item.get("batch", True))}
    return out
