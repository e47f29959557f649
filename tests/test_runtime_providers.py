"""Provider resolution (a pure function of the available list), option building, errors, silent fallback."""

from __future__ import annotations

import warnings

import onnxruntime as ort
import pytest
from onnx_factory import make_classifier

from edgecnn.errors import EdgecnnError
from edgecnn.runtime import (
    Engine,
    ProviderConfig,
    ProviderFallbackWarning,
    build_providers,
    check_registered,
    provider_options,
    resolve_providers,
)
from edgecnn.runtime.backends import ort_providers as P
from edgecnn.runtime.backends.onnxruntime import OrtRunner

CPU_ONLY = ["AzureExecutionProvider", P.CPU]
WITH_CUDA = [P.CUDA, P.CPU]
WITH_TRT = [P.TENSORRT, P.CUDA, P.CPU]


@pytest.mark.parametrize(
    ("requested", "available", "chain"),
    [
        ("auto", WITH_TRT, (P.TENSORRT, P.CUDA, P.CPU)),
        ("auto", WITH_CUDA, (P.CUDA, P.CPU)),
        ("auto", CPU_ONLY, (P.CPU,)),
        ("auto", [], (P.CPU,)),
        ("cpu", WITH_TRT, (P.CPU,)),
        ("cuda", WITH_TRT, (P.CUDA, P.CPU)),
        ("cuda", WITH_CUDA, (P.CUDA, P.CPU)),
        ("tensorrt", WITH_TRT, (P.TENSORRT, P.CUDA, P.CPU)),
        ("tensorrt", [P.TENSORRT, P.CPU], (P.TENSORRT, P.CPU)),
        ("CUDAExecutionProvider", WITH_CUDA, (P.CUDA, P.CPU)),
        ("TensorRT", WITH_TRT, (P.TENSORRT, P.CUDA, P.CPU)),
    ],
)
def test_resolution_chain(requested, available, chain):
    res = resolve_providers(requested, available)
    assert res.providers == chain
    assert res.primary == chain[0]
    assert res.warning is None


def test_resolution_against_this_onnxruntime():
    available = ort.get_available_providers()
    res = resolve_providers("auto", available)
    assert res.primary in available
    assert resolve_providers("cpu", available).providers == (P.CPU,)


@pytest.mark.parametrize(("requested", "available"), [("cuda", CPU_ONLY), ("tensorrt", CPU_ONLY),
                                                      ("tensorrt", WITH_CUDA)])
def test_unavailable_provider_error_text(requested, available):
    with pytest.raises(EdgecnnError) as ei:
        resolve_providers(requested, available)
    msg = str(ei.value)
    assert "\n" not in msg
    assert f"'{requested}'" in msg and P.PROVIDER_NAMES[requested] in msg  # what was asked
    assert all(p in msg for p in available)  # what this build has
    assert "pip uninstall -y onnxruntime && pip install onnxruntime-gpu" in msg  # how to get it
    assert "cuDNN" in msg and "fallback" in msg
    if requested == "tensorrt":
        assert "TensorRT" in msg


def test_fallback_picks_best_below():
    res = resolve_providers("tensorrt", WITH_CUDA, fallback=True)
    assert res.providers == (P.CUDA, P.CPU) and res.fell_back
    assert "falling back to CUDAExecutionProvider" in res.warning
    res = resolve_providers("cuda", CPU_ONLY, fallback=True)
    assert res.providers == (P.CPU,) and "falling back to CPUExecutionProvider" in res.warning


def test_unknown_provider():
    with pytest.raises(EdgecnnError, match="unknown provider 'vulkan'"):
        resolve_providers("vulkan", CPU_ONLY)


def test_tensorrt_options(tmp_path):
    cfg = ProviderConfig(device_id=1, fp16=True, int8=False, cache_dir=tmp_path, model_key="ab" * 32,
                         gpu_name="NVIDIA H100 80GB HBM3", workspace_size=1 << 28)
    opts = provider_options(P.TENSORRT, cfg)
    cache = str(tmp_path / ("ab" * 8 + "-NVIDIA-H100-80GB-HBM3"))
    assert opts == {
        "device_id": 1, "trt_fp16_enable": True, "trt_int8_enable": False,
        "trt_max_workspace_size": 1 << 28,
        "trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": True, "trt_timing_cache_path": cache,
    }


