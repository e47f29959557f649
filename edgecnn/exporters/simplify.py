"""Graph simplification with onnxsim (constant folding, dead-node removal, shape inference), checked.

The simplified graph is kept only if onnxsim succeeds and its outputs match the original's on a random
input (ONNX Runtime, CPU); otherwise the original is kept and the reason is returned in one line.
"""

from __future__ import annotations

import numpy as np
import onnx

#: Largest allowed difference between original and simplified outputs, relative to max |output|.
SIMPLIFY_RTOL = 1e-4


def simplify(model: onnx.ModelProto, check: bool = True) -> tuple[onnx.ModelProto, str | None]:
    """Return ``(simplified, None)`` or ``(model, reason)`` when simplification failed or changed the outputs."""
    try:
        import onnxsim
    except ImportError:
        return model, "onnxsim is not installed (pip install 'edgecnn[export]'); graph not simplified"
    from edgecnn.onnxfile import over_protobuf_limit

    if over_protobuf_limit(model):
        return model, "model over 2 GB: onnxsim skipped, graph not simplified"
    light, hidden = hide_weights(model)
    try:
        simplified, ok = onnxsim.simplify(light, check_n=0)
        restore_weights(simplified, hidden)
    except Exception as e:  # noqa: BLE001 - onnxsim raises RuntimeError/ValueError/onnx errors
        return model, f"onnxsim failed ({_first_line(e)}); kept the unsimplified graph"
    if not ok:
        return model, "onnxsim could not verify the simplified graph; kept the unsimplified graph"
    if _batch_dim(simplified) != _batch_dim(model):
        return model, "onnxsim fixed the dynamic batch dimension; kept the unsimplified graph"
    # onnxsim >= 0.5 records its run in metadata_props (removed node lists...): noise in a shipped file.
    keep = [(p.key, p.value) for p in simplified.metadata_props if not p.key.startswith("onnxsim.")]
    del simplified.metadata_props[:]
    for k, v in keep:
        simplified.metadata_props.add(key=k, value=v)
    if check:
        reason = compare_outputs(model, simplified)
        if reason:
            return model, f"simplified graph changed the outputs ({reason}); kept the unsimplified graph"
    return simplified, None


#: Ops that can never be constant-folded while their first (data) input comes from the graph input, and
#: whose other inputs are weights: their initializers are hidden from onnxsim (see hide_weights).
_WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "InstanceNormalization",
               "LayerNormalization", "PRelu"}
_HIDE_MIN_ELEMENTS = 1024


def hide_weights(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, onnx.TensorProto]]:
    """A copy of ``model`` whose large weight initializers are typed graph inputs instead.

    onnxsim copies the whole model several times (protobuf <-> C++, an ONNX Runtime session for
    constant folding): with 500 MB of VGG weights that takes seconds, yet it can fold nothing that
    involves them, since every consumer is a Conv/Gemm/MatMul/norm whose data input comes from the
    graph input. Hiding such initializers changes nothing in what onnxsim can simplify.
    """
    g = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    inits = {t.name for t in g.initializer}
    hide = {t.name for t in g.initializer
            if _numel(t) >= _HIDE_MIN_ELEMENTS and consumers.get(t.name)
            and all(n.op_type in _WEIGHT_OPS and n.input and n.input[0] != t.name and n.input[0] not in inits
                    for n in consumers[t.name])}
    hidden = {t.name: t for t in g.initializer if t.name in hide}
    light = onnx.ModelProto()
    light.CopyFrom(onnx.ModelProto(ir_version=model.ir_version, opset_import=model.opset_import,
                                   producer_name=model.producer_name, producer_version=model.producer_version,
                                   metadata_props=model.metadata_props))
    light.graph.CopyFrom(onnx.GraphProto(name=g.name, node=g.node, input=g.input, output=g.output,
                                         value_info=g.value_info,
                                         initializer=[t for t in g.initializer if t.name not in hide]))
    for t in hidden.values():
        light.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return light, hidden


def restore_weights(model: onnx.ModelProto, hidden: dict[str, onnx.TensorProto]) -> None:
    """Turn the hidden weights that are still used back into initializers (in place)."""
    g = model.graph
    used = {name for node in g.node for name in node.input}
    keep_inputs = [i for i in g.input if i.name not in hidden]
    del g.input[:]
    g.input.extend(keep_inputs)
    g.initializer.extend(hidden[name] for name in hidden if name in used)


def _numel(t: onnx.TensorProto) -> int:
    n = 1
    for d in t.dims:
        n *= d
    return n


def compare_outputs(a: onnx.ModelProto, b: onnx.ModelProto, batch: int = 2, seed: int = 0) -> str | None:
    """Run both models on one random input; None if they agree within :data:`SIMPLIFY_RTOL`, else why."""
    import onnxruntime as ort

    inp = a.graph.input[0]
    shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else batch
             for d in inp.type.tensor_type.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        outs = [ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
                .run(None, {inp.name: x})[0].astype(np.float64) for m in (a, b)]
    except Exception as e:  # noqa: BLE001
        return f"ONNX Runtime could not run it: {_first_line(e)}"
    if outs[0].shape != outs[1].shape:
        return f"output shape {outs[1].shape} instead of {outs[0].shape}"
    scale = max(float(np.abs(outs[0]).max()), 1e-12)
    rel = float(np.abs(outs[0] - outs[1]).max()) / scale
    return None if rel <= SIMPLIFY_RTOL else f"max relative difference {rel:.2e} > {SIMPLIFY_RTOL:.0e}"


def _batch_dim(model: onnx.ModelProto) -> str | int:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not dims:
        return 0
    return dims[0].dim_param or dims[0].dim_value


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]
