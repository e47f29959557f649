"""int8 quantization (static/dynamic, QDQ/QOperator), calibration data, QDQ debugging, TensorRT tables, CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnx_factory import make_classifier
from quantize_helpers import digits_tools

from edgecnn.errors import EdgecnnError
from edgecnn.metadata import decode
from edgecnn.quantize import (
    ArrayReader,
    RandomCalibrationWarning,
    default_output,
    explain,
    load_calibration,
    quantize,
    quantize_keep_float,
    write_tensorrt_calibration,
)
from edgecnn.runtime.images import PreprocessConfig


def run(path: str | Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def ops(path: str | Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def lenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An (untrained, seeded) zoo LeNet-5 exported to fp32 ONNX."""
    import torch

    from edgecnn.models import create_model

    torch.manual_seed(0)
    return digits_tools().export_onnx(create_model("lenet5").eval(), tmp_path_factory.mktemp("lenet") / "lenet5.onnx")


@pytest.fixture(scope="module")
def lenet_calib() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (16, 1, 32, 32)).astype(np.float32)


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    return make_classifier(tmp_path / "tiny.onnx", hidden=16)


# --------------------------------------------------------------------------- static / dynamic


def test_static_qdq_default_runs_and_has_int8_weights(lenet: Path, lenet_calib: np.ndarray, tmp_path: Path) -> None:
    out = tmp_path / "lenet5.int8.onnx"
    res = quantize(lenet, out, calib=lenet_calib)
    assert Path(res.output) == out and out.is_file()
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    types = ops(out)
    assert "QuantizeLinear" in types and "DequantizeLinear" in types
    assert res.quant_nodes["QuantizeLinear"] >= 4
    # every Conv/Gemm weight is an int8 initializer feeding a DequantizeLinear, per-channel (1-D scales)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    dq_weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                  and inits[n.input[0]].ndim >= 2]
    assert len(dq_weights) == 5  # 3 conv + 2 linear
    for n in dq_weights:
        assert inits[n.input[0]].dtype == np.int8
        assert inits[n.input[1]].ndim == 1 and inits[n.input[1]].size > 1
    # activations uint8
    act_zp = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert all(z.dtype == np.uint8 for z in act_zp)
    meta = decode({p.key: p.value for p in model.metadata_props})
    assert meta["precision"] == "int8" and meta["model"] == "lenet5" and meta["channels"] == 1
    assert json.loads(meta["quantization"])["mode"] == "static"
    x = lenet_calib[:4]
    assert cosine(run(lenet, x), run(out, x)) > 0.99
    assert res.compression > 2.5


def test_dynamic_and_qoperator_and_per_tensor(lenet: Path, lenet_calib: np.ndarray, tmp_path: Path) -> None:
    x = lenet_calib[:3]
    dyn = quantize(lenet, tmp_path / "dyn.onnx", mode="dynamic")
    assert {"ConvInteger", "MatMulInteger"} & set(ops(dyn.output))
    assert dyn.calibration is None
    assert cosine(run(lenet, x), run(dyn.output, x)) > 0.99
    qop = quantize(lenet, tmp_path / "qop.onnx", calib=lenet_calib, format="qoperator")
    assert "QLinearConv" in ops(qop.output) and "Conv" not in ops(qop.output)
    assert cosine(run(lenet, x), run(qop.output, x)) > 0.99
    pt = quantize(lenet, tmp_path / "pt.onnx", calib=lenet_calib, per_channel=False, method="percentile",
                  activation_type="int8")
    model = onnx.load(pt.output)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim >= 2:
            assert inits[n.input[1]].size == 1  # one scale per tensor
    assert run(pt.output, x).shape == (3, 10)
    ent = quantize(lenet, tmp_path / "ent.onnx", calib=lenet_calib, method="entropy")
    assert run(ent.output, x).shape == (3, 10)


def test_exclude_keeps_node_in_float_and_bad_names_fail(lenet: Path, lenet_calib: np.ndarray,
                                                         tmp_path: Path) -> None:
    conv_names = [n.name for n in onnx.load(str(lenet)).graph.node if n.op_type == "Conv"]
    res = quantize(lenet, tmp_path / "ex.onnx", calib=lenet_calib, exclude=(conv_names[0],))
    assert res.excluded == [conv_names[0]]
    model = onnx.load(res.output)
    producers = {o: n for n in model.graph.node for o in n.output}
    node = next(n for n in model.graph.node if n.name == conv_names[0])
    assert producers.get(node.input[1]) is None or producers[node.input[1]].op_type != "DequantizeLinear"
    with pytest.raises(EdgecnnError, match="no node named 'conv_nope'"):
        quantize(lenet, tmp_path / "bad.onnx", calib=lenet_calib, exclude=("conv_nope",))


