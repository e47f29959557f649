"""Every command on every kind of file users bring (issue 13): each answers as ONNX Runtime does on the file
as it is, says what it normalised and assumed, and refuses bad files in one line before any option."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from cli_helpers import run_cli
from foreign_models import (
    BAD_FILES,
    BAD_GRAPHS,
    keras_nhwc_model,
    symbolic_spatial_model,
    write_dynamo_style,
    zoo_style_model,
)
from onnx import numpy_helper
from onnx_factory import make_classifier_model
from PIL import Image

from edgecnn.cli import cli
from edgecnn.io_spec import CAFFE_MEAN_BGR
from edgecnn.metadata import IMAGENET_MEAN, IMAGENET_STD
from edgecnn.runtime import PreprocessConfig, load_images
from edgecnn.runtime.postprocess import class_scores, to_probabilities

#: same weights, same math; the normaliser and ORT's graph optimizations may reorder float sums
ATOL = 1e-5
IMAGENET = {"mean": tuple(IMAGENET_MEAN), "std": tuple(IMAGENET_STD)}
CAFFE = {"mean": tuple(v / 255 for v in CAFFE_MEAN_BGR), "std": (1 / 255,) * 3, "bgr": True}


def _save(model: onnx.ModelProto) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        onnx.save(model, str(path))
        return path

    return write


def _caffe_scaled(model: onnx.ModelProto) -> onnx.ModelProto:
    """Scale the first conv for 0-255 Caffe inputs, so the softmax does not saturate and a wrong channel
    order or mean shows in the probabilities."""
    for t in model.graph.initializer:
        if t.name == "conv_w_0":
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) / 64, t.name))
    return model


#: kind -> (writer(path), extra CLI options, the preprocessing the file needs, written out independently)
KINDS: dict[str, tuple[Callable[[Path], Path], tuple[str, ...], PreprocessConfig]] = {
    "zoo_ir3_opset7": (_save(_caffe_scaled(zoo_style_model(opset=7, classes=10))), (),
                       PreprocessConfig(input_size=(32, 32), **CAFFE)),
    "zoo_unused_input_opset9": (_save(_caffe_scaled(zoo_style_model(opset=9, classes=10, unused_input=True))), (),
                                PreprocessConfig(input_size=(32, 32), **CAFFE)),
    "keras_nhwc": (_save(keras_nhwc_model(classes=10)), (),
                   PreprocessConfig(input_size=(32, 32), layout="NHWC", **IMAGENET)),
    "dynamo_external_data": (lambda p: write_dynamo_style(p, classes=10), (),
                             PreprocessConfig(input_size=(32, 32), **IMAGENET)),
    "batch_named_N": (_save(make_classifier_model(with_metadata=False, batch="N")), (),
                      PreprocessConfig(input_size=(32, 32), **IMAGENET)),
    "symbolic_spatial": (_save(symbolic_spatial_model()), ("--size", "24x24"),
                         PreprocessConfig(input_size=(24, 24), **IMAGENET)),
    "tf_slim_1001_classes": (_save(make_classifier_model(with_metadata=False, num_classes=1001)), (),
                             PreprocessConfig(input_size=(32, 32), mean=(0.5,) * 3, std=(0.5,) * 3)),
}
#: notices each kind must print (substrings of 'note:' lines)
NOTICES = {
    "zoo_ir3_opset7": ["initializers were also listed as graph inputs", "IR version 3 raised to 4",
                       "assumed channel order BGR"],
    "zoo_unused_input_opset9": ["dropped input no node reads: OC2_DUMMY_2", "assumed Caffe preprocessing"],
    "keras_nhwc": ["assumed ImageNet preprocessing"],
    "dynamo_external_data": ["assumed ImageNet preprocessing"],
    "batch_named_N": ["assumed ImageNet preprocessing"],
    "symbolic_spatial": ["symbolic spatial dims of input 'input' fixed to the chosen size (height=24, width=24)"],
    "tf_slim_1001_classes": ["assumed input range -1..1", "assumed ImageNet-1k class names"],
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("foreign")
    out = {}
    for kind, (write, _, _) in KINDS.items():
        (folder / kind).mkdir()
        out[kind] = write(folder / kind / f"{kind}.onnx")
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageFolder: classes 0 and 1, three RGB images each, of a size no model takes (48 x 40)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(7)
    for c in ("0", "1"):
        (root / c).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def _reference(path: Path, paths: list[Path], config: PreprocessConfig) -> np.ndarray:
    """Class probabilities from ONNX Runtime on the file as it is (extra inputs fed zeros)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inits = set() if path.suffix == ".ort" else {
        t.name for t in onnx.load(str(path), load_external_data=False).graph.initializer}
    x = load_images(paths, config)
    feeds: dict[str, Any] = {}
    for i in sess.get_inputs():
        if i.name in inits:
            continue
        if len(i.shape) == 4:
            feeds[i.name] = x
        else:
            feeds[i.name] = np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.int64)
    outs = [sess.run(None, {k: v[j:j + 1] if v is x else v for k, v in feeds.items()})[0] for j in range(len(x))]
    return to_probabilities(class_scores(np.concatenate(outs)))


