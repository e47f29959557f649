"""The one place where the optimizer calls other parts of edgecnn: export, quantization, runtime, machine facts.

Every call into exporters, quantization and the runtime goes through a function here, so that a change
of those APIs is absorbed in one module. Exporters and quantization are imported inside the functions
(lazily): measuring a candidate in its child process imports the runtime only.

Runtimes are the runtime's registered backends (:mod:`edgecnn.runtime.backends`): ``cpu``, ``cuda``,
``tensorrt`` (ONNX Runtime's providers), ``openvino`` and any plug-in. A precision names what runs: ``fp32``,
``fp16``, ``bf16`` or ``int8``; :func:`file_kind` says which file runs it, from the backend's one table (the same
one ``bench --precision`` uses: bf16 and OpenVINO/TensorRT fp16 are inference precisions of the fp32 file).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.precision import RUNTIME_PRECISIONS

#: every precision the optimizer knows: the runtime precisions (defined once, in edgecnn.runtime.precision)
PRECISIONS: tuple[str, ...] = RUNTIME_PRECISIONS


def runtimes() -> list[str]:
    """Every registered backend, in the order candidates are listed (plug-ins included), and the plug-ins that
    failed to load (listed so that they get their ``skipped`` row)."""
    from edgecnn.runtime.backends import registry

    return [*registry.names(), *[n for n in registry.failures() if n not in registry.names()]]


def reference_runtime() -> str:
    """The backend the fp32 reference candidate runs on: ONNX Runtime's CPU provider, else OpenVINO."""
    from edgecnn.runtime.backends import reference

    return reference().name


def backend_origin(name: str) -> dict[str, str | None]:
    """Where a plug-in backend comes from (``origin``: ``module:Class``, ``origin_path``: the folder holding the
    module), so the measuring child process can register it too; Nones for the built-in ones."""
    from edgecnn.runtime.backends import registry

    return {"origin": registry.origin(name), "origin_path": registry.origin_path(name)}


# --------------------------------------------------------------------------- machine facts


def cpu_info() -> dict[str, Any]:
    """CPU model, architecture and the instruction-set flags that matter for int8/bf16 (runtime's doctor)."""
    from edgecnn.runtime.doctor import cpu_info as _cpu_info

    info = _cpu_info()
    return {"model": info["model"], "arch": info["arch"], "logical_cpus": info["logical_cpus"],
            "flags": sorted(f for f, ok in info["flags"].items() if ok)}


def runtime_versions() -> dict[str, str]:
    """Installed versions of the runtimes a candidate may use (onnxruntime build, openvino)."""
    from edgecnn.runtime.backends.ort_providers import runtime_versions as _runtime_versions

    return _runtime_versions()


def int8_activation_type(cpu: dict[str, Any] | None = None) -> str:
    """The activation type of the fast int8 kernels here: uint8 on x86 (u8s8 VPMADDUBSW/VNNI: ~3x fp32 on
    ResNet-50, where int8 activations gave 0.95x), int8 elsewhere (Arm's s8s8 dot-product kernels)."""
    from edgecnn.runtime.precision import X86

    return "uint8" if (cpu or cpu_info())["arch"].lower() in X86 else "int8"


#: the architectures ``optimize --target-arch`` prepares files for (names as ``platform.machine()`` gives them)
TARGET_ARCHS: tuple[str, ...] = ("aarch64", "x86_64")


def target_arch(requested: str | None, cpu: dict[str, Any]) -> str:
    """The architecture the chosen file is for: ``requested`` (``arm64`` is ``aarch64``, ``amd64`` is ``x86_64``),
    else this machine's."""
    from edgecnn.runtime.emulation import family

    if requested is None:
        return str(cpu["arch"]).lower()
    fam = family(requested)
    name = {"arm": "aarch64", "x86": "x86_64"}.get(fam or "")
    if name is None or requested.strip().lower() not in ("aarch64", "arm64", "x86_64", "amd64"):
        raise EdgecnnError(f"unknown target architecture {requested!r}: choose from {', '.join(TARGET_ARCHS)}.")
    return name


