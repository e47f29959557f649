"""One precision vocabulary for every runtime, and the pure rule that turns a request into what runs.

``PRECISIONS`` = ``auto|fp32|fp16|bf16|int8``. A precision is either the *file's* (an fp16 export, an int8
QDQ file from ``edgecnn quantize``) or, under OpenVINO, the *inference precision* it applies to an fp32 file
(``INFERENCE_PRECISION_HINT``). :func:`resolve_precision` decides from (provider, file precision, CPU
features, device) alone, so every branch is testable on any machine with the CPU faked
(:class:`CpuFeatures`). A combination that cannot run is one :class:`~edgecnn.errors.EdgecnnError` naming
what to use instead; nothing is replaced silently.

CPU features are read in one place, :func:`detect_cpu` (``/proc/cpuinfo`` flags on x86, ``Features`` on
aarch64). Native bf16 = AVX512-BF16 or AMX-BF16 on x86, the ``bf16`` feature on aarch64; without it
OpenVINO emulates bf16 (measured 4x slower than fp32 on an Ice Lake Xeon), so ``bf16`` is refused there.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError

#: what a user may ask for, everywhere (``--precision``, ``Engine(precision=...)``)
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16", "int8")
#: precisions a file can have (the exporters write fp32/fp16, ``edgecnn quantize`` writes int8)
FILE_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
#: edgecnn precision -> OpenVINO ``INFERENCE_PRECISION_HINT`` value
OPENVINO_HINTS: dict[str, str] = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_FROM_OPENVINO = {"f32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16", "f16": "fp16",
                  "float16": "fp16", "i8": "int8", "u8": "int8"}

X86 = ("x86_64", "amd64", "i686", "i386", "x86")
ARM64 = ("aarch64", "arm64")
#: x86 ``/proc/cpuinfo`` flags that matter for inference
X86_FLAGS: dict[str, str] = {
    "avx2": "AVX2 (int8 u8s8 GEMM via VPMADDUBSW)",
    "fma": "FMA",
    "f16c": "F16C (fp16 <-> fp32 conversion)",
    "avx512f": "AVX-512",
    "avx512bw": "AVX-512 BW",
    "avx512_vnni": "AVX-512 VNNI (fast int8 dot products)",
    "avx_vnni": "AVX-VNNI (fast int8 on AVX2 width)",
    "avx512_bf16": "AVX-512 BF16",
    "avx512_fp16": "AVX-512 FP16",
    "amx_tile": "AMX tiles",
    "amx_int8": "AMX int8",
    "amx_bf16": "AMX bf16",
    "amx_fp16": "AMX fp16",
}
#: aarch64 ``Features`` that matter for inference (Arm edge boards)
ARM_FLAGS: dict[str, str] = {
    "asimd": "NEON",
    "asimdhp": "fp16 arithmetic (NEON)",
    "fphp": "fp16 scalar",
    "asimddp": "int8 dot product (SDOT/UDOT)",
    "i8mm": "int8 matrix multiply (SMMLA)",
    "bf16": "bf16 (BFDOT/BFMMLA)",
    "sve": "SVE",
    "sve2": "SVE2",
    "sme": "SME",
}


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU model, its architecture (``platform.machine()``, lower case) and its feature flags."""

    arch: str
    flags: frozenset[str] = frozenset()
    model: str = ""

    @property
    def is_x86(self) -> bool:
        return self.arch.lower() in X86

    @property
    def is_arm64(self) -> bool:
        return self.arch.lower() in ARM64

    @property
    def native_bf16(self) -> bool:
        """bf16 in hardware: AVX512-BF16 or AMX-BF16 on x86, the ``bf16`` feature on aarch64."""
        if self.is_x86:
            return bool({"avx512_bf16", "amx_bf16"} & self.flags)
        return self.is_arm64 and "bf16" in self.flags

    @property
    def native_fp16(self) -> bool:
        """fp16 arithmetic in hardware: AVX512-FP16 or AMX-FP16 on x86, ``asimdhp`` on aarch64."""
        if self.is_x86:
            return bool({"avx512_fp16", "amx_fp16"} & self.flags)
        return self.is_arm64 and bool({"asimdhp", "fphp"} & self.flags)

    def known_flags(self) -> dict[str, bool]:
        """The flags of :data:`X86_FLAGS` or :data:`ARM_FLAGS` (by architecture), each present or not."""
        table = ARM_FLAGS if self.is_arm64 else X86_FLAGS
        return {f: f in self.flags for f in table}

    def describe(self) -> list[str]:
        """Human names of the flags present."""
        table = ARM_FLAGS if self.is_arm64 else X86_FLAGS
        return [text for f, text in table.items() if f in self.flags]