def _cli(capsys: pytest.CaptureFixture, kind: str, *args: Any) -> tuple[str, str]:
    code, out, err = run_cli(capsys, *args, *KINDS[kind][1])
    assert code == 0, err
    return out, err


def _image_paths(images: Path) -> list[Path]:
    return sorted(images.rglob("*.png"))


# --------------------------------------------------------------------------- every command, every kind


@pytest.mark.parametrize("kind", list(KINDS))
def test_predict_agrees_with_ort_on_the_file_and_says_what_it_assumed(capsys, files, images, kind):
    paths = _image_paths(images)[:3]
    out, err = _cli(capsys, kind, "predict", files[kind], *paths, "-k", "3", "--json")
    got = json.loads(out)
    ref = _reference(files[kind], paths, KINDS[kind][2])
    for row, probs in zip(got["results"], ref, strict=True):
        best = np.argsort(-probs, kind="stable")[:3]
        assert [p["index"] for p in row["predictions"]] == best.tolist()
        np.testing.assert_allclose([p["probability"] for p in row["predictions"]], probs[best], atol=ATOL)
    assert got["model"] == str(files[kind])
    notes = [line.removeprefix("note: ") for line in err.splitlines() if line.startswith("note: ")]
    assert notes == got["notices"]  # once, on stderr, and in the JSON
    for text in NOTICES[kind]:
        assert any(text in n for n in notes), (text, notes)


@pytest.mark.parametrize("kind", list(KINDS))
def test_inspect_shows_detected_and_assumed(capsys, files, kind):
    out, _ = _cli(capsys, kind, "inspect", files[kind])
    assert "detected: layout" in out and "metadata: none from edgecnn (a foreign file)" in out
    assert ("given: input size 24x24" if kind == "symbolic_spatial" else "detected: input size 32x32") in out
    assert ("normalised when run:" in out) == kind.startswith("zoo") or kind == "symbolic_spatial"


@pytest.mark.parametrize("kind", list(KINDS))
def test_profile_counts_the_macs(capsys, files, kind):
    got = json.loads(_cli(capsys, kind, "profile", files[kind], "--json")[0])
    size = 24 if kind == "symbolic_spatial" else 32
    conv = 8 * 3 * 3 * 3 * size * size  # HIDDEN=8 filters of 3x3x3 at every pixel, then the classifier
    classes = 1001 if "1001" in kind else 10
    assert got["totals"]["macs"] == conv + 8 * classes
    assert got["notices"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_bench_runs(capsys, files, kind):
    sizes = [1] if kind.startswith("zoo") else [1, 2]  # model-zoo files have a fixed batch of 1
    got = json.loads(_cli(capsys, kind, "bench", files[kind], "--iters", "3", "--warmup", "1", "--batch",
                          ",".join(map(str, sizes)), "--peak-gflops", "100", "--json")[0])
    batches = got["batches"]
    assert [b["batch"] for b in batches] == sizes and all(b["iters"] == 3 for b in batches)
    assert all(b["latency_ms"]["p50"] > 0 for b in batches)


@pytest.mark.parametrize("kind", list(KINDS))
def test_evaluate_matches_ort_accuracy(capsys, files, images, kind):
    got = json.loads(_cli(capsys, kind, "evaluate", files[kind], "--data", images, "--json")[0])
    paths = _image_paths(images)
    labels = np.array([int(p.parent.name) for p in paths])
    ref = _reference(files[kind], paths, KINDS[kind][2])
    assert got["samples"] == 6 and got["model"] == str(files[kind])
    assert got["top1"] == pytest.approx(float(np.mean(ref.argmax(1) == labels)))


@pytest.mark.parametrize("kind", list(KINDS))
def test_quantize_is_checker_clean_and_compared_with_fp32(capsys, files, kind, tmp_path):
    out = tmp_path / "q.int8.onnx"
    got = json.loads(_cli(capsys, kind, "quantize", files[kind], "--calib", "random:4", "-o", out, "--json")[0])
    model = onnx.load(str(out))
    onnx.checker.check_model(model)  # the model-zoo zero-point error is gone
    assert model.ir_version >= 4 and {i.domain or "": i.version for i in model.opset_import}[""] >= 13
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) >= 2
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    shape = [1 if not isinstance(d, int) else d for d in sess.get_inputs()[0].shape]
    assert sess.run(None, {sess.get_inputs()[0].name: np.zeros(shape, np.float32)})[0].shape[0] == 1
    rep = got["report"]
    assert not rep["labelled"] and 0 <= rep["top1_agreement"] <= 1 and 0.5 < rep["cosine_mean"] <= 1.0 + 1e-6
    if kind.startswith("zoo") and "opset7" in kind:
        assert any("opset 7 upgraded to 13" in n for n in got["notices"])


