"""A user's ``.onnx`` file made ready for every command: opened, normalised, its input and output read, and
what was changed or assumed said (onnx + numpy only, torch-free).

    from edgecnn.modelfile import prepare

    prepared = prepare("squeezenet.onnx", min_opset=13, preprocess={"size": 224, "bgr": True})
    for line in prepared.notices:          # what was normalised and what was assumed, one line each
        print("note:", line)
    Engine(prepared.path)                  # the file itself, or its normalised copy

Steps, each stopping at its first failure with one :class:`EdgecnnError` line, before any option of a
command is looked at: :func:`edgecnn.onnxfile.open_model` (is it a file, ONNX, a graph with nodes, its
external data there), :func:`edgecnn.normalize.normalize` (initializers listed as inputs, unused inputs,
old opsets, unknown operators), :func:`edgecnn.io_spec.detect` (one 4-D image input, layout, size,
preprocessing, classes).

**Why a cached copy, not a model in memory.** When the normalised model differs from the file, or the file
carries no edgecnn metadata, or preprocessing options are given, the runtime runs a copy written once under
``<edgecnn cache>/normalized/<key>/<file name>``: the normalised graph (weights embedded, IR >= 4, symbolic
spatial dims fixed to the chosen size) with the detected and given choices saved as edgecnn metadata. Every
part already takes a path: the Engine, ONNX Runtime's profiler and quantizer (which read files), benchmarks
run in subprocesses, Ray actors (sent the file's bytes), the Triton repository and the ORT-format converter.
A copy reaches all of them with no new argument, and its metadata carries the preprocessing and the class
names to each of them, so ``--bgr`` or ``--labels`` mean the same in ``predict`` as in a Ray actor. The key
is the SHA-256 of the file (and its external data) with the options and the edgecnn version, so a changed
file or option never reuses a stale copy; the copy keeps the file's name, so reports name the user's model.
An edgecnn export with no options is run as it is (no copy, no notices).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from edgecnn import onnxfile
from edgecnn._io import sha256_file, user_cache_dir
from edgecnn.errors import EdgecnnError
from edgecnn.io_spec import InputSpec, detect, read_labels, save_metadata
from edgecnn.normalize import Normalized, normalize
from edgecnn.outputs import check_writable

#: the ``io_spec.detect`` keyword arguments a command's preprocessing options map to
PREPROCESS_KEYS = ("layout", "size", "bgr", "input_range", "mean", "std", "crop_fraction", "labels")
#: the overrides of what a detection or segmentation file from elsewhere is (``io_spec.detect`` keywords too)
TASK_KEYS = ("task", "head", "box_format", "letterbox", "score_threshold", "iou_threshold")


@dataclass(frozen=True)
class Prepared:
    """A user's file ready to run: ``path`` is what to run, ``source`` what the user gave."""

    source: Path
    path: Path
    #: one line per change to the graph and per assumption about the input, for ``note:`` lines
    notices: tuple[str, ...]
    spec: InputSpec | None = None
    #: the normalisation notices alone (graph changes)
    changes: tuple[str, ...] = field(default=())

    @property
    def copied(self) -> bool:
        """True when ``path`` is a normalised copy rather than the user's file."""
        return self.path != self.source


def open_normalized(path: str | os.PathLike, *, min_opset: int | None = None,
                    load_data: bool = True) -> Normalized:
    """Open ``path`` (ordered bad-file checks) and normalise it: ``(model, notices)``."""
    return normalize(onnxfile.open_model(path, load_data=load_data), min_opset=min_opset)


