"""Is this process emulated (an aarch64 Python under qemu-user on an x86 host, or the reverse)?

Timings of an emulated process say nothing about the device it stands for, so ``bench`` labels them and
``optimize`` will not choose by them. The rule, in order (each a pure function of its inputs, tested with faked
ones in ``tests/test_emulation.py``):

1. ``$EDGECNN_EMULATED``: ``1`` says emulated, ``0`` says native (for an emulator the rules below miss).
2. The kernel's architecture (``/proc/sys/kernel/arch``, Linux 6.1+; qemu-user does not rewrite it) is of another
   family than the process's (``platform.machine()``, which qemu-user reports as the guest's).
3. ``/proc/cpuinfo`` describes a CPU of another family than the process's: qemu-user before 8.2 passes the host's
   x86 ``cpuinfo`` through to an aarch64 guest (``vendor_id``, x86 ``flags``).
4. qemu's own trace: the process's name (``/proc/self/comm``) is qemu's (``qemu-aarch64-static``), as when
   qemu is started by path without binfmt_misc.

Families, not names, are compared: a 32-bit ARM or x86 process on a 64-bit kernel of its own family is native.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_FAMILIES: dict[str, tuple[str, ...]] = {
    "x86": ("x86_64", "amd64", "i386", "i486", "i586", "i686", "x86"),
    "arm": ("aarch64", "arm64", "aarch64_be", "armv8l", "armv8b", "armv7l", "armv7", "armv6l", "arm"),
    "riscv": ("riscv64", "riscv32", "riscv"),
    "ppc": ("ppc64le", "ppc64", "ppc"),
    "s390": ("s390x", "s390"),
}


def family(arch: str | None) -> str | None:
    """The family of an architecture name (``x86_64`` -> ``x86``, ``aarch64``/``arm64`` -> ``arm``); None: unknown."""
    a = (arch or "").strip().lower()
    for fam, names in _FAMILIES.items():
        if a in names:
            return fam
    return None


def cpuinfo_family(cpuinfo: str) -> str | None:
    """The family of the CPU a ``/proc/cpuinfo`` text describes: ``x86`` (``vendor_id``, x86 ``flags``),
    ``arm`` (``CPU implementer``, ``Features``), None when it says neither."""
    if re.search(r"^vendor_id\s*:", cpuinfo, re.M) or re.search(r"^flags\s*:.*\b(sse2|avx|fpu)\b", cpuinfo, re.M):
        return "x86"
    if re.search(r"^CPU implementer\s*:", cpuinfo, re.M) or re.search(r"^Features\s*:.*\b(asimd|fp)\b", cpuinfo,
                                                                      re.M):
        return "arm"
    return None


@dataclass(frozen=True)
class Emulation:
    """Whether this process runs under an emulator, and the one sentence that says how it was told."""

    emulated: bool
    #: the process's architecture (``platform.machine()``)
    arch: str
    #: why (the rule that decided); empty when native
    reason: str = ""
    #: the architecture family the host shows (kernel or cpuinfo), None when unknown or the same
    host: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"emulated": self.emulated, "arch": self.arch, "reason": self.reason, "host": self.host}

    @property
    def timing_note(self) -> str:
        """What a timing measured here means (empty when native)."""
        if not self.emulated:
            return ""
        return (f"timings are emulated ({self.reason}): they measure the emulator on this host, not an "
                f"{self.arch} device")


def detect_emulation(*, machine: str, cpuinfo: str | None = None, kernel_arch: str | None = None,
                     comm: str | None = None, env: Mapping[str, str] | None = None) -> Emulation:
    """Apply the rule of this module to the given facts (each None when unknown)."""
    arch = (machine or "").strip().lower()
    forced = (env or {}).get("EDGECNN_EMULATED", "").strip()
    if forced in ("1", "0"):
        return Emulation(forced == "1", arch, "EDGECNN_EMULATED=1" if forced == "1" else "")
    mine = family(arch)
    if kernel_arch and mine and family(kernel_arch) and family(kernel_arch) != mine:
        return Emulation(True, arch, f"the kernel is {kernel_arch.strip()} and this process {arch}",
                         family(kernel_arch))
    seen = cpuinfo_family(cpuinfo) if cpuinfo else None
    if seen and mine and seen != mine:
        return Emulation(True, arch, f"/proc/cpuinfo describes an {seen} CPU and this process is {arch}", seen)
    if comm and comm.strip().startswith("qemu-"):
        return Emulation(True, arch, f"this process is {comm.strip()}")
    return Emulation(False, arch)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def _host() -> Emulation:
    return detect_emulation(machine=platform.machine(), cpuinfo=_read("/proc/cpuinfo"),
                            kernel_arch=_read("/proc/sys/kernel/arch"), comm=_read("/proc/self/comm"),
                            env={})


def emulation() -> Emulation:
    """This process's :class:`Emulation` (the files are read once; ``$EDGECNN_EMULATED`` is read every call)."""
    forced = os.environ.get("EDGECNN_EMULATED", "").strip()
    if forced in ("1", "0"):
        return detect_emulation(machine=platform.machine(), env={"EDGECNN_EMULATED": forced})
    return _host()
