"""The shared torch-free modules: the graph-cost counter, the metrics and the table renderer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_factory import make_classifier

from edgecnn import metrics
from edgecnn.graphcost import count, load_graph, node_costs
from edgecnn.profiler import graph_cost
from edgecnn.tables import format_table, table


def test_counter_by_hand_and_same_as_profile(tmp_path: Path) -> None:
    path = make_classifier(tmp_path / "tiny.onnx", size=32, hidden=8, num_classes=10)
    conv, fc = 32 * 32 * 8 * (3 * 3 * 3), 8 * 10
    c = count(path)
    assert (c.batch, c.macs, c.params, c.bias_params) == (1, conv + fc, 8 * 27 + 8 + 80 + 10, 8 + 10)
    c4 = count(path, 4)
    assert c4.macs == 4 * c.macs and c4.macs_per_image == c.macs and c4.flops == 4 * c.flops
    profiled = graph_cost(path, 4)
    assert (profiled.macs, profiled.flops, profiled.params) == (c4.macs, c4.flops, c4.params)
    nodes = node_costs(load_graph(path, 4))
    assert [n.op for n in nodes] == ["Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm"]
    assert [n.macs for n in nodes] == [4 * conv, 0, 0, 0, 4 * fc]


def test_metrics() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((64, 10))
    assert metrics.max_abs_error(ref, ref + 0.5) == pytest.approx(0.5)
    assert metrics.max_rel_error(ref, ref + 0.5) == pytest.approx(0.5 / np.abs(ref).max())
    assert metrics.sqnr_db(ref, ref * 1.1) == pytest.approx(20.0, abs=1e-9)
    # batches of one tensor count as their concatenation
    assert metrics.sqnr_db([ref[:30], ref[30:]], [ref[:30] * 1.1, ref[30:] * 1.1]) == pytest.approx(20.0, abs=1e-9)
    assert metrics.sqnr_db(ref, ref) == float("inf")
    assert np.allclose(metrics.cosine_similarity(ref, 3 * ref), 1.0)
    assert metrics.cosine_similarity(np.zeros((1, 3)), np.ones((1, 3)))[0] == 0.0
    swapped = ref.copy()
    top = ref.argmax(1)
    swapped[np.arange(8), top[:8]] = -10  # the first 8 rows lose their top-1 class
    assert metrics.topk_agreement(ref, swapped, 1) == pytest.approx(56 / 64)
    assert metrics.topk_agreement(ref, swapped, 9) == pytest.approx(56 / 64)  # now the lowest of 10 scores
    assert metrics.topk_agreement(ref, swapped, 10) == 1.0
    assert metrics.topk_set_agreement(ref, -ref, 5) == 0.0 and metrics.topk_set_agreement(ref, ref * 2, 5) == 1.0


def test_table_alignment() -> None:
    text = table([[1, "conv1", "1,024"], [12, "fc", None]], ["#", "layer", "params"], [True, False, True])
    assert text.splitlines() == [" #  layer  params", "--  -----  ------", " 1  conv1   1,024", "12  fc"]
    auto = format_table([{"n": "a", "v": "1.5"}, {"n": "bbb", "v": "10"}], [("n", "name"), ("v", "value")])
    assert auto.splitlines() == ["name  value", "----  -----", "a       1.5", "bbb      10"]


def test_quantize_and_graph_cost_run_with_torch_blocked(tmp_path: Path) -> None:
    """Quantization, the graph-cost counter and the ONNX-file module need no torch (an edge install)."""
    import subprocess
    import sys
    import textwrap

    model = make_classifier(tmp_path / "m.onnx")
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        from edgecnn.graphcost import count
        from edgecnn.quantize import quantize_model
        run = quantize_model(sys.argv[1], calib="random:8", explain_layers=True)
        assert run.result.quant_nodes["QuantizeLinear"] > 0 and run.report.samples == 8 and run.ranking
        assert count(run.result.output).macs == count(sys.argv[1]).macs
        print("OK")
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(model)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
