"""The OpenVINO backend: the ``openvino`` package reads the ``.onnx`` file directly (no ONNX Runtime needed) and
compiles it for a device (``CPU``, ``GPU``, ``NPU``, ``AUTO``).

* precision: an fp32/fp16 file runs at the inference precision ``INFERENCE_PRECISION_HINT`` asks (f32, bf16, f16;
  bf16/f16 on the CPU device only where the CPU has them in hardware), an int8 (QDQ) file at int8; the precision
  is read back from the compiled model, and the Engine checks on probe inputs that a reduced one really ran;
* compiled-model cache: ``CACHE_DIR`` = ``<edgecnn cache>/openvino/<hint>`` by default: one folder per inference
  precision, because OpenVINO 2026.4 returned the cached f32 blob for an f16 compile of the same file when all
  precisions shared one folder. A blob that cannot be imported is deleted and compiled again; a folder that
  cannot be written means compiling uncached, with one warning;
* threads: ``INFERENCE_NUM_THREADS`` (CPU);
* thread safety: one infer request per concurrent call, from a pool (``InferRequest`` is not thread safe).
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.backends.base import Backend, OpenOptions, Runner, TensorInfo, TritonSpec
from edgecnn.runtime.precision import CpuFeatures, PrecisionChoice, file_hint, from_openvino

#: devices passed through to OpenVINO (with an optional ``.N`` index, or ``AUTO:GPU,CPU`` style lists)
DEVICES: tuple[str, ...] = ("CPU", "GPU", "NPU", "AUTO")
#: ``Runner.providers`` entry prefix (``OpenVINO:CPU``, ``OpenVINO:GPU.0`` ...)
OPENVINO = "OpenVINO"
#: edgecnn runtime precision -> OpenVINO ``INFERENCE_PRECISION_HINT`` value
HINTS: dict[str, str] = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
HINT = "INFERENCE_PRECISION_HINT"


class CacheWarning(RuntimeWarning):
    """OpenVINO's compiled-model cache cannot be used: the model is compiled without it."""


def import_openvino() -> Any:
    """``import openvino``, or one clear error naming the extra."""
    try:
        import openvino as ov
    except ImportError as e:
        raise EdgecnnError(f"provider 'openvino' needs the openvino package ({e}): pip install 'edgecnn[openvino]' "
                           "(or 'edgecnn[cpu,openvino]' beside ONNX Runtime).") from None
    return ov


def openvino_version() -> str | None:
    """The installed openvino distribution's version (found without importing it), or None."""
    import importlib.metadata

    try:
        return importlib.metadata.version("openvino")
    except importlib.metadata.PackageNotFoundError:
        return None


def default_cache_dir() -> Path:
    """``<edgecnn cache>/openvino``: the root of OpenVINO's compiled-model caches (one ``CACHE_DIR`` per hint)."""
    from edgecnn._io import user_cache_dir

    return user_cache_dir() / "openvino"


def _check_device(device: str, available: list[str]) -> str:
    dev = device.strip().upper()
    base = dev.split(":", 1)[0].split(".", 1)[0]
    if base in ("AUTO", "MULTI", "HETERO", "BATCH"):
        return dev
    if base not in DEVICES:
        raise EdgecnnError(f"unknown OpenVINO device {device!r}: choose one of {', '.join(DEVICES)} "
                           f"(this machine has {', '.join(available) or 'none'}).")
    if not any(a == dev or a.split(".", 1)[0] == dev for a in available):
        raise EdgecnnError(f"OpenVINO device {dev} is not available: this machine has {', '.join(available) or 'none'} "
                           "(GPU needs Intel's GPU driver, NPU Intel's NPU driver; run 'edgecnn doctor').")
    return dev


def _shape(port: Any) -> tuple[Any, ...]:
    return tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return next((ln.strip() for ln in text if ln.strip() and not ln.startswith("Exception from")), type(e).__name__)


def cache_folder(root: str | os.PathLike | None, hint: str | None) -> Path:
    """The compiled-model cache folder of one inference precision: ``<root>/<hint or default>``."""
    return (Path(root) if root is not None else default_cache_dir()) / (hint or "default")


