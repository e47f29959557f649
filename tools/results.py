"""Results files: every ``tools/bench_*.py`` writes its table, with the machine it ran on, to
``docs/results/<name>.md`` and ``docs/results/<name>.json``; the docs pages include the ``.md`` files
(pymdownx.snippets), so no figure in the docs is typed by hand or loses its machine.

A figure without its CPU is not information: the CPUs these benchmarks run on differ by ~40% in absolute time
and disagree even on which precision is faster (bf16 2.1x fp32 on one AMD EPYC, 0.64x on an Intel Xeon with the
same AVX512-BF16 flag). So the header names the CPU model with its family/model numbers, the flags that decide
kernels (AVX-512, VNNI, AVX512-BF16, AVX512-FP16, AMX; NEON/SVE/i8mm on aarch64), the runtime versions, the
threads, the load average at the start and the end of the run (a busy machine shows) and the date.

A tool records :func:`machine` and :func:`command` in its data when it measures, renders its table from the data,
and hands both to :func:`write`; ``--render JSON`` reloads the data (:func:`load`) and writes the same file again.

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import results

    data = {..., "machine": results.machine(threads), "command": results.command(__file__, argv)}
    print(results.write(args, "zoo", "The zoo on ONNX Runtime", table, data))
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "docs" / "results"
#: the largest picture a results file may carry (docs stay small to clone)
PICTURE_LIMIT_BYTES = 150_000

# /proc/cpuinfo flag -> the short name the results files print, per architecture (the flags that decide which
# kernels run; a subset of edgecnn.runtime.precision's tables, which the tests check).
X86_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "VNNI", "avx512_bf16": "AVX512-BF16",
             "avx512_fp16": "AVX512-FP16", "amx_tile": "AMX"}
ARM_FLAGS = {"asimd": "NEON", "asimddp": "dot product", "i8mm": "i8mm", "bf16": "BF16", "sve": "SVE"}
OTHER_VERSIONED = ("torch", "numpy", "tensorrt", "tensorrt-cu12")

# The 1-minute load average when the tool started (this module is imported at the top of every tool).
_LOAD_AT_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def _field(text: str, key: str) -> str | None:
    m = re.search(rf"^{re.escape(key)}\s*:\s*(.+)$", text, re.M)
    return m.group(1).strip() if m else None


def _arm_ident(text: str) -> str | None:
    """An Arm core named by its implementer and part numbers (aarch64 ``/proc/cpuinfo`` has no model name)."""
    implementer, part = _field(text, "CPU implementer"), _field(text, "CPU part")
    return f"Arm CPU (implementer {implementer}, part {part})" if implementer and part else None


def _versions() -> dict[str, str]:
    """Every ONNX Runtime build and OpenVINO (edgecnn's own lookup), then torch, numpy and TensorRT when present."""
    from edgecnn.runtime.backends import registry

    versions = dict(registry.versions())
    for dist in OTHER_VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def machine(threads: int | None = None, gpu: str | None = None, *, cpuinfo: str | None = None,
            arch: str | None = None) -> dict[str, Any]:
    """The machine a benchmark ran on: CPU (model, family/model numbers, decisive flags), GPU when given,
    versions, threads, the 1-minute load average at the tool's start and now, the date. Call it after measuring.

    ``cpuinfo``/``arch`` replace ``/proc/cpuinfo`` and ``platform.machine()`` (tests).
    """
    from edgecnn.runtime.precision import parse_cpuinfo

    text = _cpuinfo() if cpuinfo is None else cpuinfo
    cpu = parse_cpuinfo(text, arch or platform.machine())
    table = ARM_FLAGS if cpu.is_arm64 else X86_FLAGS
    load_now = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    name = cpu.model or _arm_ident(text) or ("" if cpuinfo is not None else platform.processor())
    return {
        "cpu": name or "unknown CPU",
        "cpu_family": _field(text, "cpu family"), "cpu_model_number": _field(text, "model"),
        "arch": cpu.arch, "cpus": os.cpu_count(), "gpu": gpu,
        "flags": {label: (flag in cpu.flags) for flag, label in table.items()},
        "threads": threads, "versions": _versions(), "python": platform.python_version(),
        "load_start": _LOAD_AT_START, "load_end": load_now,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
    }


def machine_line(m: dict[str, Any]) -> str:
    """One line naming the machine, e.g. 'Intel Xeon (family 6, model 207), x86_64, 2 CPUs; AVX2, AVX-512, VNNI,
    AVX512-BF16, AVX512-FP16 (no AMX); onnxruntime 1.32.0, openvino 2026.4.1; 2 threads; load average 0.2 at the
    start, 1.9 at the end; 2026-12-02' (a GPU, when there is one, comes first)."""
    ident = m["cpu"]
    if m.get("cpu_family") and m.get("cpu_model_number"):
        ident += f" (family {m['cpu_family']}, model {m['cpu_model_number']})"
    parts = [f"{ident}, {m['arch']}, {m['cpus']} CPUs"]
    if m.get("gpu"):
        parts[0] = f"GPU {m['gpu']}; CPU {parts[0]}"
    flags = m.get("flags", {})
    have = [k for k, v in flags.items() if v]
    lack = [k for k, v in flags.items() if not v]
    parts.append((", ".join(have) or "none of the decisive flags") + (f" (no {', no '.join(lack)})" if lack else ""))
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if k != "numpy")
    if versions:
        parts.append(versions)
    if m.get("threads"):
        parts.append(f"{m['threads']} threads")
    if m.get("load_start") is not None and m.get("load_end") is not None:
        parts.append(f"load average {m['load_start']:.1f} at the start, {m['load_end']:.1f} at the end")
    parts.append(m["date"])
    return "; ".join(parts)


