"""One precision vocabulary for every runtime; each backend's rules live in the backend.

``PRECISIONS`` = ``auto|fp32|fp16|bf16|int8`` is what a user may ask. Three notions, each defined once here:
:data:`FILE_PRECISIONS` (what a file is: the exporters write fp32/fp16, ``edgecnn quantize`` int8),
:data:`RUNTIME_PRECISIONS` (what a backend executes: a file's own, or an inference precision such as OpenVINO's
bf16 applied to an fp32 file) and the request. Which file and flags run a precision is the backend's one table
(:meth:`edgecnn.runtime.backends.base.Backend.file_for` and ``plan``); :func:`resolve_precision` asks it, a pure
function of (backend, file precision, CPU features, device), so every branch is testable with the CPU faked
(:class:`CpuFeatures`). A combination that cannot run is one :class:`~edgecnn.errors.EdgecnnError` naming what to
use instead; nothing is replaced silently. ``auto`` is measured (:mod:`edgecnn.runtime.auto_precision`).

CPU features are read in one place, :func:`detect_cpu` (``/proc/cpuinfo`` flags on x86, ``Features`` on
aarch64). Native bf16 = AVX512-BF16 or AMX-BF16 on x86, the ``bf16`` feature on aarch64; without it
OpenVINO emulates bf16 (measured 4x slower than fp32 on an Ice Lake Xeon), so ``bf16`` is refused there.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError

#: what a user may ask for, everywhere (``--precision``, ``Engine(precision=...)``)
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16", "int8")
#: precisions the exporters write a file in
EXPORT_PRECISIONS: tuple[str, ...] = ("fp32", "fp16")
#: precisions a file can have: the export precisions, and int8 (``edgecnn quantize`` writes QDQ files)
FILE_PRECISIONS: tuple[str, ...] = (*EXPORT_PRECISIONS, "int8")
#: precisions a backend can execute (a file's own, or an inference precision applied to a float file)
RUNTIME_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")
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


#: Linux arm64 ``AT_HWCAP`` / ``AT_HWCAP2`` bits (``asm/hwcap.h``) of the features in :data:`ARM_FLAGS`
HWCAP_BITS: dict[str, int] = {"asimd": 1, "fphp": 9, "asimdhp": 10, "asimddp": 20, "sve": 22}
HWCAP2_BITS: dict[str, int] = {"sve2": 1, "i8mm": 13, "bf16": 14, "sme": 23}
AT_HWCAP, AT_HWCAP2 = 16, 26


def hwcap_flags(hwcap: int, hwcap2: int = 0) -> frozenset[str]:
    """The :data:`ARM_FLAGS` features set in an aarch64 process's ``AT_HWCAP``/``AT_HWCAP2`` words."""
    return frozenset([f for f, bit in HWCAP_BITS.items() if hwcap >> bit & 1]
                     + [f for f, bit in HWCAP2_BITS.items() if hwcap2 >> bit & 1])


def _auxv_flags() -> frozenset[str] | None:
    """This aarch64 process's features from ``getauxval`` (what its kernel, or qemu-user, tells it), or None."""
    try:
        import ctypes

        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype, getauxval.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
        return hwcap_flags(int(getauxval(AT_HWCAP)), int(getauxval(AT_HWCAP2)))
    except (OSError, AttributeError):
        return None


@functools.lru_cache(maxsize=1)
def _detect_host() -> CpuFeatures:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    found = parse_cpuinfo(text)
    if found.is_arm64 and not re.search(r"^Features\s*:", text, re.M):
        # an emulated aarch64 process may be shown the host's x86 cpuinfo (qemu-user before 8.2): the features it
        # can use are those the emulator announces in the auxiliary vector, as ONNX Runtime reads them
        auxv = _auxv_flags()
        if auxv is not None:
            found = CpuFeatures(found.arch, auxv, found.model)
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
    """What a backend runs for a request (:meth:`edgecnn.runtime.backends.base.Backend.plan`)."""

    requested: str
    #: the file's own precision (fp32, fp16 or int8)
    file: str
    #: the runtime precision that is asked of the backend (fp32, fp16, bf16, int8)
    inference: str
    #: the backend's own flags for it (``INFERENCE_PRECISION_HINT``, ``trt_fp16_enable``...); empty: none
    flags: Mapping[str, Any] = field(default_factory=dict)
    #: why this choice (one sentence, for reports)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "file": self.file, "inference": self.inference,
                "flags": dict(self.flags), "reason": self.reason}


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


def file_hint(file_precision: str, name: str) -> str:
    """What to pass instead of a file that cannot run the asked precision."""
    if file_precision == "int8":
        return f"pass the fp32 file instead of {name} (zoo names: --precision fp32 picks it)"
    return f"pass the matching file instead of {name}"


def resolve_precision(requested: str, *, provider: str, file_precision: str, cpu: CpuFeatures,
                      device: str = "CPU", file_name: str = "this file") -> PrecisionChoice:
    """What runs for ``requested`` on backend ``provider`` (any registered name): the backend's own
    :meth:`~edgecnn.runtime.backends.base.Backend.plan`. ``auto`` gives the backend's first candidate (the file's
    own precision); the Engine measures among the candidates (:mod:`edgecnn.runtime.auto_precision`)."""
    from edgecnn.runtime.backends import registry

    req = check_precision(requested)
    file_p = file_precision if file_precision in FILE_PRECISIONS else "fp32"
    backend = registry.get(provider)
    if req == "auto":
        return backend.default_choice(file_precision=file_p, cpu=cpu, device=device)
    return backend.plan(req, file_precision=file_p, cpu=cpu, device=device, file_name=file_name)


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
    """Which zoo export a runtime precision runs from on ``provider`` (``bench resnet18 --precision ...``): the
    backend's one table (:meth:`~edgecnn.runtime.backends.base.Backend.file_for`), shared with ``optimize``.
    ``auto`` never changes the file: fp32."""
    from edgecnn.runtime.backends import registry

    p = check_precision(precision)
    if p == "auto":
        return "fp32"
    return registry.get(provider).file_for(p) or "fp32"