def timing_unusable(target: str, cpu: dict[str, Any]) -> str | None:
    """Why timings measured here cannot choose a file for ``target`` (None: they can): the target is another
    architecture than this machine's, or this process is emulated."""
    from edgecnn.runtime.emulation import emulation, family

    emu = emulation()
    if emu.emulated:
        return emu.timing_note
    here = str(cpu["arch"]).lower()
    if family(target) != family(here):
        return (f"the target is {target} and this machine {here}: ONNX Runtime's {target} kernels (e.g. int8 with "
                f"signed activations) cannot be timed here")
    return None


# --------------------------------------------------------------------------- runtimes and precisions


def available_runtimes() -> dict[str, str | None]:
    """Every known runtime -> None when it can run here, else the one-line reason it cannot."""
    from edgecnn.runtime.backends import registry

    return registry.available()


def _backend(provider: str) -> Any:
    from edgecnn.runtime.backends import registry

    if provider not in runtimes():
        raise EdgecnnError(f"unknown runtime {provider!r}: choose from {', '.join(runtimes())}.")
    return registry.get(provider)


def valid_precisions(provider: str, cpu: dict[str, Any] | None = None) -> dict[str, str | None]:
    """Every precision -> None when ``provider`` can run it here, else the reason it is skipped: the backend's own
    table and plan on the file that would run it (:meth:`~edgecnn.runtime.backends.base.Backend.plan`), so the
    optimizer and ``bench --precision`` agree; plus the backend's advice (CUDA has no int8 kernels)."""
    from edgecnn.runtime.precision import CpuFeatures, detect_cpu

    backend = _backend(provider)
    feats = detect_cpu() if cpu is None else CpuFeatures(arch=cpu["arch"], flags=frozenset(cpu["flags"]),
                                                         model=cpu.get("model", ""))
    out: dict[str, str | None] = {}
    for precision in PRECISIONS:
        if precision in backend.advice:
            out[precision] = backend.advice[precision]
            continue
        kind = file_kind(provider, precision)
        try:
            backend.plan(precision, file_precision=kind, cpu=feats, file_name=f"the {kind} file")
            out[precision] = None
        except EdgecnnError as e:
            out[precision] = str(e)
    return out


def file_kind(provider: str, precision: str) -> str:
    """Which file runs ``precision`` on ``provider``: ``fp32``, ``fp16`` or ``int8`` (the backend's table; fp32
    where it cannot run at all, so that the plan says why)."""
    return _backend(provider).file_for(precision) or "fp32"


def open_engine(path: str | os.PathLike, provider: str, precision: str, threads: int, *, max_batch: int = 32,
                origin: str | None = None, origin_path: str | None = None) -> Any:
    """An Engine running ``path`` at ``precision`` on backend ``provider`` (``origin``: ``module:Class`` of a
    plug-in backend to register first, in a child process; ``origin_path``: the folder holding its module)."""
    from edgecnn.runtime.backends import registry
    from edgecnn.runtime.engine import Engine

    registry.ensure(provider, origin, origin_path)
    return Engine(path, provider=provider, precision=precision, threads=threads, max_batch=max_batch)


# --------------------------------------------------------------------------- files


def export_fp32(name: str, weights: str | os.PathLike | None = None) -> Path:
    """The validated fp32 export of zoo model ``name`` (cached; needs the export extra)."""
    try:
        from edgecnn.exporters.cache import cached_export
    except ImportError as e:
        raise EdgecnnError(f"cannot export zoo model {name!r}: {e}. Install the export extra "
                           "(pip install 'edgecnn[export]') or pass an .onnx file.") from None
    return Path(cached_export(name, "fp32", weights=weights))


