"""Per-layer quantization error of a QDQ model: which nodes lose the most accuracy in int8.

``onnxruntime.quantization.qdq_loss_debug`` does the work: it adds every activation to the outputs of
the float and the QDQ model, runs both on the same inputs and matches the weights. What is left here
is the small join from QDQ tensors back to nodes and one SQNR per weight, input and output.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgecnn import onnxfile
from edgecnn.errors import EdgecnnError
from edgecnn.metrics import sqnr_db
from edgecnn.quantize.calibration import ArrayReader, fit_batch
from edgecnn.quantize.heads import head_nodes
from edgecnn.quantize.qdq import _quiet_ort, preprocessed


@dataclass(frozen=True)
class LayerError:
    """Quantization error of one quantized node; :func:`explain` lists the worst first."""

    node: str
    op_type: str
    #: SQNR (dB) of the node's weight after quantize->dequantize (None when it has no quantized weight)
    weight_sqnr_db: float | None
    #: SQNR (dB) of the node's (dequantized) inputs in the int8 model vs the float model, the lowest input
    input_sqnr_db: float | None
    #: SQNR (dB) of the node's (dequantized) output in the int8 model vs the float model
    output_sqnr_db: float | None
    #: what the node does (:func:`edgecnn.graphcost.roles.node_role`: depthwise, pointwise, se, grouped, conv, fc),
    #: else its op type in lower case (add, globalaveragepool, ...)
    kind: str = ""

    @property
    def loss_db(self) -> float | None:
        """SQNR lost across this node (input - output): how much error the node adds."""
        if self.input_sqnr_db is None or self.output_sqnr_db is None:
            return None
        return round(self.input_sqnr_db - self.output_sqnr_db, 2)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict including ``loss_db``."""
        return {**asdict(self), "loss_db": self.loss_db}


def _lowest(values: list[float]) -> float | None:
    return min(values) if values else None


def _round(v: float | None) -> float | None:
    return None if v is None else (v if np.isinf(v) else round(float(v), 2))


def explain(float_model: str | os.PathLike, qdq_model: str | os.PathLike, data: np.ndarray, *,
            batch_size: int = 8, limit: int = 32, preprocess: bool = True) -> list[LayerError]:
    """Rank the quantized nodes of a QDQ model by quantization error (worst first).

    Both models run on ``data[:limit]``. Per node: the SQNR of its weight (float vs dequantized int8)
    and of its dequantized inputs and output against the float model; the ranking is by ``loss_db``
    (input SQNR - output SQNR: the error the node adds), largest first; ``kind`` says what each node does
    (depthwise, pointwise, se, fc, conv: :mod:`edgecnn.graphcost.roles`). ``float_model`` is
    pre-processed like :func:`~edgecnn.quantize.quantize` does so that tensor names match.
    """
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )

    qdq = onnxfile.open_model(qdq_model, load_data=False)
    if not any(n.op_type == "QuantizeLinear" for n in qdq.graph.node):
        raise EdgecnnError(f"{qdq_model} has no QuantizeLinear nodes: --explain needs a QDQ-format model.")
    input_name = onnxfile.input_info(qdq)[0]
    fixed = onnxfile.fixed_batch(qdq)
    data = fit_batch(data[:limit], fixed)
    with tempfile.TemporaryDirectory(prefix="edgecnn-explain-") as tmpdir:
        work = Path(tmpdir)
        fsrc = preprocessed(Path(float_model), work, preprocess)
        faug, qaug = work / "float_aug.onnx", work / "qdq_aug.onnx"
        modify_model_output_intermediate_tensors(str(fsrc), str(faug))
        modify_model_output_intermediate_tensors(str(qdq_model), str(qaug))
        float_acts = collect_activations(str(faug), ArrayReader(input_name, data, fixed or batch_size))
        qdq_acts = collect_activations(str(qaug), ArrayReader(input_name, data, fixed or batch_size))
        with _quiet_ort():  # it logs an error line per bias it cannot match (biases are not ranked)
            weight_match = create_weight_matching(str(fsrc), str(qdq_model))
    wsqnr = {name: sqnr_db([m["float"]], [m["dequantized"]]) for name, m in weight_match.items()}

    def vs_float(float_name: str, qdq_name: str) -> float | None:
        float_name = float_name.removesuffix("_QuantizeLinear_Input")  # graph outputs renamed by the quantizer
        if float_name in float_acts and qdq_name in qdq_acts:
            return sqnr_db(float_acts[float_name], qdq_acts[qdq_name])
        return None

    producers = {o: n for n in qdq.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in qdq.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    left_float = head_nodes(qdq_model)  # the head rules' decode tail reads dequantized tensors but stays float
    rows = [_node_error(node, producers, consumers, wsqnr, vs_float) for node in qdq.graph.node
            if node.op_type not in ("QuantizeLinear", "DequantizeLinear") and node.name not in left_float]
    kinds = _kinds(qdq_model)
    ranked = [replace(r, kind=kinds.get(r.node, r.op_type.lower())) for r in rows if r is not None]

    def key(r: LayerError) -> tuple[float, float]:
        loss = r.loss_db if r.loss_db is not None and np.isfinite(r.loss_db) else float("-inf")
        return (-loss, r.weight_sqnr_db if r.weight_sqnr_db is not None else float("inf"))

    ranked.sort(key=key)
    return ranked


def _kinds(qdq_model: str | os.PathLike) -> dict[str, str]:
    """Node name -> role (depthwise, pointwise, se, ...) from the QDQ graph's inferred shapes."""
    from edgecnn.graphcost import load_graph
    from edgecnn.graphcost.roles import node_role

    try:
        graph = load_graph(qdq_model)
    except EdgecnnError:
        return {}
    return {n.name: role for n in graph.model.graph.node if (role := node_role(n, graph.tensors))}


def _node_error(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto],
                consumers: dict[str, list[onnx.NodeProto]], wsqnr: dict[str, float],
                vs_float: Callable[[str, str], float | None]) -> LayerError | None:
    """One node's row, or None when none of its inputs is dequantized (a node left in float).

    Inputs arrive through DequantizeLinear (weights straight from an initializer, activations from a
    QuantizeLinear); the output leaves through a QuantizeLinear -> DequantizeLinear pair.
    """
    weights: list[float] = []
    inputs: list[float] = []
    quantized = False
    for inp in node.input:
        dq = producers.get(inp)
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        quantized = True
        q = producers.get(dq.input[0])
        if q is None:  # a weight: its initializer feeds DequantizeLinear directly
            base = dq.input[0].removesuffix("_quantized")
            if base in wsqnr:
                weights.append(wsqnr[base])
        elif (s := vs_float(q.input[0], inp)) is not None:
            inputs.append(s)
    if not quantized:
        return None
    out = node.output[0]
    q_out = next((c for c in consumers.get(out, []) if c.op_type == "QuantizeLinear"), None)
    dq_out = next((c for c in consumers.get(q_out.output[0], []) if c.op_type == "DequantizeLinear"),
                  None) if q_out is not None else None
    out_sqnr = vs_float(out, dq_out.output[0]) if dq_out is not None else vs_float(out, out)
    return LayerError(node.name, node.op_type, _round(_lowest(weights)), _round(_lowest(inputs)), _round(out_sqnr))
