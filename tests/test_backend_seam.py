"""One backend per runtime behind one seam: no module outside edgecnn/runtime/backends/ compares a runtime name;
a backend registered from the tests works in bench, predict, evaluate and optimize; a plug-in that fails to load is
one skipped row / one doctor line; a reduced precision that did not run is reported as what ran; OpenVINO's
compiled-model cache never shares a blob between precisions."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import run_cli
from onnx_factory import make_classifier
from PIL import Image
from toy_backend import ToyBackend

from edgecnn.errors import EdgecnnError
from edgecnn.runtime import Engine
from edgecnn.runtime.backends import ort_providers as P
from edgecnn.runtime.backends import registry

ROOT = Path(__file__).resolve().parents[1]
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


@pytest.fixture
def toy() -> Any:
    backend = registry.register(ToyBackend(), replace=True)
    yield backend
    registry.unregister("toy")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_classifier(tmp_path / "tiny.onnx", size=16)


# --------------------------------------------------------------------------- the seam, kept by the AST


def _runtime_names() -> set[str]:
    """The registry's names and their constants: every string a module could compare to ask which runtime it holds."""
    names = set(registry.names()) | {b.family for b in map(registry.get, registry.names())}
    names |= set(P.PROVIDER_NAMES.values()) | {P.OPENVINO, "OpenVINOExecutionProvider", "OpenVINO:"}
    return names


#: the backends' constant names (``P.CUDA``, ``OPENVINO``...) that hold runtime names
_CONSTANTS = {"CPU", "CUDA", "TENSORRT", "OPENVINO", "PROVIDER_NAMES", "PREFERENCE", "RUNTIMES"}


def _names_in(node: ast.AST, names: set[str]) -> list[str]:
    """Runtime names an operand *is* (a string, a tuple/list/set of strings, a backend constant); a dict key in a
    subscript (``report["cpu"]``) is not a comparison with a runtime name."""
    parts = list(node.elts) if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    found = []
    for sub in parts:
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and (
                sub.value in names or any(sub.value.startswith(n) and n.endswith(":") for n in names)):
            found.append(repr(sub.value))
        elif isinstance(sub, ast.Attribute) and sub.attr in _CONSTANTS:
            found.append(sub.attr)
        elif isinstance(sub, ast.Name) and sub.id in _CONSTANTS:
            found.append(sub.id)
    return found


