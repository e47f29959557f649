"""The roofline (Williams, Waterman & Patterson 2009): which layers the memory bandwidth limits, which the arithmetic.

    roof = machine_roof()                          # peak GFLOP/s and GB/s of this CPU, measured once and cached
    bounds = layer_bounds(graph_cost("m.onnx"), roof)
    bounds[5]                                      # {"bound": "memory", "attainable_gflops": 31.2}

A layer of arithmetic intensity I (FLOPs per byte moved: :attr:`edgecnn.profiler.cost.LayerCost.intensity`)
can reach at most ``min(peak, I x bandwidth)``. Below the ridge point ``peak / bandwidth`` it is
memory-bound: no kernel can make it use the arithmetic units fully. Depthwise convolutions (one 3x3
filter per channel: 9 MACs per output element where a dense convolution has ``9 x Cin``) sit far left of
the ridge, which is why they run far below the GEMM peak on every CPU.

Both figures come from :func:`edgecnn.profiler.peak.measure_peak` (the compute peak: best of a large
MatMul and a 3x3 convolution in ONNX Runtime; the bandwidth: an elementwise Mul over a 64 MiB tensor,
read once and written once), cached per machine, provider, threads and ONNX Runtime version; either can
be given instead (``profile --peak-gflops/--bandwidth-gbs``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgecnn.errors import EdgecnnError
from edgecnn.profiler.cost import GraphCost
from edgecnn.profiler.peak import Peak, measure_peak


@dataclass(frozen=True)
class Roof:
    """Peak compute and memory bandwidth, and where each figure came from."""

    gflops: float
    bandwidth_gbs: float
    #: "measured" (now), "cache" (measured earlier on this machine) or "user" (given), for each figure
    gflops_source: str
    bandwidth_source: str
    threads: int | None = None

    @property
    def ridge(self) -> float:
        """The intensity (FLOP/byte) where the memory roof meets the compute roof."""
        return self.gflops / self.bandwidth_gbs

    def attainable(self, intensity: float) -> float:
        """The most GFLOP/s a layer of ``intensity`` FLOP/byte can reach."""
        return min(self.gflops, intensity * self.bandwidth_gbs)

    def bound(self, intensity: float) -> str:
        """``memory`` left of the ridge point, ``compute`` at or right of it."""
        return "memory" if intensity < self.ridge else "compute"

    def describe(self) -> str:
        """One line for reports."""
        return (f"roofline: {self.gflops:.1f} GFLOP/s ({self.gflops_source}), {self.bandwidth_gbs:.1f} GB/s "
                f"({self.bandwidth_source}), ridge at {self.ridge:.1f} FLOP/byte")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ridge": self.ridge}

    @classmethod
    def from_peak(cls, peak: Peak) -> Roof | None:
        """The roof of a measured :class:`~edgecnn.profiler.peak.Peak` (None without a bandwidth)."""
        if not peak.bandwidth_gbs:
            return None
        return cls(peak.gflops, peak.bandwidth_gbs, peak.source, "cache" if peak.source == "user" else peak.source,
                   peak.threads)


def machine_roof(peak_gflops: float | None = None, bandwidth_gbs: float | None = None, *,
                 provider: str = "CPUExecutionProvider", threads: int | None = None) -> Roof:
    """This machine's roof: the figures given, the rest from :func:`~edgecnn.profiler.peak.measure_peak` (cached)."""
    for name, v in (("--peak-gflops", peak_gflops), ("--bandwidth-gbs", bandwidth_gbs)):
        if v is not None and not v > 0:
            raise EdgecnnError(f"{name} must be > 0, got {v:g}.")
    if peak_gflops is not None and bandwidth_gbs is not None:
        return Roof(float(peak_gflops), float(bandwidth_gbs), "user", "user", threads)
    peak = measure_peak(provider, threads)
    if not peak.bandwidth_gbs:  # a cache entry from a probe without the bandwidth
        peak = measure_peak(provider, threads, refresh=True)
    assert peak.bandwidth_gbs
    return Roof(float(peak_gflops) if peak_gflops is not None else peak.gflops,
                float(bandwidth_gbs) if bandwidth_gbs is not None else peak.bandwidth_gbs,
                "user" if peak_gflops is not None else peak.source,
                "user" if bandwidth_gbs is not None else peak.source, peak.threads)


def layer_bounds(cost: GraphCost, roof: Roof) -> dict[int, dict[str, Any]]:
    """By layer index: ``bound`` (memory/compute) and ``attainable_gflops``, for layers that compute and move data."""
    return {lay.index: {"bound": roof.bound(lay.intensity),
                        "attainable_gflops": round(roof.attainable(lay.intensity), 2)}
            for lay in cost.layers if lay.flops and lay.bytes_moved}


def with_roofline(d: dict[str, Any], cost: GraphCost, roof: Roof) -> dict[str, Any]:
    """A ``cost.to_dict()``-shaped dict with the roof and each layer's bound added (the ``--json`` output)."""
    bounds = layer_bounds(cost, roof)
    d["roofline"] = roof.to_dict()
    for lay in d.get("layers", []):
        lay.update(bounds.get(lay["index"], {"bound": None, "attainable_gflops": None}))
    return d