def parse_cpuinfo(cpuinfo: str, machine: str | None = None) -> CpuFeatures:
    """CPU features from the text of ``/proc/cpuinfo`` (x86 ``flags`` or aarch64 ``Features`` line)."""
    arch = (machine or platform.machine() or "").lower()
    model = re.search(r"^(?:model name|Model|Hardware)\s*:\s*(.+)$", cpuinfo, re.M)
    flags_line = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", cpuinfo, re.M)
    flags = frozenset(flags_line.group(1).split()) if flags_line else frozenset()
    return CpuFeatures(arch=arch, flags=flags, model=model.group(1).strip() if model else "")


@functools.lru_cache(maxsize=1)
def _detect_host() -> CpuFeatures:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    found = parse_cpuinfo(text)
    return found if found.model else CpuFeatures(found.arch, found.flags, platform.processor() or found.arch)


def detect_cpu(cpuinfo: str | None = None, machine: str | None = None) -> CpuFeatures:
    """This machine's CPU features (cached), or those described by ``cpuinfo``/``machine`` (for tests).

    ``$EDGECNN_CPU_FLAGS`` (space-separated) replaces the detected flags: a way to check the other branch
    of a precision decision on one machine (e.g. ``EDGECNN_CPU_FLAGS="avx2 avx512f"`` hides bf16).
    """
    found = parse_cpuinfo(cpuinfo, machine) if cpuinfo is not None else _detect_host()
    if machine is not None and cpuinfo is None:
        found = CpuFeatures(machine.lower(), found.flags, found.model)
    override = os.environ.get("EDGECNN_CPU_FLAGS")
    if override is not None and cpuinfo is None:
        found = CpuFeatures(found.arch, frozenset(override.split()), found.model)
    return found


@dataclass(frozen=True)
class PrecisionChoice:
    """The result of :func:`resolve_precision`."""

    requested: str
    #: the file's own precision (fp32, fp16 or int8)
    file: str
    #: what runs: fp32/fp16/bf16/int8, or ``default`` when OpenVINO's own default applies (read back later)
    inference: str
    #: OpenVINO ``INFERENCE_PRECISION_HINT`` to set (None: leave OpenVINO's default)
    openvino_hint: str | None = None
    #: TensorRT only: build the engine with fp16 kernels enabled
    tensorrt_fp16: bool = False
    #: why this choice (one sentence, for reports)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "file": self.file, "inference": self.inference,
                "openvino_hint": self.openvino_hint, "reason": self.reason}


def check_precision(precision: str) -> str:
    """Normalise a precision name (``float32``/``f32`` -> ``fp32`` ...) or raise one clear error."""
    p = str(precision).strip().lower()
    p = {"float32": "fp32", "f32": "fp32", "float16": "fp16", "f16": "fp16", "half": "fp16",
         "bfloat16": "bf16", "i8": "int8", "uint8": "int8"}.get(p, p)
    if p not in PRECISIONS:
        raise EdgecnnError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}.")
    return p


def from_openvino(value: Any) -> str:
    """edgecnn name of an OpenVINO element type / precision hint (``bf16`` -> ``bf16``, ``f32`` -> ``fp32``)."""
    text = str(getattr(value, "get_type_name", lambda: value)()).lower()
    return _FROM_OPENVINO.get(text, text)


