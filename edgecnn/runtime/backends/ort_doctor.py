"""The ONNX Runtime part of ``edgecnn doctor``: installed distributions, providers, the CUDA/cuDNN/TensorRT
libraries the build loads, and the fixes for them."""

from __future__ import annotations

import ctypes
from typing import Any

from edgecnn.runtime.backends import ort_providers as P

#: library kind -> soname prefix; the versions come from what the installed provider libraries load
GPU_LIB_KINDS: dict[str, str] = {"cudart": "libcudart.so", "cublas": "libcublas.so", "cudnn": "libcudnn.so",
                                 "tensorrt": "libnvinfer.so"}


def gpu_library_names() -> dict[str, str]:
    """kind -> soname the installed onnxruntime's CUDA/TensorRT provider libraries load (``libcudnn.so.9``...)."""
    names: dict[str, str] = {}
    for libs in P.provider_libraries().values():
        for lib in libs:
            for kind, prefix in GPU_LIB_KINDS.items():
                if lib.startswith(prefix + ".") and kind not in names:
                    names[kind] = lib
    return names


def gpu_libraries() -> dict[str, bool]:
    """Whether the CUDA/cuDNN/TensorRT shared libraries the installed ONNX Runtime build needs can be loaded
    (``onnxruntime.preload_dlls()`` first, so the nvidia-* wheels of ``onnxruntime-gpu[cuda,cudnn]`` count)."""
    names = gpu_library_names()
    if names:
        try:
            P.preload_gpu_libraries()
        except Exception:  # a broken onnxruntime is reported elsewhere
            pass
    found = {}
    for key, name in names.items():
        try:
            ctypes.CDLL(name)
            found[key] = True
        except OSError:
            found[key] = False
    return found


def onnxruntime_info() -> dict[str, Any]:
    """onnxruntime: which distribution(s) are installed, the imported version, providers, conflicts."""
    dists = P.ort_distributions()
    info: dict[str, Any] = {"distributions": dists, "version": None, "providers": [], "device": None,
                            "import_error": None, "conflict": None}
    try:
        import onnxruntime as ort

        info["version"] = ort.__version__
        info["providers"] = list(ort.get_available_providers())
        info["device"] = ort.get_device()
    except Exception as e:
        info["import_error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
    if len(dists) > 1:
        gpu_files = P.CUDA in info["providers"]
        active = "onnxruntime-gpu" if gpu_files else "onnxruntime"
        broken = [d for d in dists if d != active] if active in dists else list(dists)
        info["conflict"] = {
            "installed": list(dists), "active_files": active, "broken": broken,
            "why": "all of them install the same 'onnxruntime' package; the last one installed "
                   "overwrote the others' files, and uninstalling any one deletes files the other needs",
        }
    return info


def gpu_build(ort_info: dict[str, Any]) -> bool:
    """True when the installed onnxruntime build has the CUDA or TensorRT provider."""
    return P.CUDA in ort_info["providers"] or P.TENSORRT in ort_info["providers"]


def ort_fixes(report: dict[str, Any]) -> list[str]:
    """The ONNX Runtime fixes of a doctor report (conflicting distributions, GPU build without GPU, libraries)."""
    out: list[str] = []
    ort_info = report["onnxruntime"]
    provs = ort_info["providers"]
    gpus = report["gpus"]
    if ort_info["conflict"]:
        want = "onnxruntime-gpu" if gpus else "onnxruntime"
        out.append(f"several onnxruntime distributions are installed ({', '.join(ort_info['conflict']['installed'])}): "
                   f"pip uninstall -y {' '.join(ort_info['conflict']['installed'])} && pip install {want}")
    if gpus and P.CUDA not in provs:
        out.append(f"an NVIDIA GPU is present but this onnxruntime build is CPU-only: {P.INSTALL_GPU}")
    if P.CUDA in provs and not gpus:
        out.append("onnxruntime-gpu is installed but no NVIDIA GPU/driver was found (nvidia-smi): install the "
                   "NVIDIA driver, or use the CPU build (pip uninstall -y onnxruntime-gpu && pip install onnxruntime).")
    libs = report["gpu_libraries"]
    names = ort_info.get("gpu_libraries") or {}
    build = ort_info.get("build") or {}
    if P.CUDA in provs and libs:
        missing = [k for k in ("cudart", "cublas", "cudnn") if k in libs and not libs[k]]
        if missing:
            want = ", ".join(names.get(k, k) for k in missing)
            cuda = f"CUDA {build['cuda']}" if build.get("cuda") else "CUDA"
            cudnn = f"cuDNN {build['cudnn']}" if build.get("cudnn") else "cuDNN"
            out.append(f"CUDA provider libraries not loadable ({want}): ONNX Runtime will silently run on CPU. "
                       f"This build needs {cuda} + {cudnn}: pip install 'onnxruntime-gpu[cuda,cudnn]' (or "
                       "'edgecnn[gpu]'), or add them to LD_LIBRARY_PATH.")
    if P.TENSORRT in provs and libs and "tensorrt" in libs and not libs["tensorrt"]:
        trt = f"TensorRT {build['tensorrt']}" if build.get("tensorrt") else "TensorRT"
        out.append(f"TensorRT libraries not loadable ({names.get('tensorrt', 'libnvinfer')}): this build's TensorRT "
                   f"provider needs {trt}: pip install 'edgecnn[tensorrt]' or add its lib folder to LD_LIBRARY_PATH; "
                   "without it --provider tensorrt fails (auto uses CUDA).")
    return out
