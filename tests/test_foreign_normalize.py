"""edgecnn.normalize on files in other exporters' styles: same outputs in ONNX Runtime, checker-clean, quantizable."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from foreign_models import keras_nhwc_model, symbolic_spatial_model, write_dynamo_style, zoo_style_model
from onnx import TensorProto, helper
from onnx_factory import make_classifier_model

from edgecnn.errors import EdgecnnError
from edgecnn.normalize import PER_CHANNEL_MIN_OPSET, QDQ_MIN_OPSET, default_opset, normalize

#: identical math, but version conversion and graph rewrites may reorder float sums
ATOL = 1e-5


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = _session(model)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _image_batch(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


CASES = {
    "zoo_ir3_opset9": (lambda: zoo_style_model(opset=9), (1, 3, 32, 32)),
    "zoo_ir3_opset8": (lambda: zoo_style_model(opset=8), (1, 3, 32, 32)),
    "zoo_ir3_opset7_unused_input": (lambda: zoo_style_model(opset=7, unused_input=True), (1, 3, 32, 32)),
    "keras_nhwc": (keras_nhwc_model, (2, 32, 32, 3)),
    "symbolic_spatial": (symbolic_spatial_model, (2, 3, 40, 24)),
}


@pytest.mark.parametrize("min_opset", [None, QDQ_MIN_OPSET, PER_CHANNEL_MIN_OPSET])
@pytest.mark.parametrize("case", list(CASES))
def test_normalize_keeps_outputs_and_passes_checker(case, min_opset):
    build, shape = CASES[case]
    model = build()
    x = _image_batch(shape)
    feeds_before = {i.name for i in _session(model).get_inputs()}
    before = _run(model, x) if len(feeds_before) == 1 else None
    out, notices = normalize(model, min_opset=min_opset)
    onnx.checker.check_model(out, full_check=True)
    assert out.ir_version >= 4
    assert default_opset(out) >= max(min_opset or 0, default_opset(model))
    sess = _session(out)
    assert len(sess.get_inputs()) == 1  # the image input only: no initializers, no unused input
    after = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    if before is None:  # the unused extra input: ORT needs a feed for it before normalising
        sess0 = _session(model)
        feeds = {i.name: (x if i.name == "data_0" else np.zeros([1], np.int64)) for i in sess0.get_inputs()
                 if i.name in ("data_0", "OC2_DUMMY_2")}
        before = sess0.run(None, feeds)[0]
    np.testing.assert_allclose(after, before, rtol=0, atol=ATOL)
    assert model.graph.input[0].name == out.graph.input[0].name  # the caller's model is not modified
    if case.startswith("zoo"):
        assert len(model.graph.input) > 1 and len(out.graph.input) == 1
        assert any("became constants" in n for n in notices)
        assert any("IR version 3 raised to 4" in n for n in notices)
        assert any("OC2_DUMMY" in n for n in notices)
    if "unused" in case:
        assert any(n == "dropped input no node reads: OC2_DUMMY_2." for n in notices)
    upgraded = [n for n in notices if "upgraded" in n]
    assert bool(upgraded) == (min_opset is not None and default_opset(model) < min_opset)
    # a second pass has nothing left to do
    again, notices2 = normalize(out, min_opset=min_opset)
    assert notices2 == [] and again == out


def test_edgecnn_export_style_is_untouched():
    model = make_classifier_model()
    out, notices = normalize(model, min_opset=PER_CHANNEL_MIN_OPSET)
    assert notices == []
    assert out == model
    assert out.metadata_props == model.metadata_props


def test_upgrade_keeps_metadata_and_producer():
    model = zoo_style_model(opset=9)
    helper.set_model_props(model, {"edgecnn.input_layout": "NCHW", "author": "zoo"})
    out, _ = normalize(model, min_opset=13)
    assert {p.key: p.value for p in out.metadata_props} == {"edgecnn.input_layout": "NCHW", "author": "zoo"}
    assert out.producer_name == "onnx-caffe2"


def test_dynamo_style_external_data(tmp_path):
    path = write_dynamo_style(tmp_path / "dyn.onnx")
    assert (tmp_path / "dyn.onnx.data").is_file()
    model = onnx.load(str(path))  # weights loaded from the side file
    out, notices = normalize(model, min_opset=13)
    assert notices == []  # opset 18, IR 10: nothing to change
    x = _image_batch((3, 3, 32, 32))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(_run(out, x), sess.run(None, {"input": x})[0], rtol=0, atol=ATOL)
    assert sess.get_inputs()[0].shape[0] == "s77"


def _with_node(op: str, domain: str = "", opset_extra: list | None = None) -> onnx.ModelProto:
    model = make_classifier_model(with_metadata=False)
    model.graph.node.append(helper.make_node(op, ["logits"], ["extra"], domain=domain))
    model.graph.output.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, None))
    model.opset_import.extend(opset_extra or [])
    return model


def test_unknown_operators_are_one_error_naming_them():
    with pytest.raises(EdgecnnError) as e:
        normalize(_with_node("FancyNorm", "ai.vendor", [helper.make_opsetid("ai.vendor", 1)]))
    msg = str(e.value)
    assert "ai.vendor::FancyNorm" in msg and "\n" not in msg
    with pytest.raises(EdgecnnError, match="NotAnOp"):
        normalize(_with_node("NotAnOp"))
    with pytest.raises(EdgecnnError, match=r"custom::Op \(domain 'custom' not imported\)"):
        normalize(_with_node("Op", "custom"))


def test_op_newer_than_the_files_opset_is_named():
    model = make_classifier_model(with_metadata=False)
    model.opset_import[0].version = 9
    model.graph.node.append(helper.make_node("GridSample", ["input", "input"], ["g"]))  # opset 16
    with pytest.raises(EdgecnnError, match=r"GridSample \(not defined at opset 9\)"):
        normalize(model)


def test_ort_contrib_and_local_functions_are_known():
    model = _with_node("Gelu", "com.microsoft", [helper.make_opsetid("com.microsoft", 1)])
    assert normalize(model).notices == []
    fn = helper.make_function("local.fn", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                              [helper.make_opsetid("", 17)])
    model = _with_node("Twice", "local.fn", [helper.make_opsetid("local.fn", 1)])
    model.functions.append(fn)
    out, notices = normalize(model)
    assert notices == []
    x = _image_batch((1, 3, 32, 32))
    logits, twice = _session(out).run(None, {"input": x})
    np.testing.assert_allclose(twice, 2 * logits, rtol=1e-6)


def _opset6_model(batch: int | str) -> onnx.ModelProto:
    model = make_classifier_model(with_metadata=False, batch=batch)
    model.opset_import[0].version = 6
    model.ir_version = 3
    return model


def test_opset_older_than_ort_runs_is_upgraded():
    # opset 6 is below what ONNX Runtime loads; the converter brings it to 7 (or higher if asked)
    model = _opset6_model(batch=2)
    out, notices = normalize(model)
    assert default_opset(out) == 7 and any("opset 6 upgraded to 7" in n for n in notices)
    onnx.checker.check_model(out)
    assert _run(out, _image_batch((2, 3, 32, 32))).shape == (2, 10)


def test_failed_upgrade_is_one_line():
    # onnx's Gemm 6 -> 7 adapter needs static shapes: a symbolic batch stops it
    with pytest.raises(EdgecnnError) as e:
        normalize(_opset6_model(batch="N"))
    msg = str(e.value)
    assert msg.startswith("cannot upgrade the model from opset 6 to 7") and "\n" not in msg
    assert "Re-export the model at opset 7 or newer." in msg


def test_quantize_static_per_channel_after_normalising(tmp_path):
    """The model-zoo failure of issue 13: ORT's QDQ quantizer on an IR 3 file whose initializers are inputs
    writes zero-point initializers the checker rejects. After normalize the result is checker-clean."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"data_0": _image_batch((1, 3, 32, 32), seed=s)} for s in range(8)])

        def get_next(self):  # noqa: ANN201
            return next(self.batches, None)

    src, notices = normalize(zoo_style_model(opset=9), min_opset=PER_CHANNEL_MIN_OPSET)
    assert notices
    fp32 = tmp_path / "zoo.onnx"
    int8 = tmp_path / "zoo.int8.onnx"
    onnx.save(src, str(fp32))
    quantize_static(str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    q = onnx.load(str(int8))
    onnx.checker.check_model(q, full_check=True)
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)
    assert any(n.op_type == "DequantizeLinear" and any(a.name == "axis" for a in n.attribute) for n in q.graph.node)
    sess = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    x = _image_batch((1, 3, 32, 32), seed=99)
    ref = _run(src, x)
    got = sess.run(None, {"data_0": x})[0]
    assert got.shape == ref.shape == (1, 1000, 1, 1)
    cos = float(np.dot(got.ravel(), ref.ravel()) / np.linalg.norm(got) / np.linalg.norm(ref))
    assert cos > 0.9  # softmax probabilities of a random 1000-class net: int8 noise, not a broken graph


def test_quantize_static_without_normalising_fails_the_checker(tmp_path):
    """The control for the test above: the same file quantized as it comes reproduces issue 13's error."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"data_0": _image_batch((1, 3, 32, 32), seed=s)} for s in range(2)])

        def get_next(self):  # noqa: ANN201
            return next(self.batches, None)

    raw = tmp_path / "raw.onnx"
    onnx.save(zoo_style_model(opset=9), str(raw))
    quantize_static(str(raw), str(tmp_path / "raw.int8.onnx"), Reader(), quant_format=QuantFormat.QDQ)
    with pytest.raises(onnx.checker.ValidationError, match="in initializer but not in graph input"):
        onnx.checker.check_model(onnx.load(str(tmp_path / "raw.int8.onnx")))