def export_fp16(fp32_path: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Convert the fp32 file to fp16 weights and compute (float32 inputs/outputs), metadata precision fp16."""
    from edgecnn import onnxfile
    from edgecnn.exporters.fp16 import to_fp16

    model = to_fp16(onnxfile.open_model(fp32_path), keep_io_types=True)
    onnxfile.set_metadata(model, {**onnxfile.read_metadata(fp32_path), "precision": "fp16", "io_dtype": "float32"})
    onnxfile.save(model, output)
    return Path(output)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The decoded edgecnn metadata of a file (empty for a foreign file)."""
    from edgecnn import onnxfile

    return onnxfile.read_metadata(path)


def preprocess_config(path: str | os.PathLike) -> Any:
    """The runtime's preprocessing for the file (from its metadata and input shape)."""
    from edgecnn import onnxfile
    from edgecnn.quantize import preprocess_config as _pc

    return _pc(onnxfile.open_model(path, load_data=False))


def input_shape(path: str | os.PathLike) -> tuple[Any, ...]:
    """The file's input shape (ints, or None/str for dynamic dims)."""
    from edgecnn import onnxfile

    model = onnxfile.open_model(path, load_data=False)
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise EdgecnnError(f"{path}: expected a model with one input, found {len(inputs)}.")
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in inputs[0].type.tensor_type.shape.dim)


def file_size(path: str | os.PathLike) -> int:
    """Bytes of a model file plus its external-data files."""
    from edgecnn.profiler.accuracy import file_size as _fs

    return _fs(path)


def calibrate_once(fp32_path: str | os.PathLike, data: np.ndarray, source: str = "array") -> Any:
    """Calibration inputs checked against the model (shape, dtype), made once per model and reused by every
    int8 candidate (a ``CalibrationData``)."""
    from edgecnn.quantize import CalibrationData, load_calibration

    checked = load_calibration(np.ascontiguousarray(data, dtype=np.float32), preprocess_config(fp32_path),
                               limit=None)
    return CalibrationData(checked.data, source, False)


def quantize_int8(fp32_path: str | os.PathLike, calib: Any, output: str | os.PathLike, *,
                  exclude: Sequence[str] = (), activation_type: str = "uint8") -> Path:
    """Static QDQ int8 (per-channel int8 weights, min-max ranges from ``calib``), ``exclude`` kept in float."""
    from edgecnn.quantize import QuantizeOptions, quantize

    opts = QuantizeOptions(activation_type=activation_type, exclude=tuple(exclude), calib_size=len(calib))
    return Path(quantize(fp32_path, output, calib=calib, options=opts).output)


def rank_layers(fp32_path: str | os.PathLike, int8_path: str | os.PathLike, data: np.ndarray
                ) -> list[dict[str, Any]]:
    """Quantized nodes ranked by the error they add (worst first), as ``quantize --explain`` shows them:
    ``node``, ``op_type``, ``loss_db``, ``weight_sqnr_db``, ``input_sqnr_db``, ``output_sqnr_db``."""
    from edgecnn.quantize import explain

    return [r.as_dict() for r in explain(fp32_path, int8_path, np.ascontiguousarray(data, dtype=np.float32))]


def run_outputs(path: str | os.PathLike, x: np.ndarray, *, threads: int, batch: int = 32) -> np.ndarray:
    """The first output of ``path`` on ``x`` at the file's own precision on the reference backend (ONNX Runtime's
    CPU provider, else OpenVINO) (N x classes, float32)."""
    from edgecnn.runtime.engine import reference_engine

    engine = reference_engine(path, threads=threads, max_batch=batch)
    try:
        out = engine.run(np.ascontiguousarray(x.astype(engine.input_dtype, copy=False)))
        return np.asarray(out, dtype=np.float32).reshape(len(x), -1)
    finally:
        del engine


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None) -> dict[str, Any]:
    """Agreement, cosine, SQNR of ``candidate`` vs ``reference`` logits, and top-1/top-5 with ``labels``."""
    from edgecnn.profiler.accuracy import compare_outputs as _compare

    return _compare(reference, candidate, labels)


def machine() -> dict[str, Any]:
    """The facts a decision depends on: CPU (model, flags), Python, runtime versions."""
    return {"cpu": cpu_info(), "python": platform.python_version(), "runtimes": runtime_versions()}
