"""The one place that opens, checks, describes and saves ``.onnx`` files (torch-free: onnx and numpy only).

    model = open_model("resnet50.onnx")                    # weights loaded, one clear error per bad file
    skeleton = open_model("resnet50.onnx", load_data=False)  # graph and metadata only (fast)
    meta = read_metadata("resnet50.onnx")                  # the edgecnn metadata, decoded
    save(model, "out.onnx")                                # atomic; weights beside it above 2 GB

Opening checks, in order, and stops at the first failure with one :class:`EdgecnnError` line: the path
exists and is a file, it is not empty, it parses as an ONNX protobuf (not truncated), it has a graph,
the graph has nodes, and every external-data file it points to is beside it (inside its folder, long
enough). Every part opens files through :func:`open_model`; ``onnx.load`` is banned elsewhere (ruff
TID251). Normalising foreign files (initializers listed as inputs, unused inputs, old opsets) belongs
here too, as a step after :func:`open_model`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx

from edgecnn import metadata, paths
from edgecnn._io import atomic_path
from edgecnn.errors import EdgecnnError


def _first_line(e: BaseException, limit: int = 200) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:limit]


# --------------------------------------------------------------------------- open


def _check_path(path: Path) -> None:
    if not path.exists():
        raise EdgecnnError(f"model file not found: {path}")
    if not path.is_file():
        raise EdgecnnError(f"not a file: {path} (expected an .onnx model file)")
    if path.stat().st_size == 0:
        raise EdgecnnError(f"cannot load {path}: the file is empty (0 bytes), not an ONNX model; re-export or "
                           "download it again.")


def _check_graph(model: onnx.ModelProto, what: str) -> None:
    if not model.HasField("graph"):
        raise EdgecnnError(f"cannot load {what}: not a valid ONNX model (no graph in the file; truncated, or "
                           "another format?).")
    if not model.graph.node:
        raise EdgecnnError(f"cannot load {what}: the ONNX graph has 0 nodes; nothing to run.")


def external_data_files(model: onnx.ModelProto) -> list[str]:
    """Relative names of the side files the model's tensors point to (every graph and subgraph), unchecked."""
    names = {e.value for t in paths.tensors(model) if t.data_location == onnx.TensorProto.EXTERNAL
             for e in t.external_data if e.key == "location"}
    return sorted(names)


def check_external_data(model: onnx.ModelProto, base: str | os.PathLike) -> list[Path]:
    """Check every external-data file by the path policy (:mod:`edgecnn.paths`: inside ``base`` once links are
    followed, in every subgraph) and its length; return their relative paths."""
    return [Path(ref.location) for ref in paths.external_data(model, base)]


def open_model(path: str | os.PathLike, *, load_data: bool = True) -> onnx.ModelProto:
    """Open an ``.onnx`` file with the checks above; ``load_data=False`` leaves external weights on disk."""
    p = Path(path)
    _check_path(p)
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf DecodeError and friends
        raise EdgecnnError(f"cannot load {p}: not a valid ONNX model (not a readable ONNX file: corrupt or "
                           f"truncated?): {_first_line(e)}") from None
    _check_graph(model, str(p))
    check_external_data(model, p.parent)
    if load_data and external_data_files(model):
        try:
            onnx.load_external_data_for_model(model, str(p.parent))
        except Exception as e:  # noqa: BLE001
            raise EdgecnnError(f"cannot load the external data of {p}: {_first_line(e)}") from None
    return model


def from_bytes(data: bytes, what: str = "model") -> onnx.ModelProto:
    """Parse a serialized model (an in-memory export) with the same graph checks as :func:`open_model`."""
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001
        raise EdgecnnError(f"cannot load {what}: not a valid ONNX model: {_first_line(e)}") from None
    _check_graph(model, what)
    return model


def file_size(path: str | os.PathLike) -> int:
    """Bytes of a model file plus the external-data files its tensors point to (0 for those missing)."""
    p = Path(path)
    total = p.stat().st_size
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception:  # noqa: BLE001 - the size of an unreadable file is just its bytes
        return total
    try:
        refs = paths.external_data(model, p.parent, check_files=False)
    except EdgecnnError:
        return total
    return total + sum(r.path.stat().st_size for r in refs if r.path.is_file())


