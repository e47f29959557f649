"""`edgecnn predict` and `edgecnn doctor`: output, JSON, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli as _run
from onnx_factory import make_classifier
from PIL import Image

from edgecnn.runtime import doctor

EDGECNN = Path(sys.executable).parent / "edgecnn"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    images = []
    for i, (w, h) in enumerate([(64, 48), (40, 80), (32, 32)]):
        p = d / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
        images.append(str(p))
    gray = d / "gray.jpg"
    Image.fromarray(rng.integers(0, 256, (50, 50), dtype=np.uint8), "L").save(gray)
    (d / "notes.txt").write_text("hello")
    return {
        "dir": d,
        "images": images,
        "gray": str(gray),
        "tiny": str(make_classifier(d / "tiny.onnx")),
        "imagenet": str(make_classifier(d / "imagenet.onnx", num_classes=1000, batch=2, size=24)),
        "probs": str(make_classifier(d / "probs.onnx", softmax=True)),
        "lenet": str(make_classifier(d / "lenet.onnx", channels=1, size=28,
                                     metadata={"mean": [0.1307], "std": [0.3081]})),
        "badmeta": str(make_classifier(d / "badmeta.onnx", metadata={"input_size": [64, 64]})),
        "corrupt": str(d / "notes.txt"),
    }




def test_predict_table(capsys, files):
    code, out, err = _run(capsys, "predict", files["tiny"], *files["images"], "--top", "3")
    assert code == 0, err
    for img in files["images"]:
        assert img in out
    assert out.count("probability") == 3 and "name" not in out  # no names for a 10-class model


def test_predict_json_matches_engine(capsys, files):
    from edgecnn.runtime import Engine, load_images, to_probabilities

    code, out, _ = _run(capsys, "predict", files["tiny"], *files["images"], "--json", "-k", "10",
                        "--batch", "2", "--provider", "cpu")
    assert code == 0
    data = json.loads(out)
    assert data["providers"] == ["CPUExecutionProvider"]
    engine = Engine(files["tiny"], "cpu")
    probs = to_probabilities(engine.run(load_images(files["images"], engine.preprocess_config())))
    for r, p in zip(data["results"], probs, strict=True):
        assert [x["rank"] for x in r["predictions"]] == list(range(1, 11))
        got = np.zeros(10)
        for x in r["predictions"]:
            got[x["index"]] = x["probability"]
        np.testing.assert_allclose(got, p, rtol=1e-5, atol=1e-6)
        assert sum(x["probability"] for x in r["predictions"]) == pytest.approx(1, abs=1e-4)


def test_predict_imagenet_names_fixed_batch(capsys, files):
    code, out, _ = _run(capsys, "predict", files["imagenet"], *files["images"], "--json", "-k", "2")
    assert code == 0
    from edgecnn.runtime import imagenet_classes

    names = imagenet_classes()
    results = json.loads(out)["results"]
    assert len(results) == 3  # 3 images on a batch-2 file: padded and trimmed
    for r in results:
        for p in r["predictions"]:
            assert p["label"] == names[p["index"]]
    code, out, _ = _run(capsys, "predict", files["imagenet"], files["images"][0])
    assert "name" in out


def test_predict_probabilities_not_softmaxed_twice(capsys, files):
    from edgecnn.runtime import Engine, load_images

    code, out, _ = _run(capsys, "predict", files["probs"], files["images"][0], "--json", "-k", "1")
    engine = Engine(files["probs"], "cpu")
    p = engine.run(load_images(files["images"][:1], engine.preprocess_config()))[0]
    top = json.loads(out)["results"][0]["predictions"][0]
    assert top["index"] == int(p.argmax()) and top["probability"] == pytest.approx(float(p.max()), rel=1e-5)


def test_predict_grayscale_model(capsys, files):
    code, out, err = _run(capsys, "predict", files["lenet"], files["gray"], files["images"][0], "--json")
    assert code == 0, err
    assert len(json.loads(out)["results"]) == 2


def _one_line_error(code, out, err, match):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and match in lines[0]
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["{tiny}", "{dir}/missing.png"], "image not found"),
        (["{tiny}", "{corrupt}"], "cannot read image"),
        (["{dir}/missing.onnx", "{img}"], "model file not found"),
        (["{corrupt_onnx}", "{img}"], "not a valid ONNX model"),
        (["{truncated_onnx}", "{img}"], "cannot load"),
        (["{badmeta}", "{img}"], "invalid metadata edgecnn.input_size: [64, 64] but the graph's input is fixed"),
        (["{tiny}", "{img}", "--provider", "tensorrt"], "pip install onnxruntime-gpu"),
        (["not_a_zoo_model_xyz", "{img}"], "not_a_zoo_model_xyz"),
    ],
)
def test_predict_errors_one_line(capsys, files, args, match):
    d = files["dir"]
    (d / "corrupt.onnx").write_bytes(b"\x08\x07garbage" * 50)
    data = Path(files["tiny"]).read_bytes()
    (d / "truncated.onnx").write_bytes(data[: len(data) // 2])
    fmt = {"tiny": files["tiny"], "dir": str(d), "corrupt": files["corrupt"], "img": files["images"][0],
           "corrupt_onnx": str(d / "corrupt.onnx"), "truncated_onnx": str(d / "truncated.onnx"),
           "badmeta": files["badmeta"]}
    code, out, err = _run(capsys, "predict", *[a.format(**fmt) for a in args])
    _one_line_error(code, out, err, match)


def test_predict_fallback_warns(capsys, files):
    code, out, err = _run(capsys, "predict", files["tiny"], files["images"][0], "--provider", "cuda",
                          "--fallback", "--json")
    assert code == 0
    assert err.strip().startswith("warning: provider 'cuda'") and "CPUExecutionProvider" in err
    assert json.loads(out)["providers"] == ["CPUExecutionProvider"]


def test_console_script_error_no_traceback(files):
    proc = subprocess.run([str(EDGECNN), "predict", files["tiny"], files["corrupt"]],
                          capture_output=True, text=True, timeout=60)
    _one_line_error(proc.returncode, proc.stdout, proc.stderr, "cannot read image")


def test_help_texts(capsys):
    code, out, _ = _run(capsys, "predict", "--help")
    assert code == 0
    for opt in ("--top", "--provider", "--batch", "--json", "--fallback", "--threads"):
        assert opt in out
    code, out, _ = _run(capsys, "doctor", "--help")
    assert code == 0 and "--json" in out


def test_doctor(capsys):
    code, out, _ = _run(capsys, "doctor")
    assert code == 0
    for word in ("edgecnn", "python", "onnxruntime", "providers", "torch", "cpu flags"):
        assert word in out
    code, out, _ = _run(capsys, "doctor", "--json")
    data = json.loads(out)
    assert "CPUExecutionProvider" in data["onnxruntime"]["providers"]
    assert data["onnxruntime"]["distributions"]
    assert set(data["cpu"]["flags"]) >= {"avx2", "avx512f", "avx512_vnni", "amx_int8"}
    assert isinstance(data["fixes"], list)


def test_doctor_cpu_flags_and_fixes(monkeypatch):
    info = doctor.cpu_info("model name\t: Test CPU\nflags\t\t: fpu avx2 fma avx512f avx512_vnni amx_int8\n")
    assert info["model"] == "Test CPU"
    assert info["flags"]["avx512_vnni"] and info["flags"]["amx_int8"] and not info["flags"]["avx_vnni"]
    report = doctor.collect(check_gpu_libraries=False)
    report["gpus"] = [{"index": 0, "name": "Tesla T4", "driver": "550.54", "memory_mib": "15360"}]
    report["onnxruntime"]["providers"] = ["CPUExecutionProvider"]
    assert any("pip install onnxruntime-gpu" in f for f in doctor.fixes(report))
    monkeypatch.setattr(doctor.P, "ort_distributions",
                        lambda: {"onnxruntime": "1.31.1", "onnxruntime-gpu": "1.31.1"})
    ort_info = doctor.onnxruntime_info()
    assert ort_info["conflict"]["installed"] == ["onnxruntime", "onnxruntime-gpu"]
    assert ort_info["conflict"]["broken"] == ["onnxruntime-gpu"]  # this build is CPU-only: GPU files gone
    report["onnxruntime"] = ort_info
    fix = [f for f in doctor.fixes(report) if "several onnxruntime" in f]
    assert fix and "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in fix[0]
    assert "CONFLICT" in doctor.format_report(report)


def test_predict_api_single_image_and_pil(files):
    from edgecnn.runtime import Engine, predict

    engine = Engine(files["tiny"], "cpu")
    one = predict(engine, files["images"][0], top=2)
    assert len(one) == 1 and one[0]["image"] == files["images"][0] and len(one[0]["predictions"]) == 2
    pil = predict(engine, [Image.open(files["images"][1])], top=1)
    assert pil[0]["image"] == files["images"][1]
    by_path = predict(engine, files["images"][1:2], top=1)
    assert pil[0]["predictions"][0]["index"] == by_path[0]["predictions"][0]["index"]


def test_doctor_aarch64_features_openvino_and_build_versions(monkeypatch):
    arm = doctor.cpu_info("processor\t: 0\nFeatures\t: fp asimd asimdhp asimddp i8mm bf16\n", machine="aarch64")
    assert arm["arch"] == "aarch64" and arm["flags"]["i8mm"] and arm["native_bf16"] and "avx2" not in arm["flags"]
    assert "int8 matrix multiply (SMMLA)" in arm["flag_names"]
    report = doctor.collect(check_gpu_libraries=False)
    ov = report["openvino"]
    if ov["version"]:
        assert "CPU" in ov["devices"] and "openvino     " + ov["version"] in doctor.format_report(report)
    # GPU versions in the advice come from the installed build, not constants
    report["onnxruntime"]["providers"] = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    report["onnxruntime"]["build"] = {"cuda": "13.0", "cudnn": "9.14", "tensorrt": "10"}
    report["onnxruntime"]["gpu_libraries"] = {"cudart": "libcudart.so.13", "cudnn": "libcudnn.so.9",
                                              "tensorrt": "libnvinfer.so.10"}
    report["gpu_libraries"] = {"cudart": True, "cudnn": False, "tensorrt": False}
    fixes = doctor.fixes(report)
    assert any("libcudnn.so.9" in f and "CUDA 13.0 + cuDNN 9.14" in f and "CUDA 12" not in f for f in fixes)
    assert any("libnvinfer.so.10" in f and "TensorRT 10" in f and "edgecnn[tensorrt]" in f for f in fixes)
    assert "gpu build    cuda 13.0, cudnn 9.14, tensorrt 10" in doctor.format_report(report)
    # no runtime at all: one fix naming the extras
    report["onnxruntime"]["distributions"] = {}
    report["openvino"] = {"version": None, "devices": {}, "error": None}
    assert any(f.startswith("no runtime is installed: pip install 'edgecnn[cpu]'") for f in doctor.fixes(report))


def test_provider_error_texts_take_versions_from_the_build(monkeypatch):
    from edgecnn.runtime.backends import ort_providers as P

    monkeypatch.setattr(P, "gpu_build_versions", lambda: {"cuda": "13.0", "cudnn": "9.14", "tensorrt": "10"})
    msg = P.unavailable_message("tensorrt", ["CPUExecutionProvider"])
    assert "CUDA 13.0 and cuDNN 9.14" in msg and "TensorRT 10" in msg and "edgecnn[tensorrt]" in msg
    monkeypatch.setattr(P, "gpu_build_versions", lambda: {"cuda": None, "cudnn": None, "tensorrt": None})
    msg = P.unavailable_message("cuda", ["CPUExecutionProvider"])
    assert "CUDA 12" not in msg and "pip install onnxruntime-gpu" in msg


def test_gpu_versions_from_the_provider_libraries(monkeypatch):
    from edgecnn.runtime.backends import ort_providers as P

    # what onnxruntime-gpu 1.31.1's provider libraries load (read with providers._elf_needed from its wheel)
    monkeypatch.setattr(P, "provider_libraries", lambda: {
        "cuda": ["libcublasLt.so.13", "libcublas.so.13", "libcurand.so.10", "libcudart.so.13", "libcuda.so.1"],
        "tensorrt": ["libcublas.so.13", "libnvinfer.so.10", "libnvonnxparser.so.10", "libcudart.so.13",
                     "libcudnn.so.9"]})
    v = P.gpu_build_versions()
    assert v["tensorrt"] == "10" and v["cudnn"] == "9" and v["cuda"] is not None
    assert doctor.gpu_library_names() == {"cublas": "libcublas.so.13", "cudart": "libcudart.so.13",
                                          "tensorrt": "libnvinfer.so.10", "cudnn": "libcudnn.so.9"}


def test_elf_reader_lists_needed_libraries():
    import sys
    from pathlib import Path

    from edgecnn.runtime.backends import ort_providers as P

    exe = Path(sys.executable).resolve()
    needed = P._elf_needed(exe)
    assert needed == [] or any(n.startswith(("libc.so", "libpython", "libm.so")) for n in needed)
    assert P._elf_needed(Path(__file__)) == []  # not an ELF file
