"""What to quantize and how (:class:`QuantizeOptions`), and what a run wrote (:class:`QuantizeResult`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError

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
    #: head-aware defaults (:mod:`edgecnn.quantize.heads`): ``auto`` (detection and segmentation files, and graphs
    #: that show a head), ``on``, ``off`` (naive int8: every quantizable node)
    head: str = "auto"

    def check(self) -> QuantizeOptions:
        """Validate choices; raise :class:`EdgecnnError` naming the bad one."""
        for name, value, choices in (("mode", self.mode, MODES), ("format", self.format, FORMATS),
                                     ("method", self.method, METHODS),
                                     ("activation type", self.activation_type, QTYPES),
                                     ("weight type", self.weight_type, QTYPES)):
            if value not in choices:
                raise EdgecnnError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}.")
        if self.head not in ("auto", "on", "off"):
            raise EdgecnnError(f"unknown head mode {self.head!r}: choose one of auto, on, off.")
        if self.calib_size < 1 or self.calib_batch < 1:
            raise EdgecnnError("calibration size and batch must be >= 1.")
        return self

    @property
    def static_qdq(self) -> bool:
        """True for static QDQ quantization, the only kind the per-layer error analysis can read."""
        return self.mode == "static" and self.format == "qdq"


@dataclass
class QuantizeResult:
    """What :func:`~edgecnn.quantize.quantize` wrote, and how."""

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
    #: what the head rules kept in float and why (:class:`edgecnn.quantize.heads.HeadPlan`), None when off
    head: dict[str, Any] | None = None
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


def qtype(name: str) -> Any:
    """onnxruntime's QuantType for ``uint8``/``int8``."""
    from onnxruntime.quantization import QuantType

    return QuantType.QUInt8 if name == "uint8" else QuantType.QInt8


def calib_method(name: str) -> Any:
    """onnxruntime's CalibrationMethod for one of :data:`METHODS`."""
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]
