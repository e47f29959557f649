"""Head-aware int8 defaults for detection and segmentation files: what stays in float, from the graph and the
calibration ranges, and why.

Two rules, both applied through ONNX Runtime's own ``nodes_to_exclude`` (no graph surgery):

* **the decode tail stays float**: every node after the last compute layer (``Conv``, ``ConvTranspose``, ``Gemm``,
  ``MatMul``) on all of its paths to the outputs, and not one itself: box decoding (``Exp``, ``Mul``/``Add`` with
  anchors), score activations (``Sigmoid``, ``Softmax``), ``Reshape``/``Transpose``/``Concat`` chains, ``TopK``,
  ``Gather``, ``NonMaxSuppression``, a segmenter's final ``Resize``. The last convolutions themselves stay int8, each
  output with its own scale; what follows runs in float.
* **a Concat of mismatched ranges is split**: a ``Concat`` whose inputs' calibrated ranges (min-max, zero included,
  as ORT's min-max calibration computes them) differ by more than :data:`RANGE_FACTOR` would give its output one
  scale sized for the widest input (boxes in pixels beside scores in 0..1: the scores keep a level or two). It is
  excluded from quantization: each input keeps its own scale (its producer's QuantizeLinear) and the join is float.
  When a quantized layer consumes the joined tensor it quantizes it again with one scale; the plan says so.

In QDQ mode ORT quantizes a ``Concat``'s inputs and output each with its own calibrated range (no shared scale), so
the damage is the output's one scale; excluding the node removes it.

When they apply (``head``): ``on``; ``auto`` on a file whose metadata declares detection or segmentation, or whose
graph shows a head after its last compute layer (``NonMaxSuppression``/``TopK``, or a ``Concat`` of ranges more
than :data:`RANGE_FACTOR` apart: a foreign YOLO file); ``off``: naive int8.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgecnn import onnxfile
from edgecnn.errors import EdgecnnError

#: a Concat whose inputs' ranges differ by more than this factor gets no shared scale: with one uint8 scale over
#: all of it, the narrowest input would keep fewer than 256 / 16 = 16 levels
RANGE_FACTOR = 16.0
#: compute layers: a head's decode tail is everything after the last of them
COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
#: calibration rows used to measure the Concat inputs' ranges
RANGE_SAMPLES = 32
#: head handling: ``auto`` (detection and segmentation files, and graphs that show a head: :func:`detect_head`),
#: ``on``, ``off`` (naive int8)
HEAD_MODES = ("auto", "on", "off")
#: operators that mark a detector's head when they come after the last compute layer
HEAD_OPS = frozenset({"NonMaxSuppression", "TopK"})


@dataclass(frozen=True)
class HeadDecision:
    """One node kept out of int8 by the head rules."""

    node: str
    op_type: str
    #: ``float`` (in the decode tail) or ``split`` (a Concat of mismatched ranges: inputs keep their own scales)
    action: str
    reason: str
    #: a Concat's inputs' calibrated ranges (max - min, zero included)
    ranges: list[float] | None = None


@dataclass
class HeadPlan:
    """The head rules applied to one graph."""

    decisions: list[HeadDecision] = field(default_factory=list)
    factor: float = RANGE_FACTOR

    @property
    def nodes(self) -> list[str]:
        """The node names to keep in float."""
        return [d.node for d in self.decisions]

    def summary(self) -> str:
        """One line: how many nodes are kept in float and which Concats were split."""
        tail = [d for d in self.decisions if d.action == "float"]
        split = [d for d in self.decisions if d.action == "split"]
        mixed = [d for d in self.decisions if d.ranges is not None and _ratio(d.ranges) > self.factor]
        parts = [f"{len(tail)} node(s) after the last Conv/Gemm/MatMul (decoding, scores, NMS) kept in float"]
        if split:
            parts.append(f"{len(split)} Concat(s) split (input ranges differ > {self.factor:g}x): "
                         + ", ".join(d.node for d in split))
        if mixed and not split:
            parts.append(f"{len(mixed)} Concat(s) with input ranges > {self.factor:g}x apart, in float with the tail")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the factor, the rule, and every decision."""
        return {"range_factor": self.factor, "summary": self.summary(),
                "decisions": [asdict(d) for d in self.decisions]}


