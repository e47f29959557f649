"""Post-training int8 quantization with ``onnxruntime.quantization`` (static QDQ by default).

    from edgecnn.exporters.quantize import QuantizeOptions, quantize

    result = quantize("resnet50.onnx", calib="calib_images/")            # -> resnet50.int8.onnx
    result = quantize("lenet5.onnx", calib="random:16", options=QuantizeOptions(mode="dynamic"))

The defaults are the fast configuration on x86 CPUs with VNNI (measured, see DESIGN.md): static,
QDQ format, per-channel int8 weights, uint8 activations, min-max calibration. ONNX Runtime's
pre-processing (``quant_pre_process``: ONNX shape inference, graph optimization) runs first.
Dynamic quantization turns convolutions into ``ConvInteger``, which is several times *slower*
than fp32 on CPU; it is offered for completeness (and for Gemm/MatMul-heavy models).

TensorRT: :func:`write_tensorrt_calibration` writes the calibration table ONNX Runtime's TensorRT
provider reads for the *fp32* model (implicit quantization); :func:`tensorrt_provider_options`
gives the matching ``trt_int8_*`` options.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgecnn._io import atomic_path
from edgecnn.errors import EdgecnnError
from edgecnn.exporters.calibration import ArrayReader, CalibrationData, load_calibration
from edgecnn.metadata import decode, encode
from edgecnn.runtime.images import PreprocessConfig

MODES = ("static", "dynamic")
FORMATS = ("qdq", "qoperator")
METHODS = ("minmax", "entropy", "percentile")
QTYPES = ("uint8", "int8")
#: node types that carry QuantizeLinear/DequantizeLinear or integer kernels after quantization
QUANT_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QLinearAdd", "QGemm",
             "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "QLinearGlobalAveragePool",
             "QLinearAveragePool", "QLinearConcat", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu")


@dataclass(frozen=True)
class QuantizeOptions:
    """How to quantize. Defaults: static QDQ, per-channel int8 weights, uint8 activations, min-max."""

    mode: str = "static"
    format: str = "qdq"
    per_channel: bool = True
    method: str = "minmax"
    activation_type: str = "uint8"
    weight_type: str = "int8"
    #: symmetric activation ranges (zero point 0; what TensorRT needs with int8 activations)
    symmetric_activations: bool = False
    reduce_range: bool = False
    #: node names to keep in float
    exclude: tuple[str, ...] = ()
    #: quantize only these op types (None: ONNX Runtime's default set)
    op_types: tuple[str, ...] | None = None
    #: calibration: samples used and rows per calibration run
    calib_size: int = 128
    calib_batch: int = 8
    #: percentile for ``method="percentile"``
    percentile: float = 99.999
    #: run onnxruntime's quant_pre_process first
    preprocess: bool = True

    def check(self) -> QuantizeOptions:
        """Validate choices; raise :class:`EdgecnnError` naming the bad one."""
        for name, value, choices in (("mode", self.mode, MODES), ("format", self.format, FORMATS),
                                     ("method", self.method, METHODS),
                                     ("activation type", self.activation_type, QTYPES),
                                     ("weight type", self.weight_type, QTYPES)):
            if value not in choices:
                raise EdgecnnError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}.")
        if self.calib_size < 1 or self.calib_batch < 1:
            raise EdgecnnError("calibration size and batch must be >= 1.")
        return self


@dataclass
class QuantizeResult:
    """What :func:`quantize` wrote, and how."""

    source: str
    output: str
    options: dict[str, Any]
    calibration: str | None
    calibration_random: bool
    calibration_samples: int
    seconds: float
    size_source: int
    size_output: int
    excluded: list[str]
    #: op type -> count of the quantization-related nodes in the written graph
    quant_nodes: dict[str, int]
    #: the calibration inputs (kept for the accuracy report when no --eval data is given)
    calib_data: np.ndarray | None = field(default=None, repr=False)

    @property
    def compression(self) -> float:
        """Source size / output size."""
        return self.size_source / max(1, self.size_output)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the calibration array)."""
        d = asdict(self)
        d.pop("calib_data", None)
        d["compression"] = round(self.compression, 3)
        return d


# --------------------------------------------------------------------------- helpers


def model_size(path: str | os.PathLike) -> int:
    """Bytes of a model file plus its external-data side files (``<name>.data`` and the like)."""
    path = Path(path)
    total = path.stat().st_size
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - size of an unreadable file is just its bytes
        return total
    locations = set()
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for e in t.external_data:
                if e.key == "location":
                    locations.add(e.value)
    return total + sum((path.parent / loc).stat().st_size for loc in locations if (path.parent / loc).is_file())


