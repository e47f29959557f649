"""The shared ONNX-file module: bad files fail in order with one line, external data, metadata, atomic save."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_helpers import run_cli
from onnx import helper
from onnx_factory import make_classifier, make_classifier_model

from edgecnn import onnxfile
from edgecnn.errors import EdgecnnError


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, expected message) for each bad-file check, in the order they run."""
    good = make_classifier_model().SerializeToString()
    (tmp_path / "folder.onnx").mkdir()
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "text.onnx").write_bytes(b"\x08\x07garbage" * 50)
    (tmp_path / "truncated.onnx").write_bytes(good[: len(good) // 2])
    (tmp_path / "nograph.onnx").write_bytes(helper.make_operatorsetid("", 17).SerializeToString())
    nodes0 = helper.make_model(helper.make_graph([], "g", [], []), opset_imports=[helper.make_operatorsetid("", 17)])
    (tmp_path / "nodes0.onnx").write_bytes(nodes0.SerializeToString())
    ext = tmp_path / "ext"
    ext.mkdir()
    onnx.save(make_classifier_model(), str(ext / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.onnx.data", size_threshold=0)
    (ext / "m.onnx.data").unlink()
    return {
        "missing": (tmp_path / "missing.onnx", "model file not found"),
        "folder": (tmp_path / "folder.onnx", "not a file"),
        "empty": (tmp_path / "empty.onnx", r"empty \(0 bytes\)"),
        "text": (tmp_path / "text.onnx", "not a valid ONNX model"),
        "truncated": (tmp_path / "truncated.onnx", "not a valid ONNX model"),
        "nograph": (tmp_path / "nograph.onnx", "no graph"),
        "nodes0": (tmp_path / "nodes0.onnx", "0 nodes"),
        "external": (ext / "m.onnx", "external data file of the model not found"),
    }


@pytest.mark.parametrize("case", ["missing", "folder", "empty", "text", "truncated", "nograph", "nodes0", "external"])
def test_bad_files_fail_with_one_clear_error(tmp_path: Path, case: str) -> None:
    path, message = _bad_files(tmp_path)[case]
    with pytest.raises(EdgecnnError, match=message) as exc:
        onnxfile.open_model(path)
    assert "\n" not in str(exc.value)


def test_inspect_and_quantize_report_the_file_before_anything_else(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    files = _bad_files(tmp_path)
    for args, case in ((["inspect"], "empty"), (["inspect"], "nodes0"), (["quantize"], "text")):
        path, message = files[case]
        code, _, err = run_cli(capsys, *args, path)  # quantize without --calib: the file is reported first
        err = err.strip()
        assert code == 2 and err.startswith("error: ") and "\n" not in err and "calibration" not in err, err


def test_external_data_is_loaded_and_truncation_detected(tmp_path: Path) -> None:
    model = make_classifier_model()
    fc_w = onnx.numpy_helper.to_array(model.graph.initializer[2])
    onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.onnx.data", size_threshold=0)
    assert onnxfile.external_data_files(onnxfile.open_model(tmp_path / "m.onnx", load_data=False)) == ["m.onnx.data"]
    loaded = onnxfile.open_model(tmp_path / "m.onnx")
    w = {t.name: onnx.numpy_helper.to_array(t) for t in loaded.graph.initializer}
    np.testing.assert_array_equal(w["fc_w"], fc_w)
    size = (tmp_path / "m.onnx").stat().st_size + (tmp_path / "m.onnx.data").stat().st_size
    assert onnxfile.file_size(tmp_path / "m.onnx") == size
    data = (tmp_path / "m.onnx.data").read_bytes()
    (tmp_path / "m.onnx.data").write_bytes(data[:-4])
    with pytest.raises(EdgecnnError, match="is truncated"):
        onnxfile.open_model(tmp_path / "m.onnx")


def test_metadata_roundtrip_keeps_foreign_keys_and_save_is_atomic(tmp_path: Path) -> None:
    path = make_classifier(tmp_path / "m.onnx")
    model = onnxfile.open_model(path)
    model.metadata_props.add(key="author", value="someone")
    onnxfile.set_metadata(model, {**onnxfile.read_metadata(model), "precision": "int8", "num_classes": 10})
    assert [p.key for p in model.metadata_props][0] == "author"
    out = tmp_path / "sub" / "out.onnx"
    assert onnxfile.save(model, out) is False
    assert [p.name for p in out.parent.iterdir()] == ["out.onnx"]  # no temporary file left
    onnxfile.check(out)
    meta = onnxfile.read_metadata(out)
    assert meta["precision"] == "int8" and meta["num_classes"] == 10
    assert onnxfile.other_metadata(onnxfile.open_model(out)) == {"author": "someone"}
    broken = onnxfile.open_model(out)
    broken.graph.node[0].input[1] = "nowhere"
    with pytest.raises(EdgecnnError, match="failed ONNX's checker"):
        onnxfile.check(broken)


def test_input_info_skips_initializers_listed_as_inputs() -> None:
    model = make_classifier_model(batch=4)
    for t in model.graph.initializer:  # the IR-3 style of model-zoo files
        model.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    name, dims, _ = onnxfile.input_info(model)
    assert (name, dims) == ("input", [4, 3, 32, 32]) and onnxfile.fixed_batch(model) == 4


def test_save_over_the_protobuf_limit_writes_external_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above ONNX's 2 GB limit (lowered here) the weights go to <name>.data beside the model."""
    model = make_classifier_model(hidden=64)
    expected = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    monkeypatch.setattr(onnx.checker, "MAXIMUM_PROTOBUF", 2_000)
    assert onnxfile.save(model, tmp_path / "big.onnx") is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]
    loaded = onnxfile.open_model(tmp_path / "big.onnx")
    for t in loaded.graph.initializer:
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(t), expected[t.name])
