"""Normalise an ONNX classifier that edgecnn did not write, without changing its math (onnx + numpy only).

    from edgecnn.normalize import normalize

    model, notices = normalize(model, min_opset=13)   # e.g. before per-channel QDQ quantization
    for line in notices:
        print("note:", line)

Files from the ONNX Model Zoo (converted from Caffe2/Caffe: IR version 3, opsets 3-9), tf2onnx, or
older exporters differ from edgecnn's own exports in ways that break later steps:

- **initializers listed as graph inputs** (IR < 4 required it): ONNX Runtime treats them as inputs a
  caller may override, and ``onnxruntime.quantization`` writes new zero-point initializers that the
  ONNX checker then rejects ("in initializer but not in graph input"). They become constants: removed
  from the inputs, IR version raised to at least 4.
- **inputs no node reads** (an extra ``OC2_DUMMY_*`` or label input): dropped, so the file has the one
  image input every command expects.
- **an opset too old** for what comes next (ONNX Runtime runs opset >= 7; QDQ needs >= 10, per-channel
  QDQ >= 13): upgraded with ``onnx.version_converter``.
- **operators no runtime knows** (neither in ``onnx.defs`` at the file's opset, nor in ONNX Runtime's
  ``com.microsoft`` contrib domains, nor a function defined in the file): one clear error naming them.

Each change is one line in ``notices``; a file that needs none (every edgecnn export) comes back
unchanged with no notices. The model is never loaded from disk here: pass a ``ModelProto`` in.
"""

from __future__ import annotations

from typing import NamedTuple

import onnx
from onnx import defs, version_converter

from edgecnn.errors import EdgecnnError
from edgecnn.paths import graphs

#: oldest default-domain opset ONNX Runtime runs (ONNX 1.2); older files are always upgraded to it
ORT_MIN_OPSET = 7
#: opsets needed by later steps (``min_opset=``): QuantizeLinear/DequantizeLinear, and their ``axis``
QDQ_MIN_OPSET = 10
PER_CHANNEL_MIN_OPSET = 13
#: IR version from which initializers need not be graph inputs (ONNX 1.3)
MIN_IR_VERSION = 4
#: operator domains implemented by ONNX Runtime itself (contrib and internal layout ops)
ORT_DOMAINS = frozenset({"com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental",
                         "com.microsoft.dml", "com.ms.internal.nhwc"})
_DEFAULT_DOMAINS = ("", "ai.onnx")


class Normalized(NamedTuple):
    """The normalised model and one line per change (empty when nothing was changed)."""

    model: onnx.ModelProto
    notices: list[str]


