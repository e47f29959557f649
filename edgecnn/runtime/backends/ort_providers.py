"""Execution-provider resolution and options: which ONNX Runtime providers to register, in which order,
with which options; and the provider choices every part offers (:data:`PROVIDERS`).

Resolution is a pure function of the provider list this onnxruntime build reports
(``onnxruntime.get_available_providers()``), so GPU cases are testable on a CPU-only machine.
Option names are ONNX Runtime's documented provider options (CUDA and TensorRT execution providers).
``openvino`` is not an ONNX Runtime provider: it runs the file on the ``openvino`` package
(:mod:`edgecnn.runtime.backends.openvino`). CUDA/cuDNN/TensorRT versions in messages come from the installed
onnxruntime build (:func:`gpu_build_versions`), never from constants.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

#: short name -> ONNX Runtime provider name
PROVIDER_NAMES: dict[str, str] = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT}
#: provider preference for ``auto``: best first
PREFERENCE: tuple[str, ...] = (TENSORRT, CUDA, CPU)
#: the provider choices every part offers (``--provider``, ``Engine(provider=...)``)
PROVIDERS: tuple[str, ...] = ("auto", "cpu", "cuda", "tensorrt", "openvino")
CHOICES: tuple[str, ...] = PROVIDERS
#: ``Engine.providers`` entry prefix for the OpenVINO backend (``OpenVINO:CPU``, ``OpenVINO:GPU.0`` ...)
OPENVINO = "OpenVINO"

#: onnxruntime distributions that all install the same ``onnxruntime`` import package
ORT_DISTRIBUTIONS: tuple[str, ...] = (
    "onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
    "onnxruntime-qnn", "onnxruntime-silicon", "ort-nightly", "ort-nightly-gpu",
)

INSTALL_GPU = ("pip uninstall -y onnxruntime && pip install onnxruntime-gpu[cuda,cudnn] "
               "(in a fresh environment: pip install 'edgecnn[gpu]')")
#: the install extras, one runtime each (docs/install.md)
EXTRAS_HELP = ("pip install 'edgecnn[cpu]' (ONNX Runtime, CPU), 'edgecnn[gpu]' (ONNX Runtime CUDA), "
               "'edgecnn[tensorrt]' or 'edgecnn[openvino]'")


def _how_to_get(full: str) -> str:
    v = gpu_build_versions()
    libs = "CUDA and cuDNN libraries" if not (v.get("cuda") or v.get("cudnn")) else (
        f"CUDA {v.get('cuda') or '?'} and cuDNN {v.get('cudnn') or '?'} libraries this build needs")
    if full == CUDA:
        return f"install the GPU build ({INSTALL_GPU}): it brings the {libs}; and an NVIDIA driver"
    if full == TENSORRT:
        trt = f"TensorRT {v['tensorrt']}" if v.get("tensorrt") else "TensorRT"
        return (f"install the GPU build ({INSTALL_GPU}) with the {libs} and the {trt} libraries its TensorRT "
                "provider was built against (pip install 'edgecnn[tensorrt]')")
    return "install an onnxruntime build that has it"


def import_onnxruntime() -> Any:
    """``import onnxruntime``, or one clear error naming the extras when no ONNX Runtime build is installed."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise EdgecnnError(f"no ONNX Runtime is installed ({e}): {EXTRAS_HELP}; or run with --provider openvino "
                           "if the openvino package is installed. 'edgecnn doctor' shows what is installed.") from None
    return ort


def onnxruntime_installed() -> bool:
    """True when some onnxruntime distribution can be imported (found without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):
        return False


def _elf_needed(path: Path) -> list[str]:
    """DT_NEEDED entries (sonames) of a 64-bit little-endian ELF shared library; [] when it cannot be read."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return []
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            phdrs = [struct.unpack_from("<IIQQQQQQ", f.read(phentsize)) for _ in range(phnum)]
            loads = [(p[3], p[2], p[5]) for p in phdrs if p[0] == 1]  # (vaddr, offset, filesz)
            dyn = next((p for p in phdrs if p[0] == 2), None)
            if dyn is None:
                return []
            f.seek(dyn[2])
            raw = f.read(dyn[5])
            entries = [struct.unpack_from("<qQ", raw, i) for i in range(0, len(raw) - 15, 16)]
            strtab = next((v for t, v in entries if t == 5), None)
            if strtab is None:
                return []
            off = next((o + strtab - va for va, o, sz in loads if va <= strtab < va + sz), strtab)
            names = []
            for tag, val in entries:
                if tag == 0:
                    break
                if tag == 1:
                    f.seek(off + val)
                    names.append(f.read(256).split(b"\0", 1)[0].decode(errors="replace"))
            return names
    except (OSError, struct.error, ValueError):
        return []