def test_cuda_options_and_overrides():
    cfg = ProviderConfig(device_id=2, provider_options={"cuda": {"cudnn_conv_algo_search": "HEURISTIC",
                                                                 "gpu_mem_limit": 1 << 30},
                                                        P.TENSORRT: {"trt_fp16_enable": True}})
    opts = provider_options(P.CUDA, cfg)
    assert opts["device_id"] == 2
    assert opts["cudnn_conv_algo_search"] == "HEURISTIC"  # overridden
    assert opts["arena_extend_strategy"] == "kSameAsRequested"
    assert opts["gpu_mem_limit"] == 1 << 30
    assert provider_options(P.CPU, cfg) == {}


def test_build_providers_stringifies(tmp_path):
    res = resolve_providers("tensorrt", WITH_TRT)
    names, opts = build_providers(res, ProviderConfig(fp16=True, cache_dir=tmp_path, gpu_name="T4"))
    assert names == [P.TENSORRT, P.CUDA, P.CPU]
    assert opts[0]["trt_fp16_enable"] == "1" and opts[0]["trt_int8_enable"] == "0"
    assert opts[0]["trt_engine_cache_path"].startswith(str(tmp_path))
    assert opts[1]["device_id"] == "0" and opts[1]["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert opts[2] == {}
    assert all(isinstance(v, str) for o in opts for v in o.values())


def test_check_registered():
    res = resolve_providers("cuda", WITH_CUDA)
    assert check_registered(res, [P.CUDA, P.CPU]) is None
    with pytest.raises(EdgecnnError, match="CUDAExecutionProvider was requested but ONNX Runtime registered only"):
        check_registered(res, [P.CPU])
    assert "running on CPUExecutionProvider" in check_registered(res, [P.CPU], fallback=True)


class _StubSession:
    """A real CPU session whose get_providers() is stubbed."""

    def __init__(self, real: ort.InferenceSession, providers: list[str]) -> None:
        self._real, self._providers = real, providers

    def get_providers(self) -> list[str]:
        return list(self._providers)

    def __getattr__(self, name):
        return getattr(self._real, name)


def _stub_engine(monkeypatch, registered):
    def create(self, so, names, opts):
        return _StubSession(ort.InferenceSession(str(self.path), sess_options=so,
                                                 providers=[P.CPU]), registered)
    monkeypatch.setattr(OrtRunner, "_create_session", create)


def test_engine_detects_silent_cpu_fallback(tmp_path, monkeypatch):
    path = make_classifier(tmp_path / "m.onnx")
    _stub_engine(monkeypatch, [P.CPU])
    with pytest.raises(EdgecnnError, match="registered only CPUExecutionProvider"):
        Engine(path, "cuda", available=WITH_CUDA)
    with pytest.warns(ProviderFallbackWarning, match="running on CPUExecutionProvider") as rec:
        eng = Engine(path, "cuda", available=WITH_CUDA, fallback=True)
    assert len(rec) == 1  # warned once
    assert eng.providers == (P.CPU,) and not eng.io_binding


def test_engine_with_registered_gpu_uses_io_binding(tmp_path, monkeypatch):
    path = make_classifier(tmp_path / "m.onnx")
    _stub_engine(monkeypatch, [P.TENSORRT, P.CUDA, P.CPU])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProviderFallbackWarning)
        eng = Engine(path, "auto", available=WITH_TRT, cache_dir=tmp_path / "trt", fp16=True)
    info = eng.info
    assert info.providers == (P.TENSORRT, P.CUDA, P.CPU) and info.io_binding
    trt = info.provider_options[P.TENSORRT]
    assert trt["trt_fp16_enable"] == "1" and trt["trt_engine_cache_enable"] == "1"
    assert (tmp_path / "trt").is_dir() and trt["trt_engine_cache_path"].startswith(str(tmp_path / "trt"))


def test_engine_unavailable_provider_raises_before_loading(tmp_path):
    path = make_classifier(tmp_path / "m.onnx")
    if P.CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(EdgecnnError, match="pip install onnxruntime-gpu"):
        Engine(path, "cuda")
