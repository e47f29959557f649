"""Peak compute (GFLOP/s) and memory bandwidth (GB/s) of this machine, measured in ONNX Runtime itself.

Peak compute: the best of repeated runs of one large square MatMul graph (``n x n @ n x n``, 2n^3 FLOPs)
on the same provider and thread count as the benchmark. Bandwidth: the best of repeated runs of an
elementwise Mul over a 64 MiB tensor (reads it once, writes it once). Results are cached per machine,
provider, threads and ONNX Runtime version in ``<user cache>/edgecnn/peak.json`` (``$EDGECNN_CACHE_DIR``
overrides the folder); ``bench --peak-gflops`` overrides the measurement.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgecnn._io import atomic_write_bytes, user_cache_dir
from edgecnn.runtime.precision import detect_cpu


@dataclass
class Peak:
    """Measured (or given) peak of one provider on this machine."""

    gflops: float
    bandwidth_gbs: float | None
    provider: str
    threads: int
    source: str  # "measured", "cache" or "user"
    matmul_n: int = 0
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cache_file() -> Path:
    """``<user cache>/peak.json`` (``$EDGECNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgecnn`` or ``~/.cache/edgecnn``)."""
    return user_cache_dir() / "peak.json"


#: bumped when the measurement changes, so cached peaks of an older probe are measured again.
PROBE_VERSION = 2


def machine_key(provider: str, threads: int, device: str | None = None) -> str:
    """The cache key: CPU (or GPU) model, provider, threads and ONNX Runtime version."""
    import onnxruntime as ort

    return f"{device or detect_cpu().model}|{provider}|threads={threads}|ort={ort.__version__}|probe={PROBE_VERSION}"


def _matmul_model(n: int) -> onnx.ModelProto:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "peak_matmul", [a, b], [c])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _conv_model(c: int, hw: int) -> onnx.ModelProto:
    """A 3x3 convolution c -> c maps on hw x hw (the kernels CNN layers really run on)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw])
    w = helper.make_tensor("w", TensorProto.FLOAT, [c, c, 3, 3],
                           np.random.default_rng(1).standard_normal(c * c * 9, dtype=np.float32) * 0.01)
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g = helper.make_graph([node], "peak_conv", [x], [y], initializer=[w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _mul_model(n: int) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    g = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "peak_bandwidth", [x], [y],
                          initializer=[two])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _session(model: onnx.ModelProto, providers: list[str], threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=providers)


def _best_time(run: Any, seconds: float, min_runs: int = 3) -> float:
    run()  # warm-up
    best = float("inf")
    start = time.perf_counter()
    runs = 0
    while runs < min_runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return best


def run_peak(providers: list[str], threads: int, n: int = 2048, seconds: float = 1.5,
             bandwidth_elems: int = 16 * 1024 * 1024) -> tuple[float, float]:
    """Measure (GFLOP/s, GB/s) now, without the cache.

    Compute peak: the better of a large MatMul and a 3x3 convolution (256 maps, 56x56) in the same runtime.
    ONNX Runtime's blocked (NCHWc) convolution kernels outrun its SGEMM on AVX-512 CPUs, so a MatMul alone
    under-states what the hardware gives CNN layers and would put efficiencies above 100%.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    sess = _session(_matmul_model(n), providers, threads)
    t = _best_time(lambda: sess.run(["c"], {"a": a, "b": b}), seconds)
    gflops = 2.0 * n ** 3 / t / 1e9
    c, hw = 256, 56
    xc = rng.standard_normal((1, c, hw, hw), dtype=np.float32)
    sess = _session(_conv_model(c, hw), providers, threads)
    t = _best_time(lambda: sess.run(["y"], {"x": xc}), seconds / 2)
    gflops = max(gflops, 2.0 * c * c * 9 * hw * hw / t / 1e9)
    x = rng.standard_normal(bandwidth_elems, dtype=np.float32)
    sess = _session(_mul_model(bandwidth_elems), providers, threads)
    t = _best_time(lambda: sess.run(["y"], {"x": x}), seconds / 3)
    return gflops, 2.0 * x.nbytes / t / 1e9


def measure_peak(provider: str = "CPUExecutionProvider", threads: int | None = None, *,
                 providers: list[str] | None = None, device: str | None = None, refresh: bool = False,
                 gflops: float | None = None) -> Peak:
    """Peak GFLOP/s and GB/s of ``provider`` with ``threads`` threads: from the cache, else measured and cached.

    ``gflops`` given: used as is (``source='user'``), bandwidth still from the cache when known.
    """
    from edgecnn.runtime.engine import default_threads

    threads = int(threads or default_threads())
    key = machine_key(provider, threads, device)
    path = cache_file()
    try:
        cached = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        cached = {}
    entry = cached.get(key)
    if gflops is not None:
        bw = entry.get("bandwidth_gbs") if entry else None
        return Peak(float(gflops), bw, provider, threads, "user", key=key)
    if entry and not refresh:
        return Peak(entry["gflops"], entry.get("bandwidth_gbs"), provider, threads, "cache",
                    entry.get("matmul_n", 0), key)
    n = 2048
    g, bw = run_peak(providers or [provider], threads, n=n)
    cached[key] = {"gflops": g, "bandwidth_gbs": bw, "matmul_n": n, "measured_at": time.strftime("%Y-%m-%d %H:%M")}
    try:
        atomic_write_bytes(path, json.dumps(cached, indent=2).encode())
    except OSError:
        pass  # a read-only cache folder only costs a re-measurement next time
    return Peak(g, bw, provider, threads, "measured", n, key)