def command(script: str | os.PathLike, argv: Sequence[str] | None = None) -> str:
    """The command that reproduces this run: ``python tools/<script> ARGS`` (``argv``: default sys.argv[1:])."""
    path = Path(script).resolve()
    try:
        name = path.relative_to(ROOT).as_posix()
    except ValueError:
        name = path.name
    return shlex.join(["python", name, *(sys.argv[1:] if argv is None else argv)])


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """``--results-dir`` (default docs/results) and ``--no-results``, shared by every benchmark."""
    ap.add_argument("--results-dir", default=str(RESULTS_DIR),
                    help="where <name>.md and <name>.json are written (default: docs/results)")
    ap.add_argument("--no-results", action="store_true", help="print the table only; write no results file")


def add_saved_data(ap: argparse.ArgumentParser) -> None:
    """``--json FILE`` (also save the measured data) and ``--render JSON`` (write the results file from saved data
    instead of measuring), for benchmarks whose run is ``measure(args)``: see :func:`measured`."""
    ap.add_argument("--json", default=None, help="also save the measured data here")
    ap.add_argument("--render", default=None, metavar="JSON", help="write the results file from saved data")


def measured(args: argparse.Namespace, measure: Any) -> dict[str, Any]:
    """The data of ``--render JSON``, else ``measure(args)``, saved to ``--json`` when given."""
    if args.render:
        return load(args.render)
    data = measure(args)
    if args.json:
        save(args.json, data)
    return data


def save(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """A tool's ``--json``: its data (machine and command included), the parent folder created."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")


def load(path: str | os.PathLike) -> dict[str, Any]:
    """A tool's data from its ``--json`` file or from a results ``<name>.json`` (which wraps it in ``data``)."""
    saved = json.loads(Path(path).read_text())
    return saved["data"] if isinstance(saved.get("data"), dict) and "machine" in saved["data"] else saved


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A Markdown table; None cells are blank."""
    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(title: str, table: str, m: dict[str, Any], cmd: str, notes: str = "") -> str:
    """The text of a results file: title, machine, command, table, notes."""
    md = [f"**{title}**", "", f"Machine: {machine_line(m)}.  ", f"Command: `{cmd}`", "", table.rstrip()]
    if notes:
        md += ["", notes.rstrip()]
    return "\n".join(md) + "\n"


def write(args: argparse.Namespace, name: str, title: str, table: str, data: dict[str, Any],
          notes: str = "") -> str:
    """Return the results text of ``data`` (its ``machine`` and ``command`` in the header); unless
    ``--no-results``, also write it to ``<results-dir>/<name>.md`` and the data to ``<name>.json``."""
    text = markdown(title, table, data["machine"], data.get("command") or "?", notes)
    if getattr(args, "no_results", False):
        return text
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.md"
    script = shlex.split(data["command"])[1] if data.get("command") else "tools/"
    path.write_text(f"<!-- generated by {script}; do not edit: rerun the command below -->\n\n" + text)
    (out / f"{name}.json").write_text(json.dumps({"name": name, "title": title, "command": data.get("command"),
                                                   "machine": data["machine"], "data": data}, indent=2,
                                                  default=str) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return text


def picture(args: argparse.Namespace, src: str | os.PathLike, name: str, alt: str) -> str:
    """Copy the PNG ``src`` to ``<results-dir>/<name>.png`` (shrunk to at most PICTURE_LIMIT_BYTES) unless
    ``--no-results``; return the Markdown image link, relative to a page in ``docs/`` (``results/<name>.png``:
    an included results file's links resolve against the including page)."""
    link = f"![{alt}](results/{name}.png)"
    if getattr(args, "no_results", False):
        return link
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    dest = out / f"{name}.png"
    shutil.copyfile(src, dest)
    if dest.stat().st_size > PICTURE_LIMIT_BYTES:
        _shrink(dest)
    return link


def _shrink(path: Path) -> None:
    """Re-encode a PNG with a 64-colour palette, then halve it until it fits PICTURE_LIMIT_BYTES."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    while True:
        img.quantize(colors=64).save(path, format="PNG", optimize=True)
        if path.stat().st_size <= PICTURE_LIMIT_BYTES or img.width < 200:
            return
        img = img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.LANCZOS)
