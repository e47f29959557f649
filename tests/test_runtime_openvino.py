"""Engine on OpenVINO: same API and results as on ONNX Runtime, device, compiled-model cache, threads,
precision reported (never replaced), int8 files, thread safety, and running without ONNX Runtime.

Skipped where the openvino package is missing, except in CI (EDGECNN_REQUIRE_OPENVINO=1 makes it a failure).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from onnx_factory import make_classifier

from edgecnn.errors import EdgecnnError
from edgecnn.runtime import Batcher, Engine
from edgecnn.runtime import precision as PR

if importlib.util.find_spec("openvino") is None:
    if os.environ.get("EDGECNN_REQUIRE_OPENVINO") == "1":
        raise RuntimeError("EDGECNN_REQUIRE_OPENVINO=1 but the openvino package is not installed")
    pytest.skip("openvino is not installed (pip install 'edgecnn[openvino]')", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
NO_BF16 = PR.CpuFeatures("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni"}), "faked CPU without bf16")
WITH_BF16 = PR.CpuFeatures("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}), "faked bf16 CPU")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("ov-models")
    return {
        "dynamic": make_classifier(d / "dynamic.onnx"),
        "fixed8": make_classifier(d / "fixed8.onnx", batch=8),
        "fp16": make_classifier(d / "fp16.onnx", dtype="float16"),
        "foreign": make_classifier(d / "foreign.onnx", with_metadata=False),
    }


@pytest.fixture(scope="module")
def int8_file(models, tmp_path_factory):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.batches = iter([{"input": rng.standard_normal((4, 3, 32, 32)).astype(np.float32)}
                                 for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    out = tmp_path_factory.mktemp("ov-int8") / "int8.onnx"
    quantize_static(str(models["foreign"]), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    return out


def _x(n, dtype=np.float32, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(dtype)


def _rel(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())


@pytest.mark.parametrize("kind", ["dynamic", "fixed8"])
@pytest.mark.parametrize("n", [1, 5, 19])
def test_fp32_matches_onnxruntime_with_the_same_batching(models, kind, n, tmp_path):
    x = _x(n)
    ref = Engine(models[kind], "cpu", max_batch=4).run(x)
    eng = Engine(models[kind], "openvino", precision="fp32", max_batch=4, cache_dir=tmp_path)
    out = eng.run(x)
    assert out.shape == ref.shape == (n, 10) and out.dtype == np.float32
    assert _rel(out, ref) < 1e-5
    assert eng.chunk_size == (8 if kind == "fixed8" else 4)
    assert eng.input_name == "input" and eng.output_names == ["logits"]
    assert len(eng.run_all(x)) == 1


def test_info_reports_backend_device_precision_and_threads(models, tmp_path):
    eng = Engine(models["dynamic"], "openvino", precision="fp32", threads=1, cache_dir=tmp_path / "ov")
    info = eng.info
    assert info.backend == "openvino" and info.providers == ("OpenVINO:CPU",) and info.device == "CPU"
    assert info.requested_provider == "openvino" and info.precision == "fp32" and info.file_precision == "fp32"
    assert info.threads == 1 and eng.on_cpu and not info.io_binding
    assert info.provider_options["OpenVINO:CPU"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert info.inputs[0].name == "input" and info.inputs[0].shape == (None, 3, 32, 32)
    assert info.inputs[0].dtype == "float32" and info.metadata["model"] == "tiny"
    assert "OpenVINO" in repr(eng) and "precision=fp32" in repr(eng)
    with pytest.raises(EdgecnnError, match="runs on OpenVINO: it has no ONNX Runtime session"):
        eng.session  # noqa: B018


def test_auto_precision_is_measured_and_reported(models, tmp_path):
    # without native bf16 the only candidate is fp32: nothing to measure
    eng = Engine(models["dynamic"], "openvino", cpu=NO_BF16, cache_dir=tmp_path)
    assert eng.precision == "fp32" and eng.info.auto is None and "only" not in eng.info.precision_reason
    with pytest.raises(EdgecnnError, match="bf16 refused"):
        Engine(models["dynamic"], "openvino", precision="bf16", cpu=NO_BF16, cache_dir=tmp_path)
    # with it (faked), auto measures fp32 and bf16 on the file and reports the figures it chose by
    eng = Engine(models["dynamic"], "openvino", cpu=WITH_BF16, cache_dir=tmp_path)
    auto = eng.info.auto
    assert auto["source"] == "measured" and auto["candidates"] == ["fp32", "bf16"]
    assert auto["chosen"] == eng.precision and eng.info.requested_precision == "auto"
    assert auto["figures"]["fp32"]["sqnr_db"] == "inf" and auto["figures"]["fp32"]["p50_ms"] > 0
    assert "auto measured fp32, bf16 and chose" in eng.info.precision_reason
    again = Engine(models["dynamic"], "openvino", cpu=WITH_BF16, cache_dir=tmp_path)
    assert again.info.auto["source"] == "cached" and again.precision == eng.precision


def test_fp16_file_keeps_its_io_dtype(models, tmp_path):
    x = _x(3, np.float16)
    ref = Engine(models["fp16"], "cpu").run(x)
    eng = Engine(models["fp16"], "openvino", precision="fp32", cache_dir=tmp_path)
    assert eng.input_dtype == np.float16 and eng.info.file_precision == "fp16"
    out = eng.run(x)
    assert out.dtype == np.float16 and _rel(out, ref) < 5e-3
    with pytest.raises(EdgecnnError, match="wrong input dtype: expected float16"):
        eng.run(x.astype(np.float32))


def test_int8_file_runs_int8_and_refuses_float(int8_file, models, tmp_path):
    x = _x(6)
    eng = Engine(int8_file, "openvino", cache_dir=tmp_path)
    assert eng.info.file_precision == "int8" and eng.precision == "int8"  # detected from the QDQ graph
    ref = Engine(models["foreign"], "cpu").run(x)
    cos = float((eng.run(x) * ref).sum() / np.linalg.norm(eng.run(x)) / np.linalg.norm(ref))
    assert cos > 0.99
    with pytest.raises(EdgecnnError, match="int8 \\(QDQ\\) file: OpenVINO runs it only at int8"):
        Engine(int8_file, "openvino", precision="fp32", cache_dir=tmp_path)
    with pytest.raises(EdgecnnError, match="edgecnn quantize"):
        Engine(models["foreign"], "openvino", precision="int8", cache_dir=tmp_path)


def test_compiled_model_cache_fills_once_and_is_reused(models, tmp_path):
    cache = tmp_path / "cache"
    Engine(models["dynamic"], "openvino", precision="fp32", cache_dir=cache)
    blobs = sorted(p.name for p in cache.rglob("*.blob"))
    assert blobs, "the first load must write a compiled blob"
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.blob")}
    eng = Engine(models["dynamic"], "openvino", precision="fp32", cache_dir=cache)
    assert sorted(p.name for p in cache.rglob("*.blob")) == blobs  # no new compilation
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.blob")} == stamps
    assert eng.info.cache_dir == str(cache / "f32")  # one cache folder per inference precision


def test_devices_and_bad_input(models, tmp_path):
    with pytest.raises(EdgecnnError, match="unknown OpenVINO device 'TPU'"):
        Engine(models["dynamic"], "openvino", device="TPU")
    with pytest.raises(EdgecnnError, match="OpenVINO device NPU is not available: this machine has"):
        Engine(models["dynamic"], "openvino", device="NPU")
    eng = Engine(models["dynamic"], "openvino", device="AUTO", precision="fp32", cache_dir=tmp_path)
    assert eng.providers[0].startswith("OpenVINO:") and eng.run(_x(2)).shape == (2, 10)
    with pytest.raises(EdgecnnError, match="wrong input shape"):
        eng.run(np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(EdgecnnError, match="OpenVINO devices .* need --provider openvino"):
        Engine(models["dynamic"], "cpu", device="GPU")
    assert Engine(models["dynamic"], "cpu", device="cpu").info.device == "cpu"


def test_thread_safety_and_batcher(models, tmp_path):
    eng = Engine(models["dynamic"], "openvino", precision="fp32", threads=1, cache_dir=tmp_path)
    x = _x(16)
    ref = eng.run(x)
    results: dict[int, np.ndarray] = {}

    def work(i):
        results[i] = eng.run(x[i:i + 1])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_allclose(np.concatenate([results[i] for i in range(16)]), ref, rtol=1e-5, atol=1e-6)
    with Batcher(eng, max_wait_ms=1) as b:
        assert b.workers >= 1
        futures = [b.submit(x[i]) for i in range(16)]
        np.testing.assert_allclose(np.stack([f.result(30) for f in futures]), ref, rtol=1e-5, atol=1e-6)


BLOCK = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    BLOCKED = set(sys.argv[2].split(","))
    sys.meta_path.insert(0, Block())
    import importlib.util
    importlib.util.find_spec = (lambda real: lambda n, *a: None if n.split(".")[0] in BLOCKED else real(n, *a))(
        importlib.util.find_spec)
    import numpy as np
    from edgecnn.errors import EdgecnnError
    from edgecnn.runtime import Engine
    try:
        e = Engine(sys.argv[1])
        print("RAN", e.providers[0], e.run(np.zeros((1, 3, 32, 32), np.float32)).shape)
    except EdgecnnError as err:
        print("ERROR", err)
    try:
        Engine(sys.argv[1], "cpu")
    except EdgecnnError as err:
        print("CPU-ERROR", err)
    """
)


