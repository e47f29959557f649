"""The path policy for what a model file points to (onnx only): every external-data file a tensor names, in the
main graph and in every subgraph (``If``/``Loop``/``Scan`` bodies), must resolve, symbolic links followed, to a
file inside the model's own folder. ONNX Runtime sets the same bar; anything else is one :class:`EdgecnnError`
line naming the tensor and the path, raised before the file is opened.

Every reader of a model and its side files goes through here: :func:`edgecnn.onnxfile.open_model` (so every
command), and the writers that copy side files (the Triton repository, the ORT-format converter) copy exactly
the files :func:`external_data` returns.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgecnn.errors import EdgecnnError


def graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph below it, depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from graphs(g)


def tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor that can hold weights: initializers (sparse ones too) and tensor attributes, in every graph."""
    for g in graphs(model.graph):
        yield from g.initializer
        for s in g.sparse_initializer:
            yield s.values
            yield s.indices
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                for s in [attr.sparse_tensor] if attr.HasField("sparse_tensor") else []:
                    yield s.values
                    yield s.indices


@dataclass(frozen=True)
class ExternalData:
    """One side file: its name as the model writes it, the file it resolves to, and the bytes tensors need."""

    location: str
    path: Path
    needed: int
    tensor: str


def _end(t: onnx.TensorProto, info: dict[str, str]) -> int:
    try:
        return max(0, int(info.get("offset", 0) or 0)) + max(0, int(info.get("length", 0) or 0))
    except ValueError:
        raise EdgecnnError(f"tensor {t.name!r}: external data offset/length are not integers "
                           f"({info.get('offset')!r}, {info.get('length')!r}).") from None


def resolve_inside(base: str | os.PathLike, location: str, tensor: str) -> Path:
    """The file ``location`` names, resolved (links followed); an error unless it lies inside ``base``."""
    root = Path(os.path.realpath(base))
    rel = Path(location)
    if not location or rel.is_absolute() or ".." in rel.parts or "\0" in location:
        raise EdgecnnError(f"tensor {tensor!r}: external data location {location!r} must be a relative path inside "
                           "the model's folder.")
    resolved = Path(os.path.realpath(root / rel))
    if resolved != root and root not in resolved.parents:
        raise EdgecnnError(f"tensor {tensor!r}: external data {location!r} resolves to {resolved}, outside the model's "
                           f"folder {root} (a symbolic link?); copy the data file beside the .onnx file.")
    return resolved


def external_data(model: onnx.ModelProto, base: str | os.PathLike, *, check_files: bool = True) -> list[ExternalData]:
    """The side files of ``model`` (whose file is in folder ``base``), one per location, checked by the policy
    above and, with ``check_files``, present and long enough for every tensor stored in them."""
    found: dict[str, ExternalData] = {}
    for t in tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        path = resolve_inside(base, location, t.name)
        end = _end(t, info)
        prev = found.get(location)
        if prev is None or end > prev.needed:
            found[location] = ExternalData(location, path, end, t.name)
    if check_files:
        for ref in found.values():
            if not ref.path.is_file():
                raise EdgecnnError(f"external data file of the model not found: {Path(base) / ref.location} "
                                   f"(tensor {ref.tensor!r}; keep it beside the .onnx file).")
            size = ref.path.stat().st_size
            if size < ref.needed:
                raise EdgecnnError(f"external data file {Path(base) / ref.location} is truncated ({size} bytes, "
                                   f"tensor {ref.tensor!r} needs {ref.needed}); copy it again.")
    return sorted(found.values(), key=lambda r: r.location)


__all__ = ["ExternalData", "external_data", "graphs", "resolve_inside", "tensors"]