def provider_libraries() -> dict[str, list[str]]:
    """The shared libraries (sonames) the installed onnxruntime's CUDA and TensorRT provider libraries load:
    ``{"cuda": ["libcudart.so.13", "libcudnn.so.9", ...], "tensorrt": ["libnvinfer.so.10", ...]}`` (found
    without importing onnxruntime; empty for a CPU-only build)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return {}
    capi = Path(next(iter(spec.submodule_search_locations))) / "capi"
    out: dict[str, list[str]] = {}
    for key in ("cuda", "tensorrt"):
        for lib in sorted(capi.glob(f"libonnxruntime_providers_{key}.so*")):
            wanted = ("libcud", "libcublas", "libcufft", "libcurand", "libnvinfer", "libnvonnxparser")
            out[key] = [n for n in _elf_needed(lib) if n.startswith(wanted)]
            break
    return out


def gpu_build_versions() -> dict[str, str | None]:
    """CUDA, cuDNN and TensorRT versions of the installed onnxruntime build: ``cuda``/``cudnn`` from
    ``onnxruntime.capi.build_and_package_info`` (GPU builds), the TensorRT major from the soname its TensorRT
    provider library loads (``libnvinfer.so.<major>``); None where the build has none."""
    import importlib.util

    out: dict[str, str | None] = {"cuda": None, "cudnn": None, "tensorrt": None}
    try:
        if importlib.util.find_spec("onnxruntime") is not None:
            import importlib

            info = importlib.import_module("onnxruntime.capi.build_and_package_info")
            out["cuda"] = getattr(info, "cuda_version", None) or None
            out["cudnn"] = getattr(info, "cudnn_version", None) or None
    except Exception:  # a broken onnxruntime install: doctor reports it elsewhere
        pass
    libs = provider_libraries()
    for name in libs.get("tensorrt", []):
        if name.startswith("libnvinfer.so."):
            out["tensorrt"] = name.rsplit(".", 1)[-1]
    for name in libs.get("cuda", []) + libs.get("tensorrt", []):
        if out["cuda"] is None and name.startswith("libcudart.so."):
            out["cuda"] = name.rsplit(".", 1)[-1]
        if out["cudnn"] is None and name.startswith("libcudnn.so."):
            out["cudnn"] = name.rsplit(".", 1)[-1]
    return out


def preload_gpu_libraries() -> None:
    """``onnxruntime.preload_dlls()`` (ORT >= 1.21): load the CUDA/cuDNN libraries of the nvidia-* wheels that
    ``onnxruntime-gpu[cuda,cudnn]`` installs, before a CUDA/TensorRT session is created. No-op when absent."""
    ort = import_onnxruntime()
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception:  # missing wheels: the session's own check (check_registered) reports it
        pass


class ProviderFallbackWarning(RuntimeWarning):
    """The requested provider is not the one that runs (only with ``fallback=True``)."""


@dataclass
class ProviderConfig:
    """Options the caller can set for GPU providers; ``provider_options`` overrides anything built here.

    ``provider_options`` maps a provider (short name ``cuda``/``tensorrt``/``cpu`` or the ONNX Runtime
    name) to a dict of ONNX Runtime option names and values.
    """

    device_id: int = 0
    fp16: bool = False
    int8: bool = False
    #: root folder of TensorRT engine and timing caches; a sub-folder per model checksum and GPU
    cache_dir: str | os.PathLike | None = None
    #: checksum of the model file (keys the TensorRT cache folder)
    model_key: str = "model"
    #: GPU name (keys the TensorRT cache folder); looked up with nvidia-smi when None
    gpu_name: str | None = None
    workspace_size: int = 1 << 30
    cudnn_conv_algo_search: str = "EXHAUSTIVE"
    arena_extend_strategy: str = "kSameAsRequested"
    provider_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolution:
    """The result of :func:`resolve_providers`."""

    requested: str
    #: ONNX Runtime provider names in registration order (best first, CPU last)
    providers: tuple[str, ...]
    #: the provider expected to run the model (first of ``providers``)
    primary: str
    #: set when ``fallback`` replaced an unavailable provider
    warning: str | None = None

    @property
    def fell_back(self) -> bool:
        return self.warning is not None


def normalize(provider: str) -> str:
    """Turn ``cpu``/``cuda``/``tensorrt``/``auto`` or an ONNX Runtime provider name into a short name."""
    p = provider.strip()
    lowered = p.lower()
    if lowered in CHOICES:
        return lowered
    for short, full in PROVIDER_NAMES.items():
        if lowered == full.lower() or lowered == full.lower().removesuffix("executionprovider"):
            return short
    if lowered in ("trt", "gpu"):
        return "tensorrt" if lowered == "trt" else "cuda"
    if lowered in ("ov", "openvinoexecutionprovider") or lowered.startswith("openvino:"):
        return "openvino"
    raise EdgecnnError(f"unknown provider {provider!r}: choose one of {', '.join(CHOICES)}.")


def available_providers() -> list[str]:
    """The providers this onnxruntime build was compiled with (not a guarantee their libraries load)."""
    return list(import_onnxruntime().get_available_providers())


def ort_distributions() -> dict[str, str]:
    """Installed onnxruntime distributions (name -> version); more than one means a broken install."""
    found: dict[str, str] = {}
    for name in ORT_DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def runtime_versions() -> dict[str, str]:
    """Installed runtime distributions (name -> version) of every registered backend: every onnxruntime build,
    openvino when present, a plug-in's own (:func:`edgecnn.runtime.backends.registry.versions`)."""
    from edgecnn.runtime.backends.registry import versions

    return versions()