def _ratio(ranges: Sequence[float]) -> float:
    positive = [r for r in ranges if r > 0]
    if len(positive) < 2:
        return 1.0 if positive or not ranges else float("inf")
    return max(positive) / min(positive)


def head_aware(mode: str, meta: dict[str, Any]) -> bool:
    """Whether the head rules apply whatever the graph: ``on``, or ``auto`` on a detection or segmentation file
    (``auto`` on another file asks :func:`detect_head`)."""
    if mode not in HEAD_MODES:
        raise EdgecnnError(f"unknown head mode {mode!r}: choose one of {', '.join(HEAD_MODES)}.")
    if mode == "auto":
        return meta.get("task") in ("detection", "segmentation")
    return mode == "on"


def _quantizable_ops() -> set[str]:
    """Op types ONNX Runtime's static quantizer handles (its default ``op_types_to_quantize``)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return set(QDQRegistry) | set(QLinearOpsRegistry)


def decode_tail(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The nodes after the last compute layer (:data:`COMPUTE_OPS`) on every path, in graph order."""
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(model.graph.node):
        for name in n.input:
            consumers.setdefault(name, []).append(i)
    nodes = list(model.graph.node)
    feeds_compute = [False] * len(nodes)
    for i in range(len(nodes) - 1, -1, -1):  # graph order is topological: consumers come later
        feeds_compute[i] = any(nodes[j].op_type in COMPUTE_OPS or feeds_compute[j]
                               for out in nodes[i].output for j in consumers.get(out, []))
    return [n for i, n in enumerate(nodes) if n.op_type not in COMPUTE_OPS and not feeds_compute[i]]


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of the float32 activations of a graph (after ONNX shape inference)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - a graph ONNX cannot infer: measure no ranges
        inferred = model
    vis = [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    return {v.name for v in vis if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}


def tensor_ranges(path: str | os.PathLike, names: Sequence[str], data: np.ndarray, *, batch_size: int = 8
                  ) -> dict[str, float]:
    """The min-max range (zero included, as ORT's min-max calibration) of each named activation over ``data``."""
    import onnxruntime as ort

    from edgecnn.quantize.calibration import fit_batch

    model = onnxfile.open_model(path)
    have = {o.name for o in model.graph.output}
    for name in names:
        if name not in have:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    fixed = onnxfile.fixed_batch(model)
    x = fit_batch(data[:RANGE_SAMPLES], fixed)
    step = fixed or batch_size
    lo = dict.fromkeys(names, 0.0)
    hi = dict.fromkeys(names, 0.0)
    for s in range(0, len(x), step):
        outs = sess.run(list(names), {input_name: np.ascontiguousarray(x[s:s + step])})
        for name, v in zip(names, outs, strict=True):
            if np.size(v):
                lo[name] = min(lo[name], float(np.min(v)))
                hi[name] = max(hi[name], float(np.max(v)))
    return {name: hi[name] - lo[name] for name in names}


def _dynamic_inputs(n: onnx.NodeProto, floats: set[str], consts: set[str]) -> list[str]:
    return [i for i in n.input if i in floats and i not in consts]


def _constants(model: onnx.ModelProto) -> set[str]:
    return {i.name for i in model.graph.initializer} | {o for n in model.graph.node if n.op_type == "Constant"
                                                       for o in n.output}


def detect_head(path: str | os.PathLike, data: np.ndarray | None, *, factor: float = RANGE_FACTOR
                ) -> HeadPlan | None:
    """``head="auto"`` on a file that does not declare its task: the head rules (:func:`head_plan`) when its graph
    shows a detector's head after the last compute layer (``NonMaxSuppression`` or ``TopK``, or a ``Concat`` whose
    inputs' ranges on ``data`` differ by more than ``factor``: boxes beside scores), else None (a classifier)."""
    model = onnxfile.open_model(path)
    tail = decode_tail(model)
    if any(n.op_type in HEAD_OPS for n in tail):
        return head_plan(path, data, factor=factor)
    floats, consts = _float_tensors(model), _constants(model)
    concats = [n for n in tail if n.op_type == "Concat" and len(_dynamic_inputs(n, floats, consts)) >= 2]
    if not concats or data is None:
        return None
    ranges = tensor_ranges(Path(path), list(dict.fromkeys(i for n in concats
                                                         for i in _dynamic_inputs(n, floats, consts))), data)
    if any(_ratio([ranges[i] for i in _dynamic_inputs(n, floats, consts)]) > factor for n in concats):
        return head_plan(path, data, factor=factor)
    return None


def head_plan(path: str | os.PathLike, data: np.ndarray | None, *, factor: float = RANGE_FACTOR) -> HeadPlan:
    """The head rules on the (pre-processed) graph at ``path``, with Concat ranges measured on ``data``."""
    model = onnxfile.open_model(path)
    quantizable = _quantizable_ops()
    tail = decode_tail(model)
    in_tail = {n.name for n in tail}
    consts, floats = _constants(model), _float_tensors(model)
    concats = [n for n in model.graph.node if n.op_type == "Concat" and len(_dynamic_inputs(n, floats, consts)) >= 2]
    names = list(dict.fromkeys(i for n in concats for i in _dynamic_inputs(n, floats, consts)))
    ranges = tensor_ranges(Path(path), names, data) if names and data is not None else {}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    decisions: list[HeadDecision] = []
    mixed: dict[str, list[float]] = {}
    for n in concats:
        r = [round(ranges[i], 6) for i in n.input if i in ranges]
        if len(r) >= 2:
            mixed[n.name] = r
    for n in tail:
        if n.op_type not in quantizable or not any(o in floats for o in n.output):
            continue  # ORT leaves it in float anyway, or it computes shapes and indices: nothing to say
        r = mixed.get(n.name)
        why = "after the last Conv/Gemm/MatMul on every path (decoding, scores, NMS): float keeps pixels and scores"
        if r is not None and _ratio(r) > factor:
            why += f"; its inputs' ranges differ {_ratio(r):.0f}x (> {factor:g}x): one int8 scale would flatten the " \
                   "narrow ones"
        decisions.append(HeadDecision(n.name, n.op_type, "float", why, r))
    for n in concats:
        r = mixed.get(n.name)
        if n.name in in_tail or r is None or _ratio(r) <= factor:
            continue
        quantized_after = [c.name for o in n.output for c in consumers.get(o, []) if c.op_type in COMPUTE_OPS]
        why = (f"inputs' ranges differ {_ratio(r):.0f}x (> {factor:g}x): each input keeps its own scale, joined in "
               "float")
        if quantized_after:
            why += f"; {', '.join(quantized_after)} quantizes the joined tensor again (keep it in float if it ranks " \
                   "high in --explain)"
        decisions.append(HeadDecision(n.name, n.op_type, "split", why, r))
    return HeadPlan(decisions, factor)


def head_nodes(int8: str | os.PathLike) -> set[str]:
    """The nodes the head rules left in float in an int8 file (its decode tail; empty when they did not apply):
    already float, so never worth a place in the ranking."""
    import json

    try:
        model = onnxfile.open_model(int8, load_data=False)
    except EdgecnnError:  # a caller's own quantizer wrote no file edgecnn can read: nothing to skip
        return set()
    info = onnxfile.read_metadata(model).get("quantization")
    try:
        details = json.loads(info) if isinstance(info, str) else info
    except ValueError:
        details = None
    applied = isinstance(details, dict) and bool(details.get("head"))
    return {n.name for n in decode_tail(model)} if applied else set()