def _file_hint(file_precision: str, name: str) -> str:
    if file_precision == "int8":
        return f"pass the fp32 file instead of {name} (zoo names: --precision fp32 picks it)"
    return f"pass the matching file instead of {name}"


def resolve_precision(requested: str, *, provider: str, file_precision: str, cpu: CpuFeatures,
                      device: str = "CPU", file_name: str = "this file") -> PrecisionChoice:
    """What precision runs for ``requested`` on ``provider`` (``cpu``/``cuda``/``tensorrt``/``openvino``).

    Pure function of its arguments. Rules (``docs/runtimes.md`` has the table):

    * ONNX Runtime runs a file at its own precision: ``auto`` = the file's; another precision is an error
      naming the file to use (TensorRT alone may build fp16 kernels from an fp32 file).
    * OpenVINO: an int8 (QDQ) file runs int8 (``auto``/``int8``). On an fp32/fp16 file, ``fp32``/``bf16``/
      ``fp16`` set ``INFERENCE_PRECISION_HINT``; ``auto`` = bf16 on a CPU with native bf16, fp32 on other x86
      CPUs, OpenVINO's own default on aarch64 and non-CPU devices. ``bf16``/``fp16`` on a CPU without them in
      hardware are refused (emulated: several times slower).
    """
    req = check_precision(requested)
    file_p = file_precision if file_precision in FILE_PRECISIONS else "fp32"
    prov = provider.lower()
    dev = (device or "CPU").upper()
    quantize_hint = (f"quantize it first (edgecnn quantize {file_name}) and pass the int8 file "
                     "(zoo names: --precision int8 picks it)")

    if prov != "openvino":
        runtime = {"cpu": "ONNX Runtime's CPU provider", "cuda": "ONNX Runtime's CUDA provider",
                   "tensorrt": "ONNX Runtime's TensorRT provider"}.get(prov, f"provider {provider!r}")
        if req in ("auto", file_p):
            return PrecisionChoice(req, file_p, file_p, reason=f"{runtime} runs the file at its own precision")
        if req == "fp16" and prov == "tensorrt" and file_p == "fp32":
            return PrecisionChoice(req, file_p, "fp16", tensorrt_fp16=True,
                                   reason="TensorRT builds fp16 kernels from the fp32 file (trt_fp16_enable)")
        if req == "bf16":
            raise EdgecnnError(f"precision bf16 cannot run on {runtime}: it runs {file_name} at its own precision "
                               f"({file_p}). Use --provider openvino (bf16 inference on an fp32 file) or "
                               "--precision auto.")
        if req == "int8":
            raise EdgecnnError(f"{file_name} is an {file_p} file and {runtime} runs files at their own precision: "
                               f"{quantize_hint}.")
        if req == "fp16":
            raise EdgecnnError(f"{file_name} is an {file_p} file and {runtime} runs files at their own precision: "
                               "export an fp16 file (edgecnn export MODEL --fp16) and pass it (zoo names: "
                               "--precision fp16 picks it), or use --provider openvino.")
        raise EdgecnnError(f"{file_name} is an {file_p} file and {runtime} runs files at their own precision: "
                           f"{_file_hint(file_p, file_name)}, or use --precision auto.")

    # OpenVINO
    if file_p == "int8":
        if req in ("auto", "int8"):
            return PrecisionChoice(req, file_p, "int8",
                                   reason="OpenVINO runs the quantized (QDQ) layers of an int8 file in int8")
        raise EdgecnnError(f"{file_name} is an int8 (QDQ) file: OpenVINO runs it only at int8. For {req}, "
                           f"{_file_hint(file_p, file_name)}, or use --precision auto.")
    if req == "int8":
        raise EdgecnnError(f"{file_name} is an {file_p} file: OpenVINO does not quantize at load time; "
                           f"{quantize_hint}.")
    on_cpu = dev == "CPU"
    if req == "auto":
        if on_cpu and cpu.is_x86:
            if cpu.native_bf16:
                return PrecisionChoice(req, file_p, "bf16", "bf16",
                                       reason="this CPU has native bf16 (AVX512-BF16/AMX): OpenVINO bf16")
            return PrecisionChoice(req, file_p, "fp32", "f32",
                                   reason="this x86 CPU has no native bf16: fp32 (emulated bf16 is slower)")
        where = "aarch64" if on_cpu and cpu.is_arm64 else f"device {dev}"
        return PrecisionChoice(req, file_p, "default", None, reason=f"OpenVINO's own default on {where}")
    if on_cpu and req == "bf16" and not cpu.native_bf16:
        raise EdgecnnError(f"precision bf16 refused: this CPU ({cpu.model or cpu.arch}) has no native bf16 "
                           "(AVX512-BF16 or AMX on x86, the bf16 feature on aarch64), so OpenVINO would emulate it "
                           "(measured 4x slower than fp32). Use --precision fp32, auto, or an int8 file.")
    if on_cpu and req == "fp16" and not cpu.native_fp16:
        raise EdgecnnError(f"precision fp16 refused on OpenVINO's CPU device: this CPU ({cpu.model or cpu.arch}) "
                           "has no fp16 arithmetic (AVX512-FP16/AMX-FP16 on x86, asimdhp on aarch64), and OpenVINO "
                           "would run bf16 or fp32 instead. Use --precision auto, fp32 or bf16.")
    return PrecisionChoice(req, file_p, req, OPENVINO_HINTS[req],
                           reason=f"OpenVINO INFERENCE_PRECISION_HINT={OPENVINO_HINTS[req]} on {dev}")


