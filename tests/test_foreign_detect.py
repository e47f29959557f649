"""edgecnn.io_spec: what files without edgecnn metadata expect, detected or assumed (and said), and saved."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from foreign_models import (
    BAD_GRAPHS,
    keras_nhwc_model,
    symbolic_spatial_model,
    write_dynamo_style,
    zoo_style_model,
)
from onnx_factory import make_classifier_model
from PIL import Image

from edgecnn.errors import EdgecnnError
from edgecnn.io_spec import CAFFE_MEAN_BGR, detect, guess_layout, output_classes, read_labels, save_metadata
from edgecnn.metadata import IMAGENET_MEAN, IMAGENET_STD, decode
from edgecnn.normalize import normalize
from edgecnn.runtime import Engine, load_images, predict
from edgecnn.runtime.images import DEFAULT_CROP_FRACTION, PreprocessConfig


@pytest.mark.parametrize(("shape", "layout"), [
    (["N", 3, 224, 224], "NCHW"), ([1, 224, 224, 3], "NHWC"), (["unk__1", 28, 28, 1], "NHWC"),
    ([1, 1, 28, 28], "NCHW"), (["N", 3, "h", "w"], "NCHW"), (["N", "h", "w", 3], "NHWC"),
    ([1, 3, 3, 3], None), (["N", 4, 64, 64], None), ([1, 784], None),
])
def test_guess_layout(shape, layout):
    assert guess_layout(shape) == layout


def test_zoo_caffe2_file():
    spec = detect(normalize(zoo_style_model())[0])
    c = spec.config
    assert spec.input_name == "data_0" and spec.input_shape == (1, 3, 32, 32)
    assert c.layout == "NCHW" and c.input_size == (32, 32) and c.channels == 3
    assert c.bgr is True
    np.testing.assert_allclose(np.array(c.mean) * 255, CAFFE_MEAN_BGR, rtol=1e-12)
    np.testing.assert_allclose(np.array(c.std) * 255, [1, 1, 1], rtol=1e-12)
    assert spec.num_classes == 1000 and not spec.background_class and spec.imagenet_names
    assert any(d.startswith("layout NCHW from input 'data_0'") for d in spec.detected)
    assumed = " | ".join(spec.assumed)
    assert "channel order BGR" in assumed and "Caffe preprocessing" in assumed and "ImageNet-1k class names" in assumed
    assert all("\n" not in line for line in spec.lines())


def test_keras_nhwc_file():
    spec = detect(keras_nhwc_model())
    c = spec.config
    assert c.layout == "NHWC" and c.input_size == (32, 32) and not c.bgr
    assert c.mean == tuple(IMAGENET_MEAN) and c.std == tuple(IMAGENET_STD)
    assert c.sample_shape == (32, 32, 3)
    assert any("ImageNet preprocessing" in a for a in spec.assumed)  # the one-line notice of the default
    assert spec.input_shape[0] == "unk__42"


def test_tensorflow_1001_classes():
    spec = detect(keras_nhwc_model(classes=1001))
    assert spec.num_classes == 1001 and spec.background_class and spec.imagenet_names
    assert spec.config.mean == (0.5, 0.5, 0.5) and spec.config.std == (0.5, 0.5, 0.5)  # [-1, 1]
    assert any("background" in d for d in spec.detected)
    assert any("-1..1" in a for a in spec.assumed)
    assert spec.metadata()["num_classes"] == 1000 and spec.metadata()["background_class"] == 1


def test_edgecnn_export_needs_no_assumption():
    spec = detect(make_classifier_model(num_classes=1000))
    assert spec.assumed == () and spec.given == ()
    assert all("metadata" in d or "shape" in d for d in spec.detected)


def test_explicit_choices_win():
    model = keras_nhwc_model()
    spec = detect(model, bgr=True, input_range="0-255", crop_fraction=None)
    c = spec.config
    assert c.bgr and c.mean == (0.0,) * 3 and c.std == pytest.approx((1 / 255,) * 3) and c.crop_fraction is None
    assert spec.assumed == ("ImageNet-1k class names for 1000 classes (pass --labels FILE for others)",)
    spec = detect(model, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])  # 0-255 units
    np.testing.assert_allclose(spec.config.mean, IMAGENET_MEAN, atol=1e-6)
    np.testing.assert_allclose(spec.config.std, IMAGENET_STD, atol=1e-6)
    spec = detect(model, mean=[0.5], std=[0.25])  # one value for every channel
    assert spec.config.mean == (0.5,) * 3 and spec.config.std == (0.25,) * 3
    spec = detect(symbolic_spatial_model(), layout="nchw", size=(48, 40))
    assert spec.config.input_size == (48, 40) and "layout NCHW" in spec.given


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"size": 64}, r"--size 64x64 does not match input 'input_1:0' \[unk__42, 32, 32, 3\]"),
    ({"layout": "nchw"}, "has 32 channels in layout NCHW"),
    ({"layout": "chw"}, "unknown layout 'chw'"),
    ({"input_range": "0-100"}, "unknown input range '0-100'"),
    ({"input_range": "0-1", "mean": [0.5]}, "either --range or --mean/--std"),
    ({"mean": [0.1, 0.2]}, "--mean needs 1 or 3 values, got 2"),
    ({"labels": ["a", "b"]}, "the labels give 2 names but the model has 1000 outputs"),
])
def test_bad_choices_are_one_line(kwargs, match):
    with pytest.raises(EdgecnnError, match=match) as e:
        detect(keras_nhwc_model(), **kwargs)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("kind", "match"), [
    ("two_image_inputs", r"the model has 2 image inputs \(input \[batch, 3, 8, 8\], input_b \[batch, 3, 8, 8\]\)"),
    ("rank2_input", r"input 'x' has rank 2 \[N, 784\]; edgecnn runs image classifiers whose input is 4-D"),
    ("symbolic_spatial", r"input 'input' \[batch, 3, height, width\] has symbolic spatial dims; give the image "
                         r"size with --size HxW"),
])
def test_bad_graphs_are_one_line(kind, match):
    with pytest.raises(EdgecnnError, match=match) as e:
        detect(BAD_GRAPHS[kind]())
    assert "\n" not in str(e.value)


def test_unused_input_is_refused_before_normalising_and_fine_after():
    raw = zoo_style_model(unused_input=True)
    with pytest.raises(EdgecnnError, match="the model has 2 inputs"):
        detect(raw)
    assert detect(normalize(raw)[0]).input_name == "data_0"


def test_output_classes_shapes():
    assert output_classes(zoo_style_model(classes=10)) == 10           # (N, C, 1, 1)
    assert output_classes(keras_nhwc_model(classes=1001)) == 1001      # (N, C)
    model = make_classifier_model(with_metadata=False)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    dims[1].Clear()
    dims[1].dim_param = "classes"
    assert output_classes(model) is None


def test_labels_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("cat\ndog\n\n", encoding="utf-8")
    assert read_labels(path) == ("cat", "dog")
    model = make_classifier_model(with_metadata=False, num_classes=2)
    spec = detect(model, labels=path)
    assert spec.labels == ("cat", "dog") and not spec.imagenet_names and "2 labels" in spec.given
    # 1001 outputs with the 1000 ImageNet-style names: the background is dropped; 1001 names keep it
    names = [f"c{i}" for i in range(1000)]
    assert detect(keras_nhwc_model(classes=1001), labels=names).background_class
    assert not detect(keras_nhwc_model(classes=1001), labels=["bg", *names]).background_class
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(EdgecnnError, match="is empty"):
        read_labels(tmp_path / "empty.txt")
    with pytest.raises(EdgecnnError, match="labels file not found"):
        read_labels(tmp_path / "missing.txt")


def test_save_metadata_round_trip_and_runtime_uses_it(tmp_path):
    """The saved choices are what the runtime reads back: an NHWC file predicts with no flags afterwards."""
    model = keras_nhwc_model(classes=1001)
    spec = detect(model, crop_fraction=None)
    saved = save_metadata(model, spec)
    assert saved.graph == model.graph  # metadata only
    meta = decode({p.key: p.value for p in saved.metadata_props})
    assert meta["input_layout"] == "NHWC" and meta["channel_order"] == "rgb" and meta["crop_fraction"] is None
    assert meta["background_class"] == 1 and meta["class_names"] == "imagenet"
    again = detect(saved)
    assert again.config == spec.config and again.assumed == ()
    assert PreprocessConfig.from_metadata(meta, input_shape=list(spec.input_shape)) == spec.config

    path = tmp_path / "keras.onnx"
    onnx.save(saved, str(path))
    Image.new("RGB", (50, 40), (200, 30, 60)).save(tmp_path / "red.png")
    engine = Engine(path, "cpu", threads=1)
    assert engine.preprocess_config() == spec.config
    res = predict(engine, [tmp_path / "red.png"], top=3)[0]["predictions"]
    x = load_images([tmp_path / "red.png"], spec.config)
    assert x.shape == (1, 32, 32, 3)
    probs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input_1:0": x})[0][0]
    expected = probs[1:] / probs[1:].sum()  # background dropped, renormalised
    best = int(np.argmax(expected))
    assert res[0]["index"] == best and res[0]["probability"] == pytest.approx(float(expected[best]), rel=1e-5)
    assert res[0]["label"] != str(best)  # an ImageNet name


def test_engine_reads_nhwc_without_metadata():
    cfg = PreprocessConfig.from_metadata({}, input_shape=["unk__42", 32, 32, 3])
    assert cfg.layout == "NHWC" and cfg.channels == 3 and cfg.input_size == (32, 32)
    assert cfg.crop_fraction == DEFAULT_CROP_FRACTION and not cfg.bgr


def test_dynamo_external_data_detection(tmp_path):
    model = onnx.load(str(write_dynamo_style(tmp_path / "d.onnx")))
    spec = detect(model)
    assert spec.input_shape == ("s77", 3, 32, 32) and spec.num_classes == 10 and not spec.imagenet_names


def test_evaluate_and_compare_read_foreign_outputs(tmp_path):
    """(N, 1000, 1, 1) softmax outputs and 1001-class outputs reach the accuracy code as (N, 1000) scores."""
    from edgecnn.profiler.accuracy import compare_models, evaluate, run_batches

    zoo = tmp_path / "zoo.onnx"
    onnx.save(normalize(zoo_style_model(batch="N"))[0], str(zoo))
    tf = tmp_path / "tf.onnx"
    onnx.save(keras_nhwc_model(classes=1001), str(tf))
    x = np.random.default_rng(3).standard_normal((4, 3, 32, 32)).astype(np.float32)
    scores = run_batches(zoo, [x], provider="cpu", threads=1)
    assert scores.shape == (4, 1000)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)  # the file's own softmax, kept
    assert run_batches(tf, [x.transpose(0, 2, 3, 1)], provider="cpu", threads=1).shape == (4, 1000)

    data = tmp_path / "data"
    for cls, color in (("0", (250, 10, 10)), ("1", (10, 250, 10))):
        (data / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40, 36), tuple(c + 3 * i for c in color)).save(data / cls / f"{i}.png")
    rep = evaluate(zoo, data, provider="cpu", threads=1)
    assert rep.samples == 4 and rep.classes == 2 and 0.0 <= rep.top1 <= rep.top5 <= 1.0
    report = compare_models(tf, tf, data, provider="cpu")
    assert report.samples == 4 and report.top1_agreement == 1.0 and report.max_abs_error == 0.0
