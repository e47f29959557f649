"""``--precision auto`` is measured: the fastest precision the backend runs on this file, never below 30 dB SQNR
from the reference, never one that did not run, never decided by a CPU flag; cached per (CPU, backend and
version, device, file, batch); a decision ``edgecnn optimize`` recorded in the file is used as is; Triton config
generation only reads a recorded decision. Timings and CPUs are faked, so both branches run on any machine."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import run_cli
from onnx_factory import make_classifier

from edgecnn.errors import EdgecnnError
from edgecnn.runtime import Engine
from edgecnn.runtime import auto_precision as AP
from edgecnn.runtime import precision as PR
from edgecnn.runtime.backends import Backend, Runner, TensorInfo

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
WITH_BF16 = PR.CpuFeatures("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}), "faked bf16 CPU")
REF = np.random.default_rng(0).standard_normal((1, 10)).astype(np.float32)
NOISE = np.random.default_rng(1).standard_normal((1, 10)).astype(np.float32)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh edgecnn cache per test: decisions cached by one test never answer another."""
    monkeypatch.setenv("EDGECNN_CACHE_DIR", str(tmp_path / "cache"))


class FakeRunner(Runner):
    def __init__(self, out: np.ndarray) -> None:
        self.inputs = (TensorInfo("input", ("batch", 3, 8, 8), "float32"),)
        self.outputs = (TensorInfo("logits", ("batch", 10), "float32"),)
        self._out = out

    def run(self, x: np.ndarray, output_names: list[str]) -> list[np.ndarray]:
        return [self._out.copy()]


class FakeBackend(Backend):
    name, family, label = "fakeov", "fakeov", "a fake backend"

    def versions(self) -> dict[str, str]:
        return {"fakeov": "1.0"}


KEY = {"cpu": "faked CPU", "backend": "fakeov", "versions": {"fakeov": "1.0"}, "device": "CPU",
       "file_sha256": "0" * 64, "batch": 1}


def _decide(outputs: dict[str, np.ndarray], times: dict[str, float], metadata: dict[str, Any] | None = None,
            key: dict[str, Any] | None = None, **kw: Any) -> tuple[AP.AutoDecision, list[str]]:
    opened: list[str] = []
    runners = {p: FakeRunner(o) for p, o in outputs.items()}
    by_runner = {id(r): p for p, r in runners.items()}

    def open_runner(p: str) -> Runner:
        opened.append(p)
        return runners[p]

    decision, _ = AP.decide(FakeBackend(), list(outputs), key=key or KEY, metadata=metadata or {},
                            open_runner=open_runner, timer=lambda r, x: times[by_runner[id(r)]], **kw)
    return decision, opened


def test_the_measured_fastest_wins_and_is_cached_with_its_figures() -> None:
    d, opened = _decide({"fp32": REF, "bf16": REF + 1e-3 * NOISE}, {"fp32": 40.0, "bf16": 20.0})
    assert (d.chosen, d.source, opened) == ("bf16", "measured", ["fp32", "bf16"])
    assert d.figures["fp32"] == {"p50_ms": 40.0, "sqnr_db": "inf", "status": "ok"}
    assert d.figures["bf16"]["p50_ms"] == 20.0 and 55 < d.figures["bf16"]["sqnr_db"] < 65
    on_disk = json.loads(AP.cache_path(KEY).read_text())
    assert on_disk["chosen"] == "bf16" and on_disk["key"] == KEY
    again, opened = _decide({"fp32": REF, "bf16": REF + 1e-3 * NOISE}, {"fp32": 1.0, "bf16": 99.0})
    assert (again.chosen, again.source, opened) == ("bf16", "cached", [])  # nothing measured the second time
    assert "measured earlier" in again.describe() and "20 ms" in again.describe()


def test_a_slower_reduced_precision_loses_whatever_the_cpu_flag_says() -> None:
    d, _ = _decide({"fp32": REF, "bf16": REF + 1e-3 * NOISE}, {"fp32": 40.9, "bf16": 63.9})
    assert d.chosen == "fp32" and d.figures["bf16"]["status"] == "ok"
    # within the noise margin (less than 3% faster) the reference stays
    d, _ = _decide({"fp32": REF, "bf16": REF + 1e-3 * NOISE}, {"fp32": 10.0, "bf16": 9.8},
                   key={**KEY, "batch": 2})
    assert d.chosen == "fp32"


def test_below_30_db_or_bit_identical_is_never_chosen() -> None:
    d, _ = _decide({"fp32": REF, "fp16": REF + 0.1 * NOISE, "bf16": REF.copy()},
                   {"fp32": 40.0, "fp16": 5.0, "bf16": 4.0})
    assert d.chosen == "fp32"
    assert d.figures["fp16"]["status"] == "below 30 dB" and d.figures["fp16"]["sqnr_db"] < 30
    assert d.figures["bf16"]["status"] == "did not run: outputs equal fp32 bit for bit"
    assert d.figures["fp16"]["p50_ms"] is None and d.figures["bf16"]["p50_ms"] is None