def _writable(folder: Path) -> str | None:
    """None when ``folder`` can be created and written, else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as e:
        return f"{e.strerror or type(e).__name__}: {folder}"
    return None


class OpenVINORunner(Runner):
    """A compiled OpenVINO model. ``compiled``: the ``openvino.CompiledModel``; ``float_precision``: the inference
    precision the compiled model reports; ``cache_dir``: its compiled-model cache folder (None: uncached)."""

    def __init__(self, path: str | os.PathLike, choice: PrecisionChoice, *, device: str = "CPU",
                 threads: int | None = None, cache_dir: str | os.PathLike | None = None, cache: bool = True,
                 config: Any = None, metadata: dict[str, Any] | None = None) -> None:
        ov = import_openvino()
        self.path = Path(path)
        self.core = ov.Core()
        self.device = _check_device(device or "CPU", list(self.core.available_devices))
        props: dict[str, Any] = {}
        hint = choice.flags.get(HINT)
        if hint:
            props[HINT] = hint
        if threads and self.device.startswith("CPU"):
            props["INFERENCE_NUM_THREADS"] = int(threads)
        props.update(dict(config or {}))
        folder = cache_folder(cache_dir, props.get(HINT)) if cache else None
        if folder is not None and (why := _writable(folder)) is not None:
            warnings.warn(f"OpenVINO's compiled-model cache folder cannot be written ({why}): compiling "
                          "without a cache", CacheWarning, stacklevel=4)
            folder = None
        self.cache_dir = str(folder) if folder is not None else None
        self.compiled = self._compile(props, folder)
        self.config = {k: str(v) for k, v in props.items()}
        if folder is not None:
            self.config["CACHE_DIR"] = str(folder)
        self.execution_devices = self._prop("EXECUTION_DEVICES") or [self.device]
        self.providers = (f"{OPENVINO}:{','.join(map(str, self.execution_devices))}",)
        self.provider_options = {self.providers[0]: dict(self.config)}
        actual = self._prop(HINT)
        self.float_precision = from_openvino(actual) if actual is not None else None
        if choice.inference in HINTS and choice.file != "int8" and self.float_precision not in (None,
                                                                                                choice.inference):
            raise EdgecnnError(f"OpenVINO on {self.device} would run {self.path.name} at {self.float_precision}, "
                               f"not the requested {choice.inference}: pick --precision auto or "
                               f"{self.float_precision}.")
        self.precision = choice.inference
        self.threads = self._prop("INFERENCE_NUM_THREADS")
        self.on_cpu = self.providers[0] == f"{OPENVINO}:CPU"
        self.metadata = dict(metadata or {})
        self.inputs = tuple(TensorInfo(p.get_any_name(), _shape(p), np.dtype(p.get_element_type().to_dtype()).name)
                            for p in self.compiled.inputs)
        self.outputs = tuple(TensorInfo(p.get_any_name(), _shape(p), np.dtype(p.get_element_type().to_dtype()).name)
                             for p in self.compiled.outputs)
        self._pool: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def _compile(self, props: dict[str, Any], folder: Path | None) -> Any:
        """Compile (importing the cached blob when there is one); a blob that fails to import is deleted and the
        model compiled again, never trusted."""
        want = dict(props)
        if folder is not None:
            want["CACHE_DIR"] = str(folder)
        try:
            return self.core.compile_model(str(self.path), self.device, want)
        except Exception as e:
            if folder is None:
                raise EdgecnnError(f"OpenVINO cannot compile {self.path} for {self.device}: "
                                   f"{_reason(e)[:300]}") from None
        shutil.rmtree(folder, ignore_errors=True)  # a corrupt cache entry: rebuilt
        folder.mkdir(parents=True, exist_ok=True)
        try:
            return self.core.compile_model(str(self.path), self.device, want)
        except Exception as e:
            raise EdgecnnError(f"OpenVINO cannot compile {self.path} for {self.device}: {_reason(e)[:300]}") from None

    def _prop(self, name: str) -> Any:
        try:
            return self.compiled.get_property(name)
        except Exception:  # not every device/plugin reports every property
            return None

    def _request(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return self.compiled.create_infer_request()

    def run(self, x: np.ndarray, output_names: list[str] | None = None) -> list[np.ndarray]:
        """All outputs for one batch; safe to call from several threads at once."""
        req = self._request()
        try:
            req.infer({0: x})
            return [req.get_output_tensor(i).data.copy() for i in range(len(self.outputs))]
        finally:
            self._pool.put(req)

    def bare(self, x: np.ndarray) -> Any:
        req = self._request()
        try:
            return req.infer({0: x})
        finally:
            self._pool.put(req)

    def profile(self, x: np.ndarray, runs: int) -> list[list[dict[str, Any]]]:
        """Per-node performance counters of ``runs`` runs (after one warm-up), one list per run; needs the
        runner compiled with ``PERF_COUNT`` (``OpenOptions.profiling``). Nodes that did not execute are left out."""
        req = self.compiled.create_infer_request()
        req.infer({0: x})
        out = []
        for _ in range(runs):
            req.infer({0: x})
            out.append([{"node": p.node_name, "op": p.node_type, "kernel": p.exec_type,
                         "us": p.real_time.total_seconds() * 1e6}
                        for p in req.get_profiling_info() if str(p.status).endswith("EXECUTED")])
        return out


class OpenVINOBackend(Backend):
    """OpenVINO on one device (``--device``: CPU default, GPU, NPU, AUTO)."""

    name = "openvino"
    family = "openvino"
    label = "OpenVINO"
    reference_rank = 1
    triton = TritonSpec("KIND_CPU", "openvino")

    def unavailable(self) -> str | None:
        if openvino_version() is None:
            return "openvino is not installed (pip install 'edgecnn[openvino]')"
        return None

    def devices(self) -> list[str]:
        return list(openvino_info().get("devices") or {})

    def versions(self) -> dict[str, str]:
        v = openvino_version()
        return {"openvino": v} if v else {}

    def owns(self, provider: str) -> bool:
        return provider == self.name or provider.startswith(f"{OPENVINO}:") or provider == "OpenVINOExecutionProvider"

    def file_for(self, precision: str) -> str | None:
        return "int8" if precision == "int8" else "fp32"  # fp16/bf16: inference precisions of the fp32 file

    def plan(self, requested: str, *, file_precision: str, cpu: CpuFeatures, device: str = "CPU",
             file_name: str = "this file") -> PrecisionChoice:
        req, file_p = requested, file_precision
        dev = str(device or "CPU").upper().split(".", 1)[0]
        if file_p == "int8":
            if req == "int8":
                return PrecisionChoice(req, file_p, "int8",
                                       reason="OpenVINO runs the quantized (QDQ) layers of an int8 file in int8")
            raise EdgecnnError(f"{file_name} is an int8 (QDQ) file: OpenVINO runs it only at int8. For {req}, "
                               f"{file_hint(file_p, file_name)}, or use --precision auto.")
        if req == "int8":
            raise EdgecnnError(f"{file_name} is an {file_p} file: OpenVINO does not quantize at load time; "
                               f"quantize it first (edgecnn quantize {file_name}) and pass the int8 file "
                               "(zoo names: --precision int8 picks it).")
        on_cpu = dev == "CPU"
        if on_cpu and req == "bf16" and not cpu.native_bf16:
            raise EdgecnnError(f"precision bf16 refused: this CPU ({cpu.model or cpu.arch}) has no native bf16 "
                               "(AVX512-BF16 or AMX on x86, the bf16 feature on aarch64), so OpenVINO would emulate "
                               "it (measured 4x slower than fp32). Use --precision fp32, auto, or an int8 file.")
        if on_cpu and req == "fp16" and not cpu.native_fp16:
            raise EdgecnnError(f"precision fp16 refused on OpenVINO's CPU device: this CPU ({cpu.model or cpu.arch}) "
                               "has no fp16 arithmetic (AVX512-FP16/AMX-FP16 on x86, asimdhp on aarch64), and "
                               "OpenVINO would run bf16 or fp32 instead. Use --precision auto, fp32 or bf16.")
        return PrecisionChoice(req, file_p, req, flags={HINT: HINTS[req]},
                               reason=f"OpenVINO {HINT}={HINTS[req]} on {dev}")

    def candidates(self, *, file_precision: str, cpu: CpuFeatures, device: str = "CPU") -> list[str]:
        out = super().candidates(file_precision=file_precision, cpu=cpu, device=device)
        if "fp32" in out:  # the reference the reduced precisions are compared with
            out.remove("fp32")
            out.insert(0, "fp32")
        return out

    def open(self, path: Path, choice: PrecisionChoice, options: OpenOptions) -> OpenVINORunner:
        from edgecnn.metadata import decode
        from edgecnn.runtime.precision import read_graph

        graph = read_graph(path)
        meta = decode({p.key: p.value for p in graph.metadata_props})
        del graph
        config = dict(options.config or {})
        if options.profiling:
            config.setdefault("PERF_COUNT", True)
        return OpenVINORunner(path, choice, device=str(options.device or "CPU").upper(), threads=options.threads,
                              cache_dir=options.cache_dir, cache=options.cache, config=config, metadata=meta)


def openvino_info() -> dict[str, Any]:
    """OpenVINO version and devices (with their full names) for ``edgecnn doctor``; never raises."""
    info: dict[str, Any] = {"version": openvino_version(), "devices": {}, "error": None}
    if info["version"] is None:
        return info
    try:
        import openvino as ov

        core = ov.Core()
        info["runtime_version"] = ov.get_version()
        for dev in core.available_devices:
            try:
                name = core.get_property(dev, "FULL_DEVICE_NAME")
                caps = [str(c) for c in core.get_property(dev, "OPTIMIZATION_CAPABILITIES")]
            except Exception:
                name, caps = dev, []
            info["devices"][dev] = {"name": str(name), "capabilities": caps}
    except Exception as e:
        info["error"] = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return info


def ov_fixes(report: dict[str, Any]) -> list[str]:
    """The OpenVINO fixes of a doctor report."""
    out: list[str] = []
    ov = report.get("openvino") or {}
    if report["cpu"].get("native_bf16") and not ov.get("version"):
        out.append("this CPU has native bf16, which OpenVINO can run (a flag says what can run, not what is fast): "
                   "pip install 'edgecnn[openvino]'; --provider openvino --precision auto measures bf16 against "
                   "fp32 on your model.")
    if ov.get("error"):
        out.append(f"openvino is installed but does not start ({ov['error']}): pip install --force-reinstall openvino.")
    return out
