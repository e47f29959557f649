"""Post-training int8 quantization of an fp32 ``.onnx`` file with ``onnxruntime.quantization``.

The defaults are the fast configuration on x86 CPUs with VNNI, as measured with
``tools/bench_int8.py`` (the README's int8 results): static, QDQ format, per-channel int8 weights,
uint8 activations, min-max calibration, 2.4-3.5x faster than fp32 on ResNet-50 and VGG-16 (int8
activations gave no speed-up). ONNX Runtime's pre-processing (``quant_pre_process``: shape inference,
graph optimization) runs first. Dynamic quantization turns convolutions into ``ConvInteger``, which
measured 6-8x *slower* than fp32 on CPU; it is offered for Gemm/MatMul-heavy models.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import logging
import os
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgecnn import onnxfile
from edgecnn.errors import EdgecnnError
from edgecnn.quantize.calibration import ArrayReader, CalibrationData, fit_batch, load_calibration
from edgecnn.quantize.heads import detect_head, head_aware, head_plan
from edgecnn.quantize.options import QUANT_OPS, QuantizeOptions, QuantizeResult, calib_method, qtype
from edgecnn.runtime.images import PreprocessConfig


def preprocess_config(model: onnx.ModelProto) -> PreprocessConfig:
    """The runtime's preprocessing for this model (from its edgecnn metadata and input shape)."""
    _, dims, _ = onnxfile.input_info(model)
    return PreprocessConfig.from_metadata(onnxfile.read_metadata(model), input_shape=dims, dtype="float32")


def default_output(source: str | os.PathLike, suffix: str = "int8") -> Path:
    """``resnet50.onnx`` -> ``resnet50.int8.onnx`` (``resnet50.fp32.onnx`` -> ``resnet50.int8.onnx``)."""
    source = Path(source)
    stem = source.name[:-5] if source.name.endswith(".onnx") else source.stem
    for tag in (".fp32", ".fp16"):
        if stem.endswith(tag):
            stem = stem[: -len(tag)]
    return source.with_name(f"{stem}.{suffix}.onnx")


def check_exclude(model: onnx.ModelProto, names: Sequence[str]) -> list[str]:
    """Check that every name in ``names`` is a node of ``model``; suggest close names when not."""
    nodes = [n.name for n in model.graph.node]
    known = set(nodes)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, nodes, n=3, cutoff=0.4)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise EdgecnnError(f"--exclude: no node named {name!r} in the model.{hint} "
                               "Run with --explain to list the quantized nodes.")
    return list(dict.fromkeys(names))


def count_quant_nodes(model: onnx.ModelProto) -> dict[str, int]:
    """op type -> count for the quantization nodes of a graph."""
    counts = Counter(n.op_type for n in model.graph.node if n.op_type in QUANT_OPS)
    return dict(sorted(counts.items()))


def _work_copy(src: Path, work: Path) -> Path:
    """``src`` copied into ``work`` (weights embedded): ONNX Runtime's quantizer writes ``<model>-inferred.onnx``
    beside the file it is given, which must never be the user's folder."""
    copy = work / "source.onnx"
    onnxfile.save(onnxfile.open_model(src), copy)
    return copy


