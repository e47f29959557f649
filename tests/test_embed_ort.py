"""ORT format for mobile: to_ort_format and 'edgecnn export --format ort' (Python only, no parity toolchains)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecnn.errors import EdgecnnError


@pytest.fixture(scope="module")
def lenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from edgecnn.exporters import export

    d = tmp_path_factory.mktemp("ort")
    return Path(export("lenet5", d / "lenet5.onnx", batch=1, force=True, progress=False).path)


def test_to_ort_format_writes_model_and_operator_config(lenet: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from edgecnn.exporters.ort_format import to_ort_format

    paths = to_ort_format(lenet, tmp_path / "out")
    assert paths == {"ort": tmp_path / "out" / "lenet5.ort",
                     "config": tmp_path / "out" / "lenet5.required_operators.config"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["lenet5.ort", "lenet5.required_operators.config"]
    config = paths["config"].read_text()
    assert "ai.onnx;" in config and "Conv" in config and "# - lenet5.ort" in config
    # same answers and the same self-describing metadata as the .onnx file
    ref = ort.InferenceSession(str(lenet), providers=["CPUExecutionProvider"])
    sess = ort.InferenceSession(str(paths["ort"]), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["edgecnn.model"] == "lenet5" and json.loads(meta["edgecnn.input_size"]) == [32, 32]
    x = np.random.default_rng(0).standard_normal((1, 1, 32, 32), dtype=np.float32)
    a = ref.run(None, {ref.get_inputs()[0].name: x})[0]
    b = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.abs(a - b).max() / np.abs(a).max() <= 1e-4


def test_runtime_optimization_style_names_its_files(lenet: Path, tmp_path: Path) -> None:
    from edgecnn.exporters.ort_format import to_ort_format

    paths = to_ort_format(lenet, tmp_path, optimization="runtime")
    assert paths["ort"].name == "lenet5.with_runtime_opt.ort" and paths["ort"].is_file()
    assert paths["config"].name == "lenet5.required_operators.with_runtime_opt.config"


def test_user_errors_are_one_line(lenet: Path, tmp_path: Path) -> None:
    from edgecnn.exporters.ort_format import to_ort_format

    with pytest.raises(EdgecnnError, match="model file not found"):
        to_ort_format(tmp_path / "missing.onnx", tmp_path)
    with pytest.raises(EdgecnnError, match="optimization style"):
        to_ort_format(lenet, tmp_path, optimization="fast")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(EdgecnnError, match="not a valid ONNX model"):  # onnxfile's check, before the converter
        to_ort_format(bad, tmp_path / "o")
    assert not (tmp_path / "o").exists()  # a failed conversion leaves no folder behind


def test_cli_export_format_ort(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from click.testing import CliRunner

    from edgecnn.cli import cli

    r = CliRunner().invoke(cli, ["export", "lenet5", "-o", str(tmp_path), "--format", "ort", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    assert Path(out["ort_format"]["ort"]) == tmp_path / "lenet5.ort" and (tmp_path / "lenet5.ort").is_file()
    assert (tmp_path / "lenet5.required_operators.config").is_file()


def test_mobilenet_v3_small_to_ort_format_expands_hard_swish(tmp_path: Path) -> None:
    """The mobile net in ORT format: the .onnx file keeps HardSwish native (tests/test_export_mobile.py), ONNX
    Runtime's CPU build has no HardSwish kernel and expands the ONNX function into HardSigmoid + Mul when it
    loads the file, so the .ort file and its operator list for a minimal build hold those two, and the answers
    stay those of the .onnx file."""
    pytest.importorskip("torch")
    import onnxruntime as ort

    from edgecnn.exporters import export
    from edgecnn.exporters.ort_format import to_ort_format

    src = Path(export("mobilenet_v3_small", tmp_path / "mobilenet_v3_small.onnx", batch=1, force=True,
                      progress=False).path)
    paths = to_ort_format(src, tmp_path / "out")
    listed = {op for line in paths["config"].read_text().splitlines() if line.startswith("ai.onnx;")
              for op in line.split(";")[2].split(",")}
    assert {"Conv", "HardSigmoid", "Mul", "GlobalAveragePool", "Gemm"} <= listed and "HardSwish" not in listed
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    sess = ort.InferenceSession(str(paths["ort"]), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    a = ref.run(None, {ref.get_inputs()[0].name: x})[0][0]
    b = sess.run(None, {sess.get_inputs()[0].name: x})[0][0]
    assert np.abs(a - b).max() / np.abs(a).max() <= 1e-4
    assert list(np.argsort(-a)[:5]) == list(np.argsort(-b)[:5])
