"""Accuracy stays visible on reduced precisions: bench and evaluate report the deviation from fp32 ONNX Runtime
on the same inputs, and LeNet-5 on the digits task keeps its fp32 accuracy in bf16 where bf16 is native.

The OpenVINO tests skip where the openvino package is missing, except in CI (EDGECNN_REQUIRE_OPENVINO=1 makes a
missing openvino a failure).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from onnx_factory import make_classifier
from PIL import Image

from edgecnn.errors import EdgecnnError
from edgecnn.profiler.deviation import MIN_SAMPLES, deviation_lines, deviation_metrics, find_reference
from edgecnn.profiler.measure import bench
from edgecnn.runtime import precision as PR

HAVE_OPENVINO = importlib.util.find_spec("openvino") is not None
if not HAVE_OPENVINO and os.environ.get("EDGECNN_REQUIRE_OPENVINO") == "1":
    raise RuntimeError("EDGECNN_REQUIRE_OPENVINO=1 but the openvino package is not installed")
needs_openvino = pytest.mark.skipif(not HAVE_OPENVINO, reason="openvino is not installed (pip install "
                                                              "'edgecnn[openvino]')")
SHA = {"weights_sha256": "ab" * 32}


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    return make_classifier(tmp_path / "tiny.onnx", size=32, hidden=16, num_classes=10, metadata=SHA)


@pytest.fixture()
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenVINO's bf16 is allowed only with native bf16: fake the flag where this CPU lacks it (OpenVINO then
    emulates bf16, which is slow but exact enough for a tiny model)."""
    if not PR.detect_cpu().native_bf16:
        monkeypatch.setenv("EDGECNN_CPU_FLAGS", "avx2 avx512f avx512_vnni avx512_bf16")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGECNN_CACHE_DIR", str(tmp_path / "cache"))


def _bench_json(capsys: pytest.CaptureFixture, *args: str) -> dict:
    code, out, err = run_cli(capsys, "bench", *args, "--iters", "2", "--warmup", "0", "--threads", "1",
                             "--peak-gflops", "10", "--json")
    assert code == 0, err
    return json.loads(out)


def test_deviation_metrics_on_known_outputs() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 1.0]])
    m = deviation_metrics(ref, np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert m == {"samples": 2, "cosine_mean": 0.5, "cosine_min": 0.0, "sqnr_db": 0.0, "max_rel_error": 1.0,
                 "top1_agreement": 0.5}
    same = deviation_metrics(ref, ref)
    assert same["sqnr_db"] == "inf" and same["cosine_min"] == 1.0 and same["max_rel_error"] == 0.0
    with pytest.raises(EdgecnnError, match="outputs differ in shape"):
        deviation_metrics(ref, np.zeros((2, 3)))


@needs_openvino
def test_bench_openvino_bf16_prints_and_returns_the_deviation(tiny, native_bf16, capsys) -> None:
    d = _bench_json(capsys, str(tiny), "--provider", "openvino", "--precision", "bf16", "--batch", "1,2")
    dev = d["deviation"]
    assert d["precision"] == "bf16" and dev["precision"] == "bf16"
    assert dev["reference"] == str(tiny) and dev["reference_runtime"] == "ONNX Runtime CPU, fp32"
    assert dev["samples"] == MIN_SAMPLES  # 1 + 2 timed inputs, topped up with seeded ones
    # bf16 keeps 8 mantissa bits: ~3 significant digits, the same class on (nearly) every input
    assert 0.999 < dev["cosine_mean"] < 1.0 and dev["cosine_min"] > 0.995
    assert 1e-5 < dev["max_rel_error"] < 0.05 and 25 < dev["sqnr_db"] < 80
    assert dev["top1_agreement"] >= 0.9
    code, out, _ = run_cli(capsys, "bench", str(tiny), "--provider", "openvino", "--precision", "bf16", "--iters", "2",
                           "--threads", "1")
    assert code == 0 and "deviation of bf16 from fp32 (ONNX Runtime CPU, fp32" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("cosine mean"))
    assert "SQNR" in line and "max rel. error" in line and "top-1 agreement" in line
    api = bench(tiny, [4], provider="openvino", precision="bf16", iters=2, warmup=0, threads=1)
    assert api.deviation is not None and api.to_dict()["deviation"] == api.deviation
    assert api.deviation["samples"] == MIN_SAMPLES and api.deviation["cosine_mean"] == pytest.approx(
        dev["cosine_mean"], abs=1e-3)
    off = _bench_json(capsys, str(tiny), "--provider", "openvino", "--precision", "bf16", "--no-deviation")
    assert off["precision"] == "bf16" and off["deviation"] is None