@contextlib.contextmanager
def _quiet_ort() -> Iterator[io.StringIO]:
    """ONNX Runtime's quantization tools print tracebacks and log lines of their own: keep them for the message."""
    log = io.StringIO()
    loggers = [logging.getLogger(), logging.getLogger("onnxruntime")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield log
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def preprocessed(src: Path, work: Path, enabled: bool = True) -> Path:
    """Run onnxruntime's quant_pre_process into ``work``; fall back to a copy of the source (in ``work`` too) if it
    cannot run."""
    if not enabled:
        return _work_copy(src, work)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = work / "preprocessed.onnx"
    with _quiet_ort():
        try:
            quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
        except Exception as e:  # noqa: BLE001 - ORT's optimizer can fail on exotic graphs; quantize without it
            try:
                quant_pre_process(str(src), str(out), skip_optimization=True, skip_symbolic_shape=True)
            except Exception:  # noqa: BLE001
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                warnings.warn(f"onnxruntime quant_pre_process failed ({reason}); quantizing the model as it is.",
                              RuntimeWarning, stacklevel=3)
                out = None
    if out is None:
        return _work_copy(src, work)
    _name_nodes(out)
    return out


def _name_nodes(path: Path) -> None:
    """Name the nodes ONNX Runtime's optimizer left unnamed (it inlines function ops such as HardSwish into
    HardSigmoid + Mul), so that ``--explain`` can list them and ``--exclude``/``--keep-float`` can keep them in
    float: ``<op>_<first output>``, stable from run to run."""
    model = onnxfile.open_model(path)
    unnamed = [n for n in model.graph.node if not n.name]
    if not unnamed:
        return
    taken = {n.name for n in model.graph.node}
    for n in unnamed:
        name = f"{n.op_type}_{(n.output[0] if n.output else '').lstrip('/')}"
        while name in taken:
            name += "_"
        n.name = name
        taken.add(name)
    onnxfile.save(model, path)


def _finish(tmp_out: Path, output: Path, source_model: onnx.ModelProto, extra: dict[str, Any],
            overwrite: bool = True) -> onnx.ModelProto:
    """Copy the source's metadata (precision -> int8, plus quantization details), check, save atomically."""
    model = onnxfile.open_model(tmp_out)
    meta = onnxfile.read_metadata(source_model)
    meta["precision"] = "int8"
    meta["quantization"] = json.dumps(extra, sort_keys=True)
    model.ClearField("metadata_props")
    for k, v in onnxfile.other_metadata(source_model).items():
        model.metadata_props.add(key=k, value=v)
    onnxfile.set_metadata(model, meta, sort=False)
    model.doc_string = source_model.doc_string or model.doc_string
    onnxfile.check(model, "the quantized model")
    onnxfile.save(model, output, overwrite=overwrite)
    return model


def quantize(
    model: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    calib: str | os.PathLike | np.ndarray | CalibrationData | None = None,
    options: QuantizeOptions | None = None,
    progress: bool = False,
    force: bool = True,
    **overrides: Any,
) -> QuantizeResult:
    """Quantize the fp32 ``.onnx`` file ``model`` to int8; write ``output`` (default ``<stem>.int8.onnx``).

    ``calib`` (static mode only, required there): a folder of images, an ``.npy`` file of
    preprocessed inputs, an array, ``random:N`` or a :class:`CalibrationData`. ``overrides`` replace
    fields of ``options`` (``quantize(path, calib=..., method="entropy")``). ``force=False``: an existing
    ``output`` is an error. The source itself is never the output. Detection and segmentation files, and graphs
    that show a detector's head (``options.head`` ``auto``; ``on`` for any file), keep their decode tail and
    mismatched Concats in float (:mod:`edgecnn.quantize.heads`; what and why in ``QuantizeResult.head``).
    """
    from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static

    from edgecnn.outputs import refuse_existing, refuse_inputs

    opts = replace(options or QuantizeOptions(), **overrides).check()
    src = Path(model)
    source_model = onnxfile.open_model(src, load_data=False)
    meta = onnxfile.read_metadata(source_model)
    input_name, _, elem = onnxfile.input_info(source_model)
    if meta.get("precision") in ("fp16", "int8") or elem == onnx.TensorProto.FLOAT16:
        raise EdgecnnError(f"{src} is already {meta.get('precision') or 'fp16'}; quantize the fp32 model.")
    out = Path(output) if output is not None else default_output(src)
    if out.resolve() == src.resolve():
        raise EdgecnnError(f"output {out} would overwrite the source model; choose another -o.")
    refuse_inputs(out, [src])
    refuse_existing([out], force)

    data: CalibrationData | None = None
    if opts.mode == "static":
        if calib is None:
            raise EdgecnnError("static quantization needs calibration data: --calib DIR (images), "
                               "--calib FILE.npy, or --calib random:N (speed tests only).")
        data = calib if isinstance(calib, CalibrationData) else load_calibration(
            calib, preprocess_config(source_model), limit=opts.calib_size)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgecnn-quant-") as tmpdir:
        work = Path(tmpdir)
        pre = preprocessed(src, work, opts.preprocess)
        excluded = check_exclude(onnxfile.open_model(pre, load_data=False), opts.exclude)
        plan = None
        if opts.mode == "static" and head_aware(opts.head, meta):
            plan = head_plan(pre, data.data if data is not None else None)
        elif opts.mode == "static" and opts.head == "auto":  # no declared task: a head the graph shows
            plan = detect_head(pre, data.data if data is not None else None)
        to_exclude = list(dict.fromkeys([*excluded, *(plan.nodes if plan is not None else [])]))
        tmp_out = work / "quantized.onnx"
        kwargs: dict[str, Any] = {"per_channel": opts.per_channel, "reduce_range": opts.reduce_range,
                                  "weight_type": qtype(opts.weight_type), "nodes_to_exclude": to_exclude,
                                  "op_types_to_quantize": list(opts.op_types) if opts.op_types else None}
        try:
            if opts.mode == "static":
                assert data is not None
                fixed = onnxfile.fixed_batch(source_model)
                reader = ArrayReader(input_name, fit_batch(data.data, fixed), batch_size=fixed or opts.calib_batch,
                                     progress=progress)
                extra = {"ActivationSymmetric": opts.symmetric_activations,
                         "CalibPercentile": opts.percentile, "CalibTensorRangeSymmetric": False}
                quantize_static(
                    str(pre), str(tmp_out), reader,
                    quant_format=QuantFormat.QDQ if opts.format == "qdq" else QuantFormat.QOperator,
                    activation_type=qtype(opts.activation_type), calibrate_method=calib_method(opts.method),
                    calibration_providers=["CPUExecutionProvider"], extra_options=extra, **kwargs)
            else:
                quantize_dynamic(str(pre), str(tmp_out), **kwargs)
        except EdgecnnError:
            raise
        except Exception as e:  # noqa: BLE001 - ORT raises many types with long messages
            raise EdgecnnError(f"quantization of {src.name} failed: {type(e).__name__}: "
                               f"{(str(e).splitlines() or [''])[0][:300]}") from None
        details = {"mode": opts.mode, "format": opts.format if opts.mode == "static" else "qoperator",
                   "per_channel": opts.per_channel, "activation_type": opts.activation_type,
                   "weight_type": opts.weight_type, "method": opts.method if opts.mode == "static" else None,
                   "calibration": data.source if data else None, "calibration_random": bool(data and data.random),
                   "excluded": excluded, "head": plan.summary() if plan is not None else None}
        written = _finish(tmp_out, out, source_model, details, overwrite=force)
    seconds = time.perf_counter() - start
    return QuantizeResult(
        source=str(src), output=str(out), options=asdict(opts), calibration=data.source if data else None,
        calibration_random=bool(data and data.random), calibration_samples=len(data) if data else 0,
        seconds=round(seconds, 3), size_source=onnxfile.file_size(src), size_output=onnxfile.file_size(out),
        excluded=excluded, quant_nodes=count_quant_nodes(written), head=plan.as_dict() if plan is not None else None,
        calib_data=data.data if data else None)