def _load(path: Path) -> onnx.ModelProto:
    if not path.exists():
        raise EdgecnnError(f"model file not found: {path}")
    if not path.is_file():
        raise EdgecnnError(f"not a file: {path} (expected an .onnx model file)")
    try:
        return onnx.load(str(path))
    except Exception as e:  # noqa: BLE001
        raise EdgecnnError(f"cannot load {path}: not a valid ONNX model ({str(e).splitlines()[0][:200]}).") from None


def _input_info(model: onnx.ModelProto) -> tuple[str, list[Any], int]:
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise EdgecnnError(f"expected a model with one input, found {len(inputs)}.")
    t = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
    return inputs[0].name, dims, t.elem_type


def preprocess_config(model: onnx.ModelProto) -> PreprocessConfig:
    """The runtime's preprocessing for this model (from its edgecnn metadata and input shape)."""
    meta = decode({p.key: p.value for p in model.metadata_props})
    _, dims, _ = _input_info(model)
    return PreprocessConfig.from_metadata(meta, input_shape=dims, dtype="float32")


def default_output(source: str | os.PathLike, suffix: str = "int8") -> Path:
    """``resnet50.onnx`` -> ``resnet50.int8.onnx`` (``resnet50.fp32.onnx`` -> ``resnet50.int8.onnx``)."""
    source = Path(source)
    stem = source.name[:-5] if source.name.endswith(".onnx") else source.stem
    for tag in (".fp32", ".fp16"):
        if stem.endswith(tag):
            stem = stem[: -len(tag)]
    return source.with_name(f"{stem}.{suffix}.onnx")


