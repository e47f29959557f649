"""The one seam between edgecnn and a runtime: a :class:`Backend` (what it can run here, and with which file and
flags) and the :class:`Runner` it opens (a compiled model that runs batches), in the manner of Polygraphy's
``backend/<name>/`` loaders behind one ``BaseRunner``.

Three precision notions, each defined once in :mod:`edgecnn.runtime.precision`: the *export* precisions
(``fp32``/``fp16`` files the exporters write; ``int8`` from ``edgecnn quantize``) = the *file* precisions a file can
have; and the *runtime* precisions a backend executes (``fp32``, ``fp16``, ``bf16``, ``int8``). A backend's
:meth:`Backend.file_for` is the one table from a runtime precision to the file that runs it; :meth:`Backend.plan`
adds the flags (TensorRT's fp16 kernels, OpenVINO's inference precision hint) for the file at hand.

Nothing outside :mod:`edgecnn.runtime.backends` compares a backend's name: tools ask the backend (its
attributes below) instead. ``tests/test_backend_seam.py`` keeps that true.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.precision import CpuFeatures, PrecisionChoice


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (ints, or str/None for dynamic dims) and numpy dtype name of a graph input/output."""

    name: str
    shape: tuple[Any, ...]
    dtype: str


@dataclass
class OpenOptions:
    """What the Engine passes to :meth:`Backend.open`: everything a runner may need; each backend reads its part.

    ``cache``: False compiles afresh without any compiled-model cache (the ``auto`` measurement does)."""

    threads: int = 1
    device: str | int | None = None
    fallback: bool = False
    cache_dir: str | os.PathLike | None = None
    cache: bool = True
    spinning: bool = True
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    optimized_model_path: str | os.PathLike | None = None
    io_binding: bool | None = None
    #: ONNX Runtime GPU options (device_id, fp16, int8, workspace_size, ...), provider_options overrides
    gpu: dict[str, Any] = field(default_factory=dict)
    provider_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: OpenVINO properties that override the backend's own (``openvino_config``)
    config: Mapping[str, Any] | None = None
    #: the provider list to resolve ONNX Runtime providers against (tests pass stubs)
    available: list[str] | None = None
    #: ask the runner for per-node performance counters (``Runner.profile``)
    profiling: bool = False


@dataclass(frozen=True)
class TritonSpec:
    """How Triton's ONNX Runtime backend runs what this backend runs: instance kind, the execution accelerator
    block (None: none) and whether it takes a TensorRT precision mode."""

    instance_kind: str  # "KIND_CPU" or "KIND_GPU"
    accelerator: str | None = None
    gpu_accelerator: bool = False
    precision_modes: tuple[str, ...] = ()


class Runner:
    """A model compiled/loaded by a backend. Attributes every runner sets:

    ``inputs``/``outputs``: :class:`TensorInfo` tuples; ``providers``: what runs it, best first (ONNX Runtime
    provider names, ``OpenVINO:CPU``...); ``device``; ``precision``: the precision the backend reports executing;
    ``threads``; ``metadata`` (decoded edgecnn metadata); ``cache_dir`` (None: no compiled-model cache);
    ``provider_options``; ``io_binding``; ``on_cpu``; ``warning`` (a fallback that happened, or None);
    ``builds_on_first_run`` (the first run builds an engine: its time is reported apart); ``peak_probe`` (the
    compute-peak probe of :mod:`edgecnn.profiler.peak` runs on this runner's provider).
    """

    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    providers: tuple[str, ...] = ()
    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None
    metadata: dict[str, Any]
    cache_dir: str | None = None
    provider_options: dict[str, dict[str, str]]
    io_binding: bool = False
    on_cpu: bool = True
    warning: str | None = None
    builds_on_first_run: bool = False
    peak_probe: bool = False

    def run(self, x: np.ndarray, output_names: list[str]) -> list[np.ndarray]:
        """Every output for one batch (safe to call from several threads at once)."""
        raise NotImplementedError

    def profile(self, x: np.ndarray, runs: int) -> list[list[dict[str, Any]]] | None:
        """Per-node counters of ``runs`` runs (``node``, ``op``, ``kernel``, ``us``), one list per run; None when
        this runner has none of its own (the profiler then uses ONNX Runtime's trace)."""
        return None

    def bare(self, x: np.ndarray) -> Any:
        """One call of the runtime itself on ``x`` with nothing of edgecnn around it (harness-overhead checks)."""
        return self.run(x, [o.name for o in self.outputs])


