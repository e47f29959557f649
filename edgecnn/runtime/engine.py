"""``Engine``: one ONNX Runtime session over an ``.onnx`` file, with provider resolution, input checks,
batch splitting and IO binding on GPUs. Safe to call from several threads at once."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgecnn._io import sha256_file
from edgecnn.errors import EdgecnnError
from edgecnn.metadata import decode
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
_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
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
    """What an :class:`Engine` runs: its file, tensors, providers and the file's edgecnn metadata."""

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

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 300 else line[:297] + "..."


class Engine:
    """Run an ``.onnx`` classifier on ONNX Runtime.

    ``provider``: ``auto`` (TensorRT > CUDA > CPU, best available), ``cpu``, ``cuda`` or ``tensorrt``.
    A requested provider that is not available raises :class:`EdgecnnError`, unless ``fallback=True``
    (then one :class:`ProviderFallbackWarning` names the provider that really runs).
    GPU options (``device_id``, ``fp16``, ``int8``, ``cache_dir``, ``workspace_size``,
    ``cudnn_conv_algo_search``, ``arena_extend_strategy``) build ONNX Runtime's provider options;
    ``provider_options={"cuda": {...}, "tensorrt": {...}}`` overrides any of them.
    ``threads``: intra-op threads (default: the CPUs available); ``spinning=False`` lets idle intra-op
    threads sleep instead of spin (for CPUs shared with other work); ``graph_optimization``: one of
    ``disable``, ``basic``, ``extended``, ``all``; ``optimized_model_path``: where ONNX Runtime saves the
    optimized graph. ``max_batch``: chunk size for models with a dynamic batch. ``io_binding``: bind
    inputs/outputs (default: on for CUDA/TensorRT). ``available``: the provider list to resolve against
    (default: what this onnxruntime build reports; tests pass a stub).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        provider: str = "auto",
        *,
        fallback: bool = False,
        device_id: int = 0,
        fp16: bool = False,
        int8: bool = False,
        cache_dir: str | os.PathLike | None = None,
        workspace_size: int = 1 << 30,
        cudnn_conv_algo_search: str = "EXHAUSTIVE",
        arena_extend_strategy: str = "kSameAsRequested",
        provider_options: Mapping[str, Mapping[str, Any]] | None = None,
        threads: int | None = None,
        inter_op_threads: int = 1,
        spinning: bool = True,
        graph_optimization: str = "all",
        optimized_model_path: str | os.PathLike | None = None,
        max_batch: int = 32,
        io_binding: bool | None = None,
        available: Sequence[str] | None = None,
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

        avail = list(available) if available is not None else P.available_providers()
        self.resolution = P.resolve_providers(provider, avail, fallback=fallback)
        config = P.ProviderConfig(
            device_id=device_id, fp16=fp16, int8=int8, cache_dir=cache_dir, workspace_size=workspace_size,
            cudnn_conv_algo_search=cudnn_conv_algo_search, arena_extend_strategy=arena_extend_strategy,
            provider_options=dict(provider_options or {}),
        )
        if P.TENSORRT in self.resolution.providers:
            config.model_key = sha256_file(self.path)
            P.trt_cache_path(config).mkdir(parents=True, exist_ok=True)
        names, opts = P.build_providers(self.resolution, config)

        so = ort.SessionOptions()
        self.threads = int(threads) if threads else default_threads()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = int(inter_op_threads)
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not spinning:  # idle intra-op threads sleep instead of spinning: better on shared/oversubscribed CPUs
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = _OPT_LEVELS[graph_optimization]
        if optimized_model_path is not None:
            so.optimized_model_filepath = str(optimized_model_path)
        self._session = self._create_session(so, names, opts)

        registered = list(self._session.get_providers())
        warning = self.resolution.warning
        late = P.check_registered(self.resolution, registered, fallback=fallback)
        warning = late or warning
        if warning:
            warnings.warn(warning, P.ProviderFallbackWarning, stacklevel=2)
        self.warning = warning
        self.providers = tuple(registered)

        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise EdgecnnError(f"{self.path}: expected a model with one input, found {len(inputs)} "
                               f"({', '.join(i.name for i in inputs)}).")
        self._input = inputs[0]
        self.input_name: str = self._input.name
        self.input_shape: tuple[Any, ...] = tuple(self._input.shape)
        if len(self.input_shape) != 4:
            raise EdgecnnError(f"{self.path}: expected an NCHW image input, found input {self.input_name!r} "
                               f"of rank {len(self.input_shape)} {list(self.input_shape)}.")
        self.input_dtype: np.dtype = _DTYPES.get(self._input.type, np.dtype(np.float32))
        self.output_names: list[str] = [o.name for o in self._session.get_outputs()]
        b = self.input_shape[0]
        self.batch_size: int | None = b if isinstance(b, int) and b > 0 else None
        self.metadata: dict[str, Any] = decode(self._session.get_modelmeta().custom_metadata_map)

        on_gpu = self.providers[0] in (P.CUDA, P.TENSORRT)
        self.io_binding = on_gpu if io_binding is None else bool(io_binding)
        self._device = ("cuda", device_id) if on_gpu else ("cpu", 0)
        self._provider_options = dict(zip(names, opts, strict=True))

    # ------------------------------------------------------------------ construction helpers

    def _create_session(self, so: ort.SessionOptions, names: list[str], opts: list[dict[str, str]]
                        ) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(str(self.path), sess_options=so, providers=names,
                                        provider_options=opts)
        except Exception as e:  # ORT raises its own classes (InvalidProtobuf, Fail, ...) with long text
            reason = _first_line(e)
            if any(k in reason for k in ("Protobuf", "protobuf", "Load model", "parsing", "ModelProto")):
                raise EdgecnnError(f"cannot load {self.path}: not a valid ONNX model (corrupt or truncated "
                                   f"file?): {reason}") from None
            raise EdgecnnError(f"cannot load {self.path} with {', '.join(names)}: {reason}") from None

    # ------------------------------------------------------------------ public API

    @property
    def info(self) -> EngineInfo:
        """Inputs, outputs, providers in use and the file's edgecnn metadata."""
        def t(a: Any) -> TensorInfo:
            dt = _DTYPES.get(a.type)
            return TensorInfo(a.name, tuple(a.shape), dt.name if dt is not None else a.type)

        return EngineInfo(
            path=str(self.path), inputs=tuple(t(a) for a in self._session.get_inputs()),
            outputs=tuple(t(a) for a in self._session.get_outputs()), providers=self.providers,
            requested_provider=self.resolution.requested, provider_options=self._provider_options,
            batch_size=self.batch_size, max_batch=self.max_batch, io_binding=self.io_binding,
            metadata=dict(self.metadata),
        )

    @property
    def session(self) -> ort.InferenceSession:
        """The underlying ONNX Runtime session."""
        return self._session

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
        return (f"Engine({str(self.path)!r}, providers={list(self.providers)}, input={self.input_name}"
                f"{list(self.input_shape)} {self.input_dtype.name})")
