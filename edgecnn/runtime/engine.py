"""``Engine``: one ``.onnx`` file on any registered backend (ONNX Runtime's CPU, CUDA and TensorRT providers,
OpenVINO, plug-ins; :mod:`edgecnn.runtime.backends`), with precision resolution (``auto`` measured, a reduced
precision verified), input checks and batch splitting. Safe to call from several threads at once. The API is the
same whichever backend runs underneath; the Engine never asks which one it holds."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.metadata import decode
from edgecnn.runtime import precision as PR
from edgecnn.runtime.backends import registry
from edgecnn.runtime.backends.base import Backend, OpenOptions, Runner, TensorInfo
from edgecnn.runtime.backends.onnxruntime import OPT_LEVELS
from edgecnn.runtime.images import PreprocessConfig
from edgecnn.runtime.vision import output_roles, task_of

GRAPH_OPTIMIZATIONS = tuple(OPT_LEVELS)
#: reduced runtime precisions that a backend applies to a float file by a flag: checked on probe inputs
_FLAGGED = ("fp16", "bf16")


def default_threads() -> int:
    """Intra-op threads: the CPUs this process may use (all cores of a small device)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


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
    #: the runtime family (``onnxruntime``, ``openvino``, a plug-in's)
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
    #: the backend's compiled-model cache folder (OpenVINO's CACHE_DIR of this precision), None: none
    cache_dir: str | None = None
    #: the registered backend name (``cpu``, ``cuda``, ``tensorrt``, ``openvino``, a plug-in's)
    backend_name: str = "cpu"
    #: how ``auto`` decided (:class:`edgecnn.runtime.auto_precision.AutoDecision` as a dict), None: not asked
    auto: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def _np_dtype(name: str) -> np.dtype:
    try:
        return np.dtype(name)
    except TypeError:  # an ONNX type numpy has no name for
        return np.dtype(np.float32)


def _fixed_batch(graph: Any) -> int | None:
    """The fixed batch of the graph's (first non-initializer) input, None when dynamic."""
    inits = {i.name for i in graph.graph.initializer}
    for i in graph.graph.input:
        if i.name not in inits:
            dims = i.type.tensor_type.shape.dim
            return int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 \
                else None
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 300 else line[:297] + "..."


