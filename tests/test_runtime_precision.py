"""The precision vocabulary and each backend's plan: a pure function of (backend, file precision, CPU, device),
every CPU branch tested with the CPU faked. ``auto`` is measured (tests/test_auto_precision.py); here only its
candidates, which CPU flags prune."""

from __future__ import annotations

import pytest

from edgecnn.errors import EdgecnnError
from edgecnn.runtime import precision as PR
from edgecnn.runtime.backends import ort_providers as P

BF16_X86 = PR.CpuFeatures("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}), "AMD EPYC")
PLAIN_X86 = PR.CpuFeatures("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni"}), "Intel Xeon (Ice Lake)")
AMX_X86 = PR.CpuFeatures("x86_64", frozenset({"avx512f", "amx_tile", "amx_bf16", "amx_fp16"}), "Xeon 6")
ARM = PR.CpuFeatures("aarch64", frozenset({"asimd", "asimdhp", "asimddp"}), "Cortex-A78")
ARM_BF16 = PR.CpuFeatures("aarch64", frozenset({"asimd", "asimdhp", "bf16", "i8mm"}), "Neoverse V2")


HINT = "INFERENCE_PRECISION_HINT"


def ov(requested, cpu, file="fp32", device="CPU"):
    return PR.resolve_precision(requested, provider="openvino", file_precision=file, cpu=cpu, device=device,
                                file_name="m.onnx")


def hint(choice):
    return choice.flags.get(HINT)


def candidates(provider, cpu, file="fp32", device="CPU"):
    from edgecnn.runtime.backends import get

    return get(provider).candidates(file_precision=file, cpu=cpu, device=device)


def test_constants_are_the_shared_vocabulary():
    assert PR.PRECISIONS == ("auto", "fp32", "fp16", "bf16", "int8")
    assert P.PROVIDERS == ("auto", "cpu", "cuda", "tensorrt", "openvino")
    assert P.normalize("OpenVINO") == "openvino" and P.normalize("ov") == "openvino"
    assert PR.check_precision("float32") == "fp32" and PR.check_precision("BF16") == "bf16"
    with pytest.raises(EdgecnnError, match="unknown precision 'fp8': choose one of auto, fp32, fp16, bf16, int8"):
        PR.check_precision("fp8")


def test_cpuinfo_parsing_x86_and_aarch64():
    x86 = PR.parse_cpuinfo("model name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n",
                           "x86_64")
    assert x86.model == "AMD EPYC 9R14" and x86.is_x86 and x86.native_bf16 and not x86.native_fp16
    assert x86.known_flags()["avx512_vnni"] and not x86.known_flags()["amx_int8"]
    arm = PR.parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd evtstrm asimdhp asimddp bf16 i8mm sve\n"
                           "CPU implementer\t: 0x41\n", "aarch64")
    assert arm.is_arm64 and arm.native_bf16 and arm.native_fp16
    assert set(arm.known_flags()) == set(PR.ARM_FLAGS) and arm.known_flags()["i8mm"]
    assert "int8 dot product (SDOT/UDOT)" in arm.describe()
    assert not PR.parse_cpuinfo("Features\t: fp asimd\n", "aarch64").native_bf16


def test_cpu_flags_override_for_the_other_branch(monkeypatch):
    monkeypatch.setenv("EDGECNN_CPU_FLAGS", "avx2 avx512f")
    assert not PR.detect_cpu(machine="x86_64").native_bf16
    monkeypatch.setenv("EDGECNN_CPU_FLAGS", "avx2 avx512_bf16")
    assert PR.detect_cpu(machine="x86_64").native_bf16


def test_auto_candidates_on_openvino_are_pruned_by_the_cpu_never_chosen_by_it():
    assert candidates("openvino", BF16_X86) == ["fp32", "bf16"]  # measured between, not picked by the flag
    assert candidates("openvino", AMX_X86) == ["fp32", "bf16", "fp16"]
    assert candidates("openvino", PLAIN_X86) == ["fp32"]  # never bf16 without it in hardware
    assert candidates("openvino", ARM) == ["fp32", "fp16"]
    assert candidates("openvino", PLAIN_X86, device="GPU") == ["fp32", "bf16", "fp16"]  # the GPU plugin decides
    assert candidates("openvino", BF16_X86, file="int8") == ["int8"]
    for provider in ("cpu", "cuda", "tensorrt"):  # ONNX Runtime runs a file at its own precision
        for file in PR.FILE_PRECISIONS:
            assert candidates(provider, AMX_X86, file=file) == [file]
    # the pure resolution of 'auto' is the first candidate (the file's own), never a flag's pick
    c = ov("auto", BF16_X86)
    assert (c.inference, hint(c)) == ("fp32", "f32")


