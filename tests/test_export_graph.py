"""Export behaviour: aux heads stripped, dynamic/fixed batch, fp16 io, simplification fallback, metadata, MACs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgecnn import metadata
from edgecnn.cli import main
from edgecnn.exporters import export, read_metadata
from edgecnn.exporters.fp16 import topological_sort
from edgecnn.models import create_model

SMALL = (64, 64)


def _run(path: str | Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def _calibrate_bn(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Give BN layers the statistics of ``x`` so random-init activations do not vanish (input-dependent logits)."""
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def test_googlenet_has_one_output_and_no_aux_nodes(exported) -> None:
    r = exported("googlenet", "fp32")
    model = onnx.load(r.path)
    assert [o.name for o in model.graph.output] == ["logits"]
    shape = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert shape == ["batch", 1000]
    names = [n.name for n in model.graph.node] + [t.name for t in model.graph.initializer]
    names += [o for n in model.graph.node for o in list(n.input) + list(n.output)]
    assert not [n for n in names if "aux" in n.lower()]
    assert r.num_params == 6_624_904 and read_metadata(r.path)["num_params"] == 6_624_904
    assert "barely depend on the input" in r.validation["warnings"][0]  # random init: logits == fc bias


@pytest.mark.slow  # two GoogLeNet exports with validation: ~11 s on 2 cores
def test_googlenet_matches_aux_free_model_and_torchvision_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    with_aux = _calibrate_bn(create_model("googlenet", aux_logits=True), torch.randn(4, 3, *SMALL))
    ckpt = tmp_path / "googlenet_with_aux.pth"
    torch.save(with_aux.state_dict(), ckpt)  # a torchvision-style checkpoint: aux1/aux2 keys included
    assert any(k.startswith("aux1.") for k in with_aux.state_dict())
    a = export("googlenet", tmp_path / "a.onnx", weights=ckpt, input_size=SMALL, progress=False)
    no_aux = create_model("googlenet", aux_logits=False)
    no_aux.load_state_dict({k: v for k, v in with_aux.state_dict().items() if not k.startswith(("aux1.", "aux2."))})
    b = export(no_aux.eval(), tmp_path / "b.onnx", name="googlenet_noaux", input_size=SMALL, progress=False)
    ma, mb = onnx.load(a.path), onnx.load(b.path)
    assert len(ma.graph.initializer) == len(mb.graph.initializer)
    assert len(ma.graph.node) == len(mb.graph.node)
    assert a.num_params == b.num_params == 6_624_904
    assert a.weights_sha256 == b.weights_sha256
    x = np.random.default_rng(0).standard_normal((3, 3, *SMALL)).astype(np.float32)
    ya, yb = _run(a.path, x), _run(b.path, x)
    np.testing.assert_allclose(ya, yb, rtol=0, atol=1e-6)
    # the weights are the checkpoint's: the logits depend on the input and match torch
    v = a.validation
    assert v["input_dependence"] > 1e-3 and v["centered_cosine"] > 0.99999 and not v["warnings"]
    with torch.no_grad():
        np.testing.assert_allclose(ya, with_aux.eval()(torch.from_numpy(x)).numpy(), rtol=0, atol=2e-4)


def test_first_output_of_a_tuple_model_is_kept(tmp_path: Path) -> None:
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Conv2d(3, 8, 3)
            self.head = nn.Linear(8, 4)
            self.extra = nn.Linear(8, 7)  # training-only

        def forward(self, x: torch.Tensor):
            f = self.body(x).mean((2, 3))
            return self.head(f), self.extra(f)

    net = TwoHeads().train()
    r = export(net, tmp_path / "two.onnx", input_size=(16, 16), progress=False)
    assert net.training  # handed back in the mode it came in
    model = onnx.load(r.path)
    assert len(model.graph.output) == 1 and r.num_classes == 4
    assert not [t.name for t in model.graph.initializer if "extra" in t.name]
    assert r.num_params == 3 * 8 * 9 + 8 + 8 * 4 + 4  # the unused head is not counted


def test_dynamic_batch_runs_at_1_and_5(exported) -> None:
    r = exported("resnet18", "fp32")
    for n in (1, 5):
        x = np.random.default_rng(n).standard_normal((n, 3, 224, 224)).astype(np.float32)
        assert _run(r.path, x).shape == (n, 1000)


