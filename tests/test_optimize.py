"""``edgecnn optimize``: the candidate matrix, the choice, kept-float int8, the JSON contract, failures, the time
limit, the chosen file's metadata and the calibration/evaluation split (small purpose-built models, no torch)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from cli_helpers import run_cli
from onnx_factory import make_classifier
from optimize_helpers import SENSITIVE, make_sensitive_model
from PIL import Image

from edgecnn.errors import EdgecnnError
from edgecnn.metadata import decode
from edgecnn.optimize import backends, search
from edgecnn.optimize.data import from_folder, split_indices
from edgecnn.optimize.matrix import Candidate, build_matrix, choose
from edgecnn.optimize.runner import optimize
from edgecnn.runtime.images import PreprocessConfig

CANDIDATE_KEYS = {"provider", "precision", "batch", "status", "p50_ms", "p99_ms", "throughput", "size_bytes",
                  "peak_rss_bytes", "accuracy", "agreement", "cosine"}
CHOSEN_KEYS = {"path", "provider", "precision", "speedup_vs_fp32", "accuracy_drop", "kept_float"}


@pytest.fixture(autouse=True)
def _extra_backends() -> Any:
    """Two backends registered from the tests (no edit to edgecnn/): ``alias`` (ONNX Runtime's CPU provider under
    another name) and ``broken`` (its device never loads). The measuring child processes register them again
    from their origin (module:Class and its folder)."""
    from optimize_helpers import AliasBackend
    from toy_backend import BrokenBackend

    from edgecnn.runtime.backends import register, unregister

    register(AliasBackend(), replace=True)
    register(BrokenBackend(), replace=True)
    yield
    unregister("alias")
    unregister("broken")


def _cand(provider: str, precision: str, p50: float, size: int, within: bool = True, batch: int = 1) -> Candidate:
    c = Candidate(provider, precision, batch, status="ok", p50_ms=p50, size_bytes=size, within_budget=within)
    return c


# --------------------------------------------------------------------------- pure parts


def test_choose_fastest_within_budget_ties_go_to_the_smaller_file() -> None:
    cands = [_cand("cpu", "fp32", 10.0, 400), _cand("cpu", "int8", 3.0, 100, within=False),
             _cand("cpu", "fp16", 5.0, 200), _cand("x", "fp32", 5.05, 150), _cand("cpu", "fp16", 1.0, 10, batch=8)]
    best = choose(cands, 1)
    assert best is not None and (best.provider, best.precision) == ("x", "fp32")  # 5.05 ties 5.0; 150 < 200
    assert choose(cands, 1, tie=0.0).precision == "fp16"
    assert choose([_cand("cpu", "int8", 3.0, 100, within=False)], 1) is None


def test_matrix_order_and_skips() -> None:
    runtimes = {"cpu": None, "cuda": "no CUDA here", "openvino": None}
    valid = {"cpu": backends.valid_precisions("cpu"), "openvino": {"fp32": None, "fp16": "no", "bf16": None,
                                                                   "int8": None}, "cuda": {}}
    m = build_matrix(["cpu", "cuda", "openvino"], ["fp32", "bf16", "int8"], [1, 8], runtimes, valid)
    names = [(c.provider, c.precision, c.batch, c.status) for c in m]
    assert names[0] == ("cpu", "fp32", 1, "pending") and m[0].reference
    assert ("cuda", "all", 1, "skipped: no CUDA here") in names
    bf16 = [c for c in m if (c.provider, c.precision) == ("cpu", "bf16")]
    assert len(bf16) == 1 and bf16[0].status.startswith("skipped: precision bf16 cannot run on ONNX Runtime")
    # the primary batch first, then the others; bf16 and int8 on OpenVINO run the fp32 / int8 files
    assert [c.batch for c in m] == [1] * 7 + [8] * 5
    assert {(c.provider, c.precision): c.file for c in m if c.batch == 8} == {
        ("cpu", "fp32"): "fp32", ("cpu", "int8"): "int8", ("openvino", "fp32"): "fp32", ("openvino", "bf16"): "fp32",
        ("openvino", "int8"): "int8"}


def test_runtime_facts_per_cpu() -> None:
    amd = {"model": "AMD EPYC", "arch": "x86_64", "flags": ["avx512_bf16", "avx512_vnni"]}
    intel = {"model": "Xeon", "arch": "x86_64", "flags": ["avx512_vnni"]}
    arm = {"model": "Neoverse", "arch": "aarch64", "flags": []}
    assert backends.valid_precisions("openvino", amd)["bf16"] is None
    assert "no native bf16" in backends.valid_precisions("openvino", intel)["bf16"]
    assert backends.int8_activation_type(intel) == "uint8" and backends.int8_activation_type(arm) == "int8"
    with pytest.raises(EdgecnnError, match="unknown runtime"):
        backends.valid_precisions("vulkan", amd)


def test_keep_float_search_finds_the_fewest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ranking = [{"node": f"n{i}", "op_type": "Conv", "loss_db": 10.0 - i} for i in range(10)]
    quantized: list[tuple[str, ...]] = []

    def fake_quantize(fp32: Any, calib: Any, output: Path, *, exclude: Any = (), activation_type: str = "") -> Path:
        quantized.append(tuple(exclude))
        output.write_text(",".join(exclude))
        return output

    monkeypatch.setattr(backends, "quantize_int8", fake_quantize)
    monkeypatch.setattr(backends, "rank_layers", lambda *a, **k: ranking)

    def accept(path: Path) -> tuple[bool, dict[str, Any]]:
        return len(path.read_text().split(",")) >= 5, {}

    res = search.keep_float_search("m.onnx", np.zeros((1, 1, 1, 1)), accept, output_dir=tmp_path, int8="plain.onnx")
    assert res.within_budget and res.kept == ["n0", "n1", "n2", "n3", "n4"]
    assert [t["keep"] for t in res.tried] == [1, 2, 4, 8, 6, 5]  # gallop, then bisect
    assert res.path is not None and res.path.read_text() == "n0,n1,n2,n3,n4"
    never = search.keep_float_search("m.onnx", np.zeros((1, 1, 1, 1)), lambda p: (False, {}), output_dir=tmp_path,
                                     int8="plain.onnx", max_keep=3)
    assert not never.within_budget and never.path is None and [t["keep"] for t in never.tried] == [1, 2, 3]


def _write_images(root: Path, n: int, labelled: bool) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / str(i % 2) if labelled else root  # unlabelled: a flat folder
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(d / f"img{i:03d}.png")


@pytest.mark.parametrize("labelled", [True, False])
def test_calibration_and_evaluation_images_are_disjoint(tmp_path: Path, labelled: bool) -> None:
    cal, ev = split_indices(100, 128, seed=0)
    assert len(cal) == 25 and len(ev) == 75 and not set(cal) & set(ev) and set(cal) | set(ev) == set(range(100))
    assert np.array_equal(split_indices(100, 128, seed=0)[0], cal)  # deterministic
    _write_images(tmp_path, 40, labelled)
    config = PreprocessConfig(input_size=(8, 8), channels=3)
    td = from_folder(tmp_path, config, calib_size=8, seed=0)
    assert len(td.calib_paths) == 8 and len(td.eval_paths) == 32
    assert not set(td.calib_paths) & set(td.eval_paths)
    assert td.eval_x.shape == (32, 3, 8, 8) and td.calib_x.shape == (8, 3, 8, 8)
    assert (td.eval_labels is not None) == labelled
    assert from_folder(tmp_path, config, calib_size=8, seed=0).calib_paths == td.calib_paths


# --------------------------------------------------------------------------- end to end


def _run(model: Path, out: Path | None, **kw: Any) -> dict[str, Any]:
    kw.setdefault("duration", 0.1)
    kw.setdefault("threads", 1)
    kw.setdefault("batches", [1])
    return optimize(model, output=out, progress=False, **kw)


def test_int8_missing_the_budget_keeps_the_sensitive_layers_in_float(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_sensitive_model(tmp_path / "sensitive.onnx")
    calls: list[int] = []
    real = backends.calibrate_once
    monkeypatch.setattr(backends, "calibrate_once", lambda *a, **k: calls.append(1) or real(*a, **k))
    rep = _run(model, tmp_path / "out", providers=["cpu", "alias"], precisions=["fp32", "int8"],
               min_sqnr=20.0)
    by = {(c["provider"], c["precision"], bool(c["kept_float"])): c for c in rep["candidates"]}
    assert rep["candidates"][0]["reference"] and rep["candidates"][0]["sqnr_db"] == "inf"
    plain = by[("cpu", "int8", False)]
    assert plain["status"] == "ok" and plain["sqnr_db"] < 5 and plain["within_budget"] is False
    kept = by[("cpu", "int8", True)]
    # the outlier activation between 'spread' and 'mix' stays float only when both are excluded
    assert kept["kept_float"] == [SENSITIVE, "spread"]
    assert kept["status"] == "ok" and kept["sqnr_db"] > 30 and kept["within_budget"] is True
    assert by[("alias", "int8", True)]["kept_float"] == [SENSITIVE, "spread"]  # the other runtime gets it too
    assert [t["keep"] for t in rep["keep_float"]["tried"]] == [1, 2]
    assert rep["keep_float"]["ranking"][0]["node"] == SENSITIVE
    assert calls == [1]  # calibration once per model, reused by every int8 file
    # the choice: the fastest within budget at batch 1 (ties within 2%: the smaller file)
    ok = [c for c in rep["candidates"] if c["status"] == "ok" and c["within_budget"]]
    fastest = min(c["p50_ms"] for c in ok)
    ch = rep["chosen"]
    assert set(ch) >= CHOSEN_KEYS
    winner = next(c for c in ok if (c["provider"], c["precision"], c["kept_float"]) ==
                  (ch["provider"], ch["precision"], ch["kept_float"]))
    assert winner["p50_ms"] <= fastest * 1.02
    assert ch["speedup_vs_fp32"] == pytest.approx(rep["candidates"][0]["p50_ms"] / winner["p50_ms"], rel=1e-2)


def test_json_contract_reports_and_chosen_metadata(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = make_classifier(tmp_path / "tiny.onnx", size=16)
    out = tmp_path / "out"
    rep = _run(model, out, providers=["cpu"], precisions=["fp32", "fp16", "int8"], batches=[1, 2])
    for c in rep["candidates"]:
        assert set(c) >= CANDIDATE_KEYS
    assert {(c["precision"], c["batch"]) for c in rep["candidates"] if c["status"] == "ok"} == {
        (p, b) for p in ("fp32", "fp16", "int8") for b in (1, 2)}
    assert all(c["peak_rss_bytes"] > 10e6 and c["p99_ms"] >= c["p50_ms"] > 0 for c in rep["candidates"]
               if c["status"] == "ok")
    assert not rep["accuracy_measured"] and rep["metric"] == "sqnr"
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["chosen"] == rep["chosen"] and len(on_disk["candidates"]) == len(rep["candidates"])
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert len(rows) == len(rep["candidates"]) and rows[0]["provider"] == "cpu"
    md = (out / "report.md").read_text()
    assert "ACCURACY WAS NOT MEASURED ON REAL DATA" in md and "| runtime |" in md
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    chosen = Path(rep["chosen"]["path"])
    assert chosen.parent == out.resolve() and chosen.is_file()
    m = onnx.load(str(chosen))
    onnx.checker.check_model(m)
    meta = decode({p.key: p.value for p in m.metadata_props})
    d = meta["optimize"]
    assert (d["runtime"], d["precision"], d["batch"]) == (rep["chosen"]["provider"], rep["chosen"]["precision"], 1)
    assert d["threads"] == 1 and d["cpu"] == backends.cpu_info()["model"]
    assert d["runtime_versions"]["onnxruntime"] and "SQNR" in d["budget"]
    assert d["accuracy"]["measured_on_real_data"] is False and d["date"] == rep["date"]
    assert meta["model"] == "tiny"  # the rest of the metadata is kept
    code, shown, _ = run_cli(capsys, "inspect", chosen)
    line = next(x for x in shown.splitlines() if x.strip().startswith("optimize"))
    assert code == 0 and f'"runtime": "{d["runtime"]}"' in line and '"cpu_flags"' in line


def test_failing_runtime_is_reported_and_skipped(tmp_path: Path) -> None:
    model = make_classifier(tmp_path / "tiny.onnx", size=16)
    rep = _run(model, None, providers=["broken", "cpu"], precisions=["fp32"])
    broken = next(c for c in rep["candidates"] if c["provider"] == "broken")
    assert broken["status"] == "failed: RuntimeError: the fake runtime cannot load its device"
    assert rep["chosen"]["provider"] == "cpu" and rep["chosen"]["path"] is None


def test_time_limit_stops_cleanly_and_still_reports(tmp_path: Path) -> None:
    model = make_classifier(tmp_path / "tiny.onnx", size=16)
    rep = _run(model, tmp_path / "out", providers=["cpu"], precisions=["fp32", "int8"], batches=[1, 2],
               time_limit=0)
    status = [c["status"] for c in rep["candidates"]]
    assert status[0] == "ok"  # the fp32 reference is always measured
    assert status[1:] == ["skipped: time limit"] * 3
    assert rep["stopped_by_time_limit"] and any("time limit" in n for n in rep["notes"])
    assert json.loads((tmp_path / "out" / "report.json").read_text())["candidates"][1]["status"] == status[1]


def test_bench_warns_when_the_chosen_file_runs_elsewhere(tmp_path: Path) -> None:
    from edgecnn.optimize.report import write_chosen
    from edgecnn.profiler.measure import bench
    from edgecnn.profiler.provenance import decision_warnings

    model = make_classifier(tmp_path / "tiny.onnx", size=16)
    decision = {"runtime": "openvino", "precision": "bf16", "cpu": "Another CPU", "speedup_vs_fp32": 2.1,
                "runtime_versions": {"onnxruntime": "0.0.1"}}
    chosen = write_chosen(model, tmp_path / "chosen.onnx", decision)
    res = bench(chosen, [1], iters=2, warmup=0, measure_peak_now=False, progress=False)
    text = " ".join(res.warnings)
    assert "chosen by 'edgecnn optimize' for openvino bf16" in text and "different CPU (Another CPU" in text
    same = {"runtime": "cpu", "cpu": "X", "runtime_versions": {"onnxruntime": "1.0"}}
    assert decision_warnings({"optimize": same}, provider="CPUExecutionProvider", cpu="X",
                             versions={"onnxruntime": "1.0"}) == []
    assert decision_warnings({}, provider="cpu", cpu="X", versions={}) == []
    on_openvino = {"runtime": "openvino", "cpu": "X", "runtime_versions": {"openvino": "2026.4.1"}}
    assert decision_warnings({"optimize": on_openvino}, provider="OpenVINO:CPU", cpu="X",
                             versions={"openvino": "2026.4.1"}) == []  # the engine names its device


def test_cli_json_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = make_classifier(tmp_path / "tiny.onnx", size=16)
    code, out, err = run_cli(capsys, "optimize", model, "--providers", "cpu", "--precisions", "fp32", "--batch", "1",
                             "--duration", "0.1", "--threads", "1", "-o", tmp_path / "o", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["chosen"]["precision"] == "fp32" and rep["candidates"][0]["status"] == "ok"
    code, out, err = run_cli(capsys, "optimize", model, "--providers", "cpu,vulkan")
    assert code == 2 and err.strip().splitlines() == [
        "error: unknown runtime 'vulkan': choose from cpu, cuda, tensorrt, openvino, alias, broken."]
    code, _, err = run_cli(capsys, "optimize", tmp_path / "missing.onnx")
    assert code == 2 and "model file not found" in err and "Traceback" not in err


def test_python_api_is_the_callable_package() -> None:
    import edgecnn

    assert callable(edgecnn.optimize) and edgecnn.optimize.keep_float_search is search.keep_float_search


@pytest.mark.slow
def test_lenet5_digits_chooses_within_one_point(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("torch")
    rep = optimize("lenet5", output=tmp_path / "out", providers=["cpu"], batches=[1], duration=0.3, progress=False)
    assert rep["task"] == "digits" and rep["accuracy_measured"] and rep["metric"] == "top1"
    ref = rep["candidates"][0]
    assert ref["accuracy"] > 0.9 and rep["data"]["eval_samples"] == 360
    assert rep["chosen"]["accuracy_drop"] <= 1.0
