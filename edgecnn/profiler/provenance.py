"""Warn when a file chosen by ``edgecnn optimize`` runs somewhere else than where it was chosen.

The decision (``edgecnn.optimize`` metadata) names the runtime, CPU and runtime versions it was measured
on; the speed-up it reports holds there only. ``bench`` calls :func:`decision_warnings` with what really
runs. Torch-free, onnxruntime-free (the backend registry names what runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _backend(name_or_provider: str) -> Any:
    """The registered backend of a backend name or a provider that runs (``OpenVINO:CPU``...), None if unknown."""
    from edgecnn.runtime.backends import registry

    found = registry.of_provider(name_or_provider)
    if found is None:
        try:
            found = registry.get(name_or_provider)
        except Exception:  # noqa: BLE001 - a decision naming a backend not installed here
            return None
    return found


def decision_warnings(metadata: Mapping[str, Any], *, provider: str, cpu: str,
                      versions: Mapping[str, str]) -> list[str]:
    """One line per difference between the file's recorded decision and this run (empty when none, or when
    the file records no decision). ``provider``: the provider that runs (ONNX Runtime name or short name);
    ``cpu``: this CPU's model name; ``versions``: installed runtime distributions -> version."""
    decision = metadata.get("optimize")
    if not isinstance(decision, Mapping):
        return []
    if decision.get("timings_used") is False:  # chosen by accuracy and size (another architecture, an emulator):
        return []                              # the file makes no speed claim that another CPU could void
    chosen = str(decision.get("runtime", ""))
    runs = _backend(provider)
    running = runs.name if runs is not None else provider
    out: list[str] = []
    where = f"{chosen} {decision.get('precision', '')} on {decision.get('cpu', '?')}".strip()
    if chosen and running != chosen:
        out.append(f"this file was chosen by 'edgecnn optimize' for {where} but runs on {running} here: its "
                   f"recorded speed-up ({decision.get('speedup_vs_fp32')}x) does not apply; bench it with the "
                   f"recorded runtime or run 'edgecnn optimize' again")
    if decision.get("cpu") and decision["cpu"] != cpu:
        out.append(f"this file was chosen by 'edgecnn optimize' on a different CPU ({decision['cpu']}; this one: "
                   f"{cpu}): the best runtime and precision differ between CPUs; run 'edgecnn optimize' here")
    recorded = decision.get("runtime_versions") or {}
    owner = _backend(chosen) if chosen else runs
    family = owner.family if owner is not None else chosen
    for dist, version in recorded.items():
        if family and dist.startswith(family) and dist in versions and versions[dist] != version:
            out.append(f"this file was chosen with {dist} {version}; {versions[dist]} is installed here: "
                       "timings may differ")
    return out