def runtime_name_comparisons(source: str, names: set[str]) -> list[tuple[int, str]]:
    """``(line, what)`` for each ==, !=, in, not in, startswith/endswith against a runtime name or its constant."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))
                                                 for op in node.ops):
            for part in [node.left, *node.comparators]:
                out += [(node.lineno, n) for n in _names_in(part, names)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("startswith", "endswith")):
            for arg in node.args:
                out += [(node.lineno, n) for n in _names_in(arg, names)]
    return out


def test_the_checker_catches_each_kind_of_comparison() -> None:
    names = _runtime_names()
    bad = ('if provider == "openvino": pass\nx = p in ("cpu", "cuda")\ny = p.startswith("OpenVINO:")\n'
           'z = P.CUDA in providers\nw = running != "TensorrtExecutionProvider"\n')
    assert [line for line, _ in runtime_name_comparisons(bad, names)] == [1, 2, 2, 3, 4, 5]
    fine = 'if kind == "KIND_GPU": pass\nd = {"cpu": 1}\nEngine(path, "cpu")\nif backend.triton: pass\n'
    assert runtime_name_comparisons(fine, names) == []


def test_no_module_outside_the_backends_compares_a_runtime_name() -> None:
    names = _runtime_names()
    backends = ROOT / "edgecnn" / "runtime" / "backends"
    offenders = []
    for path in sorted((ROOT / "edgecnn").rglob("*.py")):
        if backends in path.parents:
            continue
        for line, what in runtime_name_comparisons(path.read_text(), names):
            offenders.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert offenders == []


# --------------------------------------------------------------------------- a backend from outside the package


def test_unknown_backend_lists_the_available_ones(toy: Any) -> None:
    with pytest.raises(EdgecnnError, match=r"unknown provider 'vulkan': choose one of auto, cpu, cuda, tensorrt, "
                                           r"openvino, toy\."):
        registry.get("vulkan")
    with pytest.raises(EdgecnnError, match="already registered"):
        registry.register(ToyBackend())


def test_toy_backend_runs_through_the_engine_and_its_fp16_is_reported_as_fp32(toy: Any, tiny: Path) -> None:
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    ref = Engine(tiny, "cpu").run(x)
    eng = Engine(tiny, "toy", precision="fp32")
    assert eng.providers == ("toy:cpu",) and eng.info.backend == "toy" and eng.info.backend_name == "toy"
    np.testing.assert_array_equal(eng.run(x), ref)
    fake = Engine(tiny, "toy", precision="fp16")  # its "fp16" returns fp32 outputs
    assert fake.precision == "fp32" and fake.info.requested_precision == "fp16"
    assert "equal fp32 bit for bit: fp32 ran" in fake.info.precision_reason
    auto = Engine(tiny, "toy")  # auto: fp16 is a candidate, and it did not run: never picked
    assert auto.precision == "fp32" and auto.info.auto["figures"]["fp16"]["status"].startswith("did not run")
    with pytest.raises(EdgecnnError, match="the toy backend runs fp32 files"):
        Engine(tiny, "toy", precision="int8")


def test_toy_backend_in_bench_predict_and_evaluate(toy: Any, tiny: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli(capsys, "bench", tiny, "--provider", "toy", "--precision", "fp16", "--iters", "3",
                             "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["providers"] == ["toy:cpu"] and rep["provider"] == "toy" and rep["precision"] == "fp32"
    assert rep["deviation"] is None and "bit for bit" in rep["precision_reason"]
    img = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(img)
    code, out, err = run_cli(capsys, "predict", tiny, img, "--provider", "toy", "--json")
    assert code == 0, err
    pred = json.loads(out)
    assert pred["providers"] == ["toy:cpu"] and len(pred["results"][0]["predictions"]) == 5
    for i in range(4):
        d = tmp_path / "data" / str(i % 2)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(d / f"{i}.png")
    code, out, err = run_cli(capsys, "evaluate", tiny, "--data", tmp_path / "data", "--provider", "toy",
                             "--precision", "fp16", "--json")
    assert code == 0, err
    ev = json.loads(out)
    assert ev["provider"] == "toy:cpu" and ev["samples"] == 4 and ev["precision"] == "fp32"
    assert "bit for bit" in ev["precision_reason"] and "comparison" not in ev
    code, _, err = run_cli(capsys, "bench", tiny, "--provider", "vulkan")
    assert code == 2 and err.strip().splitlines() == [
        "error: --provider: 'vulkan' is not one of 'auto', 'cpu', 'cuda', 'tensorrt', 'openvino', 'toy'."]


def test_toy_backend_in_optimize_never_chosen_under_a_label_that_did_not_run(toy: Any, tiny: Path) -> None:
    from edgecnn.optimize.runner import optimize

    rep = optimize(tiny, providers=["cpu", "toy"], precisions=["fp32", "fp16"], batches=[1], duration=0.1,
                   threads=1, progress=False, output=tiny.parent / "out")
    by = {(c["provider"], c["precision"]): c for c in rep["candidates"]}
    assert by[("toy", "fp32")]["status"] == "ok" and by[("toy", "fp32")]["ran_precision"] == "fp32"
    fake = by[("toy", "fp16")]
    assert fake["status"] == "ok" and fake["ran_precision"] == "fp32" and fake["file"] == "fp32"
    assert (rep["chosen"]["provider"], rep["chosen"]["precision"]) != ("toy", "fp16")
    assert any("toy fp16 ran fp32" in n for n in rep["notes"])
    assert "| toy | fp16 (ran fp32) |" in (tiny.parent / "out" / "report.md").read_text()


class _ToyEntryPoint:
    name, value, group = "toy", "toy_backend:ToyBackend", registry.ENTRY_POINT_GROUP

    def load(self) -> Any:
        return ToyBackend


def test_an_entry_point_registers_a_backend(monkeypatch: pytest.MonkeyPatch, tiny: Path) -> None:
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [_ToyEntryPoint()] if kw.get("group") == registry.ENTRY_POINT_GROUP
                        else real(**kw))
    registry.reload()
    try:
        assert registry.names()[-1] == "toy" and registry.origin("toy") == "toy_backend:ToyBackend"
        assert registry.versions()["toy"] == "1.0"  # in bench's machine facts and optimize's decisions too
        assert Engine(tiny, "toy").providers == ("toy:cpu",)
    finally:
        monkeypatch.undo()
        registry.reload()
        assert "toy" not in registry.names()


class _BrokenEntryPoint:
    name, value, group = "gpu9000", "edgecnn_gpu9000:Backend", registry.ENTRY_POINT_GROUP

    def load(self) -> Any:
        raise ImportError("No module named 'edgecnn_gpu9000'")


def test_a_plugin_that_fails_to_import_is_one_skipped_row_and_one_doctor_line(
        monkeypatch: pytest.MonkeyPatch, tiny: Path, capsys: pytest.CaptureFixture) -> None:
    real = importlib.metadata.entry_points

    def entry_points(**kw: Any) -> Any:
        return [_BrokenEntryPoint()] if kw.get("group") == registry.ENTRY_POINT_GROUP else real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    registry.reload()
    try:
        why = registry.failures()["gpu9000"]
        assert why == ("the plug-in backend 'gpu9000' (edgecnn_gpu9000:Backend) failed to load: ImportError: "
                       "No module named 'edgecnn_gpu9000'")
        from edgecnn.optimize.runner import optimize

        rep = optimize(tiny, providers=["cpu", "gpu9000"], precisions=["fp32"], batches=[1], duration=0.1,
                       threads=1, progress=False)
        rows = [c for c in rep["candidates"] if c["provider"] == "gpu9000"]
        assert [(c["precision"], c["status"]) for c in rows] == [("all", f"skipped: {why}")]
        code, out, _ = run_cli(capsys, "doctor")
        assert code == 0 and [ln for ln in out.splitlines() if "gpu9000" in ln] == [
            f"backend      gpu9000: skipped: {why}"]
        code, _, err = run_cli(capsys, "bench", tiny, "--provider", "gpu9000")
        assert code == 2 and err.strip().splitlines() == [f"error: --provider: backend 'gpu9000' is not available: "
                                                          f"{why}"]
    finally:
        monkeypatch.undo()
        registry.reload()


# --------------------------------------------------------------------------- OpenVINO: one cache per precision


needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed")


@needs_openvino
def test_openvino_f32_then_bf16_two_cache_entries_and_different_outputs(tiny: Path, tmp_path: Path) -> None:
    from edgecnn.runtime.backends.base import OpenOptions
    from edgecnn.runtime.precision import PrecisionChoice

    backend = registry.get("openvino")
    opts = OpenOptions(threads=1, cache_dir=tmp_path / "ov")
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    outs = {}
    for precision, hint in (("fp32", "f32"), ("bf16", "bf16")):  # bf16 forced (emulated where not native)
        choice = PrecisionChoice(precision, "fp32", precision, flags={"INFERENCE_PRECISION_HINT": hint})
        runner = backend.open(tiny, choice, opts)
        assert runner.cache_dir == str(tmp_path / "ov" / hint)
        outs[precision] = runner.run(x, ["logits"])[0]
    folders = sorted(p.parent.name for p in (tmp_path / "ov").rglob("*.blob"))
    assert folders == ["bf16", "f32"]  # two entries, never one blob for both
    assert not np.array_equal(outs["fp32"], outs["bf16"])  # bf16 really ran
    np.testing.assert_allclose(outs["bf16"], outs["fp32"], rtol=0.1, atol=0.1)


@needs_openvino
def test_openvino_corrupt_cache_entry_is_rebuilt_and_unwritable_cache_runs_uncached(tiny: Path,
                                                                                    tmp_path: Path) -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    ref = Engine(tiny, "openvino", precision="fp32", cache_dir=tmp_path / "ov").run(x)
    blobs = list((tmp_path / "ov" / "f32").glob("*.blob"))
    assert blobs
    for b in blobs:
        b.write_bytes(b"\x00garbage, not a compiled model" * 10)
    again = Engine(tiny, "openvino", precision="fp32", cache_dir=tmp_path / "ov")
    np.testing.assert_array_equal(again.run(x), ref)
    assert all(b"garbage" not in b.read_bytes() for b in (tmp_path / "ov" / "f32").glob("*.blob"))
    locked = tmp_path / "locked"
    locked.write_text("a file where the cache folder should be")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eng = Engine(tiny, "openvino", precision="fp32", cache_dir=locked)
    msgs = [str(w.message) for w in caught if "cache" in str(w.message)]
    assert len(msgs) == 1 and "compiling without a cache" in msgs[0]
    assert eng.cache_dir is None and "CACHE_DIR" not in eng.info.provider_options[eng.providers[0]]
    np.testing.assert_array_equal(eng.run(x), ref)


@needs_openvino
def test_fp32_reference_runs_on_openvino_when_onnxruntime_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                                      tiny: Path) -> None:
    from edgecnn.profiler.measure import bench
    from edgecnn.runtime.backends.onnxruntime import OrtBackend

    monkeypatch.setattr(OrtBackend, "unavailable", lambda self: "no ONNX Runtime is installed (faked)")
    assert registry.reference().name == "openvino"
    monkeypatch.setenv("EDGECNN_CPU_FLAGS", "avx2 avx512f avx512_bf16")  # bf16 allowed (emulated if need be)
    r = bench(tiny, [1], provider="openvino", precision="bf16", iters=2, warmup=0, progress=False,
              measure_peak_now=False)
    dev = r.deviation
    assert dev["reference_runtime"] == "OpenVINO, fp32" and dev["reference"] == str(tiny)
    assert isinstance(dev["sqnr_db"], float) and 20 < dev["sqnr_db"] < 120