def _qtype(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return QuantType.QUInt8 if name == "uint8" else QuantType.QInt8


def _calib_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


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


def _preprocessed(src: Path, work: Path, enabled: bool) -> Path:
    """Run onnxruntime's quant_pre_process into ``work``; fall back to the source if it cannot run."""
    if not enabled:
        return src
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = work / "preprocessed.onnx"
    try:
        quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
    except Exception as e:  # noqa: BLE001 - ORT's optimizer can fail on exotic graphs; quantize without it
        try:
            quant_pre_process(str(src), str(out), skip_optimization=True, skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001
            warnings.warn(f"onnxruntime quant_pre_process failed ({str(e).splitlines()[0][:200]}); "
                          "quantizing the model as it is.", RuntimeWarning, stacklevel=3)
            return src
    return out


def _finish(tmp_out: Path, output: Path, source_model: onnx.ModelProto, extra: dict[str, Any]) -> onnx.ModelProto:
    """Copy the source's metadata (precision -> int8, plus quantization details), check, save atomically."""
    model = onnx.load(str(tmp_out))
    meta = decode({p.key: p.value for p in source_model.metadata_props})
    others = {p.key: p.value for p in source_model.metadata_props if not p.key.startswith("edgecnn.")}
    meta["precision"] = "int8"
    meta["quantization"] = json.dumps(extra, sort_keys=True)
    props = {**others, **encode(meta)}
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    model.doc_string = source_model.doc_string or model.doc_string
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001
        raise EdgecnnError(f"the quantized model failed ONNX's checker: {str(e).splitlines()[0][:200]}") from None
    with atomic_path(output, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
    return model


# --------------------------------------------------------------------------- quantize


def quantize(
    model: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    calib: str | os.PathLike | np.ndarray | CalibrationData | None = None,
    options: QuantizeOptions | None = None,
    progress: bool = False,
    **overrides: Any,
) -> QuantizeResult:
    """Quantize the fp32 ``.onnx`` file ``model`` to int8; write ``output`` (default ``<stem>.int8.onnx``).

    ``calib`` (static mode only, required there): a folder of images, an ``.npy`` file of
    preprocessed inputs, an array, ``random:N`` or a :class:`CalibrationData`. ``overrides`` replace
    fields of ``options`` (``quantize(path, calib=..., method="entropy")``).
    """
    from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static

    opts = replace(options or QuantizeOptions(), **overrides).check()
    src = Path(model)
    source_model = _load(src)
    meta = decode({p.key: p.value for p in source_model.metadata_props})
    input_name, dims, elem = _input_info(source_model)
    if meta.get("precision") in ("fp16", "int8") or elem == onnx.TensorProto.FLOAT16:
        raise EdgecnnError(f"{src} is already {meta.get('precision') or 'fp16'}; quantize the fp32 model.")
    out = Path(output) if output is not None else default_output(src)
    if out.resolve() == src.resolve():
        raise EdgecnnError(f"output {out} would overwrite the source model; choose another -o.")

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
        pre = _preprocessed(src, work, opts.preprocess)
        pre_model = onnx.load(str(pre), load_external_data=False)
        excluded = check_exclude(pre_model, opts.exclude)
        tmp_out = work / "quantized.onnx"
        kwargs: dict[str, Any] = {"per_channel": opts.per_channel, "reduce_range": opts.reduce_range,
                                  "weight_type": _qtype(opts.weight_type), "nodes_to_exclude": excluded,
                                  "op_types_to_quantize": list(opts.op_types) if opts.op_types else None}
        try:
            if opts.mode == "static":
                assert data is not None
                fixed = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
                reader = ArrayReader(input_name, data.data, batch_size=fixed or opts.calib_batch,
                                     progress=progress)
                if fixed and len(data) % fixed:
                    reader.data = data.data[: len(data) - len(data) % fixed] if len(data) >= fixed else \
                        np.resize(data.data, (fixed, *data.data.shape[1:])).astype(data.data.dtype)
                extra = {"ActivationSymmetric": opts.symmetric_activations,
                         "CalibPercentile": opts.percentile, "CalibTensorRangeSymmetric": False}
                quantize_static(
                    str(pre), str(tmp_out), reader,
                    quant_format=QuantFormat.QDQ if opts.format == "qdq" else QuantFormat.QOperator,
                    activation_type=_qtype(opts.activation_type),
                    calibrate_method=_calib_method(opts.method),
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
                   "excluded": excluded}
        written = _finish(tmp_out, out, source_model, details)
    seconds = time.perf_counter() - start
    return QuantizeResult(
        source=str(src), output=str(out), options=asdict(opts), calibration=data.source if data else None,
        calibration_random=bool(data and data.random), calibration_samples=len(data) if data else 0,
        seconds=round(seconds, 3), size_source=model_size(src), size_output=model_size(out), excluded=excluded,
        quant_nodes=count_quant_nodes(written), calib_data=data.data if data else None)


# --------------------------------------------------------------------------- explain (QDQ debugging)


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

    @property
    def loss_db(self) -> float | None:
        """SQNR lost across this node (input - output): how much error the node adds."""
        if self.input_sqnr_db is None or self.output_sqnr_db is None:
            return None
        return round(self.input_sqnr_db - self.output_sqnr_db, 2)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict including ``loss_db``."""
        return {**asdict(self), "loss_db": self.loss_db}


def _sqnr(ref: Sequence[np.ndarray], test: Sequence[np.ndarray]) -> float:
    r = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in ref])
    t = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in test])
    noise = float(np.sum((r - t) ** 2))
    signal = float(np.sum(r ** 2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(max(signal, 1e-30) / noise))


def explain(float_model: str | os.PathLike, qdq_model: str | os.PathLike, data: np.ndarray, *,
            batch_size: int = 8, limit: int = 32, preprocess: bool = True) -> list[LayerError]:
    """Rank the quantized nodes of a QDQ model by quantization error (worst first).

    Uses ``onnxruntime.quantization.qdq_loss_debug``: both models are augmented to output every
    activation and run on ``data[:limit]``. Per node: the SQNR of its weight (float vs dequantized
    int8) and of its dequantized inputs and output against the float model; the ranking is by
    ``loss_db`` (input SQNR - output SQNR: the error the node adds), largest first.
    ``float_model`` is pre-processed like :func:`quantize` does so tensor names match.
    """
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )

    qdq = onnx.load(str(qdq_model))
    if not any(n.op_type == "QuantizeLinear" for n in qdq.graph.node):
        raise EdgecnnError(f"{qdq_model} has no QuantizeLinear nodes: --explain needs a QDQ-format model.")
    input_name, dims, _ = _input_info(qdq)
    fixed = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    data = data[:limit]
    if fixed and len(data) < fixed:
        data = np.resize(data, (fixed, *data.shape[1:])).astype(data.dtype)
    with tempfile.TemporaryDirectory(prefix="edgecnn-explain-") as tmpdir:
        work = Path(tmpdir)
        fsrc = _preprocessed(Path(float_model), work, preprocess)
        faug, qaug = work / "float_aug.onnx", work / "qdq_aug.onnx"
        modify_model_output_intermediate_tensors(str(fsrc), str(faug))
        modify_model_output_intermediate_tensors(str(qdq_model), str(qaug))
        bs = fixed or batch_size
        n = len(data) - len(data) % bs if fixed else len(data)
        float_acts = collect_activations(str(faug), ArrayReader(input_name, data[:n], bs))
        qdq_acts = collect_activations(str(qaug), ArrayReader(input_name, data[:n], bs))
        weight_match = create_weight_matching(str(fsrc), str(qdq_model))

    # map QDQ-model tensors back to nodes: inputs arrive through DequantizeLinear (weights straight from
    # an initializer, activations from a QuantizeLinear); outputs leave through QuantizeLinear.
    producers = {o: n for n in qdq.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in qdq.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    wsqnr = {name: _sqnr([m["float"]], [m["dequantized"]]) for name, m in weight_match.items()}

    def vs_float(float_name: str, qdq_name: str) -> float | None:
        float_name = float_name.removesuffix("_QuantizeLinear_Input")  # graph outputs renamed by the quantizer
        if float_name in float_acts and qdq_name in qdq_acts:
            return _sqnr(float_acts[float_name], qdq_acts[qdq_name])
        return None

    rows: list[LayerError] = []
    for node in qdq.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        weight: float | None = None
        inp_sqnr: float | None = None
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
                    weight = wsqnr[base] if weight is None else min(weight, wsqnr[base])
                continue
            s = vs_float(q.input[0], inp)
            if s is not None:
                inp_sqnr = s if inp_sqnr is None else min(inp_sqnr, s)
        if not quantized:
            continue
        out = node.output[0]
        q_out = next((c for c in consumers.get(out, []) if c.op_type == "QuantizeLinear"), None)
        dq_out = next((c for c in consumers.get(q_out.output[0], []) if c.op_type == "DequantizeLinear"),
                      None) if q_out is not None else None
        out_sqnr = vs_float(out, dq_out.output[0]) if dq_out is not None else vs_float(out, out)
        rows.append(LayerError(node.name, node.op_type, _round(weight), _round(inp_sqnr), _round(out_sqnr)))

    def key(r: LayerError) -> tuple[float, float]:
        loss = r.loss_db if r.loss_db is not None and np.isfinite(r.loss_db) else float("-inf")
        return (-loss, r.weight_sqnr_db if r.weight_sqnr_db is not None else float("inf"))

    rows.sort(key=key)
    return rows


def _round(v: float | None) -> float | None:
    return None if v is None else (v if np.isinf(v) else round(float(v), 2))


def quantize_keep_float(model: str | os.PathLike, output: str | os.PathLike | None = None, *, keep_float: int,
                        calib: Any = None, options: QuantizeOptions | None = None, progress: bool = False,
                        explain_data: np.ndarray | None = None,
                        on_ranking: Callable[[list[LayerError]], None] | None = None,
                        **overrides: Any) -> tuple[QuantizeResult, list[LayerError]]:
    """Quantize, rank layers with :func:`explain`, then re-quantize keeping the ``keep_float`` worst in float."""
    opts = replace(options or QuantizeOptions(), **overrides).check()
    if opts.mode != "static" or opts.format != "qdq":
        raise EdgecnnError("--keep-float needs static QDQ quantization (the ranking uses QDQ debugging).")
    first = quantize(model, output, calib=calib, options=opts, progress=progress)
    data = explain_data if explain_data is not None else first.calib_data
    assert data is not None
    ranking = explain(model, first.output, data, preprocess=opts.preprocess)
    if on_ranking is not None:
        on_ranking(ranking)
    worst = [r.node for r in ranking[:keep_float] if r.node not in opts.exclude]
    if not worst:
        return first, ranking
    calib_again = CalibrationData(first.calib_data, first.calibration or "array", first.calibration_random) \
        if first.calib_data is not None else calib
    second = quantize(model, output, calib=calib_again, options=replace(opts, exclude=(*opts.exclude, *worst)),
                      progress=progress)
    return second, ranking


# --------------------------------------------------------------------------- TensorRT


TRT_TABLE_FILES = ("calibration.flatbuffers", "calibration.cache", "calibration.json")


def write_tensorrt_calibration(model: str | os.PathLike, calib: Any, out_dir: str | os.PathLike | None = None, *,
                               method: str = "minmax", calib_size: int = 128, batch_size: int = 8,
                               progress: bool = False) -> dict[str, Any]:
    """Write the int8 calibration table ONNX Runtime's TensorRT provider reads, for the fp32 ``model``.

    Runs ``onnxruntime.quantization.create_calibrator`` over every float tensor of the model, then
    ``write_calibration_table``: ``calibration.flatbuffers`` (what the TensorRT provider loads when
    ``trt_int8_use_native_calibration_table`` is false), ``calibration.cache`` (text, one
    ``tensor max-abs`` per line) and ``calibration.json``. Returns the paths and the provider options.
    """
    from onnxruntime.quantization import create_calibrator, write_calibration_table

    if method not in METHODS:
        raise EdgecnnError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}.")
    src = Path(model)
    source_model = _load(src)
    input_name, dims, _ = _input_info(source_model)
    data = calib if isinstance(calib, CalibrationData) else load_calibration(
        calib, preprocess_config(source_model), limit=calib_size)
    out = Path(out_dir) if out_dir is not None else default_output(src, "trt-calib").with_suffix("")
    out.mkdir(parents=True, exist_ok=True)
    fixed = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    with tempfile.TemporaryDirectory(prefix="edgecnn-trtcal-") as tmpdir:
        calibrator = create_calibrator(str(src), [], augmented_model_path=str(Path(tmpdir) / "augmented.onnx"),
                                       calibrate_method=_calib_method(method),
                                       providers=["CPUExecutionProvider"],
                                       # symmetric ranges: the table stores max(highest, lowest), which
                                       # is the max-abs TensorRT's dynamic range needs only when symmetric
                                       extra_options={"symmetric": True})
        arr = data.data
        if fixed and len(arr) % fixed:
            arr = np.resize(arr, (max(fixed, len(arr) - len(arr) % fixed), *arr.shape[1:])).astype(arr.dtype)
        try:
            calibrator.collect_data(ArrayReader(input_name, arr, fixed or batch_size, progress=progress))
            table = calibrator.compute_data()
        except Exception as e:  # noqa: BLE001
            raise EdgecnnError(f"TensorRT calibration of {src.name} failed: "
                               f"{(str(e).splitlines() or [''])[0][:300]}") from None
        finally:
            del calibrator
        tmp_table = Path(tmpdir) / "table"
        tmp_table.mkdir()
        write_calibration_table(table, dir=str(tmp_table))
        for name in TRT_TABLE_FILES:
            with atomic_path(out / name) as tmp:
                shutil.copyfile(tmp_table / name, tmp)
    files = {name: str(out / name) for name in TRT_TABLE_FILES}
    return {"model": str(src), "dir": str(out), "files": files, "tensors": len(table.keys()),
            "calibration": data.source, "calibration_random": data.random, "method": method,
            "provider_options": tensorrt_provider_options(out / "calibration.flatbuffers")}


def tensorrt_provider_options(table: str | os.PathLike) -> dict[str, Any]:
    """TensorRT provider options that run the fp32 model in int8 with an ONNX Runtime calibration table.

    The path is absolute: the provider joins a relative name to its ``trt_engine_cache_path``.
    """
    return {"trt_int8_enable": True, "trt_int8_calibration_table_name": str(Path(table).resolve()),
            "trt_int8_use_native_calibration_table": False}


# --------------------------------------------------------------------------- cached_export(..., precision="int8")


def _int8_hook(target: Path, *, name: str, weights: Any = None, batch: int | None = None,
               input_size: tuple[int, int] | None = None, opset: int | None = None, **options: Any) -> None:
    """``cached_export(name, precision="int8", calib=..., **quantize_options)``: fp32 export, then quantize.

    ``calib`` defaults to ``random:32`` (warns: speed tests only); keys that are fields of
    :class:`QuantizeOptions` configure the quantizer; the rest go to the fp32 export.
    """
    from dataclasses import fields

    from edgecnn.exporters.cache import cached_export

    qkeys = {f.name for f in fields(QuantizeOptions)}
    qopts = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if k in qkeys}
    calib = options.get("calib", "random:32")
    export_opts = {k: v for k, v in options.items() if k not in qkeys and k != "calib"}
    fp32 = cached_export(name, "fp32", weights, batch, input_size, opset, **export_opts)
    quantize(fp32, target, calib=None if qopts.get("mode") == "dynamic" else calib,
             options=QuantizeOptions(**qopts))


def _register() -> None:
    try:
        from edgecnn.exporters.cache import register_precision_hook
    except ImportError:  # pragma: no cover - exporters without the cache
        return
    register_precision_hook("int8", _int8_hook)


_register()
