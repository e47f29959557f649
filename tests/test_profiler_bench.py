"""bench, ORT trace parsing, fused-node mapping, provider check, CLI and the torch-free profiler.

No test asserts a speed: only that every field is there and the fields agree with each other.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import run_cli as _cli
from onnx_factory import make_classifier

from edgecnn.errors import EdgecnnError
from edgecnn.profiler import bench, graph_cost, latency_stats
from edgecnn.profiler.perlayer import measure_layers, profile
from edgecnn.profiler.trace import TraceEvent, map_to_layers, parse_trace, provider_check

ROOT = Path(__file__).resolve().parents[1]
CPU = "CPUExecutionProvider"


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    return make_classifier(tmp_path / "tiny.onnx", size=32, hidden=16, num_classes=10)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGECNN_CACHE_DIR", str(tmp_path / "cache"))


def test_latency_stats_order_and_units():
    s = latency_stats([0.003, 0.001, 0.002, 0.004, 0.010])
    assert s["min"] == pytest.approx(1.0) and s["max"] == pytest.approx(10.0) and s["p50"] == pytest.approx(3.0)
    assert s["min"] <= s["p50"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"]
    assert s["cv"] == pytest.approx(s["std"] / s["mean"])


def test_bench_returns_every_field_with_sane_relations(tiny):
    r = bench(tiny, [1, 3], iters=12, warmup=2, threads=1, peak_gflops=50.0, progress=False)
    assert r.providers[0] == CPU and r.threads == 1 and r.peak.source == "user" and r.peak.gflops == 50.0
    assert [b.batch for b in r.batches] == [1, 3]
    cost1 = graph_cost(tiny, 1)
    for b in r.batches:
        lat = b.latency_ms
        assert set(lat) == {"mean", "std", "min", "p50", "p90", "p95", "p99", "max"}
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert lat["min"] <= lat["mean"] <= lat["max"] and lat["std"] >= 0
        assert b.iters == 12
        assert b.throughput == pytest.approx(b.batch / (lat["mean"] / 1e3))
        assert b.gflops_per_image == pytest.approx(cost1.flops / 1e9)
        assert b.achieved_gflops == pytest.approx(b.batch * cost1.flops / (lat["p50"] / 1e3) / 1e9)
        assert b.efficiency == pytest.approx(b.achieved_gflops / 50.0)
        assert b.cv == pytest.approx(lat["std"] / lat["mean"]) and isinstance(b.noisy, bool)
        assert b.rss_peak_bytes > 0 and isinstance(b.rss_growth_bytes, int)
        assert b.gpu_memory_bytes is None and b.first_run_ms > 0
    d = r.to_dict()
    json.dumps(d)
    assert d["theoretical"]["flops"] == cost1.flops and d["engine_build_s"] is None
    assert d["machine"]["cpus"] >= 1


def test_bench_duration_and_errors(tiny):
    r = bench(tiny, [2], duration=0.05, warmup=0, threads=1, peak_gflops=10.0, progress=False)
    assert r.batches[0].iters >= 3
    with pytest.raises(EdgecnnError, match="batch"):
        bench(tiny, [0], iters=1, peak_gflops=10.0)
    with pytest.raises(EdgecnnError, match="not found"):
        bench(tiny.parent / "nope.onnx", [1], iters=1, peak_gflops=10.0)
    with pytest.raises(EdgecnnError, match="compare"):
        bench(tiny, [1], iters=1, compare="tensorflow", peak_gflops=10.0)


def test_fixed_batch_file_only_benches_its_batch(tmp_path):
    fixed = make_classifier(tmp_path / "fixed.onnx", batch=2)
    with pytest.raises(EdgecnnError, match="fixed batch size of 2"):
        bench(fixed, [1], iters=1, peak_gflops=10.0)
    assert graph_cost(fixed).batch == 2


def test_peak_is_measured_once_and_cached(tiny, monkeypatch):
    from edgecnn.profiler import peak as peak_mod

    calls = []

    def fake_run_peak(providers, threads, **kw):
        calls.append((tuple(providers), threads))
        return 123.0, 7.5

    monkeypatch.setattr(peak_mod, "run_peak", fake_run_peak)
    p1 = peak_mod.measure_peak(CPU, 1)
    p2 = peak_mod.measure_peak(CPU, 1)
    assert (p1.source, p2.source) == ("measured", "cache") and p2.gflops == 123.0 and p2.bandwidth_gbs == 7.5
    assert len(calls) == 1 and peak_mod.cache_file().is_file()
    assert peak_mod.measure_peak(CPU, 1, gflops=99.0).gflops == 99.0


def test_run_peak_measures_a_real_matmul():
    from edgecnn.profiler.peak import run_peak

    gflops, gbs = run_peak([CPU], 1, n=128, seconds=0.05, bandwidth_elems=1 << 16)
    assert gflops > 0 and gbs > 0


# ----------------------------------------------------------------------------- trace, mapping, provider check
def test_real_trace_parsing_and_fused_conv_relu_mapping(tiny, tmp_path):
    cost = graph_cost(tiny, 2)
    trace = tmp_path / "trace.json"
    t = measure_layers(tiny, cost, threads=1, iters=3, keep_trace=trace)
    events, runs = parse_trace(trace)
    assert runs == 3 and events and all(e.run >= 1 for e in events)
    assert {e.provider for e in events} == {CPU}
    assert "Conv" in {e.op for e in events}
    # ORT fuses conv1+relu1 into one kernel: the fused kernel maps to the conv layer, no time is lost
    by_kind = {x.kind: x for x in t.layers}
    assert by_kind["conv"].time_ms > 0 and by_kind["conv"].kernels
    assert t.unattributed == [] and t.unattributed_ms == 0
    assert sum(x.time_ms for x in t.layers) == pytest.approx(t.total_ms)
    assert sum(x.share for x in t.layers) == pytest.approx(1.0)
    assert t.provider_check["ok"] and t.provider_check["nodes"] == []
    conv = by_kind["conv"]
    assert conv.achieved_gflops == pytest.approx(conv.flops / (conv.time_ms / 1e3) / 1e9)


def test_resnet_fusions_map_back_to_layers(zoo_onnx):
    cost = graph_cost(zoo_onnx("resnet18"), 1)
    t = measure_layers(zoo_onnx("resnet18"), cost, threads=2, iters=2)
    assert t.unattributed == []  # NCHWc reorders and fused nodes are all attributed to a layer
    timed = {x.kind for x in t.layers if x.kernels}
    assert {"conv", "pool", "fc"} <= timed
    convs = [x for x in t.layers if x.kind == "conv"]
    assert all(x.time_ms > 0 for x in convs)
    assert sum(x.time_ms for x in t.layers) == pytest.approx(t.total_ms)


def test_map_to_layers_on_renamed_nodes():
    import onnx
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "w"], ["/c/Conv_output_0"], name="/c/Conv"),
             helper.make_node("Relu", ["/c/Conv_output_0"], ["/r/Relu_output_0"], name="/r/Relu"),
             helper.make_node("Gemm", ["/r/Relu_output_0", "w2"], ["y"], name="/fc/Gemm")]
    g = helper.make_graph(nodes, "g", [], [])
    original = helper.make_model(g)
    layer = {"/c/Conv": 1, "/r/Relu": 1, "/fc/Gemm": 2}
    opt_nodes = [helper.make_node("ReorderInput", ["x"], ["reorder_token_0"], name="ReorderInput"),
                 helper.make_node("Conv", ["reorder_token_0", "w"], ["reorder_token_1"],
                                  name="/r/Relu_output_0_nchwc"),
                 helper.make_node("ReorderOutput", ["reorder_token_1"], ["/r/Relu_output_0"], name="ReorderOutput"),
                 helper.make_node("Gemm", ["/r/Relu_output_0", "w2"], ["y"], name="/fc/Gemm_fused_Relu")]
    optimized = helper.make_model(helper.make_graph(opt_nodes, "o", [], []))
    names = ["/r/Relu_output_0_nchwc", "ReorderOutput", "/fc/Gemm_fused_Relu", "ReorderInput", "/c/Conv"]
    m = map_to_layers(names, original, layer, optimized)
    assert m == {"/r/Relu_output_0_nchwc": 1, "ReorderOutput": 1, "/fc/Gemm_fused_Relu": 2, "ReorderInput": 1,
                 "/c/Conv": 1}
    assert map_to_layers(["Mystery"], original, layer, None) == {"Mystery": None}
    assert isinstance(onnx.ModelProto(), onnx.ModelProto)


def test_provider_check_names_nodes_that_ran_elsewhere():
    ev = [TraceEvent("conv", "Conv", "CUDAExecutionProvider", 10, 0, 1),
          TraceEvent("shape", "Shape", CPU, 1, 1, 1), TraceEvent("gather", "Gather", CPU, 1, 2, 1)]
    bad = provider_check(ev, "CUDAExecutionProvider")
    assert not bad["ok"] and [n["node"] for n in bad["nodes"]] == ["gather", "shape"]
    assert "2 node(s) did not run on CUDAExecutionProvider" in bad["message"] and "Shape on CPU" in bad["message"]
    good = provider_check(ev[1:], CPU)
    assert good["ok"] and good["message"] == f"all 2 nodes ran on {CPU}"


def test_profile_api_measure(tiny):
    r = profile(tiny, batch=2, measure=True, threads=1, iters=2, peak_gflops=20.0)
    d = r.to_dict()
    assert d["totals"]["batch"] == 2 and d["measured"]["runs"] == 2
    assert d["measured"]["provider_check"]["ok"] and d["measured"]["peak"]["gflops"] == 20.0
    assert "GFLOP/s" in r.layer_table() and "provider check" in r.summary()
    assert profile(tiny).timings is None


# ----------------------------------------------------------------------------- CLI


def test_cli_profile_table_json_csv(tiny, tmp_path, capsys):
    code, out, _ = _cli(capsys, "profile", str(tiny), "--per-layer")
    assert code == 0 and "TOTAL" in out and "Conv+Relu" in out and "parameters:" in out
    code, out, _ = _cli(capsys, "profile", str(tiny), "--json", "--batch", "4")
    d = json.loads(out)
    assert code == 0 and d["totals"]["batch"] == 4 and [x["kind"] for x in d["layers"]][:2] == ["input", "conv"]
    csv_path = tmp_path / "t.csv"
    code, _, _ = _cli(capsys, "profile", str(tiny), "--csv", str(csv_path))
    lines = csv_path.read_text().splitlines()
    assert code == 0 and lines[0].startswith("index,name,kind") and len(lines) == 1 + 4
    code, out, _ = _cli(capsys, "profile", str(tiny), "--measure", "--per-layer", "--iters", "2", "--threads", "1",
                        "--peak-gflops", "10")
    assert code == 0 and "time ms" in out and "provider check" in out


def test_cli_bench_json_and_text(tiny, capsys):
    code, out, err = _cli(capsys, "bench", str(tiny), "--batch", "1,2", "--iters", "3", "--warmup", "1",
                          "--threads", "1", "--json", "--peak-gflops", "10")
    d = json.loads(out)
    assert code == 0 and [b["batch"] for b in d["batches"]] == [1, 2] and "it/s" not in err
    code, out, _ = _cli(capsys, "bench", str(tiny), "--iters", "3", "--threads", "1", "--per-layer",
                        "--peak-gflops", "10")
    assert code == 0 and "p99" in out and "per layer, batch 1" in out and "provider check" in out


def test_cli_user_errors_exit_2(tiny, capsys):
    code, _, err = _cli(capsys, "bench", str(tiny), "--batch", "1,x")
    assert code == 2 and "--batch" in err and "Traceback" not in err
    code, _, err = _cli(capsys, "profile", str(tiny.parent / "missing.onnx"))
    assert code == 2 and err.startswith("error: model file not found")


# ----------------------------------------------------------------------------- torch-free
SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockTorch())
    import edgecnn.profiler
    from edgecnn.profiler import bench, graph_cost, profile
    model = sys.argv[1]
    c = graph_cost(model, 2)
    assert c.macs > 0 and c.layers[1].kind == "conv"
    r = bench(model, [1, 2], iters=3, warmup=1, threads=1, peak_gflops=10.0, progress=False)
    assert len(r.batches) == 2
    p = profile(model, measure=True, iters=2, threads=1, peak_gflops=10.0)
    assert p.timings.provider_check["ok"]
    from edgecnn.cli import main
    try:
        main(["bench", model, "--iters", "2", "--json", "--peak-gflops", "10"])
    except SystemExit as e:
        assert not e.code, e.code
    assert "torch" not in sys.modules
    print("PROFILER-TORCH-FREE-OK")
    """
)


def test_profiler_works_without_torch(tiny, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "EDGECNN_CACHE_DIR": str(tmp_path / "c"), "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny)], capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "PROFILER-TORCH-FREE-OK" in r.stdout


# ----------------------------------------------------------------------------- plots
def test_plot_bench_and_roofline(tiny, tmp_path):
    pytest.importorskip("matplotlib")
    from edgecnn.profiler.plot import plot_bench, plot_roofline

    r = bench(tiny, [1, 2], iters=3, warmup=1, threads=1, per_layer=True, peak_gflops=10.0, progress=False)
    r.peak.bandwidth_gbs = 5.0
    for fn, name in ((plot_bench, "bench.png"), (plot_roofline, "roof.png")):
        fn(r, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_plot_without_matplotlib_is_one_clear_error(tiny, tmp_path, monkeypatch):
    from edgecnn.profiler.plot import plot_bench

    r = bench(tiny, [1], iters=2, warmup=0, threads=1, peak_gflops=10.0, progress=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(EdgecnnError, match=r"pip install 'edgecnn\[plot\]'"):
        plot_bench(r, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
