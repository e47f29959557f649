"""The ONNX Runtime backend: one :class:`OrtBackend` per provider choice (``cpu``, ``cuda``, ``tensorrt``, and
``auto`` = the best this build has), sharing one runner, :class:`OrtRunner` (an ``InferenceSession``).

ONNX Runtime runs a file at its own precision; TensorRT alone builds fp16 kernels from an fp32 file
(``trt_fp16_enable``) and takes int8 QDQ files with ``trt_int8_enable``. Provider resolution, options and the
TensorRT engine cache live in :mod:`edgecnn.runtime.backends.ort_providers`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn._io import sha256_file
from edgecnn.errors import EdgecnnError
from edgecnn.metadata import decode
from edgecnn.runtime.backends import ort_providers as P
from edgecnn.runtime.backends.base import Backend, OpenOptions, Runner, TensorInfo, TritonSpec
from edgecnn.runtime.precision import CpuFeatures, PrecisionChoice, file_hint

_DTYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
}
#: name -> ``onnxruntime.GraphOptimizationLevel`` member (looked up when a session is made)
OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
              "all": "ORT_ENABLE_ALL"}
_LABELS = {"cpu": "ONNX Runtime's CPU provider", "cuda": "ONNX Runtime's CUDA provider",
           "tensorrt": "ONNX Runtime's TensorRT provider", "auto": "ONNX Runtime"}


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def _ort_tensor(a: Any) -> TensorInfo:
    dt = _DTYPES.get(a.type)
    return TensorInfo(a.name, tuple(a.shape), dt.name if dt is not None else a.type)


def cuda_device_id(device: str | int, provider: str) -> int:
    """``device`` for ONNX Runtime providers: an index (``0``, ``"cuda:1"``, ``"GPU.1"``) or ``cpu``."""
    text = str(device).strip().lower()
    if text in ("cpu", "") and provider in ("cpu", "auto"):
        return 0
    for prefix in ("cuda:", "gpu:", "gpu.", "cuda"):
        text = text.removeprefix(prefix)
    if text.isdigit():
        return int(text)
    raise EdgecnnError(f"device {device!r} does not apply to provider {provider!r}: ONNX Runtime takes a CUDA "
                       "device index (0, cuda:1); OpenVINO devices (CPU, GPU, NPU, AUTO) need --provider openvino.")


class OrtRunner(Runner):
    """An ``onnxruntime.InferenceSession`` on the resolved provider chain (IO binding on GPUs)."""

    peak_probe = True

    def __init__(self, path: Path, short: str, choice: PrecisionChoice, options: OpenOptions) -> None:
        ort = P.import_onnxruntime()
        self.path = path
        avail = list(options.available) if options.available is not None else P.available_providers()
        self.resolution = P.resolve_providers(short, avail, fallback=options.fallback)
        gpu = dict(options.gpu)
        device_id = int(gpu.pop("device_id", 0))
        if options.device is not None:
            device_id = cuda_device_id(options.device, short)
        fp16 = bool(gpu.pop("fp16", False)) or bool(choice.flags.get("trt_fp16_enable"))
        int8 = bool(gpu.pop("int8", False)) or bool(choice.flags.get("trt_int8_enable"))
        config = P.ProviderConfig(device_id=device_id, fp16=fp16, int8=int8, cache_dir=options.cache_dir,
                                  provider_options=dict(options.provider_options or {}), **gpu)
        if P.TENSORRT in self.resolution.providers:
            config.model_key = sha256_file(path)
            P.trt_cache_path(config).mkdir(parents=True, exist_ok=True)
        if P.CUDA in self.resolution.providers or P.TENSORRT in self.resolution.providers:
            P.preload_gpu_libraries()
        names, opts = P.build_providers(self.resolution, config)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(options.threads)
        so.inter_op_num_threads = int(options.inter_op_threads)
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not options.spinning:  # idle intra-op threads sleep instead of spinning: better on shared CPUs
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[options.graph_optimization])
        if options.optimized_model_path is not None:
            so.optimized_model_filepath = str(options.optimized_model_path)
        self.session = self._create_session(so, names, opts)
        registered = list(self.session.get_providers())
        late = P.check_registered(self.resolution, registered, fallback=options.fallback)
        self.warning = late or self.resolution.warning
        if self.warning:
            warnings.warn(self.warning, P.ProviderFallbackWarning, stacklevel=4)
        self.providers = tuple(registered)
        self.inputs = tuple(_ort_tensor(a) for a in self.session.get_inputs())
        self.outputs = tuple(_ort_tensor(a) for a in self.session.get_outputs())
        self.metadata = decode(self.session.get_modelmeta().custom_metadata_map)
        on_gpu = self.providers[0] in (P.CUDA, P.TENSORRT)
        self.on_cpu = self.providers[0] == P.CPU
        self.builds_on_first_run = self.providers[0] == P.TENSORRT
        self.io_binding = on_gpu if options.io_binding is None else bool(options.io_binding)
        self._device = ("cuda", device_id) if on_gpu else ("cpu", 0)
        self.device = f"cuda:{device_id}" if on_gpu else "cpu"
        self.threads = int(options.threads)
        self.provider_options = dict(zip(names, opts, strict=True))
        self.precision = choice.inference
        self.running_short = P.normalize(self.providers[0]) if self.providers[0] in P.PROVIDER_NAMES.values() \
            else "cpu"

    def _create_session(self, so: Any, names: list[str], opts: list[dict[str, str]]) -> Any:
        ort = P.import_onnxruntime()
        try:
            return ort.InferenceSession(str(self.path), sess_options=so, providers=names, provider_options=opts)
        except Exception as e:  # ORT raises its own classes (InvalidProtobuf, Fail, ...) with long text
            reason = _first_line(e)
            if any(k in reason for k in ("Protobuf parsing failed", "INVALID_PROTOBUF", "InvalidProtobuf")):
                raise EdgecnnError(f"cannot load {self.path}: not a valid ONNX model (corrupt or truncated "
                                   f"file?): {reason}") from None
            raise EdgecnnError(f"cannot load {self.path} with {', '.join(names)}: {reason}") from None

    def run(self, x: np.ndarray, output_names: list[str]) -> list[np.ndarray]:
        name = self.inputs[0].name
        if not self.io_binding:
            return self.session.run(output_names, {name: x})
        binding = self.session.io_binding()  # one per call: bindings are not shared across threads
        binding.bind_cpu_input(name, x)
        device, device_id = self._device
        for out in output_names:
            binding.bind_output(out, device, device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def bare(self, x: np.ndarray) -> Any:
        return self.session.run(None, {self.inputs[0].name: x})


class OrtBackend(Backend):
    """ONNX Runtime on one provider choice (``cpu``, ``cuda``, ``tensorrt``) or ``auto`` (the best it has)."""

    family = "onnxruntime"

    def __init__(self, short: str) -> None:
        #: the ONNX Runtime provider choice it resolves (its ``name`` unless a subclass renames it)
        self.provider = short
        self.name = short
        self.label = _LABELS[short]
        self.reference_rank = 0 if short == "cpu" else None
        self.advice = ({"int8": "ONNX Runtime's CUDA provider runs QDQ int8 files without int8 kernels (use tensorrt)"}
                       if short == "cuda" else {})
        self.triton = {"cpu": TritonSpec("KIND_CPU"), "cuda": TritonSpec("KIND_GPU"),
                       "tensorrt": TritonSpec("KIND_GPU", "tensorrt", gpu_accelerator=True,
                                              precision_modes=("FP32", "FP16", "INT8"))}.get(short)

    def unavailable(self) -> str | None:
        try:
            avail = P.available_providers()
        except EdgecnnError as e:
            return str(e)
        except Exception as e:  # noqa: BLE001 - a broken onnxruntime leaves other backends usable
            return f"onnxruntime cannot be imported: {str(e).splitlines()[0][:200]}"
        full = P.PROVIDER_NAMES.get(self.provider)
        if full is None or full in avail or full == P.CPU:
            return None
        return f"this onnxruntime build has no {full} (see 'edgecnn doctor')"

    def devices(self) -> list[str]:
        return ["cpu"] if self.provider == "cpu" else ["cuda:0"]

    def versions(self) -> dict[str, str]:
        return P.ort_distributions()

    def owns(self, provider: str) -> bool:
        full = P.PROVIDER_NAMES.get(self.provider)
        return provider in (self.name, full) or (self.provider == "auto" and provider in P.PROVIDER_NAMES.values())

    def file_for(self, precision: str) -> str | None:
        if precision == "bf16":
            return None
        if precision == "fp16" and self.provider == "tensorrt":
            return "fp32"  # TensorRT builds fp16 kernels from the fp32 file (trt_fp16_enable)
        return precision

    def plan(self, requested: str, *, file_precision: str, cpu: CpuFeatures, device: str = "CPU",
             file_name: str = "this file") -> PrecisionChoice:
        req, file_p, runtime = requested, file_precision, self.label
        quantize_hint = (f"quantize it first (edgecnn quantize {file_name}) and pass the int8 file "
                         "(zoo names: --precision int8 picks it)")
        if req == file_p:
            flags = {"trt_int8_enable": True} if req == "int8" and self.provider == "tensorrt" else {}
            return PrecisionChoice(req, file_p, file_p, flags=flags, reason=f"{runtime} runs the file at its own "
                                   "precision")
        if req == "fp16" and self.provider == "tensorrt" and file_p == "fp32":
            return PrecisionChoice(req, file_p, "fp16", flags={"trt_fp16_enable": True},
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
                           f"{file_hint(file_p, file_name)}, or use --precision auto.")

    def candidates(self, *, file_precision: str, cpu: CpuFeatures, device: str = "CPU") -> list[str]:
        return [file_precision]  # TensorRT's fp16 flag is asked for explicitly, never picked by auto here

    def open(self, path: Path, choice: PrecisionChoice, options: OpenOptions) -> OrtRunner:
        runner = OrtRunner(path, self.provider, choice, options)
        if choice.flags.get("trt_fp16_enable") and not runner.builds_on_first_run:
            runner.precision = choice.file  # fell back from TensorRT: nothing builds fp16 kernels
        return runner

    def resolved(self, options: OpenOptions) -> OrtBackend:
        """The backend of the provider that will run (``auto`` resolved against this build), for planning."""
        if self.provider != "auto":
            return self
        avail = list(options.available) if options.available is not None else P.available_providers()
        primary = P.resolve_providers("auto", avail).primary
        return OrtBackend(P.normalize(primary))


def builtin() -> list[Backend]:
    """The ONNX Runtime backends, one per provider choice."""
    return [OrtBackend("cpu"), OrtBackend("cuda"), OrtBackend("tensorrt")]
