"""``edgecnn doctor``: what a user needs to know when a model does not run, and how to fix it.

Never imports torch (find_spec + package metadata only), so it works on an edge install.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from typing import Any

from edgecnn.runtime import precision as PR
from edgecnn.runtime.backends import ort_providers as P
from edgecnn.runtime.backends.openvino import ov_fixes
from edgecnn.runtime.backends.ort_doctor import (
    gpu_build,
    gpu_libraries,
    gpu_library_names,
    onnxruntime_info,
    ort_fixes,
)

#: x86 /proc/cpuinfo flag -> what it means for int8 / fp16 / bf16 inference (aarch64: ``precision.ARM_FLAGS``)
CPU_FLAGS: dict[str, str] = PR.X86_FLAGS

def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_info(cpuinfo: str | None = None, machine: str | None = None) -> dict[str, Any]:
    """CPU model, logical CPUs and the instruction sets relevant to int8/fp16/bf16 inference (x86 flags or
    aarch64 features, from :func:`edgecnn.runtime.precision.detect_cpu`)."""
    from edgecnn.runtime.emulation import emulation

    cpu = PR.detect_cpu(cpuinfo, machine)
    emu = emulation() if cpuinfo is None and machine is None else None
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
        "emulated": emu.as_dict() if emu is not None and emu.emulated else None,
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


def backend_rows() -> list[dict[str, Any]]:
    """One row per registered backend (available or why not, versions) and per plug-in that failed to load."""
    from edgecnn.runtime.backends import registry

    rows: list[dict[str, Any]] = []
    for name, why in registry.available().items():
        failed = name in registry.failures()
        versions: dict[str, str] = {}
        if not failed:
            try:
                versions = registry.get(name).versions()
            except Exception:  # noqa: BLE001 - a plug-in's own report must not break doctor
                versions = {}
        if why:
            why = why.replace(" (see 'edgecnn doctor')", "")  # this is doctor
        rows.append({"name": name, "available": why is None, "reason": why, "skipped": failed,
                     "versions": versions})
    return rows


def collect(check_gpu_libraries: bool | None = None) -> dict[str, Any]:
    """Everything ``edgecnn doctor`` reports, as plain data (``fixes`` lists what to do)."""
    from edgecnn import __version__
    from edgecnn.runtime.backends.openvino import openvino_info

    ort_info = onnxruntime_info()
    ort_info["build"] = P.gpu_build_versions()
    ort_info["gpu_libraries"] = gpu_library_names()
    try:  # find_spec locates torch without importing it
        torch_present = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        torch_present = False
    torch_version = _version("torch") if torch_present else None
    gpus = gpu_info()
    has_gpu_build = gpu_build(ort_info)
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
        "backends": backend_rows(),
    }
    report["fixes"] = fixes(report)
    return report


def fixes(report: dict[str, Any]) -> list[str]:
    """Concrete steps for what is missing or broken, from a :func:`collect` report."""
    out: list[str] = []
    ort_info = report["onnxruntime"]
    ov = report.get("openvino") or {}
    if not ort_info["distributions"] and not ov.get("version"):
        out.append(f"no runtime is installed: {P.EXTRAS_HELP}.")
    elif ort_info["distributions"] and ort_info["import_error"]:
        out.append("onnxruntime does not import: pip install --force-reinstall onnxruntime "
                   "(or onnxruntime-gpu on an NVIDIA machine).")
    out.extend(ort_fixes(report))
    flags = report["cpu"]["flags"]
    if report["cpu"]["arch"] in ("x86_64", "AMD64") and not (flags.get("avx512_vnni") or flags.get("avx_vnni")
                                                             or flags.get("amx_int8")):
        out.append("this CPU has no VNNI/AMX: int8 models gain less (u8s8 on AVX2 only); prefer fp32 or test "
                   "int8 speed with 'edgecnn bench'.")
    out.extend(ov_fixes(report))
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
    lines.append(f"native bf16  {'yes' if c.get('native_bf16') else 'no'} (OpenVINO --precision auto "
                 f"{'measures bf16 against fp32' if c.get('native_bf16') else 'runs fp32'} on this CPU)")
    if c.get("emulated"):
        lines.append(f"emulated     yes: {c['emulated']['reason']}; the cpu flags above are the ones the emulator "
                     "announces to this process, and timings here measure the emulator, not a device")
    for row in report.get("backends") or []:
        state = ("skipped: " + str(row["reason"]) if row.get("skipped") else "available" if row["available"]
                 else f"not available ({row['reason']})")
        lines.append(f"backend      {row['name']}: {state}")
    if report["fixes"]:
        lines.append("")
        lines.append("fixes:")
        lines.extend(f"  - {f}" for f in report["fixes"])
    else:
        lines.append("\nno problems found.")
    return "\n".join(lines)
