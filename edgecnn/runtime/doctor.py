"""``edgecnn doctor``: what a user needs to know when a model does not run, and how to fix it.

Never imports torch (find_spec + package metadata only), so it works on an edge install.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from typing import Any

from edgecnn.runtime import precision as PR
from edgecnn.runtime import providers as P

#: x86 /proc/cpuinfo flag -> what it means for int8 / fp16 / bf16 inference (aarch64: ``precision.ARM_FLAGS``)
CPU_FLAGS: dict[str, str] = PR.X86_FLAGS

#: library kind -> soname prefix; the versions come from what the installed provider libraries load
GPU_LIB_KINDS: dict[str, str] = {"cudart": "libcudart.so", "cublas": "libcublas.so", "cudnn": "libcudnn.so",
                                 "tensorrt": "libnvinfer.so"}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_info(cpuinfo: str | None = None, machine: str | None = None) -> dict[str, Any]:
    """CPU model, logical CPUs and the instruction sets relevant to int8/fp16/bf16 inference (x86 flags or
    aarch64 features, from :func:`edgecnn.runtime.precision.detect_cpu`)."""
    cpu = PR.detect_cpu(cpuinfo, machine)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "model": cpu.model or platform.processor() or platform.machine(),
        "arch": machine or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "flags": cpu.known_flags(),
        "flag_names": cpu.describe(),
        "native_bf16": cpu.native_bf16,
        "native_fp16": cpu.native_fp16,
    }


def gpu_info() -> list[dict[str, Any]]:
    """GPUs and driver from nvidia-smi (or pynvml when installed); empty when there is none."""
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            out = subprocess.run(
                [exe, "--query-gpu=index,name,driver_version,memory.total,compute_cap",
                 "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=15, check=True,
            ).stdout
            gpus = []
            for line in out.strip().splitlines():
                parts = [p.strip() for p in line.split(",")]
                if len(parts) >= 5:
                    gpus.append({"index": int(parts[0]), "name": parts[1], "driver": parts[2],
                                 "memory_mib": parts[3], "compute_capability": parts[4], "source": "nvidia-smi"})
            return gpus
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    if importlib.util.find_spec("pynvml") is not None:
        try:
            import pynvml

            pynvml.nvmlInit()
            driver = pynvml.nvmlSystemGetDriverVersion()
            gpus = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                name = pynvml.nvmlDeviceGetName(h)
                gpus.append({"index": i, "name": name.decode() if isinstance(name, bytes) else name,
                             "driver": driver.decode() if isinstance(driver, bytes) else driver,
                             "memory_mib": pynvml.nvmlDeviceGetMemoryInfo(h).total // (1 << 20),
                             "source": "pynvml"})
            return gpus
        except Exception:  # pynvml without a driver raises its own errors
            return []
    return []


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


def collect(check_gpu_libraries: bool | None = None) -> dict[str, Any]:
    """Everything ``edgecnn doctor`` reports, as plain data (``fixes`` lists what to do)."""
    from edgecnn import __version__
    from edgecnn.runtime.openvino_backend import openvino_info

    ort_info = onnxruntime_info()
    ort_info["build"] = P.gpu_build_versions()
    ort_info["gpu_libraries"] = gpu_library_names()
    try:  # find_spec locates torch without importing it
        torch_present = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        torch_present = False
    torch_version = _version("torch") if torch_present else None
    gpus = gpu_info()
    has_gpu_build = P.CUDA in ort_info["providers"] or P.TENSORRT in ort_info["providers"]
    if check_gpu_libraries is None:
        check_gpu_libraries = bool(gpus) or has_gpu_build
    libs = gpu_libraries() if check_gpu_libraries else {}
    report: dict[str, Any] = {
        "edgecnn": __version__,
        "python": {"version": platform.python_version(), "executable": sys.executable,
                   "platform": platform.platform()},
        "onnx": _version("onnx"),
        "onnxruntime": ort_info,
        "openvino": openvino_info(),
        "torch": {"installed": torch_present, "version": torch_version,
                  "cuda_build": bool(torch_version and "+cu" in torch_version)},
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
        "gpus": gpus,
        "gpu_libraries": libs,
        "cpu": cpu_info(),
    }
    report["fixes"] = fixes(report)
    return report


def fixes(report: dict[str, Any]) -> list[str]:
    """Concrete steps for what is missing or broken, from a :func:`collect` report."""
    out: list[str] = []
    ort_info = report["onnxruntime"]
    provs = ort_info["providers"]
    gpus = report["gpus"]
    ov = report.get("openvino") or {}
    if not ort_info["distributions"] and not ov.get("version"):
        out.append(f"no runtime is installed: {P.EXTRAS_HELP}.")
    elif ort_info["distributions"] and ort_info["import_error"]:
        out.append("onnxruntime does not import: pip install --force-reinstall onnxruntime "
                   "(or onnxruntime-gpu on an NVIDIA machine).")
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
    flags = report["cpu"]["flags"]
    if report["cpu"]["arch"] in ("x86_64", "AMD64") and not (flags.get("avx512_vnni") or flags.get("avx_vnni")
                                                             or flags.get("amx_int8")):
        out.append("this CPU has no VNNI/AMX: int8 models gain less (u8s8 on AVX2 only); prefer fp32 or test "
                   "int8 speed with 'edgecnn bench'.")
    if report["cpu"].get("native_bf16") and not ov.get("version"):
        out.append("this CPU has native bf16: OpenVINO's bf16 inference ran ResNet-50 about 2x faster than ONNX "
                   "Runtime fp32 here; pip install 'edgecnn[openvino]' and use --provider openvino.")
    if ov.get("error"):
        out.append(f"openvino is installed but does not start ({ov['error']}): pip install --force-reinstall openvino.")
    if not report["torch"]["installed"]:
        out.append("torch is not installed: running .onnx files works; exporting zoo models needs "
                   "pip install 'edgecnn[export]'.")
    return out


def format_report(report: dict[str, Any]) -> str:
    """Human-readable text of a :func:`collect` report."""
    o = report["onnxruntime"]
    t = report["torch"]
    lines = [
        f"edgecnn      {report['edgecnn']}",
        f"python       {report['python']['version']} ({report['python']['executable']})",
        f"platform     {report['python']['platform']}",
        f"onnx         {report['onnx'] or 'not installed'}",
        "onnxruntime  " + (f"{o['version']} from {', '.join(f'{k} {v}' for k, v in o['distributions'].items())}"
                           if o["version"] else f"NOT IMPORTABLE ({o['import_error']})"),
        f"providers    {', '.join(o['providers']) or 'none'}",
    ]
    build = o.get("build") or {}
    if any(build.values()):
        lines.append("gpu build    " + ", ".join(f"{k} {v}" for k, v in build.items() if v)
                     + (f" ({', '.join(o['gpu_libraries'].values())})" if o.get("gpu_libraries") else ""))
    ov = report.get("openvino") or {}
    if ov.get("version"):
        devs = ", ".join(f"{d} ({v['name']})" for d, v in ov.get("devices", {}).items()) or "none"
        lines.append(f"openvino     {ov['version']}, devices: {devs}" + (f" - ERROR {ov['error']}" if ov.get("error")
                                                                           else ""))
    else:
        lines.append("openvino     not installed (pip install 'edgecnn[openvino]')")
    if o["conflict"]:
        c = o["conflict"]
        lines.append(f"CONFLICT     {' and '.join(c['installed'])} are both installed; files in use are "
                     f"{c['active_files']}'s, broken: {', '.join(c['broken'])}")
    lines.append("torch        " + (f"{t['version']} ({'CUDA' if t['cuda_build'] else 'CPU'} build; not imported)"
                                    if t["installed"] else "not installed (not needed to run .onnx files)"))
    lines.append(f"numpy        {report['numpy']}    pillow {report['pillow']}")
    if report["gpus"]:
        for g in report["gpus"]:
            lines.append(f"gpu {g['index']}        {g['name']}, driver {g['driver']}, {g['memory_mib']} MiB"
                         + (f", compute {g['compute_capability']}" if g.get("compute_capability") else ""))
    else:
        lines.append("gpu          none found (no nvidia-smi / pynvml)")
    if report["gpu_libraries"]:
        lines.append("gpu libs     " + ", ".join(f"{k} {'ok' if v else 'MISSING'}"
                                                 for k, v in report["gpu_libraries"].items()))
    c = report["cpu"]
    lines.append(f"cpu          {c['model']} ({c['arch']}, {c['usable_cpus']}/{c['logical_cpus']} CPUs usable)")
    have = c.get("flag_names") or [CPU_FLAGS[f] for f, ok in c["flags"].items() if ok and f in CPU_FLAGS]
    lines.append(f"cpu flags    {', '.join(have) or 'none of AVX2/AVX-512/VNNI/AMX (x86) or NEON/dot/bf16 (arm)'}")
    lines.append(f"native bf16  {'yes' if c.get('native_bf16') else 'no'} (OpenVINO --precision auto runs "
                 f"{'bf16' if c.get('native_bf16') else 'fp32'} on this CPU)")
    if report["fixes"]:
        lines.append("")
        lines.append("fixes:")
        lines.extend(f"  - {f}" for f in report["fixes"])
    else:
        lines.append("\nno problems found.")
    return "\n".join(lines)