def test_user_errors(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgecnnError, match="needs calibration data"):
        quantize(tiny)
    with pytest.raises(EdgecnnError, match="not found"):
        quantize(tmp_path / "missing.onnx", calib="random:2")
    fp16 = make_classifier(tmp_path / "half.onnx", dtype="float16")
    with pytest.raises(EdgecnnError, match="quantize the fp32 model"):
        quantize(fp16, calib="random:2")
    with pytest.raises(EdgecnnError, match="unknown method"):
        quantize(tiny, calib="random:2", method="kl")
    with pytest.raises(EdgecnnError, match="overwrite"):
        quantize(tiny, tiny, calib="random:2")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(EdgecnnError, match="not a valid ONNX model"):
        quantize(bad, calib="random:2")
    assert default_output("a/resnet50.fp32.onnx") == Path("a/resnet50.int8.onnx")
    assert not (tmp_path / "tiny.int8.onnx").exists()  # failed runs leave nothing behind


# --------------------------------------------------------------------------- calibration data


def test_calibration_sources(tmp_path: Path) -> None:
    cfg = PreprocessConfig(input_size=(32, 32), channels=3)
    with pytest.warns(RandomCalibrationWarning, match="speed tests only"):
        data = load_calibration("random:5", cfg)
    assert data.random and data.data.shape == (5, 3, 32, 32)
    arr = np.zeros((7, 3, 32, 32), np.float32)
    np.save(tmp_path / "c.npy", arr)
    got = load_calibration(str(tmp_path / "c.npy"), cfg, limit=4)
    assert got.data.shape == (4, 3, 32, 32) and not got.random
    np.save(tmp_path / "wrong.npy", np.zeros((2, 1, 32, 32), np.float32))
    with pytest.raises(EdgecnnError, match=r"needs \[N, 3, 32, 32\]"):
        load_calibration(str(tmp_path / "wrong.npy"), cfg)
    from PIL import Image

    imgs = tmp_path / "imgs" / "nested"
    imgs.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (40, 50), (i * 50, 10, 10)).save(imgs / f"{i}.png")
    (imgs / "notes.txt").write_text("x")
    got = load_calibration(str(tmp_path / "imgs"), cfg)
    assert got.data.shape == (3, 3, 32, 32) and "3 images" in got.source
    for spec, msg in (("random:x", "random:N"), ("random:0", ">= 1"), (str(tmp_path / "none"), "not found"),
                      (str(tmp_path / "c.npz"), "not found")):
        with pytest.raises(EdgecnnError, match=msg):
            load_calibration(spec, cfg)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgecnnError, match="no images"):
        load_calibration(str(tmp_path / "empty"), cfg)
    reader = ArrayReader("input", arr, batch_size=3)
    assert len(reader) == 3
    assert [b["input"].shape[0] for b in iter(reader.get_next, None)] == [3, 3, 1]


# --------------------------------------------------------------------------- explain, keep-float


def test_explain_ranks_layers_and_keep_float(lenet: Path, lenet_calib: np.ndarray, tmp_path: Path) -> None:
    res = quantize(lenet, tmp_path / "q.onnx", calib=lenet_calib)
    rows = explain(lenet, res.output, lenet_calib)
    assert {"Conv", "Gemm"} <= {r.op_type for r in rows}
    convs = [r for r in rows if r.op_type in ("Conv", "Gemm")]
    assert all(r.weight_sqnr_db is not None and r.weight_sqnr_db > 20 for r in convs)
    losses = [r.loss_db for r in rows if r.loss_db is not None]
    assert losses == sorted(losses, reverse=True)  # worst first
    assert set(rows[0].as_dict()) >= {"node", "op_type", "weight_sqnr_db", "input_sqnr_db", "output_sqnr_db",
                                      "loss_db"}
    kept, ranking = quantize_keep_float(lenet, tmp_path / "kf.onnx", keep_float=1, calib=lenet_calib)
    assert kept.excluded == [ranking[0].node]
    with pytest.raises(EdgecnnError, match="QDQ"):
        explain(lenet, quantize(lenet, tmp_path / "d.onnx", mode="dynamic").output, lenet_calib)