@pytest.mark.parametrize("provider", ["cpu", pytest.param("openvino", marks=needs_openvino)])
def test_no_deviation_at_fp32(tiny, capsys, provider) -> None:
    d = _bench_json(capsys, str(tiny), "--provider", provider, "--precision", "fp32")
    assert d["precision"] == "fp32" and d["deviation"] is None
    code, out, _ = run_cli(capsys, "bench", str(tiny), "--provider", provider, "--precision", "fp32", "--iters", "2",
                           "--threads", "1", "--peak-gflops", "10")
    assert code == 0 and "from fp32" not in out and "cosine" not in out


def test_fp16_file_is_compared_with_its_fp32_source_when_known(tmp_path, capsys) -> None:
    fp32 = make_classifier(tmp_path / "tiny.onnx", hidden=16, metadata=SHA)
    fp16 = make_classifier(tmp_path / "tiny.fp16.onnx", hidden=16, dtype="float16", metadata=SHA)
    dev = _bench_json(capsys, str(fp16), "--provider", "cpu")["deviation"]
    assert dev["precision"] == "fp16" and dev["reference"] == str(fp32) and "same weights_sha256" in dev["found"]
    assert dev["cosine_min"] > 0.999 and dev["top1_agreement"] >= 0.9 and 1e-5 < dev["max_rel_error"] < 1e-2
    # another model's weights beside it are not its source: say so plainly, with what to pass
    make_classifier(fp32, hidden=16, metadata={"weights_sha256": "cd" * 32})
    dev = _bench_json(capsys, str(fp16), "--provider", "cpu")["deviation"]
    assert dev["reference"] is None and dev["found"].startswith("no fp32 reference: tiny.fp16.onnx is an fp16 file")
    assert "--reference" in dev["found"] and deviation_lines(dev) == [f"deviation from fp32: {dev['found']}"]
    dev = _bench_json(capsys, str(fp16), "--provider", "cpu", "--reference", str(fp32))["deviation"]
    assert dev["reference"] == str(fp32) and dev["samples"] == MIN_SAMPLES and dev["cosine_min"] > 0.99


def test_find_reference_rules(tiny, tmp_path) -> None:
    assert find_reference(tiny, tiny, ran="fp32", file_precision="fp32") is None
    ref = find_reference(tiny, tiny, ran="bf16", file_precision="fp32")
    assert ref is not None and ref.path == tiny and ref.reason == "the same file (tiny.onnx) at fp32"
    with pytest.raises(EdgecnnError, match="reference file not found"):
        find_reference(tiny, tiny, ran="bf16", file_precision="fp32", explicit=tmp_path / "missing.onnx")


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in range(12):
        d = tmp_path / "data" / str(i % 3)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return tmp_path / "data"


@needs_openvino
def test_evaluate_bf16_reports_accuracy_and_deviation(tiny, image_folder, native_bf16, capsys) -> None:
    code, out, err = run_cli(capsys, "evaluate", str(tiny), "--data", str(image_folder), "--provider", "openvino",
                             "--precision", "bf16", "--json")
    d = json.loads(out)
    assert code == 0 and d["precision"] == "bf16" and d["file_precision"] == "fp32" and d["samples"] == 12, err
    cmp = d["comparison"]
    assert cmp["reference"] == str(tiny) and cmp["precision_candidate"] == "bf16" and cmp["samples"] == 12
    assert cmp["cosine_min"] > 0.99 and cmp["top1_agreement"] >= 0.75
    assert cmp["top1_reference"] is not None  # labelled: accuracies of both
    code, out, _ = run_cli(capsys, "evaluate", str(tiny), "--data", str(image_folder), "--provider", "openvino",
                           "--precision", "fp32")
    assert code == 0 and "accuracy report" not in out and ", fp32" in out.splitlines()[0]


