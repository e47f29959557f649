"""The policies behind the bad-input matrix, one function at a time: paths (edgecnn.paths), outputs (edgecnn.outputs,
edgecnn._io), the metadata schema (edgecnn.metadata), the pixel budget (edgecnn.runtime.images), bad images in
folders (edgecnn.runtime.datasets) and printable text (edgecnn.tables.printable)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecnn import metadata as M
from edgecnn import onnxfile, paths
from edgecnn._io import atomic_path, atomic_write_bytes
from edgecnn.errors import EdgecnnError
from edgecnn.outputs import plain_name, plan_output, refuse_inputs
from edgecnn.tables import format_table, printable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bad_inputs import (  # noqa: E402
    image_folder,
    write_png_bomb,
    write_subgraph_data,
    write_symlinked_data,
    write_truncated_image,
)
from onnx_factory import make_classifier_model  # noqa: E402

# --------------------------------------------------------------------------- paths


def test_symlinked_external_data_is_refused_with_tensor_and_path(tmp_path: Path) -> None:
    model_path = write_symlinked_data(tmp_path)
    with pytest.raises(EdgecnnError, match=r"tensor '\w+': external data 'w.data' resolves to .*secret.data, outside"):
        onnxfile.open_model(model_path, load_data=False)


def test_symlink_inside_the_folder_is_allowed(tmp_path: Path) -> None:
    model = make_classifier_model()
    (tmp_path / "m").mkdir()
    onnx.save_model(model, str(tmp_path / "m" / "model.onnx"), save_as_external_data=True, location="real.data",
                    size_threshold=0)
    os.symlink("real.data", tmp_path / "m" / "w.data")
    refs = paths.external_data(onnx.load(str(tmp_path / "m" / "model.onnx"), load_external_data=False),
                               tmp_path / "m")
    assert [r.location for r in refs] == ["real.data"]
    assert paths.resolve_inside(tmp_path / "m", "w.data", "t") == (tmp_path / "m" / "real.data").resolve()


def test_external_data_in_a_subgraph_is_checked(tmp_path: Path) -> None:
    model_path = write_subgraph_data(tmp_path)
    with pytest.raises(EdgecnnError, match=r"tensor 'bias_ext': external data location '\.\./secret.data'"):
        onnxfile.open_model(model_path)
    model = onnx.load(str(model_path), load_external_data=False)
    assert onnxfile.external_data_files(model) == ["../secret.data"]  # listed, subgraphs included


@pytest.mark.parametrize("location", ["/etc/passwd", "../x", "a/../../x", ""])
def test_bad_locations(tmp_path: Path, location: str) -> None:
    with pytest.raises(EdgecnnError, match="tensor 'w'"):
        paths.resolve_inside(tmp_path, location, "w")


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("name", ["../x", "/abs/x", "a/b", "a\\b", "..", ".", "", "x\x1b[2J"])
def test_plain_name_refuses_paths(name: str) -> None:
    with pytest.raises(EdgecnnError, match="plain name") as e:
        plain_name(name)
    assert "\x1b" not in str(e.value)


def test_plain_name_accepts_names() -> None:
    assert plain_name("resnet50-v1.5_int8") == "resnet50-v1.5_int8"


def test_input_is_never_the_output_through_a_link(tmp_path: Path) -> None:
    src = tmp_path / "mine.onnx"
    src.write_bytes(b"x")
    os.symlink(src, tmp_path / "alias.onnx")
    with pytest.raises(EdgecnnError, match="is the input file"):
        plan_output(tmp_path / "alias.onnx", "x.onnx", force=True, inputs=[src])
    refuse_inputs(tmp_path / "other.onnx", [src])  # a different file is fine


def test_existing_output_needs_force_and_folder_is_created_on_write(tmp_path: Path) -> None:
    (tmp_path / "a.onnx").write_bytes(b"x")
    with pytest.raises(EdgecnnError, match="--force"):
        plan_output(tmp_path / "a.onnx", "a.onnx")
    target = plan_output(f"{tmp_path}/new/", "b.onnx")
    assert target == tmp_path / "new" / "b.onnx" and not (tmp_path / "new").exists()
    atomic_write_bytes(target, b"y")
    assert target.read_bytes() == b"y"


def test_umask_mode_and_force_keeps_the_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "new.bin", b"x")
        assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o640
        os.chmod(tmp_path / "new.bin", 0o604)
        atomic_write_bytes(tmp_path / "new.bin", b"y")
        assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o604
    finally:
        os.umask(old)


def test_exclusive_publish_loses_the_race_cleanly(tmp_path: Path) -> None:
    """Two writers planned the same new file; the second to publish is refused and leaves the first one's file."""
    target = tmp_path / "model.onnx"
    with pytest.raises(EdgecnnError, match="appeared while this run was writing it"):
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_bytes(b"second")
            target.write_bytes(b"first")  # the other export finished meanwhile
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_unwritable_target_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(EdgecnnError, match="cannot write .*afile/x.bin") as e:
        atomic_write_bytes(tmp_path / "afile" / "x.bin", b"x")
    assert "\n" not in str(e.value)
    with pytest.raises(EdgecnnError, match="is a file"):
        plan_output(tmp_path / "afile" / "x.bin", "x.bin")