def _clean(preprocess: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options actually given (None dropped, ``crop_fraction`` None kept as 'no crop'); labels read."""
    given: dict[str, Any] = {}
    for key, value in dict(preprocess or {}).items():
        if key not in PREPROCESS_KEYS + TASK_KEYS:
            raise EdgecnnError(f"unknown preprocessing option {key!r}; use {', '.join(PREPROCESS_KEYS + TASK_KEYS)}.")
        if value is None or (key == "crop_fraction" and value == "auto"):
            continue
        if key == "crop_fraction" and value == "none":
            value = None
        if key == "labels" and isinstance(value, str | os.PathLike):
            value = read_labels(value)
        if key in ("size", "mean", "std", "labels") and not isinstance(value, int | float | str):
            value = tuple(value)
        given[key] = value
    return given


def _key(source: Path, model: onnx.ModelProto, min_opset: int | None, given: Mapping[str, Any]) -> str:
    from edgecnn import __version__

    h = hashlib.sha256()
    h.update(sha256_file(source).encode())
    for name in onnxfile.external_data_files(model):
        h.update(sha256_file(source.parent / name).encode())
    h.update(json.dumps({"min_opset": min_opset, "options": given, "edgecnn": __version__},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


def _fix_spatial_dims(model: onnx.ModelProto, spec: InputSpec) -> str | None:
    """Give symbolic spatial dims of the image input the chosen size; a notice when it did."""
    value = next(i for i in model.graph.input if i.name == spec.input_name)
    dims = value.type.tensor_type.shape.dim
    axes = (2, 3) if spec.config.layout == "NCHW" else (1, 2)
    fixed = []
    for axis, size in zip(axes, spec.config.input_size, strict=True):
        if not dims[axis].HasField("dim_value"):
            fixed.append(f"{dims[axis].dim_param or '?'}={size}")
            dims[axis].Clear()
            dims[axis].dim_value = int(size)
    if not fixed:
        return None
    return f"symbolic spatial dims of input {spec.input_name!r} fixed to the chosen size ({', '.join(fixed)})."


def cache_root() -> Path:
    """Where normalised copies live: ``<edgecnn cache>/normalized``."""
    return user_cache_dir() / "normalized"


def prepare(path: str | os.PathLike, *, min_opset: int | None = None,
            preprocess: Mapping[str, Any] | None = None, write: bool = True) -> Prepared:
    """Open, normalise and read ``path``; return what to run and what to tell the user (module docstring).

    ``min_opset``: the opset the next step needs (13 for per-channel QDQ quantization). ``preprocess``:
    choices for files without metadata, the keyword arguments of :func:`edgecnn.io_spec.detect`
    (``layout``, ``size``, ``bgr``, ``input_range``, ``mean``, ``std``, ``crop_fraction`` ('none': no crop),
    ``labels`` (a file or names)); None values are not given. ``write=False`` only reads: no copy is
    written and ``path`` is the source (for ``inspect``).
    """
    source = Path(path)
    skeleton = onnxfile.open_model(source, load_data=False)
    given = _clean(preprocess)
    model, found = normalize(skeleton, min_opset=min_opset)
    spec = detect(model, **given)
    fixed = _fix_spatial_dims(model, spec)
    changes = (*found, fixed) if fixed else tuple(found)
    notices = changes + tuple(f"assumed {a}" for a in spec.all_assumed)
    foreign = not onnxfile.read_metadata(skeleton)
    if not write or not (changes or given or foreign):
        return Prepared(source, source, notices, spec, changes)
    target = cache_root() / _key(source, skeleton, min_opset, given) / source.name
    if not target.is_file():
        try:
            check_writable(target.parent)
        except EdgecnnError as e:
            raise EdgecnnError(f"edgecnn's cache is not usable for the normalised copy of {source.name} ({e}); set "
                               "EDGECNN_CACHE_DIR to a writable folder") from None
        if onnxfile.external_data_files(skeleton):  # normalise again with the weights in memory
            model, _ = open_normalized(source, min_opset=min_opset)
            _fix_spatial_dims(model, spec)
        new_folder = not target.parent.exists()
        onnxfile.save(save_metadata(model, spec), target)
        _NEW_COPIES.append(target.parent if new_folder else target)
    return Prepared(source, target, notices, spec, changes)


#: normalised copies this process wrote (removed by :func:`forget_new_copies` when the command fails)
_NEW_COPIES: list[Path] = []


def forget_new_copies() -> None:
    """Remove the normalised copies this process wrote: the CLI calls it when a command fails, so a file that
    fails leaves nothing in the cache."""
    import shutil

    while _NEW_COPIES:
        p = _NEW_COPIES.pop()
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


__all__ = ["PREPROCESS_KEYS", "TASK_KEYS", "Prepared", "cache_root", "forget_new_copies", "open_normalized", "prepare"]