def _build_description(available: Sequence[str]) -> str:
    dists = ort_distributions()
    dist = ", ".join(f"{k} {v}" for k, v in dists.items()) or "onnxruntime"
    return f"this onnxruntime build ({dist}) has {', '.join(available) or 'no providers'}"


def unavailable_message(requested: str, available: Sequence[str]) -> str:
    """One line: what was asked, what this build has, and how to get the missing provider."""
    full = PROVIDER_NAMES[requested]
    return (f"provider {requested!r} ({full}) is not available: {_build_description(available)}. "
            f"To use it, {_how_to_get(full)}; "
            "or pass fallback=True (--fallback) to run on the best available provider.")


def _chain(primary: str, available: Sequence[str]) -> tuple[str, ...]:
    """The primary provider followed by the lower-preference ones that are available, CPU last."""
    start = PREFERENCE.index(primary)
    chain = [p for p in PREFERENCE[start:] if p in available or p == CPU]
    return tuple(chain)


def resolve_providers(requested: str, available: Sequence[str], *, fallback: bool = False) -> Resolution:
    """Choose the provider chain for ``requested`` given the ``available`` list (pure function).

    ``auto`` takes the best available (TensorRT > CUDA > CPU); ``tensorrt`` gives TensorRT -> CUDA -> CPU,
    ``cuda`` gives CUDA -> CPU, ``cpu`` gives CPU. A requested provider missing from ``available`` raises
    :class:`EdgecnnError`, unless ``fallback`` is true: then the best available chain is used and
    ``Resolution.warning`` says which provider really runs.
    """
    short = normalize(requested)
    if short == "openvino":
        raise EdgecnnError("provider 'openvino' does not run on ONNX Runtime: use Engine(..., provider='openvino'), "
                           "which runs the file on the openvino package.")
    if short == "auto":
        best = next(p for p in PREFERENCE if p in available or p == CPU)
        chain = _chain(best, available)
        return Resolution("auto", chain, chain[0])
    full = PROVIDER_NAMES[short]
    if full in available or full == CPU:
        chain = _chain(full, available)
        return Resolution(short, chain, chain[0])
    if not fallback:
        raise EdgecnnError(unavailable_message(short, available))
    below = [p for p in PREFERENCE[PREFERENCE.index(full):] if p in available or p == CPU]
    chain = _chain(below[0], available)
    warning = (f"provider {short!r} ({full}) is not available ({_build_description(available)}); "
               f"falling back to {chain[0]}.")
    return Resolution(short, chain, chain[0], warning)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "gpu"


