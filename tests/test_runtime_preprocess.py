"""Preprocessing (hand-computed), metadata-driven configs, top-k/softmax and class names."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgecnn.errors import EdgecnnError
from edgecnn.metadata import IMAGENET_MEAN, IMAGENET_STD
from edgecnn.runtime import PreprocessConfig, class_names, imagenet_classes, load_images, preprocess, topk
from edgecnn.runtime.images import GRAY_MEAN, GRAY_STD
from edgecnn.runtime.postprocess import is_probability, softmax


def test_hand_computed_center_crop_and_normalize(tmp_path):
    # 2 rows x 4 columns; values are multiples of 51 so /255 gives 0.0, 0.2, ..., 1.0 exactly
    r = [[0, 51, 102, 153], [204, 255, 0, 51]]
    g = [[255] * 4, [255] * 4]
    b = [[255, 204, 153, 102], [51, 0, 255, 204]]
    img = Image.fromarray(np.stack([r, g, b], axis=-1).astype(np.uint8), "RGB")
    path = tmp_path / "tiny.png"
    img.save(path)
    cfg = PreprocessConfig(input_size=(2, 2), channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    assert cfg.resize == 2  # round(2 * 256 / 224): the shorter side already fits, no resampling
    out = preprocess(path, cfg)
    # center crop keeps columns 1..2; (x/255 - mean) / std
    expected = np.array([
        [[-1.2, -0.4], [2.0, -2.0]],   # R: [[.2, .4], [1, 0]] -> (x - .5) / .25
        [[1.0, 1.0], [1.0, 1.0]],      # G: 1 -> (1 - .5) / .5
        [[0.3, 0.1], [-0.5, 0.5]],     # B: [[.8, .6], [0, 1]] -> (x - .5) / 1
    ], dtype=np.float32)
    assert out.shape == (3, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_resize_shorter_side_and_crop_uniform():
    img = Image.new("RGB", (400, 300), (10, 20, 30))
    cfg = PreprocessConfig()  # 224, ImageNet mean/std
    assert cfg.resize == 256
    out = preprocess(img, cfg)
    assert out.shape == (3, 224, 224)
    expected = (np.array([10, 20, 30]) / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(out[:, 100, 100], expected, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 0, atol=1e-5)


@pytest.mark.parametrize(("size", "resize"), [(224, 256), (32, 37), (299, 342), (227, 259)])
def test_resize_rule(size, resize):
    assert PreprocessConfig(input_size=(size, size)).resize == resize


def test_crop_picks_center_after_resize():
    # left half black, right half white, landscape: the crop of a wide image is its middle
    arr = np.zeros((100, 300, 3), np.uint8)
    arr[:, 150:] = 255
    cfg = PreprocessConfig(input_size=(32, 32), mean=(0, 0, 0), std=(1, 1, 1))
    out = preprocess(Image.fromarray(arr), cfg)
    assert out.shape == (3, 32, 32)
    assert out[0, :, :14].max() < 0.05 and out[0, :, 18:].min() > 0.95


def test_grayscale_model(tmp_path):
    Image.new("RGB", (40, 50), (100, 150, 200)).save(tmp_path / "c.png")
    cfg = PreprocessConfig.from_metadata({"channels": 1, "input_size": [32, 32], "mean": [0.1307],
                                          "std": [0.3081]})
    out = load_images([tmp_path / "c.png"], cfg)
    assert out.shape == (1, 1, 32, 32)
    gray = 141  # ITU-R 601-2 luma of (100, 150, 200), as Pillow computes it
    np.testing.assert_allclose(out[0, 0], (gray / 255 - 0.1307) / 0.3081, atol=1e-5)


def test_config_from_metadata_and_defaults():
    cfg = PreprocessConfig.from_metadata({}, input_shape=["batch", 3, 299, 299])
    assert cfg.input_size == (299, 299) and cfg.mean == tuple(IMAGENET_MEAN)
    cfg = PreprocessConfig.from_metadata({}, input_shape=[1, 1, 28, 28])
    assert cfg.channels == 1 and cfg.mean == tuple(GRAY_MEAN) and cfg.std == tuple(GRAY_STD)
    assert PreprocessConfig.from_metadata({}).input_size == (224, 224)
    cfg = PreprocessConfig.from_metadata({"input_size": [64, 48], "channels": 3, "mean": [0.5] * 3,
                                          "std": [0.5] * 3, "io_dtype": "float16"})
    assert cfg.input_size == (64, 48) and cfg.dtype == "float16" and cfg.resize == 55
    assert preprocess(Image.new("RGB", (10, 10)), cfg).shape == (3, 64, 48)
    with pytest.raises(EdgecnnError, match="mean/std"):
        PreprocessConfig.from_metadata({"channels": 1, "mean": [0.5] * 3, "std": [0.5] * 3})


def test_image_errors(tmp_path):
    with pytest.raises(EdgecnnError, match="image not found"):
        load_images([tmp_path / "missing.jpg"])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    with pytest.raises(EdgecnnError, match="cannot read image .*notes.jpg") as ei:
        load_images([text])
    assert "\n" not in str(ei.value)
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(EdgecnnError, match="cannot read image .*cut.jpg"):
        load_images([tmp_path / "cut.jpg"])
    with pytest.raises(EdgecnnError, match="not a file"):
        load_images([tmp_path])
    with pytest.raises(EdgecnnError, match="no images"):
        load_images([])


def test_rgba_and_palette_images_become_rgb():
    for mode in ("RGBA", "P", "L", "CMYK"):
        assert preprocess(Image.new(mode, (30, 30)), PreprocessConfig(input_size=(16, 16))).shape == (3, 16, 16)


def test_topk_softmax_only_when_needed():
    logits = np.array([[1.0, 3.0, 2.0], [0.0, 0.0, 5.0]], np.float32)
    res = topk(logits, 2)
    p = softmax(logits)
    assert [r["index"] for r in res[0]] == [1, 2] and [r["index"] for r in res[1]] == [2, 0]
    assert res[0][0]["probability"] == pytest.approx(float(p[0, 1]))
    assert res[0][0]["rank"] == 1 and res[0][0]["label"] == "1"
    probs = np.array([[0.1, 0.7, 0.2]], np.float32)
    assert is_probability(probs) and not is_probability(logits)
    assert topk(probs, 1)[0][0]["probability"] == pytest.approx(0.7)  # not softmaxed twice
    named = topk(probs, 5, ["a", "b", "c"])[0]
    assert [r["label"] for r in named] == ["b", "c", "a"]  # k clipped to the class count


def test_topk_ranks_close_logits_by_score_not_by_rounded_probability():
    """An untrained net's logits (random mobilenet_v3_small: ~1e-10 apart) give float32 probabilities that tie."""
    logits = np.array([[3e-10, -1e-10, 5e-10, 1e-10] + [0.0] * 996], np.float32)
    assert len(set(softmax(logits)[0, :4].tolist())) == 1  # the probabilities tie ...
    assert [r["index"] for r in topk(logits, 4)[0]] == [2, 0, 3, 4]  # ... the ranking does not


def test_imagenet_class_names():
    names = imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and names[999] == "toilet tissue"
    assert class_names({}, 1000) == names
    assert class_names({"class_names": "imagenet"}, 1000) == names
    assert class_names({"class_names": ""}, 1000) is None
    assert class_names({}, 10) is None