# --------------------------------------------------------------------------- metadata schema


@pytest.mark.parametrize("key, value, says", [
    ("input_size", [100000, 100000], "1..16384"),
    ("input_size", [0, 5], "1..16384"),
    ("input_size", "abc", "two integers"),
    ("mean", "abc", "numbers"),
    ("mean", [float("inf"), 0, 0], "finite"),
    ("std", {"a": 1}, "numbers"),
    ("std", [0.0, 0.2, 0.2], "> 0"),
    ("std", [float("nan")] * 3, "finite"),
    ("labels", ["x"] * 100_001, "100,000"),
    ("labels", "cat", "list of class names"),
    ("crop_fraction", 2, "(0, 1]"),
    ("channels", 7, "1 (grayscale) or 3"),
    ("io_dtype", "complex128", "float32"),
    ("num_classes", -1, "integer"),
])
def test_schema_names_the_key(key: str, value: object, says: str) -> None:
    assert says in M.problems({key: value})[key]
    with pytest.raises(EdgecnnError, match=f"invalid metadata edgecnn.{key}: ") as e:
        M.validate({key: value})
    assert says in str(e.value)


def test_schema_accepts_every_export_value() -> None:
    meta = M.decode({p.key: p.value for p in make_classifier_model(metadata={"labels": ["a"] * 10}).metadata_props})
    assert M.problems(meta) == {}
    assert M.validate({"input_size": [32, 32]}, fixed_size=(32, 32))
    with pytest.raises(EdgecnnError, match="fixed at 32x32"):
        M.validate({"input_size": [64, 64]}, fixed_size=(32, 32))


def test_options_go_through_the_same_schema() -> None:
    from edgecnn.io_spec import detect

    model = make_classifier_model(with_metadata=False)
    for kw, says in (({"std": [0.0]}, "--std"), ({"std": [float("nan")]}, "--std"),
                     ({"mean": [float("inf")]}, "--mean")):
        with pytest.raises(EdgecnnError, match=says):
            detect(model, **kw)
    symbolic = make_classifier_model(with_metadata=False, size=("h", "w"))  # type: ignore[arg-type]
    with pytest.raises(EdgecnnError, match="--size: each side must be 1..16384"):
        detect(symbolic, size=100000)


def test_preprocess_config_refuses_zero_std() -> None:
    from edgecnn.runtime.images import PreprocessConfig

    with pytest.raises(EdgecnnError, match="std"):
        PreprocessConfig(std=(0.0, 1.0, 1.0))


# --------------------------------------------------------------------------- images


def test_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    import resource

    from edgecnn.runtime.images import open_image

    bomb = write_png_bomb(tmp_path / "b.png", 10000, 10000)  # between 1x and 2x Pillow's limit
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(EdgecnnError, match=r"b.png declares 10000x10000 = 100,000,000 pixels, over the "):
        open_image(bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB: nothing decoded


def test_pixel_budget_follows_pil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from edgecnn.runtime.images import open_image

    write_image = sys.modules["bad_inputs"].write_image

    img = write_image(tmp_path / "a.png", size=(40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(EdgecnnError, match="40x40 = 1,600 pixels, over the 1,000-pixel limit"):
        open_image(img)


def test_bad_images_in_a_folder_are_skipped_or_strict(tmp_path: Path) -> None:
    from edgecnn.runtime.datasets import SkippedImagesWarning, list_images, load_image_folder, strict_images

    root = image_folder(tmp_path / "imgs", n=3, bad=write_truncated_image)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = load_image_folder(root)
    assert len(folder) == 6
    msgs = [str(w.message) for w in caught if issubclass(w.category, SkippedImagesWarning)]
    assert len(msgs) == 1 and msgs[0].startswith("skipped 1 of 7 images") and "zz_bad.png" in msgs[0]
    with strict_images(), pytest.raises(EdgecnnError, match="zz_bad.png"):
        list_images(root)
    with pytest.raises(EdgecnnError, match="zz_bad.png"):
        load_image_folder(root, strict=True)


# --------------------------------------------------------------------------- printable


def test_printable_escapes_terminal_controls() -> None:
    text = printable("a\x1b]0;x\x07b\rc\u202ed é 猫")
    assert text == "a\\x1b]0;x\\x07b\\x0dc\\u202ed é 猫"
    assert printable("x" * 600).endswith("(100 more characters)")


def test_tables_escape_cells() -> None:
    out = format_table([{"label": "\x1b[31mred"}], [("label", "label")])
    assert "\x1b" not in out and "\\x1b[31mred" in out


def test_cli_error_line_is_escaped(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    from cli_helpers import run_cli

    code, _, err = run_cli(capsys, "inspect", str(tmp_path / "no\x1b[2Jfile.onnx"))
    assert code == 2 and "\x1b" not in err and err.count("error:") == 1


def test_no_leftover_cache_copy_after_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from cli_helpers import run_cli

    monkeypatch.setenv("EDGECNN_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "m.onnx"
    onnx.save(make_classifier_model(with_metadata=False), str(model))
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 32, 32), np.float32))
    code, _, err = run_cli(capsys, "predict", str(model), str(tmp_path / "x.npy"))
    assert code == 2 and err.count("error:") == 1
    assert not [p for p in (tmp_path / "cache").rglob("*.onnx")]
