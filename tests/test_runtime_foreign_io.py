"""Runtime IO for files and images users bring: 16-bit images, NHWC/BGR/no-crop preprocessing, and
classifier outputs shaped (N, C), (N, C, 1, 1), (N, 1, 1, C), as probabilities, or with a background class."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgecnn.errors import EdgecnnError
from edgecnn.runtime import PreprocessConfig, load_images, open_image, preprocess, topk
from edgecnn.runtime.images import to_8bit
from edgecnn.runtime.postprocess import class_names, class_scores, output_notice, softmax, squeeze_scores

# --------------------------------------------------------------------------- 16-bit images


def _gradient16() -> np.ndarray:
    """A 16-bit grayscale ramp over the full range (0 .. 65535), 8 rows x 256 columns."""
    row = np.linspace(0, 65535, 256).round().astype(np.uint16)
    return np.tile(row, (8, 1))


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_16bit_grayscale_is_scaled_not_clipped(tmp_path, fmt):
    arr = _gradient16()
    path = tmp_path / f"ramp16.{fmt}"
    Image.fromarray(arr).save(path)  # Pillow writes a 16-bit file from a uint16 array
    with Image.open(path) as raw:
        assert raw.mode in ("I;16", "I;16B", "I")  # what Pillow hands back for 16-bit files
    img = open_image(path, 3)
    assert img.mode == "RGB"
    got = np.asarray(img)[:, :, 0].astype(int)
    np.testing.assert_array_equal(got, np.rint(arr / 257.0).astype(int))  # 65535 -> 255, 257 -> 1
    white = float(np.mean(got >= 254))
    assert white < 0.01  # clipping made 99.6% of this ramp white
    assert got.min() == 0 and got.max() == 255


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_wide_modes_to_8bit(mode):
    arr = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    if mode == "I":
        img = Image.fromarray(arr.astype(np.int32), "I")
    else:
        img = Image.new(mode, (4, 1))
        img.putdata([int(v) for v in arr[0]])
    out = to_8bit(img)
    assert out.mode == "L"
    assert list(np.asarray(out)[0]) == [0, 1, 128, 255]


def test_32bit_values_outside_16_bits_are_one_error():
    img = Image.fromarray(np.array([[0, 70000]], dtype=np.int32), "I")
    with pytest.raises(EdgecnnError, match="values 0..70000") as e:
        to_8bit(img)
    assert "\n" not in str(e.value)


def test_16bit_grayscale_model_input(tmp_path):
    path = tmp_path / "cam.png"
    Image.fromarray(np.full((20, 20), 32896, np.uint16)).save(path)  # mid gray in 16 bits
    out = preprocess(path, PreprocessConfig(input_size=(8, 8), channels=1, mean=(0.0,), std=(1.0,)))
    np.testing.assert_allclose(out, 128 / 255, atol=1e-6)


def test_8bit_modes_are_unchanged_by_the_16bit_path():
    for mode in ("RGB", "RGBA", "P", "L", "CMYK", "LA", "1"):
        img = Image.new(mode, (4, 4))
        assert to_8bit(img) is img


# --------------------------------------------------------------------------- layout, channel order, crop


def _rgb_image() -> Image.Image:
    arr = np.zeros((4, 4, 3), np.uint8)
    arr[..., 0], arr[..., 1], arr[..., 2] = 255, 102, 0  # R=1.0, G=0.4, B=0.0
    return Image.fromarray(arr, "RGB")


def test_nhwc_and_bgr():
    base = PreprocessConfig(input_size=(4, 4), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    nchw = preprocess(_rgb_image(), base)
    assert nchw.shape == (3, 4, 4)
    nhwc = preprocess(_rgb_image(), PreprocessConfig(**{**base.__dict__, "layout": "NHWC"}))
    assert nhwc.shape == (4, 4, 3) and nhwc.flags.c_contiguous
    np.testing.assert_array_equal(nhwc, nchw.transpose(1, 2, 0))
    bgr = preprocess(_rgb_image(), PreprocessConfig(**{**base.__dict__, "bgr": True}))
    np.testing.assert_allclose(bgr[:, 0, 0], [0.0, 0.4, 1.0], atol=1e-6)  # B, G, R
    # mean/std are in the model's channel order: Caffe's BGR mean on 0-255
    caffe = PreprocessConfig(input_size=(4, 4), mean=(103.939 / 255, 116.779 / 255, 123.68 / 255),
                             std=(1 / 255,) * 3, bgr=True)
    np.testing.assert_allclose(preprocess(_rgb_image(), caffe)[:, 0, 0], [0 - 103.939, 102 - 116.779, 255 - 123.68],
                               atol=1e-3)
    batch = load_images([_rgb_image(), _rgb_image()], PreprocessConfig(**{**base.__dict__, "layout": "NHWC"}))
    assert batch.shape == (2, 4, 4, 3)


def test_resize_without_crop_keeps_the_whole_image():
    arr = np.zeros((10, 40, 3), np.uint8)
    arr[:, :5] = 255  # a white strip at the left edge that a center crop would cut off
    cfg = PreprocessConfig(input_size=(8, 8), mean=(0, 0, 0), std=(1, 1, 1), crop_fraction=None)
    out = preprocess(Image.fromarray(arr), cfg)
    assert out.shape == (3, 8, 8) and out[0, :, 0].min() > 0.5  # bilinear blends the 5-px strip
    cropped = preprocess(Image.fromarray(arr), PreprocessConfig(input_size=(8, 8), mean=(0, 0, 0), std=(1, 1, 1)))
    assert cropped[0].max() == 0.0


def test_bad_config_values():
    with pytest.raises(EdgecnnError, match="unknown input layout 'HWC'"):
        PreprocessConfig(layout="HWC")
    with pytest.raises(EdgecnnError, match="crop fraction must be in"):
        PreprocessConfig(crop_fraction=1.5)


def test_from_metadata_reads_the_foreign_keys():
    cfg = PreprocessConfig.from_metadata({"input_layout": "NHWC", "channel_order": "bgr", "crop_fraction": None},
                                         input_shape=[1, 299, 299, 3])
    assert (cfg.layout, cfg.bgr, cfg.crop_fraction, cfg.input_size, cfg.channels) == ("NHWC", True, None,
                                                                                      (299, 299), 3)


# --------------------------------------------------------------------------- outputs


def test_output_shapes_are_squeezed():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 5)).astype(np.float32)
    for shaped in (logits, logits[:, :, None, None], logits[:, None, None, :]):
        np.testing.assert_array_equal(squeeze_scores(shaped), logits)
        assert [r["index"] for r in topk(shaped, 5)[0]] == list(np.argsort(-logits[0]))
    with pytest.raises(EdgecnnError, match=r"output of shape \[2, 5, 3, 3\] is not a classifier's"):
        squeeze_scores(rng.standard_normal((2, 5, 3, 3)))


def test_probabilities_are_not_softmaxed_twice():
    probs = softmax(np.random.default_rng(1).standard_normal((3, 7)))[:, :, None, None]
    res = topk(probs, 1)
    for row, r in zip(probs[:, :, 0, 0], res, strict=True):
        assert r[0]["probability"] == pytest.approx(float(row.max()), rel=1e-6)


def test_background_class_dropped():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((2, 1001)).astype(np.float32)
    out = class_scores(logits)
    np.testing.assert_array_equal(out, logits[:, 1:])
    probs = softmax(logits)
    got = class_scores(probs[:, :, None, None])
    assert got.shape == (2, 1000)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)  # renormalised: still probabilities
    np.testing.assert_allclose(got, softmax(logits[:, 1:]), rtol=1e-4, atol=1e-9)
    assert class_names({}, got.shape[1]) is not None  # ImageNet names now line up
    assert class_scores(logits, {"background_class": 0}).shape == (2, 1001)  # metadata says no background
    assert class_scores(rng.standard_normal((2, 11)), {"background_class": 1}).shape == (2, 10)
    assert "background" in output_notice({}, 1001)
    assert output_notice({}, 1000) is None


def test_labels_metadata_names_the_classes():
    assert class_names({"labels": ["cat", "dog"]}, 2) == ("cat", "dog")
    assert class_names({"labels": ["cat", "dog"]}, 3) is None
