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
    if model.ByteSize() >= onnx.checker.MAXIMUM_PROTOBUF:
        return model, "model over 2 GB: onnxsim skipped, graph not simplified"
    try:
        simplified, ok = onnxsim.simplify(model, check_n=0)
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