def _blocked(model, blocked):
    proc = subprocess.run([sys.executable, "-c", BLOCK, str(model), blocked], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "EDGECNN_CACHE_DIR": str(Path(model).parent)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_without_onnxruntime_openvino_runs_and_ort_errors_name_the_extras(models):
    out = _blocked(models["dynamic"], "onnxruntime,torch")
    assert "RAN OpenVINO:CPU (1, 10)" in out
    assert "CPU-ERROR no ONNX Runtime is installed" in out and "edgecnn[cpu]" in out
    out = _blocked(models["dynamic"], "onnxruntime,openvino,torch")
    assert "ERROR no ONNX Runtime is installed" in out and "'edgecnn[openvino]'" in out


def test_bench_and_per_layer_profile_on_openvino(models):
    from edgecnn.profiler.measure import bench
    from edgecnn.profiler.perlayer import profile

    r = bench(models["dynamic"], [1, 4], provider="openvino", precision="fp32", iters=3, warmup=1, progress=False)
    assert r.providers == ["OpenVINO:CPU"] and r.provider == "openvino" and r.precision == "fp32"
    assert r.peak is None and all(b.efficiency is None for b in r.batches)  # the peak probe is ONNX Runtime's
    assert [b.batch for b in r.batches] == [1, 4] and r.machine["openvino"]
    p = profile(models["dynamic"], measure=True, provider="openvino", precision="fp32", iters=3)
    t = p.timings
    assert t.runs == 3 and t.total_ms > 0 and t.provider_check["ok"]
    by_kind = {x.kind: x for x in t.layers if x.kernels}
    conv = next(x for x in t.layers if x.name == "conv1")
    assert conv.time_ms > 0 and conv.providers == ["OpenVINO:CPU"] and conv.achieved_gflops > 0
    assert any(k.startswith("conv1") for k in conv.kernels)  # OpenVINO's node name, mapped back to the layer
    assert by_kind  # at least one layer measured
    assert abs(sum(x.time_ms for x in t.layers) + t.unattributed_ms - t.total_ms) < 1e-6
    assert "OpenVINO:CPU" in p.layer_table()


BENCH_BLOCKED = BLOCK.split("try:\n    e = Engine")[0] + textwrap.dedent(
    """
    from edgecnn.profiler.measure import bench
    r = bench(sys.argv[1], [1], provider="openvino", precision="bf16", iters=2, warmup=0, progress=False)
    d = r.deviation
    print("DEV", r.precision, d["reference_runtime"], d["reference"] == sys.argv[1], type(d["sqnr_db"]).__name__)
    """
)


def test_bench_deviation_without_onnxruntime_runs_its_reference_on_openvino(models, tmp_path):
    """With edgecnn[openvino] alone, a bf16 bench compares with fp32 on OpenVINO instead of asking for ORT."""
    env = {**os.environ, "EDGECNN_CACHE_DIR": str(tmp_path), "EDGECNN_CPU_FLAGS": "avx2 avx512f avx512_bf16"}
    proc = subprocess.run([sys.executable, "-c", BENCH_BLOCKED, str(models["dynamic"]), "onnxruntime,torch"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DEV bf16 OpenVINO, fp32 True float" in proc.stdout, proc.stdout + proc.stderr[-2000:]