def test_fixed_batch_and_fp16_io(tmp_path: Path) -> None:
    r = export("resnet18", tmp_path, batch=2, input_size=SMALL, precision="fp16", io_dtype="float16",
               progress=False)
    assert Path(r.path).name == "resnet18-fp16io.onnx" and r.passed
    model = onnx.load(r.path)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [2, 3, *SMALL]
    meta = read_metadata(r.path)
    assert meta["batch"] == "2" and meta["io_dtype"] == "float16" and meta["precision"] == "fp16"
    y = _run(r.path, np.zeros((2, 3, *SMALL), np.float16))
    assert y.dtype == np.float16 and y.shape == (2, 1000)


def test_fp16_resize_and_cast_model(tmp_path: Path) -> None:
    """Known fp16 traps: Resize's float scales, Cast-to-float inside the graph, topological order."""

    class Upsampler(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = nn.functional.interpolate(self.conv(x), scale_factor=2.0, mode="nearest")
            y = y.mean((2, 3)).double().float()  # Cast nodes
            return self.fc(y)

    for io in ("float32", "float16"):
        r = export(Upsampler(), tmp_path / f"up-{io}.onnx", input_size=(8, 8), precision="fp16", io_dtype=io,
                   progress=False)
        assert r.passed and r.validation["checker"] == "ok"
        ops = {n.op_type for n in onnx.load(r.path).graph.node}
        assert "Resize" in ops


def test_adaptive_pool_that_does_not_divide_exports(tmp_path: Path) -> None:
    """VGG's 7x7 adaptive pool at a reduced input (2x2 -> 7x7, 5x5 -> 7x7) is exported as two MatMuls."""
    for size in (32, 80):
        net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(16), nn.AdaptiveAvgPool2d((7, 7)),
                            nn.Flatten(), nn.Linear(4 * 49, 6))
        for precision in ("fp32", "fp16"):
            r = export(net, tmp_path / f"p{size}{precision}.onnx", input_size=(size, size), precision=precision,
                       progress=False)
            assert r.passed and r.validation["centered_cosine"] > 0.999
            assert "MatMul" in {n.op_type for n in onnx.load(r.path).graph.node}
        assert isinstance(net[2], nn.AdaptiveAvgPool2d)  # the model itself is left as it was
    # LocalResponseNorm loses static shapes under a dynamic batch: an adaptive pool after it (vgg11_lrn at 224)
    # used to fail with "input size not accessible" even where the sizes divide
    lrn = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LocalResponseNorm(5), nn.AdaptiveAvgPool2d((4, 4)),
                        nn.Flatten(), nn.Linear(64, 6))
    r = export(lrn, tmp_path / "lrn.onnx", input_size=(16, 16), progress=False)
    assert r.passed and "AveragePool" in {n.op_type for n in onnx.load(r.path).graph.node}


def test_topological_sort_repairs_order() -> None:
    h = onnx.helper
    nodes = [h.make_node("Relu", ["a"], ["b"], name="second"), h.make_node("Neg", ["x"], ["a"], name="first")]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                         [h.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [2])])
    topological_sort(graph)
    assert [n.name for n in graph.node] == ["first", "second"]
    onnx.checker.check_model(h.make_model(graph), full_check=True)


def test_simplify_failure_keeps_unsimplified_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxsim

    def boom(*_a, **_k):
        raise RuntimeError("simulated onnxsim crash\nsecond line")

    monkeypatch.setattr(onnxsim, "simplify", boom)
    r = export("lenet5", tmp_path / "l.onnx", progress=False)
    assert r.passed and not r.simplified and r.nodes_after == r.nodes_before
    assert "simulated onnxsim crash" in r.simplify_note and "\n" not in r.simplify_note


def test_simplify_changing_outputs_is_reverted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxsim

    real = onnxsim.simplify

    def corrupting(model, *a, **k):
        out, ok = real(model, *a, **k)
        w = next(t for t in out.graph.initializer if len(t.dims) == 4)
        arr = onnx.numpy_helper.to_array(w) * 1.5
        w.CopyFrom(onnx.numpy_helper.from_array(arr, w.name))
        return out, ok

    monkeypatch.setattr(onnxsim, "simplify", corrupting)
    for validate in (True, False):
        out = tmp_path / f"l{validate}.onnx"
        r = export("lenet5", out, validate=validate, progress=False)
        assert not r.simplified and "kept the unsimplified graph" in r.simplify_note
        assert out.exists() and not list(tmp_path.glob("*FAILED*"))
        if validate:
            assert r.passed


