"""Warn when a file chosen by ``edgecnn optimize`` runs somewhere else than where it was chosen.

The decision (``edgecnn.optimize`` metadata) names the runtime, CPU and runtime versions it was measured
on; the speed-up it reports holds there only. ``bench`` calls :func:`decision_warnings` with what really
runs. Torch-free, onnxruntime-free (pure function of the metadata).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_SHORT = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "tensorrt",
          "OpenVINOExecutionProvider": "openvino"}


def _family(runtime: str) -> str:
    return "openvino" if runtime == "openvino" else "onnxruntime"


def decision_warnings(metadata: Mapping[str, Any], *, provider: str, cpu: str,
                      versions: Mapping[str, str]) -> list[str]:
    """One line per difference between the file's recorded decision and this run (empty when none, or when
    the file records no decision). ``provider``: the provider that runs (ONNX Runtime name or short name);
    ``cpu``: this CPU's model name; ``versions``: installed runtime distributions -> version."""
    decision = metadata.get("optimize")
    if not isinstance(decision, Mapping):
        return []
    chosen = str(decision.get("runtime", ""))
    running = "openvino" if provider.startswith("OpenVINO") else _SHORT.get(provider, provider)  # OpenVINO:CPU
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
    family = _family(chosen or running)
    for dist, version in recorded.items():
        if dist.startswith(family) and dist in versions and versions[dist] != version:
            out.append(f"this file was chosen with {dist} {version}; {versions[dist]} is installed here: "
                       "timings may differ")
    return out