@pytest.mark.parametrize("kind", list(KINDS))
def test_triton_repository_runs_the_same_model(capsys, files, images, kind, tmp_path):
    got = json.loads(_cli(capsys, kind, "triton", files[kind], tmp_path / "repo", "--triton-provider", "cpu",
                          "--json")[0])
    model_file = Path(got["model_file"])
    onnx.checker.check_model(str(model_file))
    paths = _image_paths(images)[:2]
    np.testing.assert_allclose(_reference(model_file, paths, KINDS[kind][2]),
                               _reference(files[kind], paths, KINDS[kind][2]), atol=ATOL)
    assert "platform: \"onnxruntime_onnx\"" in got["config"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_batch_predict_agrees_with_ort(capsys, files, images, kind, tmp_path):
    out = tmp_path / "r.jsonl"
    _cli(capsys, kind, "batch-predict", files[kind], images, "-o", out, "--no-progress", "-k", "2")
    rows = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
    paths = _image_paths(images)
    ref = _reference(files[kind], paths, KINDS[kind][2])
    for p, probs in zip(paths, ref, strict=True):
        row = rows[f"{p.parent.name}/{p.name}"]
        assert row["classes"][0] == int(np.argmax(probs))
        np.testing.assert_allclose(row["probabilities"][0], probs.max(), atol=ATOL)


@pytest.mark.parametrize("kind", list(KINDS))
def test_convert_to_ort_format(capsys, files, images, kind, tmp_path):
    got = json.loads(_cli(capsys, kind, "convert", files[kind], "-o", tmp_path, "--json")[0])
    assert Path(got["ort"]) == tmp_path / f"{kind}.ort"
    assert "ai.onnx;" in Path(got["config"]).read_text()
    paths = _image_paths(images)[:2]
    np.testing.assert_allclose(_reference(Path(got["ort"]), paths, KINDS[kind][2]),
                               _reference(files[kind], paths, KINDS[kind][2]), atol=ATOL)


# --------------------------------------------------------------------------- flags and saved choices


def test_preprocessing_options_are_one_group():
    declaring = {name for name, cmd in cli.commands.items() if any("--size" in p.opts for p in cmd.params)}
    assert declaring == {"predict", "evaluate", "bench", "profile", "quantize", "batch-predict", "optimize",
                         "triton", "inspect", "convert", "bundle"}
    helps = {name: [p.help for p in cli.commands[name].params if p.name in ("layout", "size", "crop")]
             for name in declaring}
    assert len({tuple(h) for h in helps.values()}) == 1  # defined once: same help everywhere


@pytest.mark.parametrize(("args", "message"), [
    (("--size", "0"), "--size takes HxW or N"), (("--crop", "2"), "--crop takes a fraction"),
    (("--mean", "a,b"), "--mean takes one number"), (("--range", "0-2"), "--range: '0-2' is not one of"),
    (("--layout", "chw"), "--layout: 'chw' is not one of"), (("--mean", "1,2"), "--mean needs 1 or 3 values"),
])
def test_bad_preprocessing_options_are_one_line(capsys, files, args, message):
    code, _, err = run_cli(capsys, "predict", files["keras_nhwc"], "x.png", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_flags_change_the_preprocessing_and_saved_metadata_replaces_them(capsys, files, images, tmp_path):
    src, paths = files["keras_nhwc"], _image_paths(images)[:2]
    flags = ("--bgr", "--range", "-1-1", "--crop", "none")
    config = PreprocessConfig(input_size=(32, 32), layout="NHWC", mean=(0.5,) * 3, std=(0.5,) * 3, bgr=True,
                              crop_fraction=None)
    code, out, _ = run_cli(capsys, "predict", src, *paths, "-k", "1", "--json", *flags)
    first = [r["predictions"][0] for r in json.loads(out)["results"]]
    ref = _reference(src, paths, config)
    assert [p["index"] for p in first] == ref.argmax(1).tolist()
    np.testing.assert_allclose([p["probability"] for p in first], ref.max(1), atol=ATOL)

    code, _, err = run_cli(capsys, "inspect", src, "--save-metadata", *flags)
    assert code == 2 and "in place only with --force" in err
    saved = tmp_path / "keras.edgecnn.onnx"
    code, out, _ = run_cli(capsys, "inspect", src, "--save-metadata", "-o", saved, *flags)
    assert code == 0 and f"wrote the choices above into {saved}" in out
    code, out, err = run_cli(capsys, "inspect", saved)
    assert "assumed: ImageNet preprocessing" not in out and "channel order BGR (file metadata)" in out
    code, out, err = run_cli(capsys, "predict", saved, *paths, "-k", "1", "--json")  # no flags needed now
    assert [r["predictions"][0] for r in json.loads(out)["results"]] == first
    assert not any("preprocessing" in n for n in json.loads(out)["notices"])


def test_labels_file_names_the_classes(capsys, files, images, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"thing {i}" for i in range(10)) + "\n")
    code, out, _ = run_cli(capsys, "predict", files["batch_named_N"], _image_paths(images)[0], "--labels", labels,
                           "--json")
    pred = json.loads(out)["results"][0]["predictions"][0]
    assert code == 0 and pred["label"] == f"thing {pred['index']}"


# --------------------------------------------------------------------------- bad files


#: command -> arguments after the model file (valid, so that only the file can be wrong)
def _command_args(images: Path, tmp: Path) -> dict[str, tuple[Any, ...]]:
    return {
        "inspect": (), "profile": (), "bench": ("--iters", "1", "--warmup", "0", "--peak-gflops", "1"),
        "predict": (next(images.rglob("*.png")),), "evaluate": ("--data", images),
        "quantize": ("-o", tmp / "q.onnx"),  # no --calib: the file is named first all the same
        "triton": (tmp / "repo",), "batch-predict": (images, "-o", tmp / "r.jsonl"), "convert": ("-o", tmp),
    }


COMMANDS = ["inspect", "profile", "bench", "predict", "evaluate", "quantize", "triton", "batch-predict", "convert"]
GRAPH_MESSAGES = {"two_image_inputs": "2 image inputs", "rank2_input": "has rank 2",
                  "symbolic_spatial": "symbolic spatial dims; give the image size with --size"}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    out = {}
    for kind, write in BAD_FILES.items():
        (folder / kind).mkdir()
        out[kind] = write(folder / kind / f"{kind}.onnx")
    for kind, make in BAD_GRAPHS.items():
        out[kind] = _save(make())(folder / f"{kind}.onnx")
    return out


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_files_are_one_line_before_any_option(capsys, bad_files, images, tmp_path, command):
    for kind, path in bad_files.items():
        code, out, err = run_cli(capsys, command, path, *_command_args(images, tmp_path)[command])
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (kind, err)
        assert "Traceback" not in err and out == ""
        assert (str(path) in lines[0] or path.name in lines[0]) if kind in BAD_FILES \
            else GRAPH_MESSAGES[kind] in lines[0], (kind, lines[0])
    assert not (tmp_path / "q.onnx").exists() and not (tmp_path / "repo").exists()


def test_evaluate_int8_against_the_foreign_fp32_file(capsys, files, images, tmp_path):
    src, q = files["zoo_ir3_opset7"], tmp_path / "zoo.int8.onnx"
    _cli(capsys, "zoo_ir3_opset7", "quantize", src, "--calib", images, "-o", q, "--no-report")
    out, err = _cli(capsys, "zoo_ir3_opset7", "evaluate", q, "--data", images, "--reference", src, "--json")
    cmp = json.loads(out)["comparison"]
    assert cmp["samples"] == 6 and cmp["labelled"] and cmp["cosine_mean"] > 0.9
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == len(set(notes)) and all(n.startswith("note: reference: ") for n in notes), notes