class Engine:
    """Run an ``.onnx`` classifier on any registered backend.

    ``provider``: a backend name (:func:`edgecnn.runtime.backends.choices`: ``auto`` = TensorRT > CUDA > CPU,
    the best ONNX Runtime provider, or OpenVINO when only the openvino package is installed; ``cpu``, ``cuda``,
    ``tensorrt``, ``openvino``, plug-ins). ``precision``: ``auto``, ``fp32``, ``fp16``, ``bf16`` or ``int8``
    (:data:`edgecnn.runtime.precision.PRECISIONS`): an explicit one is planned by the backend
    (:meth:`~edgecnn.runtime.backends.base.Backend.plan`); ``auto`` never changes the file and, where the backend
    can run it at several precisions, is measured once per machine and file
    (:mod:`edgecnn.runtime.auto_precision`, reported in ``info.auto``). A reduced precision a flag asks for is
    checked on probe inputs (``verify``): outputs equal to the file's own precision bit for bit are reported as
    that precision. ``device``: the OpenVINO device (``CPU`` default; ``GPU``, ``NPU``, ``AUTO``), or a CUDA
    device index. A requested provider that is not available raises :class:`EdgecnnError`, unless
    ``fallback=True`` (then one :class:`ProviderFallbackWarning` names the provider that really runs).
    GPU options (``device_id``, ``fp16``, ``int8``, ``cache_dir``, ``workspace_size``,
    ``cudnn_conv_algo_search``, ``arena_extend_strategy``) build ONNX Runtime's provider options;
    ``provider_options={"cuda": {...}, "tensorrt": {...}}`` overrides any of them. On OpenVINO, ``cache_dir`` is
    the root of its compiled-model caches (default ``<edgecnn cache>/openvino``, one folder per inference
    precision) and ``openvino_config`` overrides any OpenVINO property. ``threads``: intra-op threads (default:
    the CPUs available); ``spinning=False`` lets idle intra-op threads sleep instead of spin;
    ``graph_optimization``: one of ``disable``, ``basic``, ``extended``, ``all``; ``optimized_model_path``: where
    ONNX Runtime saves the optimized graph. ``max_batch``: chunk size for models with a dynamic batch.
    ``io_binding``: bind inputs/outputs (default: on for CUDA/TensorRT). ``profiling``: compile with the
    backend's per-node counters (``engine.runner.profile``). ``available``: the provider list to resolve
    against and ``cpu``: the CPU features to decide precision with (default: this machine's); tests pass stubs.
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
        verify: bool = True,
        profiling: bool = False,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise EdgecnnError(f"model file not found: {self.path}")
        if not self.path.is_file():
            raise EdgecnnError(f"not a file: {self.path} (expected an .onnx model file)")
        if max_batch < 1:
            raise EdgecnnError(f"max_batch must be >= 1, got {max_batch}.")
        if graph_optimization not in OPT_LEVELS:
            raise EdgecnnError(f"unknown graph optimization {graph_optimization!r}: choose one of "
                               f"{', '.join(OPT_LEVELS)}.")
        self.max_batch = int(max_batch)
        self.fallback = fallback
        self.threads = int(threads) if threads else default_threads()
        self._cpu = cpu if cpu is not None else PR.detect_cpu()
        requested_precision = PR.check_precision(precision)
        if available is not None and registry.normalize(provider) == registry.AUTO:
            from edgecnn.runtime.backends.onnxruntime import OrtBackend

            backend: Backend = OrtBackend(registry.AUTO)  # a stubbed provider list: ONNX Runtime's auto
        else:
            backend = registry.get(provider)
        self.backend_obj = backend
        self.requested_provider = registry.normalize(provider)
        options = OpenOptions(
            threads=self.threads, device=device, fallback=fallback, cache_dir=cache_dir, spinning=spinning,
            inter_op_threads=int(inter_op_threads), graph_optimization=graph_optimization,
            optimized_model_path=optimized_model_path, io_binding=io_binding,
            gpu={"device_id": device_id, "fp16": fp16, "int8": int8, "workspace_size": workspace_size,
                 "cudnn_conv_algo_search": cudnn_conv_algo_search, "arena_extend_strategy": arena_extend_strategy},
            provider_options=dict(provider_options or {}), config=openvino_config,
            available=list(available) if available is not None else None, profiling=profiling)
        self._options = options
        graph = PR.read_graph(self.path)
        file_meta = decode({p.key: p.value for p in graph.metadata_props})
        file_p = PR.file_precision(file_meta, graph)
        self._file_batch = _fixed_batch(graph)
        del graph
        planner = backend.resolved(options)
        dev = str(device if device is not None else "CPU").upper()
        self.auto = None
        runner: Runner | None = None
        if requested_precision == "auto":
            choice, runner = self._decide_auto(planner, backend, file_p, file_meta, dev, options)
        else:
            choice = planner.plan(requested_precision, file_precision=file_p, cpu=self._cpu, device=dev,
                                  file_name=self.path.name)
        if runner is None:
            runner = backend.open(self.path, choice, options)
        self.runner = runner
        self.precision_choice = choice
        self.precision = runner.precision
        self.verification = ""
        #: seconds the precision check took (apart from compiling what runs: reported build times exclude it)
        self.verify_seconds = 0.0
        if verify and self.auto is None and runner.precision in _FLAGGED and runner.precision != choice.file:
            t0 = time.perf_counter()
            self._verify(planner, backend, choice, dev, options, file_meta)
            self.verify_seconds = time.perf_counter() - t0
        self.metadata: dict[str, Any] = dict(getattr(runner, "metadata", None) or file_meta)
        self.warning = runner.warning
        self.providers = tuple(runner.providers)
        self.device = runner.device if isinstance(runner.device, str) else str(runner.device)
        self.cache_dir = runner.cache_dir
        if runner.threads:
            self.threads = int(runner.threads)
        self.io_binding = bool(runner.io_binding)
        self._inputs = tuple(runner.inputs)
        self._outputs = tuple(runner.outputs)

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
        roles = output_roles(self.metadata)
        #: per output: is dimension 0 the batch (sliced and concatenated by rows)? Detections after graph NMS are not
        self._batch_major = [roles.get(n, {}).get("batch", True) for n in self.output_names]
        self._roles = {n: roles.get(n, {}).get("role", "") for n in self.output_names}
        self._batch_index = next((i for i, n in enumerate(self.output_names) if self._roles[n] == "batch_index"
                                  and not self._batch_major[i]), None)
        b = self.input_shape[0]
        self.batch_size: int | None = b if isinstance(b, int) and b > 0 else None

    # ------------------------------------------------------------------ construction helpers

    def _decide_auto(self, planner: Backend, backend: Backend, file_p: str, meta: dict[str, Any], dev: str,
                     options: OpenOptions) -> tuple[PR.PrecisionChoice, Runner | None]:
        """``auto``: the backend's only candidate, or the measured/recorded/cached choice among several."""
        from edgecnn.runtime import auto_precision as AP

        cands = planner.candidates(file_precision=file_p, cpu=self._cpu, device=dev)
        rec = AP.recorded(meta, planner, self._cpu.model)
        if rec is not None and rec not in cands:  # recorded by optimize, runnable by a flag (TensorRT's fp16)
            try:
                planner.plan(rec, file_precision=file_p, cpu=self._cpu, device=dev)
                cands = [*cands, rec]
            except EdgecnnError:
                pass
        if len(cands) <= 1:
            return planner.default_choice(file_precision=file_p, cpu=self._cpu, device=dev), None
        fresh = OpenOptions(**{**options.__dict__, "cache": False, "profiling": False})  # timed as it will run

        def open_runner(p: str) -> Runner:
            c = planner.plan(p, file_precision=file_p, cpu=self._cpu, device=dev, file_name=self.path.name)
            return backend.open(self.path, c, fresh)

        batch = self._file_batch or 1
        key = AP.decision_key(planner, cpu_model=self._cpu.model, device=dev, sha256=AP.file_sha256(self.path),
                              batch=batch)
        decision, runner = AP.decide(planner, cands, key=key, metadata=meta, open_runner=open_runner, batch=batch)
        if options.profiling:
            runner = None  # compiled again below, with the backend's per-node counters
        self.auto = decision.as_dict()
        c = planner.plan(decision.chosen, file_precision=file_p, cpu=self._cpu, device=dev, file_name=self.path.name)
        choice = PR.PrecisionChoice("auto", c.file, c.inference, flags=dict(c.flags), reason=decision.describe())
        return choice, runner

    def _verify(self, planner: Backend, backend: Backend, choice: PR.PrecisionChoice, dev: str,
                options: OpenOptions, meta: dict[str, Any]) -> None:
        """A reduced precision set by a flag is checked on probe inputs against the file's own precision on the
        same backend: outputs equal bit for bit mean it did not run, and the Engine reports the file's."""
        from edgecnn.runtime import auto_precision as AP

        try:
            try:  # the reference: fp32 where the backend runs the file at fp32, else the file's own precision
                ref_choice = planner.plan("fp32", file_precision=choice.file, cpu=self._cpu, device=dev)
            except EdgecnnError:
                ref_choice = planner.plan(choice.file, file_precision=choice.file, cpu=self._cpu, device=dev)
            ref = backend.open(self.path, ref_choice, options)
        except EdgecnnError as e:
            self.verification = f"{choice.inference} not verified (the reference could not run: {e})"
            return
        x = AP.probe_input(self.runner.inputs[0], meta, batch=self._file_batch or 1)
        names = [o.name for o in self.runner.outputs]
        same = AP.same_outputs(np.asarray(self.runner.run(x, names)[0]), np.asarray(ref.run(x, names)[0]))
        del ref
        ran = ref_choice.inference
        if same:
            self.verification = (f"{choice.inference} was asked, but the outputs on probe inputs equal {ran} bit for "
                                 f"bit: {ran} ran")
            self.precision = ran
        else:
            self.verification = f"{choice.inference} verified: outputs on probe inputs differ from {ran}"

    # ------------------------------------------------------------------ public API

    @property
    def info(self) -> EngineInfo:
        """Inputs, outputs, backend, provider, device and precision in use, and the file's edgecnn metadata."""
        choice = self.precision_choice
        reason = choice.reason + (f"; {self.verification}" if self.verification else "")
        return EngineInfo(
            path=str(self.path), inputs=self._inputs, outputs=self._outputs, providers=self.providers,
            requested_provider=self.requested_provider,
            provider_options=dict(getattr(self.runner, "provider_options", None) or {}),
            batch_size=self.batch_size, max_batch=self.max_batch, io_binding=self.io_binding,
            metadata=dict(self.metadata), backend=self.backend_obj.family, device=self.device,
            precision=self.precision, file_precision=choice.file, requested_precision=choice.requested,
            precision_reason=reason, threads=self.threads, cache_dir=self.cache_dir,
            backend_name=self.backend_obj.name, auto=self.auto,
        )

    @property
    def backend(self) -> str:
        """The runtime family that runs the model (``onnxruntime``, ``openvino``, a plug-in's)."""
        return self.backend_obj.family

    @property
    def session(self) -> Any:
        """The underlying ONNX Runtime session (``onnxruntime.InferenceSession``), when the backend has one."""
        sess = getattr(self.runner, "session", None)
        if sess is None:
            raise EdgecnnError(f"this Engine runs on {self.backend_obj.label or self.backend_obj.name}: it has no "
                               "ONNX Runtime session (engine.runner is what runs the model).")
        return sess

    @property
    def on_cpu(self) -> bool:
        """True when the model runs on the CPU (as the backend reports)."""
        return bool(self.runner.on_cpu)

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

    @property
    def task(self) -> str:
        """``classification``, ``detection`` or ``segmentation``, from the file's metadata (default: a classifier)."""
        return task_of(self.metadata)

    @property
    def output_roles(self) -> dict[str, str]:
        """Output name -> its role from the file's metadata (``boxes``, ``scores``, ``labels``, ``batch_index``,
        ``masks``; empty when the file does not say)."""
        return dict(self._roles)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run an NCHW batch of any size N >= 1; return the first output, N rows, in input order."""
        return self.run_all(x)[0]

    def run_named(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every output of the graph by name (see :meth:`run_all`)."""
        return dict(zip(self.output_names, self.run_all(x), strict=True))

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:
        """Like :meth:`run` but return every output of the graph (in ``output_names`` order).

        Outputs whose dimension 0 is the batch come back N rows in input order; outputs whose dimension 0 is not
        (detections after NMS in the graph, ``edgecnn.outputs`` metadata) are concatenated over the chunks, their
        ``batch_index`` output shifted to the input's numbering and padding rows of a fixed batch dropped."""
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
            parts.append(self._rows(outs, start, m))
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(self.output_names))]

    def _rows(self, outs: list[np.ndarray], start: int, m: int) -> list[np.ndarray]:
        """One chunk's outputs restricted to its ``m`` real images, numbered from ``start``."""
        keep = None
        if self._batch_index is not None:
            keep = np.asarray(outs[self._batch_index]) < m
        rows = []
        for i, o in enumerate(outs):
            if self._batch_major[i]:
                rows.append(o[:m])
                continue
            r = o[keep] if keep is not None and len(o) == len(keep) else o
            rows.append(r + start if i == self._batch_index else r)
        return rows

    def _run_chunk(self, x: np.ndarray) -> list[np.ndarray]:
        try:
            return self.runner.run(x, self.output_names)
        except EdgecnnError:
            raise
        except Exception as e:
            raise EdgecnnError(f"inference failed on {self.path.name} ({self.providers[0]}) for input "
                               f"{list(x.shape)} {x.dtype.name}: {_first_line(e)}") from None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.run(x)

    def __repr__(self) -> str:  # noqa: D105
        return (f"Engine({str(self.path)!r}, providers={list(self.providers)}, precision={self.precision}, "
                f"input={self.input_name}{list(self.input_shape)} {self.input_dtype.name})")


def reference_engine(path: str | os.PathLike, *, threads: int | None = None, max_batch: int = 32) -> Engine:
    """An Engine on the reference backend (ONNX Runtime's CPU provider, else OpenVINO) at the file's own
    precision: the fp32 reference of deviation reports and the runtime of driver-side checks, on what is
    installed."""
    graph = PR.read_graph(path)
    own = PR.file_precision(decode({p.key: p.value for p in graph.metadata_props}), graph)
    del graph
    return Engine(path, registry.reference().name, precision=own, threads=threads, max_batch=max_batch)