def test_metadata_round_trip_and_macs(exported) -> None:
    r = exported("resnet18", "fp32")
    meta = read_metadata(r.path)
    assert meta == r.metadata
    required = {"model", "family", "input_layout", "input_size", "channels", "mean", "std", "num_classes",
                "class_names", "precision", "io_dtype", "opset", "num_params", "macs", "batch", "edgecnn_version",
                "torch_version", "weights_sha256", "source"}
    assert required <= set(meta) <= set(metadata.KEYS)
    assert meta["class_names"] == "imagenet" and meta["input_layout"] == "NCHW"
    assert meta["mean"] == [0.485, 0.456, 0.406] and meta["num_classes"] == 1000
    assert meta["weights_sha256"] == r.weights_sha256 and len(meta["weights_sha256"]) == 64
    assert abs(meta["macs"] - 1.814e9) / 1.814e9 < 0.01  # ResNet-18: 1.81 GMACs at 224x224
    sess = ort.InferenceSession(r.path, providers=["CPUExecutionProvider"])
    assert metadata.decode(sess.get_modelmeta().custom_metadata_map) == meta
    assert read_metadata(exported("googlenet", "fp32").path)["macs"] == pytest.approx(1.5e9, rel=0.01)


def test_inspect_cli(exported, capsys: pytest.CaptureFixture) -> None:
    r = exported("resnet18", "fp16")
    main(["inspect", r.path, "--json"])
    d = json.loads(capsys.readouterr().out)
    assert d["metadata"]["precision"] == "fp16" and d["inputs"][0]["shape"] == ["batch", 3, 224, 224]
    assert d["ops"]["Conv"] == 20 and d["opset"]["ai.onnx"] == 17 and d["size_bytes"] == r.size_bytes
    main(["inspect", r.path])
    text = capsys.readouterr().out
    assert "weights_sha256" in text and "logits: float32 [batch, 1000]" in text and "Conv 20" in text


def test_export_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main(["export", "lenet5", "-o", str(tmp_path), "--json", "--fp16"])
    d = json.loads(capsys.readouterr().out)
    assert d["path"] == str(tmp_path / "lenet5-fp16.onnx") and d["passed"]
    assert d["validation"]["tolerances"]["max_rel_diff"] == 1e-2
    assert {"export", "simplify", "fp16", "validate", "total"} <= set(d["timings"])
    main(["export", "lenet5", "-o", str(tmp_path / "x.onnx"), "--no-validate", "--no-simplify", "--opset", "13"])
    out = capsys.readouterr().out
    assert "validation: skipped" in out and read_metadata(tmp_path / "x.onnx")["opset"] == 13


def test_over_2gb_uses_external_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture) -> None:
    """Above ONNX's 2 GB protobuf limit the weights go to <file>.data (limit lowered to test it cheaply)."""
    monkeypatch.setattr(onnx.checker, "MAXIMUM_PROTOBUF", 20_000)
    main(["export", "lenet5", "-o", str(tmp_path / "big.onnx")])
    out = capsys.readouterr().out
    assert "external data" in out and "big.onnx.data" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]
    assert (tmp_path / "big.onnx").stat().st_size < 20_000 < (tmp_path / "big.onnx.data").stat().st_size
    x = np.zeros((2, 1, 32, 32), np.float32)
    assert _run(tmp_path / "big.onnx", x).shape == (2, 10)
    assert read_metadata(tmp_path / "big.onnx")["model"] == "lenet5"


def test_fast_fp16_cast_is_bit_identical_to_onnxruntime() -> None:
    from onnxruntime.transformers import float16

    from edgecnn.exporters.fp16 import np_to_fp16

    rng = np.random.default_rng(0)
    edge = np.array([0, -0.0, 1e-9, -1e-9, 3e-8, 5.9e-8, 7e4, -7e4, 65510, 65520, -65530, np.inf, -np.inf, np.nan,
                     65504, 1e-5], np.float32)
    for scale in (1e-8, 1.0, 1e5):
        a = np.concatenate([(rng.standard_normal(5000) * scale).astype(np.float32), edge]).reshape(-1, 4)
        expected = float16.convert_np_to_float16(a.copy())
        got = np_to_fp16(a)
        assert got.shape == a.shape and np.array_equal(got.view(np.uint16), expected.view(np.uint16))