_INT8_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                       "MatMulInteger", "DynamicQuantizeLinear"})


def graph_precision(op_types: Iterable[str], input_elem_types: Iterable[int]) -> str:
    """A file's precision from its node op types and graph-input element types (ONNX ``TensorProto`` codes):
    int8 when it has quantize/dequantize or integer ops, fp16 when its input is float16, else fp32."""
    if _INT8_OPS & set(op_types):
        return "int8"
    if 10 in set(input_elem_types):  # TensorProto.FLOAT16
        return "fp16"
    return "fp32"


def file_precision(metadata: dict[str, Any], graph: Any | None = None) -> str:
    """The precision of a file: its edgecnn metadata when present, else detected from ``graph`` (an
    ``onnx.ModelProto`` from :func:`read_graph`), else fp32."""
    meta = str(metadata.get("precision") or "").lower()
    if meta in FILE_PRECISIONS:
        return meta
    if graph is None:
        return "fp32"
    inits = {i.name for i in graph.graph.initializer}
    elems = [i.type.tensor_type.elem_type for i in graph.graph.input if i.name not in inits]
    return graph_precision((n.op_type for n in graph.graph.node), elems)


def read_graph(path: str | os.PathLike) -> Any:
    """The file's ``onnx.ModelProto`` without external weights: the runtime's one place that opens a file
    with ``onnx`` (metadata and precision of files that ONNX Runtime/OpenVINO do not describe)."""
    from edgecnn import onnxfile

    return onnxfile.open_model(path, load_data=False)


def export_precision(precision: str, provider: str = "cpu") -> str:
    """Which zoo export a precision picks (``bench resnet18 --precision ...``): ONNX Runtime runs a file at its
    own precision, so fp16/int8 pick the fp16/int8 export; OpenVINO applies fp16/bf16 to the fp32 export itself.
    ``auto`` and ``bf16`` pick fp32."""
    p = check_precision(precision)
    short = str(provider).strip().lower()
    if short in ("openvino", "ov") or short.startswith("openvino:"):
        return "int8" if p == "int8" else "fp32"
    return p if p in FILE_PRECISIONS else "fp32"