def _consumed(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name read by a node (subgraphs included) or returned as a graph output."""
    names = {o.name for o in graph.output}
    for g in graphs(graph):
        for node in g.node:
            names.update(node.input)
        names.update(o.name for o in g.output)
    names.discard("")
    return names


def default_opset(model: onnx.ModelProto) -> int | None:
    """The model's default-domain (``ai.onnx``) opset, or None when it imports none."""
    for imp in model.opset_import:
        if imp.domain in _DEFAULT_DOMAINS:
            return int(imp.version)
    return None


def unknown_operators(model: onnx.ModelProto) -> list[str]:
    """``domain::Op`` (or ``Op``) of every operator neither ONNX (at the file's opset), ONNX Runtime's
    own domains, nor a function defined in the file provides, sorted; empty when all are known."""
    versions = {imp.domain or "": int(imp.version) for imp in model.opset_import}
    versions.setdefault("", versions.get("ai.onnx", 0))
    functions = {(f.domain, f.name) for f in model.functions}
    unknown: set[str] = set()
    for g in graphs(model.graph):
        for node in g.node:
            domain = "" if node.domain in _DEFAULT_DOMAINS else node.domain
            if (node.domain, node.op_type) in functions or domain in ORT_DOMAINS:
                continue
            label = node.op_type if domain == "" else f"{domain}::{node.op_type}"
            version = versions.get(domain)
            if version is None:
                unknown.add(f"{label} (domain {domain!r} not imported)")
                continue
            try:
                defs.get_schema(node.op_type, max_inclusive_version=version, domain=domain)
            except defs.SchemaError:
                newer = defs.has(node.op_type, domain)
                unknown.add(f"{label} (not defined at opset {version})" if newer else label)
    return sorted(unknown)


def _upgrade(model: onnx.ModelProto, target: int, reason: str, notices: list[str]) -> onnx.ModelProto:
    before = default_opset(model)
    try:
        converted = version_converter.convert_version(model, target)
    except Exception as e:  # noqa: BLE001 - the converter raises RuntimeError/ValidationError with long text
        text = (str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__).rstrip(".")
        raise EdgecnnError(f"cannot upgrade the model from opset {before} to {target} ({reason}) with "
                           f"onnx.version_converter: {text}. Re-export the model at opset {target} or newer.") from None
    # the converter rebuilds the graph: keep what describes the file
    del converted.metadata_props[:]
    converted.metadata_props.extend(model.metadata_props)
    for field in ("producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(converted, field, getattr(model, field))
    converted.ir_version = max(converted.ir_version, model.ir_version, MIN_IR_VERSION)
    notices.append(f"opset {before} upgraded to {target} with onnx.version_converter ({reason}).")
    return converted


def normalize(model: onnx.ModelProto, *, min_opset: int | None = None) -> Normalized:
    """Return a copy of ``model`` that every edgecnn step accepts, and one notice per change.

    ``min_opset``: the default-domain opset the next step needs (:data:`QDQ_MIN_OPSET`,
    :data:`PER_CHANNEL_MIN_OPSET`); older files are upgraded with ``onnx.version_converter``. Raises
    :class:`EdgecnnError` for operators no runtime provides and for an opset the converter cannot
    upgrade. Graph inputs and outputs, weights and the computed function stay the same.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    notices: list[str] = []
    graph = out.graph
    opset = default_opset(out)
    if opset is None:
        raise EdgecnnError("the model imports no ai.onnx opset (opset_import lacks the default domain); "
                           "it is not a standard ONNX graph.")

    unknown = unknown_operators(out)
    if unknown:
        shown = ", ".join(unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
        raise EdgecnnError(f"unknown operators: {shown}; neither ONNX (opset {opset}) nor ONNX Runtime's "
                           "com.microsoft domain defines them. Convert the model with standard ONNX operators.")

    inits = {t.name for t in graph.initializer}
    as_inputs = [i.name for i in graph.input if i.name in inits]
    if as_inputs:
        keep = [i for i in graph.input if i.name not in inits]
        del graph.input[:]
        graph.input.extend(keep)
        dummies = sum(1 for n in as_inputs if n.startswith("OC2_DUMMY"))
        extra = f", {dummies} of them Caffe2 OC2_DUMMY shape tensors" if dummies else ""
        notices.append(f"{len(as_inputs)} initializers were also listed as graph inputs (an IR 3 convention{extra}) "
                       "and became constants.")

    consumed = _consumed(graph)
    unused = [i.name for i in graph.input if i.name not in consumed]
    if unused:
        keep = [i for i in graph.input if i.name in consumed]
        del graph.input[:]
        graph.input.extend(keep)
        notices.append(f"dropped input{'s' if len(unused) > 1 else ''} no node reads: {', '.join(unused)}.")

    if out.ir_version < MIN_IR_VERSION:
        notices.append(f"IR version {out.ir_version} raised to {MIN_IR_VERSION} (initializers need not be inputs).")
        out.ir_version = MIN_IR_VERSION

    if opset < ORT_MIN_OPSET and (min_opset is None or min_opset < ORT_MIN_OPSET):
        out = _upgrade(out, ORT_MIN_OPSET, "ONNX Runtime runs opset 7 and newer", notices)
    if min_opset is not None and (default_opset(out) or 0) < min_opset:
        reason = ("per-channel QDQ quantization" if min_opset >= PER_CHANNEL_MIN_OPSET
                  else "QDQ quantization" if min_opset >= QDQ_MIN_OPSET else "the next step")
        out = _upgrade(out, min_opset, f"needed for {reason}", notices)
    return Normalized(out, notices)