def test_explicit_openvino_precisions():
    assert hint(ov("bf16", BF16_X86)) == "bf16"
    assert hint(ov("fp32", BF16_X86)) == "f32"
    assert hint(ov("bf16", ARM_BF16)) == "bf16"
    assert hint(ov("fp16", AMX_X86)) == "f16" and hint(ov("fp16", ARM)) == "f16"
    assert hint(ov("fp16", PLAIN_X86, device="GPU")) == "f16"  # passed through to the GPU plugin
    with pytest.raises(EdgecnnError, match=r"bf16 refused: this CPU \(Intel Xeon \(Ice Lake\)\) has no native bf16"):
        ov("bf16", PLAIN_X86)
    with pytest.raises(EdgecnnError, match="bf16 refused"):
        ov("bf16", ARM)
    with pytest.raises(EdgecnnError, match="fp16 refused on OpenVINO's CPU device"):
        ov("fp16", BF16_X86)


def test_int8_files_and_int8_requests_on_openvino():
    c = ov("auto", PLAIN_X86, file="int8")
    assert c.inference == "int8" and hint(c) is None
    assert ov("int8", BF16_X86, file="int8").inference == "int8"
    with pytest.raises(EdgecnnError, match="int8 \\(QDQ\\) file: OpenVINO runs it only at int8.*fp32 file"):
        ov("bf16", BF16_X86, file="int8")
    with pytest.raises(EdgecnnError, match=r"edgecnn quantize m.onnx"):
        ov("int8", BF16_X86, file="fp32")


@pytest.mark.parametrize("provider", ["cpu", "cuda", "tensorrt"])
def test_onnxruntime_runs_the_files_own_precision(provider):
    for file in PR.FILE_PRECISIONS:
        c = PR.resolve_precision("auto", provider=provider, file_precision=file, cpu=BF16_X86)
        assert c.inference == file and hint(c) is None
        assert PR.resolve_precision(file, provider=provider, file_precision=file, cpu=BF16_X86).inference == file
    with pytest.raises(EdgecnnError, match="bf16 cannot run on ONNX Runtime.*--provider openvino"):
        PR.resolve_precision("bf16", provider=provider, file_precision="fp32", cpu=BF16_X86)
    with pytest.raises(EdgecnnError, match="edgecnn quantize"):
        PR.resolve_precision("int8", provider=provider, file_precision="fp32", cpu=BF16_X86, file_name="m.onnx")
    with pytest.raises(EdgecnnError, match="pass the fp32 file instead of m.onnx"):
        PR.resolve_precision("fp32", provider=provider, file_precision="int8", cpu=BF16_X86, file_name="m.onnx")


def test_fp16_on_an_fp32_file_only_on_tensorrt():
    c = PR.resolve_precision("fp16", provider="tensorrt", file_precision="fp32", cpu=PLAIN_X86)
    assert c.inference == "fp16" and c.flags == {"trt_fp16_enable": True}
    for provider in ("cpu", "cuda"):
        with pytest.raises(EdgecnnError, match="edgecnn export MODEL --fp16"):
            PR.resolve_precision("fp16", provider=provider, file_precision="fp32", cpu=PLAIN_X86)


def test_one_table_bench_and_optimize_agree_on_the_file_of_each_precision():
    """The file a precision runs from is the backend's one table: bench's zoo export and optimize's candidate file
    are the same (TensorRT fp16 = the fp32 file with TensorRT's fp16 flag, as the plan says)."""
    from edgecnn.optimize import backends as OB

    for provider in ("cpu", "cuda", "tensorrt", "openvino"):
        for precision in ("fp32", "fp16", "int8"):
            assert PR.export_precision(precision, provider) == OB.file_kind(provider, precision), (provider, precision)
    assert PR.export_precision("fp16", "tensorrt") == "fp32" and PR.export_precision("fp16", "cpu") == "fp16"
    assert PR.export_precision("bf16", "openvino") == "fp32" and PR.export_precision("auto", "openvino") == "fp32"
    c = PR.resolve_precision("fp16", provider="tensorrt", file_precision=PR.export_precision("fp16", "tensorrt"),
                             cpu=PLAIN_X86)
    assert c.flags == {"trt_fp16_enable": True}


def test_file_precision_from_metadata_or_graph(tmp_path):
    import onnx
    from onnx_factory import make_classifier_model

    assert PR.file_precision({"precision": "int8"}) == "int8"
    fp16 = make_classifier_model(dtype="float16", with_metadata=False)
    assert PR.file_precision({}, fp16) == "fp16"
    assert PR.file_precision({}, make_classifier_model(with_metadata=False)) == "fp32"
    assert PR.graph_precision(["Conv", "QuantizeLinear", "DequantizeLinear"], [1]) == "int8"
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(EdgecnnError, match="not a valid ONNX model"):
        PR.read_graph(path)
    assert isinstance(PR.read_graph(_save(tmp_path / "ok.onnx", fp16)), onnx.ModelProto)


def _save(path, model):
    import onnx

    onnx.save(model, str(path))
    return path