class Backend:
    """One runtime (or one ONNX Runtime provider) behind the seam.

    Subclasses set ``name`` (the ``--provider`` value), ``family`` (the runtime distribution, for versions and
    recorded decisions), ``label`` (for reports) and implement :meth:`unavailable`, :meth:`file_for`,
    :meth:`plan`, :meth:`open`; the rest has defaults.
    """

    name: str = ""
    family: str = ""
    label: str = ""
    #: lower = preferred as the fp32 reference of deviation reports; None = never the reference
    reference_rank: int | None = None
    #: precision -> why an optimizer should not bother measuring it here although it runs (None: measure)
    advice: Mapping[str, str] = {}
    triton: TritonSpec | None = None
    #: ONNX operators (default domain) this runtime cannot run: ``export --nms auto`` keeps NonMaxSuppression out
    #: of the graph (NMS on the host) when a runtime here lacks it
    missing_ops: frozenset[str] = frozenset()

    # ---------------------------------------------------------------- availability, devices, versions

    def unavailable(self) -> str | None:
        """None when this backend can run here, else one line saying why not and how to get it."""
        return None

    def devices(self) -> list[str]:
        """The devices it can run on here."""
        return ["CPU"]

    def versions(self) -> dict[str, str]:
        """Installed distributions this backend runs on (name -> version)."""
        return {}

    def owns(self, provider: str) -> bool:
        """True when ``provider`` (an entry of ``Runner.providers``) is this backend's."""
        return provider == self.name

    def doctor_line(self) -> str:
        """One line for ``edgecnn doctor``."""
        why = self.unavailable()
        vs = ", ".join(f"{k} {v}" for k, v in self.versions().items())
        return f"{self.name}: " + (f"not available ({why})" if why else f"available{f' ({vs})' if vs else ''}")

    # ---------------------------------------------------------------- the precision table

    def file_for(self, precision: str) -> str | None:
        """Which file precision runs runtime ``precision`` (``fp32``/``fp16``/``int8``), None when it cannot run
        here at all. ``auto`` never changes the file: the caller's file (a zoo name: its fp32 export)."""
        raise NotImplementedError

    def plan(self, requested: str, *, file_precision: str, cpu: CpuFeatures, device: str = "CPU",
             file_name: str = "this file") -> PrecisionChoice:
        """What runs for ``requested`` (not ``auto``) on a file of ``file_precision``: the precision and the flags,
        or one :class:`EdgecnnError` naming what to use instead. Pure function of its arguments."""
        raise NotImplementedError

    def candidates(self, *, file_precision: str, cpu: CpuFeatures, device: str = "CPU") -> list[str]:
        """The runtime precisions ``auto`` may pick on this file, fp32 (or the file's own) first: those
        :meth:`plan` accepts. CPU flags only prune what cannot run; the choice among them is measured."""
        out = []
        for p in ("fp32", "bf16", "fp16", "int8"):
            try:
                choice = self.plan(p, file_precision=file_precision, cpu=cpu, device=device)
            except EdgecnnError:
                continue
            if choice.inference not in out:
                out.append(choice.inference)
        if file_precision in out:  # the file's own precision first: the reference the others are compared with
            out.remove(file_precision)
            out.insert(0, file_precision)
        return out

    def default_choice(self, *, file_precision: str, cpu: CpuFeatures, device: str = "CPU") -> PrecisionChoice:
        """The plan when ``auto`` has a single candidate (nothing to measure)."""
        first = self.candidates(file_precision=file_precision, cpu=cpu, device=device)
        if not first:
            raise EdgecnnError(f"{self.label} cannot run a {file_precision} file here.")
        c = self.plan(first[0], file_precision=file_precision, cpu=cpu, device=device)
        return PrecisionChoice("auto", c.file, c.inference, flags=dict(c.flags),
                               reason=f"{self.label} runs this {file_precision} file at {c.inference}")

    def resolved(self, options: OpenOptions) -> Backend:
        """The backend that plans precisions for ``options`` (ONNX Runtime's ``auto``: the provider it resolves to)."""
        return self

    # ---------------------------------------------------------------- compile/load

    def open(self, path: Path, choice: PrecisionChoice, options: OpenOptions) -> Runner:
        """Compile/load ``path`` for ``choice``; a runner that runs batches."""
        raise NotImplementedError