def gpu_name(device_id: int = 0) -> str | None:
    """The name of GPU ``device_id`` from nvidia-smi, or None when there is none."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader", "-i", str(device_id)],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out else None


def default_cache_dir() -> Path:
    """Root of edgecnn's TensorRT caches: ``<user cache>/trt`` (``$EDGECNN_CACHE_DIR/trt`` when set)."""
    from edgecnn._io import user_cache_dir

    return user_cache_dir() / "trt"


def trt_cache_path(config: ProviderConfig) -> Path:
    """The TensorRT cache folder for one model on one GPU: ``<cache_dir>/<checksum[:16]>-<gpu>``."""
    root = Path(config.cache_dir) if config.cache_dir is not None else default_cache_dir()
    gpu = config.gpu_name or gpu_name(config.device_id) or f"gpu{config.device_id}"
    return root / f"{_slug(config.model_key)[:16]}-{_slug(gpu)}"


def _overrides(name: str, config: ProviderConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, opts in config.provider_options.items():
        try:
            full = PROVIDER_NAMES.get(normalize(key), key)
        except EdgecnnError:
            full = key
        if full == name:
            out.update(opts)
    return out


def provider_options(name: str, config: ProviderConfig | None = None) -> dict[str, Any]:
    """ONNX Runtime options for provider ``name`` (full name) built from ``config``, overrides applied."""
    config = config or ProviderConfig()
    opts: dict[str, Any]
    if name == TENSORRT:
        cache = str(trt_cache_path(config))
        opts = {
            "device_id": config.device_id,
            "trt_fp16_enable": config.fp16,
            "trt_int8_enable": config.int8,
            "trt_max_workspace_size": config.workspace_size,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": cache,
        }
    elif name == CUDA:
        opts = {
            "device_id": config.device_id,
            "cudnn_conv_algo_search": config.cudnn_conv_algo_search,
            "arena_extend_strategy": config.arena_extend_strategy,
            "do_copy_in_default_stream": True,
        }
    else:
        opts = {}
    opts.update(_overrides(name, config))
    return opts


def build_providers(resolution: Resolution, config: ProviderConfig | None = None
                    ) -> tuple[list[str], list[dict[str, Any]]]:
    """``(providers, provider_options)`` lists for ``onnxruntime.InferenceSession``.

    Values are converted to the strings ONNX Runtime's Python API expects (booleans as "1"/"0").
    """
    names = list(resolution.providers)
    options = []
    for name in names:
        opts = provider_options(name, config)
        options.append({k: ("1" if v else "0") if isinstance(v, bool) else str(v) for k, v in opts.items()})
    return names, options


def check_registered(resolution: Resolution, registered: Sequence[str], *, fallback: bool = False
                     ) -> str | None:
    """Detect ONNX Runtime's silent fallback: the session did not register the resolved primary provider.

    ``registered`` is ``session.get_providers()``. Raises :class:`EdgecnnError` unless ``fallback``; with
    ``fallback`` returns a warning naming the provider that really runs (None when all is well).
    """
    if resolution.primary in registered:
        return None
    runs = registered[0] if registered else CPU
    v = gpu_build_versions()
    cuda = f"CUDA {v['cuda']} and cuDNN {v['cudnn']}" if v.get("cuda") and v.get("cudnn") else "CUDA and cuDNN"
    trt = f"TensorRT {v['tensorrt']}" if v.get("tensorrt") else "TensorRT"
    libs = f"{trt}, {cuda}" if resolution.primary == TENSORRT else cuda
    msg = (f"{resolution.primary} was requested but ONNX Runtime registered only {', '.join(registered)}: "
           f"its {libs} libraries or the NVIDIA driver could not be loaded (see onnxruntime's log above; "
           "run 'edgecnn doctor')")
    if not fallback:
        raise EdgecnnError(msg + "; pass fallback=True (--fallback) to run anyway.")
    return f"{msg}; running on {runs}."