# --------------------------------------------------------------------------- check


def check(model: onnx.ModelProto | str | os.PathLike, what: str = "the model") -> None:
    """Run ONNX's checker on a model or a file (by path: files over 2 GB); one :class:`EdgecnnError` line if
    it fails."""
    try:
        onnx.checker.check_model(model if isinstance(model, onnx.ModelProto) else str(model))
    except Exception as e:  # noqa: BLE001
        raise EdgecnnError(f"{what} failed ONNX's checker: {_first_line(e)}") from None


def input_info(model: onnx.ModelProto) -> tuple[str, list[Any], int]:
    """(name, dims, element type) of the one real graph input (initializers listed as inputs excluded).

    Dims are ints, the ``dim_param`` string of a symbolic dim, or None.
    """
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise EdgecnnError(f"expected a model with one input, found {len(inputs)}.")
    t = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
    return inputs[0].name, dims, t.elem_type


def fixed_batch(model: onnx.ModelProto) -> int | None:
    """The input's fixed batch size, or None when it is dynamic."""
    _, dims, _ = input_info(model)
    return dims[0] if dims and isinstance(dims[0], int) and dims[0] > 0 else None


# --------------------------------------------------------------------------- metadata


def read_metadata(model: onnx.ModelProto | str | os.PathLike) -> dict[str, Any]:
    """The decoded edgecnn metadata of a model or file (empty dict for a foreign file)."""
    if not isinstance(model, onnx.ModelProto):
        model = open_model(model, load_data=False)
    return metadata.decode({p.key: p.value for p in model.metadata_props})


def other_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The metadata_props that are not edgecnn's."""
    return {p.key: p.value for p in model.metadata_props if not p.key.startswith(metadata.PREFIX)}


def set_metadata(model: onnx.ModelProto, meta: Mapping[str, Any], *, sort: bool = True) -> None:
    """Replace the model's edgecnn metadata_props with ``metadata.encode(meta)`` (other keys kept, first)."""
    keep = list(other_metadata(model).items())
    encoded = metadata.encode(meta).items()
    del model.metadata_props[:]
    for k, v in keep + (sorted(encoded) if sort else list(encoded)):
        model.metadata_props.add(key=k, value=v)


# --------------------------------------------------------------------------- save


def over_protobuf_limit(model: onnx.ModelProto) -> bool:
    """True if ``model`` cannot be one protobuf (ONNX's 2 GB limit).

    ``ByteSize()`` walks every tensor (1 s for VGG-16's 550 MB), so the initializers' sizes from their
    dims decide first; only a model within 64 MB of the limit is measured exactly.
    """
    limit = onnx.checker.MAXIMUM_PROTOBUF  # read at call time (tests lower it)
    estimate = 0
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize if t.data_type else 4
        estimate += n * itemsize
    if estimate + (64 << 20) < limit:
        return False
    return model.ByteSize() >= limit


def write_model(model: onnx.ModelProto, path: str | os.PathLike, external_location: str | None = None) -> bool:
    """Write ``model`` to ``path`` as is (not atomic: callers own the temporary path); weights embedded unless
    over the 2 GB limit or ``external_location`` is given. Returns True when the weights went to a side file."""
    path = Path(path)
    if external_location is None and not over_protobuf_limit(model):
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
        return False
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=external_location or f"{path.name}.data", size_threshold=1024)
    return True


def save(model: onnx.ModelProto, path: str | os.PathLike, *, overwrite: bool = True) -> bool:
    """Write ``model`` to ``path`` atomically (an interrupted write leaves nothing under the name).

    Above 2 GB the weights go to ``<name>.data`` beside it (written first, then the model is renamed into
    place; ONNX then moves the weights out of ``model`` in memory). Returns True when they did. ``overwrite=False``:
    an existing file is an error, decided when the file is published (:func:`edgecnn._io.atomic_path`).
    """
    path = Path(path)
    if not over_protobuf_limit(model):
        with atomic_path(path, suffix=".onnx", overwrite=overwrite) as tmp:
            write_model(model, tmp)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    data = path.with_name(f"{path.name}.data")
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as work:
        write_model(model, Path(work) / path.name, external_location=data.name)
        os.replace(Path(work) / data.name, data)
        os.replace(Path(work) / path.name, path)
    return True
