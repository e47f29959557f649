"""Rewrite one of edgecnn's own exports in the old ONNX Model Zoo style, for the foreign-file benchmark.

    python tools/make_foreign_resnet50.py                       # exports resnet50, writes resnet50-zoo-style.onnx
    python tools/make_foreign_resnet50.py --source resnet50.onnx -o foreign.onnx --batch 8

The result looks like a Caffe2-converted model-zoo file: IR version 3, opset 9 (its
nodes' attributes checked against opset 9), every initializer also listed as a graph input, input ``data_0``, a
4-D softmax output ``softmax_1`` of shape (N, 1000, 1, 1), and no edgecnn metadata. The math is the
export's followed by a softmax: the script checks that ONNX Runtime gives softmax(original logits)
on the rewritten file (max |difference| printed) before writing it.

Then, for the target (a foreign file gains as much from int8 as our own exports, >= 2.5x at
batch 8), quantize both files and time them, e.g. with ``tools/bench_int8.py``'s method.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, defs, helper, numpy_helper

ZOO_OPSET = 9
ZOO_IR = 3


def to_opset9(model: onnx.ModelProto) -> onnx.ModelProto:
    """Relabel the graph as opset 9. ``onnx.version_converter`` has no down-adapters for most ops (Relu
    14 -> 13 fails), but a CNN export uses Conv, Relu, MaxPool, Add, GlobalAveragePool, Flatten and Gemm
    only in ways opset 9 already defines: attributes newer than opset 9 are dropped when they hold
    their default value (MaxPool's ceil_mode 0, dilations 1) and any other is an error here, and the
    caller compares ONNX Runtime's outputs before and after."""
    neutral = {"ceil_mode": lambda a: a.i == 0, "dilations": lambda a: all(v == 1 for v in a.ints)}
    for node in model.graph.node:
        schema = defs.get_schema(node.op_type, max_inclusive_version=ZOO_OPSET)
        keep = [a for a in node.attribute if a.name in schema.attributes or not neutral.get(a.name, lambda a: False)(a)]
        del node.attribute[:]
        node.attribute.extend(keep)  # later opsets' attributes at their default value say nothing at opset 9
        extra = {a.name for a in node.attribute} - set(schema.attributes)
        if extra:
            raise SystemExit(f"error: {node.op_type} uses {sorted(extra)}, unknown at opset {ZOO_OPSET}")
    model.opset_import[0].version = ZOO_OPSET
    return model


def rewrite(model: onnx.ModelProto, *, batch: int | None = None) -> onnx.ModelProto:
    """edgecnn export (input ``input``, output ``logits`` (N, C)) -> model-zoo style (see the module docstring)."""
    model = to_opset9(model)
    graph = model.graph
    (inp,), (out,) = graph.input, graph.output
    classes = out.type.tensor_type.shape.dim[1].dim_value
    old_in, old_out = inp.name, out.name
    for node in graph.node:
        node.input[:] = ["data_0" if n == old_in else n for n in node.input]
    graph.initializer.append(numpy_helper.from_array(np.array([-1, classes, 1, 1], np.int64), "OC2_DUMMY_0"))
    graph.node.extend([
        helper.make_node("Reshape", [old_out, "OC2_DUMMY_0"], ["fc_4d"], name="to_4d"),
        helper.make_node("Softmax", ["fc_4d"], ["softmax_1"], name="softmax", axis=1),  # (N, C*1*1) at opset 9
    ])
    n: int | str = batch if batch else "N"
    del graph.input[:]
    del graph.output[:]
    graph.input.append(helper.make_tensor_value_info("data_0", TensorProto.FLOAT, [n, 3, 224, 224]))
    graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in graph.initializer)
    graph.output.append(helper.make_tensor_value_info("softmax_1", TensorProto.FLOAT, [n, classes, 1, 1]))
    del graph.value_info[:]
    del model.metadata_props[:]
    model.ir_version = ZOO_IR
    model.producer_name = "onnx-caffe2"
    model.producer_version = ""
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, help="an edgecnn export to rewrite [default: export --model now]")
    ap.add_argument("--model", default="resnet50", help="zoo model to export when --source is not given")
    ap.add_argument("-o", "--output", type=Path, default=None, help="[default: <model>-zoo-style.onnx]")
    ap.add_argument("--batch", type=int, default=None, help="fixed batch size [default: symbolic N]")
    args = ap.parse_args(argv)

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        source = args.source
        if source is None:
            from edgecnn.exporters import export

            source = Path(export(args.model, Path(tmp) / f"{args.model}.onnx", validate=False).path)
        original = onnx.load(str(source))
        foreign = rewrite(original, batch=args.batch)
        x = np.random.default_rng(0).standard_normal((args.batch or 2, 3, 224, 224)).astype(np.float32)
        ref = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
        logits = ref.run(None, {ref.get_inputs()[0].name: x})[0]
        sess = ort.InferenceSession(foreign.SerializeToString(), providers=["CPUExecutionProvider"])
        probs = sess.run(None, {"data_0": x})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        diff = float(np.abs(probs.reshape(len(x), -1) - e / e.sum(axis=1, keepdims=True)).max())
        if diff > 1e-4:
            print(f"error: the rewritten file differs from softmax(original) by {diff:.3g}", file=sys.stderr)
            return 1
        target = args.output or Path(f"{args.model if args.source is None else source.stem}-zoo-style.onnx")
        onnx.save(foreign, str(target))
    dims = foreign.graph.output[0].type.tensor_type.shape.dim
    print(f"wrote {target}: IR {foreign.ir_version}, opset {foreign.opset_import[0].version}, "
          f"{len(foreign.graph.input)} graph inputs (1 image + {len(foreign.graph.initializer)} initializers), "
          f"output softmax_1 {[d.dim_value or d.dim_param for d in dims]}; "
          f"max |softmax(original) - rewritten| = {diff:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