def test_evaluate_fp16_file_without_a_source_says_so(tmp_path, image_folder, capsys) -> None:
    fp16 = make_classifier(tmp_path / "other.fp16.onnx", dtype="float16")
    code, out, _ = run_cli(capsys, "evaluate", str(fp16), "--data", str(image_folder), "--provider", "cpu")
    assert code == 0 and "no fp32 reference: other.fp16.onnx is an fp16 file" in out
    fp32 = make_classifier(tmp_path / "source.onnx")
    code, out, _ = run_cli(capsys, "evaluate", str(fp16), "--data", str(image_folder), "--provider", "cpu",
                           "--reference", str(fp32), "--json")
    cmp = json.loads(out)["comparison"]
    assert code == 0 and cmp["precision_candidate"] == "fp16" and cmp["cosine_min"] > 0.999


@needs_openvino
@pytest.mark.slow  # trains LeNet-5 on the digits once per session (about a minute on 2 cores), then exports it
def test_lenet5_digits_bf16_keeps_fp32_accuracy(tmp_path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("torch")
    if not PR.detect_cpu().native_bf16:
        pytest.skip("this CPU has no native bf16 (AVX512-BF16/AMX-BF16, aarch64 bf16): OpenVINO would emulate it")
    import torch

    from edgecnn.models import create_model
    from edgecnn.profiler.accuracy import compare_models
    from edgecnn.tasks.digits import digits_task, export_onnx

    task = digits_task()
    model = create_model("lenet5")
    model.load_state_dict(torch.load(task.weights, weights_only=True))
    fp32 = export_onnx(model.eval(), tmp_path / "lenet5.onnx")
    rep = compare_models(fp32, fp32, task.eval_x, labels=task.eval_labels, provider="openvino", precision="bf16",
                         reference_provider="cpu", batch_size=64)
    print(f"digits LeNet-5, {rep.samples} test images: fp32 (ORT CPU) top-1 {100 * rep.top1_reference:.2f}%, "
          f"bf16 (OpenVINO) top-1 {100 * rep.top1_candidate:.2f}%, agreement {100 * rep.top1_agreement:.2f}%, "
          f"cosine min {rep.cosine_min:.6f}, SQNR {rep.sqnr_db:.1f} dB")
    assert rep.precision_candidate == "bf16" and rep.samples == 360 and rep.labelled
    assert rep.top1_reference > 0.9, f"training failed: fp32 top-1 {rep.top1_reference}"
    assert abs(rep.top1_delta_points) <= 0.5, rep.as_dict()
    assert rep.top1_agreement >= 0.99 and rep.cosine_min > 0.99


def test_zoo_name_int8_is_compared_with_its_fp32_export(capsys) -> None:
    pytest.importorskip("torch")
    dev = _bench_json(capsys, "lenet5", "--provider", "cpu", "--precision", "int8")["deviation"]
    assert dev["precision"] == "int8" and dev["found"] == "the fp32 export of zoo model lenet5"
    assert Path(dev["reference"]).name.startswith("lenet5-fp32-") and dev["samples"] == MIN_SAMPLES
    assert dev["cosine_min"] > 0.99 and 1e-4 < dev["max_rel_error"] < 0.1  # int8 QDQ of the same weights
    # the fp16 export is compared only when it has the fp32 export's weights (weights_sha256); without
    # pretrained weights every precision of a zoo name is initialised from the same seed, so it has them
    dev = _bench_json(capsys, "lenet5", "--provider", "cpu", "--precision", "fp16")["deviation"]
    fp16 = Path(_bench_json(capsys, "lenet5", "--precision", "fp16", "--no-deviation")["path"])
    from edgecnn.onnxfile import read_metadata

    same = read_metadata(fp16)["weights_sha256"] == read_metadata(Path(_bench_json(
        capsys, "lenet5", "--no-deviation")["path"]))["weights_sha256"]
    assert same
    assert dev["reference"] is not None and dev["cosine_min"] > 0.999
