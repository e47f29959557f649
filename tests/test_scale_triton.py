"""Triton model repositories: layout, config.pbtxt parsed against Triton's own ModelConfig message, errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_helpers import run_cli as _run
from onnx_factory import make_classifier, make_classifier_model

from edgecnn.errors import EdgecnnError
from edgecnn.scale.triton import build_config, write_triton_repo


def _model_config_pb2():
    """Triton's ``model_config_pb2`` as shipped in tritonclient, loaded by file path.

    ``import tritonclient.grpc`` needs grpcio (the ``[grpc]`` extra, which also pins protobuf < 7); the
    generated message module itself needs only protobuf, so it is loaded on its own.
    """
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("tritonclient is not installed (pip install tritonclient): cannot check config.pbtxt "
                    "against Triton's ModelConfig")
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    mspec = importlib.util.spec_from_file_location("_triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pb2():
    return _model_config_pb2()


def parse(pb2, path: Path):
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), pb2.ModelConfig())  # strict: unknown fields fail


@pytest.fixture()
def tiny(tmp_path):
    return make_classifier(tmp_path / "tiny.onnx")


def _dtype(pb2, name: str) -> int:
    return pb2.DataType.Value(name)


def test_dynamic_batch_repo_layout_and_fields(pb2, tiny, tmp_path):
    repo = tmp_path / "repo"
    r = write_triton_repo(tiny, repo)
    # Triton's documented layout: <repo>/<model>/config.pbtxt and <repo>/<model>/<version>/model.onnx
    assert r.model_dir == repo / "tiny" and r.config_file == repo / "tiny" / "config.pbtxt"
    assert r.model_file == repo / "tiny" / "1" / "model.onnx"
    assert r.model_file.read_bytes() == tiny.read_bytes()
    assert sorted(p.name for p in (repo / "tiny").iterdir()) == ["1", "config.pbtxt"]
    assert [p.name for p in (repo / "tiny" / "1").iterdir()] == ["model.onnx"]

    c = parse(pb2, r.config_file)
    assert c.name == "tiny" and c.platform == "onnxruntime_onnx"
    assert c.max_batch_size == 32
    assert [(i.name, i.data_type, list(i.dims)) for i in c.input] == [("input", _dtype(pb2, "TYPE_FP32"), [3, 32, 32])]
    assert [(o.name, o.data_type, list(o.dims)) for o in c.output] == [("logits", _dtype(pb2, "TYPE_FP32"), [10])]
    assert c.WhichOneof("scheduling_choice") == "dynamic_batching"
    assert c.dynamic_batching.max_queue_delay_microseconds == 100
    assert list(c.dynamic_batching.preferred_batch_size) == []
    assert [(g.count, g.kind) for g in c.instance_group] == [(1, pb2.ModelInstanceGroup.KIND_GPU)]
    assert not c.HasField("optimization")


def test_fields_follow_the_file(pb2, tmp_path):
    """Names, types and dims are read from the graph, not assumed."""
    model = make_classifier_model(batch="N", channels=1, size=(28, 20), num_classes=7, dtype="float16")
    model.graph.input[0].name = "pixels"
    for node in model.graph.node:
        node.input[:] = ["pixels" if x == "input" else x for x in node.input]
    model.graph.output[0].name = "scores_out"
    model.graph.node[-1].output[0] = "scores_out"
    onnx.checker.check_model(model)
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    r = write_triton_repo(path, tmp_path / "repo", name="digits-v2", max_batch_size=64, instance_count=3,
                          provider="cpu", preferred_batch_sizes=[16, 64], max_queue_delay_us=500)
    c = parse(pb2, r.config_file)
    assert c.name == "digits-v2" and (tmp_path / "repo" / "digits-v2" / "1" / "model.onnx").is_file()
    assert c.max_batch_size == 64
    assert [(i.name, i.data_type, list(i.dims)) for i in c.input] == [("pixels", _dtype(pb2, "TYPE_FP16"), [1, 28, 20])]
    assert [(o.name, o.data_type, list(o.dims)) for o in c.output] == [("scores_out", _dtype(pb2, "TYPE_FP16"), [7])]
    assert [(g.count, g.kind) for g in c.instance_group] == [(3, pb2.ModelInstanceGroup.KIND_CPU)]
    assert list(c.dynamic_batching.preferred_batch_size) == [16, 64]
    assert c.dynamic_batching.max_queue_delay_microseconds == 500


def test_fixed_batch_gets_zero_and_full_dims(pb2, tmp_path):
    path = make_classifier(tmp_path / "fixed.onnx", batch=4, num_classes=1000, size=24)
    r = write_triton_repo(path, tmp_path / "repo")
    c = parse(pb2, r.config_file)
    assert c.max_batch_size == 0
    assert list(c.input[0].dims) == [4, 3, 24, 24] and list(c.output[0].dims) == [4, 1000]
    assert c.WhichOneof("scheduling_choice") is None  # Triton's dynamic batcher needs max_batch_size > 0
    assert c.output[0].label_filename == ""  # labels only for [1000] outputs of batching models
    with pytest.raises(EdgecnnError, match="fixed batch of 4"):
        build_config(path, max_batch_size=8)
    with pytest.raises(EdgecnnError, match="dynamic batching"):
        build_config(path, preferred_batch_sizes=[2])


def test_imagenet_labels_file(pb2, tmp_path):
    path = make_classifier(tmp_path / "inet.onnx", num_classes=1000, size=16)
    r = write_triton_repo(path, tmp_path / "repo")
    c = parse(pb2, r.config_file)
    assert c.output[0].label_filename == "imagenet_classes.txt"
    labels = (r.model_dir / "imagenet_classes.txt").read_text().splitlines()
    assert len(labels) == 1000 and labels[0] == "tench"


def test_tensorrt_accelerator(pb2, tiny, tmp_path):
    r = write_triton_repo(tiny, tmp_path / "repo", provider="tensorrt", trt_precision="FP16",
                          preferred_batch_sizes=[8], trt_cache_path="/cache/trt")
    c = parse(pb2, r.config_file)
    accels = c.optimization.execution_accelerators.gpu_execution_accelerator
    assert len(accels) == 1 and accels[0].name == "tensorrt"
    assert dict(accels[0].parameters) == {
        "precision_mode": "FP16", "max_workspace_size_bytes": str(1 << 30), "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": "/cache/trt", "trt_profile_min_shapes": "input:1x3x32x32",
        "trt_profile_opt_shapes": "input:8x3x32x32", "trt_profile_max_shapes": "input:32x3x32x32",
    }
    assert c.instance_group[0].kind == pb2.ModelInstanceGroup.KIND_GPU
    # the default precision is the file's own
    fp16 = make_classifier(tmp_path / "h.onnx", dtype="float16")
    cfg = build_config(fp16, provider="tensorrt", trt_profiles=False)
    assert cfg.tensorrt == {"precision_mode": "FP16", "max_workspace_size_bytes": str(1 << 30),
                            "trt_engine_cache_enable": "1", "trt_engine_cache_path": "/tmp/triton_trt_cache/tiny"}
    assert build_config(tiny, provider="tensorrt").tensorrt["precision_mode"] == "FP32"


def test_openvino_cpu_accelerator(pb2, tiny, tmp_path):
    r = write_triton_repo(tiny, tmp_path / "repo", provider="openvino", instance_count=2)
    c = parse(pb2, r.config_file)
    accels = c.optimization.execution_accelerators.cpu_execution_accelerator
    assert [a.name for a in accels] == ["openvino"] and dict(accels[0].parameters) == {}
    assert not c.optimization.execution_accelerators.gpu_execution_accelerator
    assert [(g.count, g.kind) for g in c.instance_group] == [(2, pb2.ModelInstanceGroup.KIND_CPU)]
    assert c.platform == "onnxruntime_onnx" and c.WhichOneof("scheduling_choice") == "dynamic_batching"
    with pytest.raises(EdgecnnError, match="provider openvino needs --instance-kind cpu"):
        build_config(tiny, provider="openvino", instance_kind="gpu")
    with pytest.raises(EdgecnnError, match="tensorrt only"):
        build_config(tiny, provider="openvino", trt_precision="FP16")
    # the TensorRT block is unchanged by the OpenVINO one and keeps its precision parameters
    trt = parse(pb2, write_triton_repo(tiny, tmp_path / "trt", provider="tensorrt", trt_precision="INT8").config_file)
    assert not trt.optimization.execution_accelerators.cpu_execution_accelerator
    assert dict(trt.optimization.execution_accelerators.gpu_execution_accelerator[0].parameters)[
        "precision_mode"] == "INT8"


def test_versions_and_force(tiny, tmp_path):
    repo = tmp_path / "repo"
    write_triton_repo(tiny, repo)
    with pytest.raises(EdgecnnError, match="already exists; pass --force"):
        write_triton_repo(tiny, repo)
    r2 = write_triton_repo(tiny, repo, version=2)
    assert r2.model_file == repo / "tiny" / "2" / "model.onnx"
    (repo / "tiny" / "1" / "stale.txt").write_text("old")
    other = make_classifier(tmp_path / "other.onnx", seed=5)
    write_triton_repo(other, repo, name="tiny", force=True)
    assert sorted(p.name for p in (repo / "tiny" / "1").iterdir()) == ["model.onnx"]  # replaced as a whole
    assert (repo / "tiny" / "1" / "model.onnx").read_bytes() == other.read_bytes()
    assert sorted(p.name for p in (repo / "tiny").iterdir()) == ["1", "2", "config.pbtxt"]  # no temp folders left
    with pytest.raises(EdgecnnError, match="positive integers"):
        write_triton_repo(tiny, repo, version=0)


def test_external_data_is_copied(tmp_path):
    from edgecnn.runtime import Engine

    src = tmp_path / "src"
    src.mkdir()
    model = make_classifier_model()
    onnx.save(model, str(src / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.onnx.data", size_threshold=0)
    r = write_triton_repo(src / "ext.onnx", tmp_path / "repo")
    assert [p.name for p in r.extra_files] == ["ext.onnx.data"]
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(Engine(r.model_file, "cpu").run(x), Engine(src / "ext.onnx", "cpu").run(x), rtol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "bad name"}, "invalid Triton model name"),
    ({"preferred_batch_sizes": [64]}, "between 1 and max_batch_size 32"),
    ({"provider": "tensorrt", "instance_kind": "cpu"}, "GPU instances"),
    ({"provider": "cpu", "instance_kind": "gpu"}, "instance-kind cpu"),
    ({"trt_precision": "FP16"}, "tensorrt only"),
    ({"instance_count": 0}, "instance count"),
])
def test_option_errors(tiny, kwargs, match):
    with pytest.raises(EdgecnnError, match=match):
        build_config(tiny, **kwargs)


def test_bad_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(EdgecnnError, match="not a valid ONNX model"):
        write_triton_repo(junk, tmp_path / "repo")
    with pytest.raises(EdgecnnError, match="model file not found"):
        write_triton_repo(tmp_path / "missing.onnx", tmp_path / "repo")
    assert not (tmp_path / "repo").exists()




def test_cli(pb2, capsys, tiny, tmp_path):
    repo = tmp_path / "repo"
    code, out, err = _run(capsys, "triton", str(tiny), str(repo), "--name", "clf", "--version", "3",
                          "--preferred-batch", "4,8", "--triton-provider", "tensorrt", "--trt-precision", "fp16",
                          "--instances", "2", "--print-config")
    assert code == 0, err
    assert "wrote Triton model 'clf' version 3" in err
    c = parse(pb2, repo / "clf" / "config.pbtxt")
    assert out == (repo / "clf" / "config.pbtxt").read_text()
    assert (repo / "clf" / "3" / "model.onnx").is_file()
    assert list(c.dynamic_batching.preferred_batch_size) == [4, 8] and c.instance_group[0].count == 2
    assert c.optimization.execution_accelerators.gpu_execution_accelerator[0].parameters["precision_mode"] == "FP16"

    code, out, err = _run(capsys, "triton", str(tiny), str(repo), "--name", "clf", "--version", "3")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "--force" in err
    code, out, err = _run(capsys, "triton", str(tiny), str(repo), "--preferred-batch", "4,x")
    assert code == 2 and "--preferred-batch takes integers" in err

    code, out, err = _run(capsys, "triton", str(tiny), str(repo), "--name", "j", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["name"] == "j" and report["version"] == 1 and report["max_batch_size"] == 32
    assert report["config"] == (repo / "j" / "config.pbtxt").read_text()


def test_triton_module_is_torch_free(tiny, tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from edgecnn.scale.triton import write_triton_repo\n"
            f"write_triton_repo({str(tiny)!r}, {str(tmp_path / 'r')!r})\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_export_triton_repo(pb2, capsys, tmp_path):
    pytest.importorskip("torch", reason="export needs torch (pip install 'edgecnn[export]')")
    out, repo = tmp_path / "lenet5.onnx", tmp_path / "repo"
    code, _, err = _run(capsys, "export", "lenet5", "-o", str(out), "--triton-repo", str(repo), "--no-validate")
    assert code == 0, err
    c = parse(pb2, repo / "lenet5" / "config.pbtxt")
    assert (repo / "lenet5" / "1" / "model.onnx").read_bytes() == out.read_bytes()
    assert c.max_batch_size == 32 and list(c.input[0].dims) == [1, 32, 32] and list(c.output[0].dims) == [10]
    code, _, err = _run(capsys, "export", "lenet5", "-o", str(out), "--triton-repo", str(repo), "--no-validate")
    assert code == 2 and "already exists" in err  # the .onnx file (or the version) is not silently replaced
    code, _, err = _run(capsys, "export", "lenet5", "-o", str(out), "--triton-repo", str(repo), "--no-validate",
                        "--force")
    assert code == 0, err


def test_export_triton_repo_writes_only_into_the_repo(tmp_path, capsys, monkeypatch):
    """`export NAME --triton-repo DIR` without -o leaves nothing in the working folder (issue 13 item 8)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    repo = tmp_path / "repo"
    code, out, err = _run(capsys, "export", "lenet5", "--triton-repo", repo, "--no-simplify", "--json")
    assert code == 0, err
    assert list(work.iterdir()) == []
    model_file = repo / "lenet5" / "1" / "model.onnx"
    assert model_file.is_file() and (repo / "lenet5" / "config.pbtxt").is_file()
    assert json.loads(out)["path"] == str(model_file)
    onnx.checker.check_model(str(model_file))
    # the repository's version is replaced only with --force, as 'edgecnn triton' does
    code, _, err = _run(capsys, "export", "lenet5", "--triton-repo", repo, "--no-simplify")
    assert code == 2 and "already exists; pass --force" in err
    code, _, err = _run(capsys, "export", "lenet5", "--triton-repo", repo, "--no-simplify", "--force")
    assert code == 0, err
    assert list(work.iterdir()) == []
    # with -o the export is also kept where -o says
    code, _, err = _run(capsys, "export", "lenet5", "-o", work / "l.onnx", "--triton-repo", repo, "--force",
                           "--no-simplify")
    assert code == 0, err
    assert (work / "l.onnx").is_file() and model_file.is_file()
    code, _, err = _run(capsys, "export", "lenet5", "--triton-repo", repo, "--int8")
    assert code == 2 and "give -o FILE|DIR" in err and err.count("\n") == 1
