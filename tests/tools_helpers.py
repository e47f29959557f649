"""Helpers for the tests of ``tools/``: load a tool by file path (as the scripts are not a package) and fake
machines (``/proc/cpuinfo`` texts) for ``tools/results.py``."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

TOOLS = Path(__file__).resolve().parents[1] / "tools"

#: an Intel Xeon family 6 model 207 (Emerald Rapids class) as a 2-core VM shows it: bf16 and fp16, no AMX
XEON_207_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Platinum 8581C CPU @ 2.10GHz
stepping\t: 2
flags\t\t: fpu vme de pse tsc msr sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512cd \
avx512bw avx512vl avx512_vnni avx512_bf16 avx512_fp16 avx512vbmi
"""

#: a Cortex-A76 (Raspberry Pi 5 class): NEON and int8 dot product, no i8mm, bf16 or SVE, no model name
ARM_A76_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1
"""


def tool(name: str) -> ModuleType:
    """``tools/<name>.py`` imported by its file path, as a test suite without ``tools`` on sys.path does."""
    spec = importlib.util.spec_from_file_location(f"edgecnn_tools_{name}", TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_machine(threads: int = 2) -> dict[str, Any]:
    """``results.machine`` of the model-207 Xeon."""
    return tool("results").machine(threads, cpuinfo=XEON_207_CPUINFO, arch="x86_64")


def results_args(folder: Path) -> argparse.Namespace:
    """The ``--results-dir``/``--no-results`` arguments of a tool, writing into ``folder``."""
    return argparse.Namespace(results_dir=str(folder), no_results=False)
