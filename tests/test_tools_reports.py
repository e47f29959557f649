"""The parsing/reporting parts of tools/gpu_smoke.sh (tools/gpu_report.py) and tools/bench_backends.py, on CPU:
real ``bench`` JSON, relabelled as the GPU runs the smoke test would write."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from onnx_factory import make_classifier

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"edgecnn_tools_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    from edgecnn.profiler.measure import bench

    path = make_classifier(tmp_path_factory.mktemp("gpu-report") / "m.onnx")
    return bench(path, [1, 8], provider="cpu", iters=2, warmup=0, per_layer=True, peak_gflops=10.0,
                 progress=False).to_dict()


def _as(run: dict, providers: list[str], build: float | None, precision: str) -> dict:
    d = copy.deepcopy(run)
    d["providers"], d["engine_build_s"], d["precision"] = providers, build, precision
    for b in d["batches"]:
        b["provider_check"] = {"ok": True, "message": f"all nodes ran on {providers[0]}", "nodes": []}
    return d


def test_gpu_report_table_and_exit_status(bench_json, tmp_path):
    trt = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    files = {
        "resnet50-cuda-fp32-run1": _as(bench_json, ["CUDAExecutionProvider", "CPUExecutionProvider"], None, "fp32"),
        "resnet50-tensorrt-fp16-run1": _as(bench_json, trt, 41.5, "fp16"),
        "resnet50-tensorrt-fp16-run2": _as(bench_json, trt, 0.4, "fp16"),
    }
    for name, data in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    script = TOOLS / "gpu_report.py"
    proc = subprocess.run([sys.executable, str(script), "--gpu", "NVIDIA H100 80GB HBM3", *sorted(map(str,
                          tmp_path.glob("*.json")))], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith("GPU: NVIDIA H100 80GB HBM3")
    rows = [ln for ln in out.splitlines() if ln.startswith("| resnet50")]
    assert len(rows) == 4  # (cuda fp32, tensorrt fp16) x batch 1, 8; run 2 only feeds the cached-build column
    trt_b8 = next(r for r in rows if "| tensorrt | fp16 | 8 |" in r)
    assert trt_b8.rstrip(" |").endswith("| Tensorrt | yes | 41.5 | 0.4")
    p50 = bench_json["batches"][1]["latency_ms"]["p50"]
    assert f"| {p50:.2f} |" in trt_b8

    # a silent CPU fallback and a node left on the CPU both fail the smoke test
    bad = _as(bench_json, ["CPUExecutionProvider"], None, "fp16")
    (tmp_path / "resnet34-cuda-fp16-run1.json").write_text(json.dumps(bad))
    left = _as(bench_json, trt, 30.0, "int8")
    left["batches"][0]["provider_check"] = {"ok": False, "message": "1 node(s) did not run on "
                                            "TensorrtExecutionProvider: Softmax on CPUExecutionProvider"}
    (tmp_path / "resnet34-tensorrt-int8-run1.json").write_text(json.dumps(left))
    gpu_report = _tool("gpu_report")
    records = gpu_report.load(sorted(tmp_path.glob("*.json")))
    text = gpu_report.render(records, "NVIDIA H100")
    assert "resnet34 cuda fp16 run 1: ran on CPUExecutionProvider, not CUDAExecutionProvider" in text
    assert "Softmax on CPUExecutionProvider" in text
    assert gpu_report.main(["--gpu", "x", *map(str, sorted(tmp_path.glob("*.json")))]) == 1
    (tmp_path / "oops.json").write_text("{}")
    with pytest.raises(SystemExit, match="is not named"):
        gpu_report.load([tmp_path / "oops.json"])


def test_bench_backends_render():
    tool = _tool("bench_backends")
    data = {"model": "resnet50", "batches": [1, 8], "threads": 2,
            "machine": {"cpu": "Intel Xeon", "cpu_flags": ["avx2", "avx512_vnni"], "native_bf16": False,
                        "onnxruntime": "1.32.0", "openvino": "2026.4.1"},
            "results": [
                {"config": "ort-fp32", "precision": "fp32", "rows": [
                    {"batch": 1, "median_ms": 35.0, "ratio": 1.0, "overhead": 0.01, "rel_error": 0.0,
                     "top1_agreement": 1.0},
                    {"batch": 8, "median_ms": 250.0, "ratio": 1.0, "overhead": 0.002, "rel_error": 0.0,
                     "top1_agreement": 1.0}]},
                {"config": "ov-bf16", "refused": "precision bf16 refused: this CPU (Intel Xeon) has no native bf16"},
                {"config": "ov-int8", "precision": "int8", "rows": [
                    {"batch": 1, "median_ms": 10.9, "ratio": 35.0 / 10.9, "overhead": 0.02, "rel_error": 0.02,
                     "top1_agreement": 1.0}]},
            ]}
    md = tool.render(data)
    assert md.splitlines()[0].startswith("resnet50, 2 threads, CPU: Intel Xeon (avx2, avx512_vnni); native bf16: no")
    assert "| ONNX Runtime CPU, fp32 | 35.00 (1.00x) | 250.00 (1.00x) | fp32 | 0.0e+00 | 1.00 | +1.0% |" in md
    assert "| OpenVINO, inference bf16 | refused | refused | precision bf16 refused" in md
    assert "| OpenVINO, int8 QDQ file | 10.90 (3.21x) |  | int8 | 2.0e-02 | 1.00 | +2.0% |" in md


def test_bench_mobile_uses_bench_backends_runner_and_renders(tmp_path):
    """tools/bench_mobile.py: each model through bench_backends' runner (replaced here by a recorder), achieved
    GFLOP/s from the graph's FLOPs, and the markdown table."""
    import argparse
    import types

    tool = _tool("bench_mobile")
    path = make_classifier(tmp_path / "m.onnx")
    calls = []

    def fake_run(ns):
        calls.append(ns)
        return {"machine": {"cpu": "AMD EPYC", "cpu_flags": ["avx512_vnni"], "onnxruntime": "1.32.0",
                            "openvino": None},
                "results": [{"config": "ort-fp32", "rows": [{"batch": 1, "median_ms": 2.0, "ratio": 1.0}]},
                            {"config": "ort-int8", "rows": [{"batch": 1, "median_ms": 2.5, "ratio": 0.8}]}]}

    bb = types.SimpleNamespace(prepare=lambda name: {"fp32": str(path), "int8": str(path)}, run=fake_run)
    args = argparse.Namespace(batch="1", warmup=0, iters=1, threads=2, configs="ort-fp32,ort-int8")
    entry = tool.bench_model(bb, "tiny", args)
    assert calls[0].model == "tiny" and calls[0].configs == "ort-fp32,ort-int8" and calls[0].threads == 2
    from edgecnn.profiler.cost import graph_cost

    flops = graph_cost(path, 1).flops
    assert entry["flops"] == flops and entry["depthwise_layers"] == 0 and entry["depthwise_macs_share"] == 0
    fp32_row = entry["results"][0]["rows"][0]
    assert fp32_row["achieved_gflops"] == pytest.approx(flops / 2e-3 / 1e9)
    data = {"batches": [1], "threads": 2, "configs": ["ort-fp32", "ort-int8"], "machine": entry.pop("machine"),
            "models": [entry]}
    md = tool.render(data)
    assert md.splitlines()[0].startswith("2 threads, CPU: AMD EPYC (avx512_vnni); onnxruntime 1.32.0")
    row = next(line for line in md.splitlines() if line.startswith("| tiny |"))
    assert "| 2.00 (1.00x) | 2.50 (0.80x) |" in row and "| 0 (0%) |" in row