def test_a_recorded_optimize_decision_for_this_machine_and_backend_is_used() -> None:
    meta = {"optimize": {"runtime": "fakeov", "precision": "bf16", "cpu": "faked CPU"}}
    d, opened = _decide({"fp32": REF, "bf16": REF + 1e-3 * NOISE}, {"fp32": 1.0, "bf16": 2.0}, metadata=meta)
    assert (d.chosen, d.source, opened) == ("bf16", "optimize decision", [])
    other_cpu = {"optimize": {**meta["optimize"], "cpu": "another CPU"}}
    other_backend = {"optimize": {**meta["optimize"], "runtime": "openvino"}}
    for batch, m in ((3, other_cpu), (4, other_backend)):  # not for this machine/backend: measured
        d, opened = _decide({"fp32": REF, "bf16": REF + 1e-3 * NOISE}, {"fp32": 1.0, "bf16": 2.0}, metadata=m,
                            key={**KEY, "batch": batch})
        assert (d.chosen, d.source, opened) == ("fp32", "measured", ["fp32", "bf16"])


def test_corrupt_cache_is_measured_again_and_the_probe_is_bounded() -> None:
    path = AP.cache_path(KEY)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    d, opened = _decide({"fp32": REF, "bf16": REF + 1e-3 * NOISE}, {"fp32": 2.0, "bf16": 1.0})
    assert d.source == "measured" and opened == ["fp32", "bf16"] and json.loads(path.read_text())["chosen"] == "bf16"
    ticks = iter([0.0, AP.MAX_SECONDS + 1, AP.MAX_SECONDS + 1])  # the first compile and run used up the budget
    d, opened = _decide({"fp32": REF, "bf16": REF + 1e-3 * NOISE}, {"fp32": 2.0, "bf16": 1.0},
                        key={**KEY, "batch": 8}, clock=lambda: next(ticks))
    assert opened == ["fp32"] and d.chosen == "fp32"
    assert d.figures["bf16"]["status"] == f"not measured (the {AP.MAX_SECONDS:g} s budget)"


needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed")


@needs_openvino
@pytest.mark.parametrize("times, chosen", [({"fp32": 10.0, "bf16": 5.0}, "bf16"),
                                           ({"fp32": 5.0, "bf16": 10.0}, "fp32")])
def test_engine_auto_on_openvino_follows_the_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   times: dict[str, float], chosen: str) -> None:
    model = make_classifier(tmp_path / "m.onnx", size=16)

    def fake_time(runner: Runner, x: np.ndarray, **kw: Any) -> float:
        return times[runner.precision]

    monkeypatch.setattr(AP, "time_candidate", fake_time)
    eng = Engine(model, "openvino", cpu=WITH_BF16, cache_dir=tmp_path / "ov")  # the flag says bf16 is native
    assert eng.precision == chosen and eng.info.auto["chosen"] == chosen
    assert eng.info.auto["figures"]["bf16"]["p50_ms"] == times["bf16"]
    assert eng.info.file_precision == "fp32"  # auto never changes the file


@needs_openvino
def test_bench_json_says_what_auto_chose_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    model = make_classifier(tmp_path / "m.onnx", size=16)
    monkeypatch.setattr(AP, "time_candidate", lambda r, x, **kw: {"fp32": 3.0, "bf16": 2.0}[r.precision])
    monkeypatch.setenv("EDGECNN_CPU_FLAGS", "avx2 avx512f avx512_bf16")
    code, out, err = run_cli(capsys, "bench", model, "--provider", "openvino", "--iters", "2", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["precision"] == "bf16" and rep["auto"]["source"] == "measured"
    assert rep["auto"]["figures"]["fp32"]["p50_ms"] == 3.0 and "auto measured fp32, bf16" in rep["precision_reason"]
    code, out, err = run_cli(capsys, "bench", model, "--provider", "openvino", "--iters", "2")
    assert code == 0 and "precision: auto chose bf16, measured earlier on this machine" in out


def test_triton_reads_only_a_recorded_decision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecnn.scale.triton import build_config

    def no_measuring(*a: Any, **k: Any) -> Any:
        raise AssertionError("triton must not measure")

    monkeypatch.setattr(AP, "decide", no_measuring)
    plain = make_classifier(tmp_path / "plain.onnx")
    assert build_config(plain, provider="tensorrt").tensorrt["precision_mode"] == "FP32"
    chosen = make_classifier(tmp_path / "chosen.onnx", metadata={"optimize": {"runtime": "tensorrt",
                                                                              "precision": "fp16"}})
    assert build_config(chosen, provider="tensorrt").tensorrt["precision_mode"] == "FP16"
    elsewhere = make_classifier(tmp_path / "ov.onnx", metadata={"optimize": {"runtime": "openvino",
                                                                             "precision": "bf16"}})
    assert build_config(elsewhere, provider="tensorrt").tensorrt["precision_mode"] == "FP32"
    with pytest.raises(EdgecnnError, match="unknown Triton provider 'auto'"):
        build_config(plain, provider="auto")


@needs_openvino
def test_engine_auto_uses_the_decision_the_file_carries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_timing(*a: Any, **k: Any) -> float:
        raise AssertionError("a recorded decision is not measured again")

    monkeypatch.setattr(AP, "time_candidate", no_timing)
    decided = {"runtime": "openvino", "precision": "bf16", "cpu": WITH_BF16.model}
    model = make_classifier(tmp_path / "chosen.onnx", size=16, metadata={"optimize": decided})
    eng = Engine(model, "openvino", cpu=WITH_BF16, cache_dir=tmp_path / "ov")
    assert eng.precision == "bf16" and eng.info.auto["source"] == "optimize decision"
    assert "recorded in the file" in eng.info.precision_reason
    # the same file on the ONNX Runtime CPU provider: a decision for another backend does not apply
    assert Engine(model, "cpu", cpu=WITH_BF16).precision == "fp32"
