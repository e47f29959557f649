"""``Engine``: one ``.onnx`` file on ONNX Runtime (CPU, CUDA, TensorRT) or OpenVINO, with provider and
precision resolution, input checks, batch splitting and IO binding on GPUs. Safe to call from several threads
at once. The API is the same whichever backend runs underneath; the OpenVINO side lives in
:mod:`edgecnn.runtime.openvino_backend`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn._io import sha256_file
from edgecnn.errors import EdgecnnError
from edgecnn.metadata import decode
from edgecnn.runtime import precision as PR
from edgecnn.runtime import providers as P
from edgecnn.runtime.images import PreprocessConfig

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
_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
               "all": "ORT_ENABLE_ALL"}
GRAPH_OPTIMIZATIONS = tuple(_OPT_LEVELS)


def default_threads() -> int:
    """Intra-op threads: the CPUs this process may use (all cores of a small device)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (ints, or str/None for dynamic dims) and numpy dtype name of a graph input/output."""

    name: str
    shape: tuple[Any, ...]
    dtype: str


@dataclass(frozen=True)
class EngineInfo:
    """What an :class:`Engine` runs: its file, tensors, backend, provider, device, precision and metadata."""

    path: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    #: providers registered in the session, in priority order (the first runs the model)
    providers: tuple[str, ...]
    requested_provider: str
    provider_options: dict[str, dict[str, str]]
    #: fixed batch size of the graph, or None for a dynamic batch
    batch_size: int | None
    max_batch: int
    io_binding: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    #: ``onnxruntime`` or ``openvino``
    backend: str = "onnxruntime"
    #: the device that runs: ``cpu``/``cuda:N`` on ONNX Runtime, the OpenVINO device(s) (``CPU``, ``GPU.0``...)
    device: str = "cpu"
    #: the precision that runs (fp32, fp16, bf16, int8), the file's own, and what was asked for
    precision: str = "fp32"
    file_precision: str = "fp32"
    requested_precision: str = "auto"
    precision_reason: str = ""
    #: threads the backend really uses (intra-op / INFERENCE_NUM_THREADS)
    threads: int | None = None
    #: OpenVINO only: its compiled-model cache folder (CACHE_DIR)
    cache_dir: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def _np_dtype(name: str) -> np.dtype:
    try:
        return np.dtype(name)
    except TypeError:  # an ONNX type numpy has no name for
        return np.dtype(np.float32)


def _ort_tensor(a: Any) -> TensorInfo:
    dt = _DTYPES.get(a.type)
    return TensorInfo(a.name, tuple(a.shape), dt.name if dt is not None else a.type)


def _cuda_device_id(device: str | int, provider: str) -> int:
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


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 300 else line[:297] + "..."


class Engine:
    """Run an ``.onnx`` classifier on ONNX Runtime or OpenVINO.

    ``provider``: ``auto`` (TensorRT > CUDA > CPU, best available ONNX Runtime provider; OpenVINO when only
    the openvino package is installed), ``cpu``, ``cuda``, ``tensorrt`` or ``openvino``
    (:data:`edgecnn.runtime.providers.PROVIDERS`). ``precision``: ``auto``, ``fp32``, ``fp16``, ``bf16`` or
    ``int8`` (:data:`edgecnn.runtime.precision.PRECISIONS`); what runs is decided by
    :func:`~edgecnn.runtime.precision.resolve_precision` and reported in :attr:`info`. ``device``: the
    OpenVINO device (``CPU`` default; ``GPU``, ``NPU``, ``AUTO`` passed through), or a CUDA device index.
    A requested provider that is not available raises :class:`EdgecnnError`, unless ``fallback=True``
    (then one :class:`ProviderFallbackWarning` names the provider that really runs; OpenVINO never falls back).
    GPU options (``device_id``, ``fp16``, ``int8``, ``cache_dir``, ``workspace_size``,
    ``cudnn_conv_algo_search``, ``arena_extend_strategy``) build ONNX Runtime's provider options;
    ``provider_options={"cuda": {...}, "tensorrt": {...}}`` overrides any of them. On OpenVINO, ``cache_dir`` is
    its compiled-model cache (default ``<edgecnn cache>/openvino``) and ``openvino_config`` overrides any
    OpenVINO property. ``threads``: intra-op threads (default: the CPUs available); ``spinning=False`` lets
    idle intra-op threads sleep instead of spin (for CPUs shared with other work); ``graph_optimization``: one
    of ``disable``, ``basic``, ``extended``, ``all``; ``optimized_model_path``: where ONNX Runtime saves the
    optimized graph. ``max_batch``: chunk size for models with a dynamic batch. ``io_binding``: bind
    inputs/outputs (default: on for CUDA/TensorRT). ``available``: the provider list to resolve against
    (default: what this onnxruntime build reports) and ``cpu``: the CPU features to decide precision with
    (default: this machine's); tests pass stubs.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        provider: str = "auto",
        *,
        precision: str = "auto",
        device: str | int | None = None,
        fallback: bool = False,
        device_id: int = 0,
        fp16: bool = False,
        int8: bool = False,
        cache_dir: str | os.PathLike | None = None,
        workspace_size: int = 1 << 30,
        cudnn_conv_algo_search: str = "EXHAUSTIVE",
        arena_extend_strategy: str = "kSameAsRequested",
        provider_options: Mapping[str, Mapping[str, Any]] | None = None,
        openvino_config: Mapping[str, Any] | None = None,
        threads: int | None = None,
        inter_op_threads: int = 1,
        spinning: bool = True,
        graph_optimization: str = "all",
        optimized_model_path: str | os.PathLike | None = None,
        max_batch: int = 32,
        io_binding: bool | None = None,
        available: Sequence[str] | None = None,
        cpu: PR.CpuFeatures | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise EdgecnnError(f"model file not found: {self.path}")
        if not self.path.is_file():
            raise EdgecnnError(f"not a file: {self.path} (expected an .onnx model file)")
        if max_batch < 1:
            raise EdgecnnError(f"max_batch must be >= 1, got {max_batch}.")
        if graph_optimization not in _OPT_LEVELS:
            raise EdgecnnError(f"unknown graph optimization {graph_optimization!r}: choose one of "
                               f"{', '.join(_OPT_LEVELS)}.")
        self.max_batch = int(max_batch)
        self.fallback = fallback
        self._io_binding_arg = io_binding
        self.threads = int(threads) if threads else default_threads()
        self._cpu = cpu if cpu is not None else PR.detect_cpu()
        requested_precision = PR.check_precision(precision)
        short = P.normalize(provider)
        if short == "auto" and available is None and not P.onnxruntime_installed():
            from edgecnn.runtime.openvino_backend import openvino_version

            if openvino_version() is None:
                P.import_onnxruntime()  # raises: no runtime at all, naming the extras
            short = "openvino"
        self.openvino = None
        self.cache_dir: str | None = None
        if short == "openvino":
            self._init_openvino(requested_precision, device, cache_dir, openvino_config)
        else:
            if device is not None:
                device_id = _cuda_device_id(device, short)
            self._init_ort(short, requested_precision, fallback=fallback, device_id=device_id, fp16=fp16, int8=int8,
                           cache_dir=cache_dir, workspace_size=workspace_size,
                           cudnn_conv_algo_search=cudnn_conv_algo_search,
                           arena_extend_strategy=arena_extend_strategy, provider_options=provider_options,
                           inter_op_threads=inter_op_threads, spinning=spinning,
                           graph_optimization=graph_optimization, optimized_model_path=optimized_model_path,
                           available=available)

        if len(self._inputs) != 1:
            raise EdgecnnError(f"{self.path}: expected a model with one input, found {len(self._inputs)} "
                               f"({', '.join(i.name for i in self._inputs)}).")
        first = self._inputs[0]
        self.input_name: str = first.name
        self.input_shape: tuple[Any, ...] = tuple(first.shape)
        if len(self.input_shape) != 4:
            raise EdgecnnError(f"{self.path}: expected an NCHW image input, found input {self.input_name!r} "
                               f"of rank {len(self.input_shape)} {list(self.input_shape)}.")
        self.input_dtype: np.dtype = _np_dtype(first.dtype)
        self.output_names: list[str] = [o.name for o in self._outputs]
        b = self.input_shape[0]
        self.batch_size: int | None = b if isinstance(b, int) and b > 0 else None

    # ------------------------------------------------------------------ construction helpers

    def _init_ort(self, short: str, requested_precision: str, *, fallback: bool, device_id: int, fp16: bool,
                  int8: bool, cache_dir: str | os.PathLike | None, workspace_size: int, cudnn_conv_algo_search: str,
                  arena_extend_strategy: str, provider_options: Mapping[str, Mapping[str, Any]] | None,
                  inter_op_threads: int, spinning: bool, graph_optimization: str,
                  optimized_model_path: str | os.PathLike | None, available: Sequence[str] | None) -> None:
        ort = P.import_onnxruntime()
        self.backend = "onnxruntime"
        avail = list(available) if available is not None else P.available_providers()
        self.resolution = P.resolve_providers(short, avail, fallback=fallback)
        primary_short = P.normalize(self.resolution.primary)
        graph = None
        if requested_precision != "auto":  # decide before the session: TensorRT may build fp16 kernels
            graph = PR.read_graph(self.path)
            file_p = PR.file_precision(decode({p.key: p.value for p in graph.metadata_props}), graph)
            choice = PR.resolve_precision(requested_precision, provider=primary_short, file_precision=file_p,
                                          cpu=self._cpu, file_name=self.path.name)
            fp16 = fp16 or choice.tensorrt_fp16
        config = P.ProviderConfig(
            device_id=device_id, fp16=fp16, int8=int8, cache_dir=cache_dir, workspace_size=workspace_size,
            cudnn_conv_algo_search=cudnn_conv_algo_search, arena_extend_strategy=arena_extend_strategy,
            provider_options=dict(provider_options or {}),
        )
        if P.TENSORRT in self.resolution.providers:
            config.model_key = sha256_file(self.path)
            P.trt_cache_path(config).mkdir(parents=True, exist_ok=True)
        if P.CUDA in self.resolution.providers or P.TENSORRT in self.resolution.providers:
            P.preload_gpu_libraries()
        names, opts = P.build_providers(self.resolution, config)

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = int(inter_op_threads)
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not spinning:  # idle intra-op threads sleep instead of spinning: better on shared/oversubscribed CPUs
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[graph_optimization])
        if optimized_model_path is not None:
            so.optimized_model_filepath = str(optimized_model_path)
        self._session = self._create_session(so, names, opts)

        registered = list(self._session.get_providers())
        warning = self.resolution.warning
        late = P.check_registered(self.resolution, registered, fallback=fallback)
        warning = late or warning
        if warning:
            warnings.warn(warning, P.ProviderFallbackWarning, stacklevel=3)
        self.warning = warning
        self.providers = tuple(registered)
        self._inputs = tuple(_ort_tensor(a) for a in self._session.get_inputs())
        self._outputs = tuple(_ort_tensor(a) for a in self._session.get_outputs())
        self.metadata: dict[str, Any] = decode(self._session.get_modelmeta().custom_metadata_map)
        if graph is None and str(self.metadata.get("precision") or "") not in PR.FILE_PRECISIONS:
            graph = PR.read_graph(self.path)  # a foreign file: look at its ops
        running = P.normalize(self.providers[0]) if self.providers[0] in P.PROVIDER_NAMES.values() else "cpu"
        self.precision_choice = PR.resolve_precision(
            requested_precision, provider=running, file_precision=PR.file_precision(self.metadata, graph),
            cpu=self._cpu, file_name=self.path.name)
        self.precision = self.precision_choice.inference

        on_gpu = self.providers[0] in (P.CUDA, P.TENSORRT)
        self.io_binding = on_gpu if self._io_binding_arg is None else bool(self._io_binding_arg)
        self._device = ("cuda", device_id) if on_gpu else ("cpu", 0)
        self.device = f"cuda:{device_id}" if on_gpu else "cpu"
        self._provider_options = dict(zip(names, opts, strict=True))

    def _init_openvino(self, requested_precision: str, device: str | int | None,
                       cache_dir: str | os.PathLike | None, openvino_config: Mapping[str, Any] | None) -> None:
        from edgecnn.runtime.openvino_backend import OpenVINOBackend

        self.backend = "openvino"
        graph = PR.read_graph(self.path)
        self.metadata = decode({p.key: p.value for p in graph.metadata_props})
        dev = str(device or "CPU").upper()
        choice = PR.resolve_precision(requested_precision, provider="openvino",
                                      file_precision=PR.file_precision(self.metadata, graph), cpu=self._cpu,
                                      device=dev.split(".", 1)[0], file_name=self.path.name)
        del graph
        ov = OpenVINOBackend(self.path, choice, device=dev, threads=self.threads, cache_dir=cache_dir,
                             config=openvino_config)
        self.openvino = ov
        self.precision = ov.precision
        self.precision_choice = choice
        self.resolution = P.Resolution("openvino", (ov.provider,), ov.provider)
        self.warning = None
        self.providers = (ov.provider,)
        self.device = ",".join(map(str, ov.execution_devices))
        self.cache_dir = str(ov.cache_dir)
        if ov.threads:
            self.threads = int(ov.threads)
        self._inputs = tuple(TensorInfo(n, s, d.name) for n, s, d in ov.inputs)
        self._outputs = tuple(TensorInfo(n, s, d.name) for n, s, d in ov.outputs)
        self.io_binding = False
        self._device = ("cpu", 0)
        self._provider_options = {ov.provider: dict(ov.config)}

    def _create_session(self, so: Any, names: list[str], opts: list[dict[str, str]]) -> Any:
        ort = P.import_onnxruntime()
        try:
            return ort.InferenceSession(str(self.path), sess_options=so, providers=names,
                                        provider_options=opts)
        except Exception as e:  # ORT raises its own classes (InvalidProtobuf, Fail, ...) with long text
            reason = _first_line(e)
            if any(k in reason for k in ("Protobuf parsing failed", "INVALID_PROTOBUF", "InvalidProtobuf")):
                raise EdgecnnError(f"cannot load {self.path}: not a valid ONNX model (corrupt or truncated "
                                   f"file?): {reason}") from None
            raise EdgecnnError(f"cannot load {self.path} with {', '.join(names)}: {reason}") from None

    # ------------------------------------------------------------------ public API

    @property
    def info(self) -> EngineInfo:
        """Inputs, outputs, backend, provider, device and precision in use, and the file's edgecnn metadata."""
        choice = self.precision_choice
        return EngineInfo(
            path=str(self.path), inputs=self._inputs, outputs=self._outputs, providers=self.providers,
            requested_provider=self.resolution.requested, provider_options=self._provider_options,
            batch_size=self.batch_size, max_batch=self.max_batch, io_binding=self.io_binding,
            metadata=dict(self.metadata), backend=self.backend, device=self.device, precision=self.precision,
            file_precision=choice.file, requested_precision=choice.requested, precision_reason=choice.reason,
            threads=self.threads, cache_dir=self.cache_dir,
        )

    @property
    def session(self) -> Any:
        """The underlying ONNX Runtime session (``onnxruntime.InferenceSession``)."""
        if self.openvino is not None:
            raise EdgecnnError("this Engine runs on OpenVINO: it has no ONNX Runtime session "
                               "(engine.openvino.compiled is the compiled model).")
        return self._session

    @property
    def on_cpu(self) -> bool:
        """True when the model runs on the CPU (ONNX Runtime's CPU provider or OpenVINO's CPU device)."""
        return self.providers[0] in (P.CPU, f"{P.OPENVINO}:CPU")

    @property
    def chunk_size(self) -> int:
        """Rows per session run: the fixed batch of the graph, else ``max_batch``."""
        return self.batch_size or self.max_batch

    @property
    def sample_shape(self) -> tuple[Any, ...]:
        """Expected (C, H, W) of one sample; str/None entries are dynamic."""
        return self.input_shape[1:]

    def preprocess_config(self) -> PreprocessConfig:
        """Preprocessing parameters from the file's metadata (ImageNet defaults for foreign files)."""
        return PreprocessConfig.from_metadata(self.metadata, input_shape=self.input_shape,
                                              dtype=self.input_dtype.name)

    def check_input(self, x: Any) -> np.ndarray:
        """Validate an NCHW batch (rank, channels, spatial size, dtype); raise :class:`EdgecnnError`."""
        if not isinstance(x, np.ndarray):
            raise EdgecnnError(f"input must be a numpy array of shape {self._expected()}, got {type(x).__name__}.")
        if x.ndim != 4 or x.shape[0] < 1 or any(
                isinstance(e, int) and e > 0 and e != g for e, g in zip(self.sample_shape, x.shape[1:],
                                                                       strict=False)):
            raise EdgecnnError(f"wrong input shape: expected {self._expected()} ({self.input_dtype.name}), "
                               f"received {list(x.shape)}.")
        if x.dtype != self.input_dtype:
            raise EdgecnnError(f"wrong input dtype: expected {self.input_dtype.name} for shape "
                               f"{self._expected()}, received {x.dtype.name} {list(x.shape)}; "
                               f"cast with x.astype(np.{self.input_dtype.name}).")
        return x

    def _expected(self) -> str:
        dims = ["N" if self.batch_size is None else f"N (chunks of {self.batch_size})"]
        dims += [str(d) if isinstance(d, int) and d > 0 else "?" for d in self.sample_shape]
        return "[" + ", ".join(dims) + "]"

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run an NCHW batch of any size N >= 1; return the first output, N rows, in input order."""
        return self.run_all(x)[0]

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:
        """Like :meth:`run` but return every output of the graph (in ``output_names`` order)."""
        x = self.check_input(x)
        n = x.shape[0]
        step = self.chunk_size
        if n == step or (self.batch_size is None and n <= step):  # the common, copy-free path
            return self._run_chunk(x)
        parts: list[list[np.ndarray]] = []
        for start in range(0, n, step):
            chunk = x[start:start + step]
            m = chunk.shape[0]
            if self.batch_size is not None and m < self.batch_size:
                pad = np.zeros((self.batch_size - m, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            outs = self._run_chunk(np.ascontiguousarray(chunk))
            parts.append([o[:m] for o in outs])
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(self.output_names))]

    def _run_chunk(self, x: np.ndarray) -> list[np.ndarray]:
        try:
            if self.openvino is not None:
                return self.openvino.run(x)
            if not self.io_binding:
                return self._session.run(self.output_names, {self.input_name: x})
            binding = self._session.io_binding()  # one per call: bindings are not shared across threads
            binding.bind_cpu_input(self.input_name, x)
            device, device_id = self._device
            for name in self.output_names:
                binding.bind_output(name, device, device_id)
            self._session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()
        except EdgecnnError:
            raise
        except Exception as e:
            raise EdgecnnError(f"inference failed on {self.path.name} ({self.providers[0]}) for input "
                               f"{list(x.shape)} {x.dtype.name}: {_first_line(e)}") from None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.run(x)

    def __repr__(self) -> str:
        return (f"Engine({str(self.path)!r}, providers={list(self.providers)}, precision={self.precision}, "
                f"input={self.input_name}{list(self.input_shape)} {self.input_dtype.name})")