# --------------------------------------------------------------------------- TensorRT


def test_tensorrt_calibration_table_files(tiny: Path, tmp_path: Path) -> None:
    from onnxruntime.quantization.CalTableFlatBuffers import TrtTable

    x = np.random.default_rng(0).standard_normal((6, 3, 32, 32)).astype(np.float32)
    info = write_tensorrt_calibration(tiny, x, tmp_path / "trt", batch_size=4)
    files = {k: Path(v) for k, v in info["files"].items()}
    assert set(files) == {"calibration.flatbuffers", "calibration.cache", "calibration.json"}
    assert all(f.is_file() and f.stat().st_size > 0 for f in files.values())
    buf = files["calibration.flatbuffers"].read_bytes()
    table = TrtTable.TrtTable.GetRootAsTrtTable(buf, 0)
    entries = {table.Dict(i).Key().decode(): float(table.Dict(i).Value()) for i in range(table.DictLength())}
    assert {"input", "conv", "relu", "logits"} <= set(entries)
    assert all(v >= 0 for v in entries.values())
    assert entries["input"] == pytest.approx(float(np.abs(x).max()), rel=1e-5)
    lines = files["calibration.cache"].read_text().splitlines()
    assert len(lines) == len(entries) and all(len(line.split(" ")) == 2 for line in lines)
    opts = info["provider_options"]
    assert opts["trt_int8_enable"] is True and opts["trt_int8_use_native_calibration_table"] is False
    assert opts["trt_int8_calibration_table_name"] == str(files["calibration.flatbuffers"].resolve())
    # the runtime's TensorRT options accept them (built without a GPU)
    from edgecnn.runtime.backends import ort_providers as P

    config = P.ProviderConfig(int8=True, gpu_name="test", cache_dir=tmp_path / "cache",
                              provider_options={"tensorrt": opts})
    built = dict(zip(*P.build_providers(P.resolve_providers("tensorrt", [P.TENSORRT, P.CUDA, P.CPU]), config),
                     strict=True))
    trt = built[P.TENSORRT]
    assert str(trt["trt_int8_enable"]).lower() in ("true", "1")
    assert trt["trt_int8_calibration_table_name"] == opts["trt_int8_calibration_table_name"]


# --------------------------------------------------------------------------- cached_export hook, CLI


def test_cli_quantize_json_and_errors(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgecnn.cli import main

    out = tmp_path / "cli.int8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main(["quantize", str(tiny), "-o", str(out), "--calib", "random:8", "--explain", "--tensorrt", "--json"])
    cap = capsys.readouterr()
    payload = json.loads(cap.out)
    assert "WARNING: random calibration" in cap.err
    assert payload["quantize"]["output"] == str(out) and out.is_file()
    assert payload["quantize"]["calibration_random"] is True
    rep = payload["report"]
    assert rep["top1_reference"] is None and rep["top1_agreement"] <= rep["top5_agreement"]
    assert "calibration" in rep["note"]
    assert payload["explain"] and Path(payload["tensorrt"]["files"]["calibration.flatbuffers"]).is_file()
    with pytest.raises(SystemExit) as e:
        main(["quantize", str(tiny), "-o", str(tmp_path / "x.onnx")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: static quantization needs calibration data") and "\n" not in err


def test_export_int8_and_cached_export_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("edgecnn.exporters.api")
    from edgecnn.cli import main
    from edgecnn.exporters.cache import cached_export

    main(["export", "lenet5", "-o", str(tmp_path / "lenet5.onnx"), "--int8", "--calib", "random:8", "--json"])
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert out["int8"]["quantize"]["output"] == str(tmp_path / "lenet5.int8.onnx")
    assert "QuantizeLinear" in ops(tmp_path / "lenet5.int8.onnx")
    assert out["int8"]["report"]["samples"] == 8 and "WARNING: random calibration" in cap.err
    monkeypatch.setenv("EDGECNN_CACHE_DIR", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = cached_export("lenet5", precision="int8", calib="random:8")
    assert path.is_file() and "int8" in path.name and "QuantizeLinear" in ops(path)
    assert cached_export("lenet5", precision="int8", calib="random:8") == path  # cached
