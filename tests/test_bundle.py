"""``edgecnn bundle``: the files an app ships, their hashes, the choice and its fallback, the output policy, and
``--verify`` (every hash, one run with the Python runtime; a tampered file fails with one line)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest
from cli_helpers import run_cli
from foreign_models import keras_nhwc_model
from onnx_factory import make_classifier

from edgecnn import onnxfile
from edgecnn.bundle import build_bundle, verify_bundle
from edgecnn.errors import EdgecnnError
from edgecnn.metadata import KEYS
from edgecnn.runtime import PreprocessConfig

ROOT = Path(__file__).resolve().parents[1]
TARGET_READMES = ("cpp/README.md", "android/README.md", "ios/README.md")


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_classifier(tmp_path / "tiny.onnx", size=(24, 32), num_classes=1000, batch=1)


def test_bundle_of_a_classifier_holds_every_file_with_its_hash(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "ship" / "tiny"
    result = build_bundle(tiny, out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(["tiny.onnx", "tiny.ort", "tiny.required_operators.config", "preprocessing.json",
                            "runtime.json", "labels.txt", "README.md", *TARGET_READMES, "manifest.json"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "edgecnn-bundle/1" and manifest["model"] == "tiny"
    assert set(manifest["files"]) == set(files) - {"manifest.json"}
    for rel, entry in manifest["files"].items():  # the manifest's hashes are the files' on disk
        assert entry["sha256"] == sha(out / rel) and entry["bytes"] == (out / rel).stat().st_size, rel
    assert result.files == {k: v["sha256"] for k, v in manifest["files"].items()}
    assert manifest["source"] == {"file": "tiny.onnx", "sha256": sha(tiny), "normalised": False}
    import onnxruntime

    assert manifest["versions"]["onnxruntime"] == onnxruntime.__version__ and manifest["versions"]["edgecnn"]
    assert "not built" in manifest["verified"]["devices"]
    assert (out / "tiny.onnx").read_bytes() == tiny.read_bytes()  # an edgecnn file ships as it is
    assert len((out / "labels.txt").read_text().splitlines()) == 1000
    assert not [p for p in out.parent.iterdir() if p.name != "tiny"], "no temporary folder is left beside it"


def test_bundle_reuses_convert_for_the_ort_file_and_operator_config(tiny: Path, tmp_path: Path) -> None:
    from edgecnn.exporters.ort_format import to_ort_format

    build_bundle(tiny, tmp_path / "b")
    converted = to_ort_format(tiny, tmp_path / "convert")
    assert (tmp_path / "b" / "tiny.required_operators.config").read_text() == converted["config"].read_text()
    config = converted["config"].read_text()
    assert "Conv" in config and "Gemm" in config
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "b" / "tiny.ort"), providers=["CPUExecutionProvider"])
    assert sess.get_modelmeta().custom_metadata_map["edgecnn.input_size"] == "[24, 32]"


def test_preprocessing_json_has_every_contract_key_as_the_runtime_resolves_it(tiny: Path, tmp_path: Path) -> None:
    build_bundle(tiny, tmp_path / "b")
    pre = json.loads((tmp_path / "b" / "preprocessing.json").read_text())
    assert set(KEYS) <= set(pre["contract"]), set(KEYS) - set(pre["contract"])
    cfg = PreprocessConfig.from_metadata(onnxfile.read_metadata(tiny), input_shape=[1, 3, 24, 32])
    assert pre["input_size"] == [24, 32] == list(cfg.input_size)
    assert pre["normalize"]["mean"] == list(cfg.mean) and pre["normalize"]["std"] == list(cfg.std)
    assert pre["resize"] == {"filter": "bilinear (Pillow's, antialiased)", "center_crop": True,
                             "crop_fraction": 0.875, "shorter_side": cfg.resize}
    assert pre["input"] == {"name": "input", "shape": [1, 3, 24, 32], "layout": "NCHW", "dtype": "float32"}
    assert pre["image"] == {"decode_as": "RGB", "channels": 3, "channel_order": "rgb"}
    assert pre["task"] == pre["contract"]["task"] == "classification"
    assert pre["output"]["classes"] == 1000 and pre["output"]["labels_file"] == "labels.txt"
    for rel in ("README.md", *TARGET_READMES):  # generated from the same facts, marked as not built
        text = (tmp_path / "b" / rel).read_text()
        assert "Not built on a device" in text and "0.485" in text and "NCHW" in text, rel
    assert "onnxruntime-android" in (tmp_path / "b" / "android/README.md").read_text()
    assert "onnxruntime-objc" in (tmp_path / "b" / "ios/README.md").read_text()


def test_without_a_decision_the_choice_is_onnx_runtime_cpu_at_the_files_precision(tiny: Path, tmp_path: Path) -> None:
    build_bundle(tiny, tmp_path / "b")
    run = json.loads((tmp_path / "b" / "runtime.json").read_text())
    assert (run["chosen"]["runtime"], run["chosen"]["precision"]) == ("cpu", "fp32")
    assert run["chosen"]["source"].startswith("default") and run["fallback"] == []
    assert {t["runtime"] for t in run["targets"].values()} == {"cpu"}


def test_an_optimize_decision_is_the_choice_and_the_fallback_is_named(tmp_path: Path) -> None:
    decision = {"runtime": "openvino", "precision": "bf16", "file_precision": "fp32", "batch": 1, "threads": 2,
                "cpu": "Test CPU 9000", "arch": "x86_64", "date": "2026-12-01", "speedup_vs_fp32": 2.0}
    model = make_classifier(tmp_path / "m.onnx", metadata={"optimize": decision})
    build_bundle(model, tmp_path / "b")
    run = json.loads((tmp_path / "b" / "runtime.json").read_text())
    assert (run["chosen"]["runtime"], run["chosen"]["precision"]) == ("openvino", "bf16")
    assert run["chosen"]["measured_on"]["cpu"] == "Test CPU 9000" and "Test CPU 9000" in run["note"]
    assert [(f["runtime"], f["precision"]) for f in run["fallback"]] == [("cpu", "fp32")]
    for target in ("cpp", "android", "ios"):  # no target app runs OpenVINO here: the fallback, with the reason
        t = run["targets"][target]
        assert (t["runtime"], t["precision"]) == ("cpu", "fp32") and "not available" in t["why"]
    assert "openvino at bf16" in (tmp_path / "b" / "README.md").read_text()


def test_a_cpu_int8_decision_applies_to_the_cpp_target(tmp_path: Path) -> None:
    decision = {"runtime": "cpu", "precision": "int8", "file_precision": "int8", "cpu": "Test CPU"}
    model = make_classifier(tmp_path / "m.onnx", metadata={"optimize": decision, "precision": "int8"})
    build_bundle(model, tmp_path / "b")
    run = json.loads((tmp_path / "b" / "runtime.json").read_text())
    assert (run["targets"]["cpp"]["runtime"], run["targets"]["cpp"]["precision"]) == ("cpu", "int8")
    assert run["targets"]["cpp"]["why"] == "the chosen runtime" and run["fallback"] == []


def test_foreign_nhwc_file_is_bundled_with_what_was_detected(tmp_path: Path) -> None:
    src = tmp_path / "keras.onnx"
    onnx.save(keras_nhwc_model(classes=10), str(src))
    result = build_bundle(src, tmp_path / "b", preprocess={"crop_fraction": "none"})
    assert any("assumed" in n for n in result.notices)
    pre = json.loads((tmp_path / "b" / "preprocessing.json").read_text())
    assert pre["input"]["layout"] == "NHWC" and pre["resize"]["center_crop"] is False
    assert pre["contract"]["crop_fraction"] is None and pre["contract"]["input_layout"] == "NHWC"
    meta = onnxfile.read_metadata(tmp_path / "b" / "keras.onnx")  # the choices travel in the bundled file
    assert meta["input_layout"] == "NHWC" and meta["crop_fraction"] is None
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["source"]["normalised"] is True
    assert verify_bundle(tmp_path / "b")["input"] == [[1, 32, 32, 3], "float32"]


def test_fp16_io_file_bundles_and_verifies(tmp_path: Path) -> None:
    model = make_classifier(tmp_path / "h.onnx", dtype="float16", batch=1)
    build_bundle(model, tmp_path / "b")
    pre = json.loads((tmp_path / "b" / "preprocessing.json").read_text())
    assert pre["input"]["dtype"] == "float16" and pre["output"]["dtype"] == "float16"
    assert "float16" in pre["steps"][-1] and "FLOAT16" in (tmp_path / "b" / "cpp/README.md").read_text()
    report = verify_bundle(tmp_path / "b")
    assert report["input"][1] == "float16" and report["precision"] == "fp16"


# --------------------------------------------------------------------------- verify


def test_verify_runs_the_bundle_and_matches_the_python_runtime(tiny: Path, tmp_path: Path) -> None:
    from edgecnn.bundle.verify import sample_image
    from edgecnn.runtime import Engine, load_images, topk

    build_bundle(tiny, tmp_path / "b")
    report = verify_bundle(tmp_path / "b")
    engine = Engine(tiny, provider="cpu")
    ref = engine.run(load_images([sample_image()], engine.preprocess_config()))
    assert report["top5"] == [p["index"] for p in topk(ref, 5)[0]]
    assert report["files"] == 10 and report["hashes"] == "match" and report["ort_rel_diff"] <= 1e-3
    assert report["runtime"] == "cpu" and report["precision"] == "fp32"


def test_verify_cli_passes_then_fails_on_a_tampered_file(tiny: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "b"
    code, stdout, err = run_cli(capsys, "bundle", tiny, "-o", out)
    assert code == 0, err
    assert "runtime cpu fp32" in stdout and "not built on a device" in stdout
    code, stdout, err = run_cli(capsys, "bundle", "--verify", out)
    assert code == 0, err
    assert "10 files match the manifest" in stdout and "tiny.ort agrees" in stdout
    pre = out / "preprocessing.json"
    pre.write_text(pre.read_text().replace("0.485", "0.486"))  # one changed number
    code, stdout, err = run_cli(capsys, "bundle", "--verify", out)
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: ") and "preprocessing.json was changed after bundling" in err


@pytest.mark.parametrize("damage, needle", [
    (lambda d: flip_a_byte(d / "tiny.ort"), "tiny.ort was changed"),
    (lambda d: (d / "labels.txt").unlink(), "labels.txt is missing"),
    (lambda d: (d / "extra.so").write_bytes(b"x"), "extra.so is not listed"),
    (lambda d: (d / "manifest.json").write_text("{"), "not readable JSON"),
    (lambda d: (d / "manifest.json").unlink(), "manifest.json is missing"),
])
def test_each_kind_of_tampering_is_one_error_line(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  damage, needle: str) -> None:
    build_bundle(tiny, tmp_path / "b")
    damage(tmp_path / "b")
    code, _, err = run_cli(capsys, "bundle", "--verify", tmp_path / "b")
    assert code != 0 and err.startswith("error: ") and needle in err and err.count("\n") == 1, err


def test_a_manifest_pointing_outside_the_bundle_is_refused(tiny: Path, tmp_path: Path) -> None:
    build_bundle(tiny, tmp_path / "b")
    m = json.loads((tmp_path / "b" / "manifest.json").read_text())
    m["files"]["../tiny.onnx"] = {"sha256": sha(tiny), "bytes": 1}
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(EdgecnnError, match="a path outside the bundle"):
        verify_bundle(tmp_path / "b")


# --------------------------------------------------------------------------- output policy


def test_an_existing_folder_needs_force_and_force_replaces_only_a_bundle(tiny: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "b"
    build_bundle(tiny, out)
    first = json.loads((out / "manifest.json").read_text())["files"]
    code, _, err = run_cli(capsys, "bundle", tiny, "-o", out)
    assert code != 0 and err == f"error: {out} already exists; use --force to replace it\n"
    (out / "stale.txt").write_text("from the old bundle")
    other = make_classifier(tmp_path / "tiny2.onnx", size=16, seed=3)
    code, _, err = run_cli(capsys, "bundle", other, "-o", out, "--force")
    assert code == 0, err
    assert not (out / "stale.txt").exists() and (out / "tiny2.onnx").is_file() and not (out / "tiny.onnx").exists()
    assert json.loads((out / "manifest.json").read_text())["files"] != first
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    code, _, err = run_cli(capsys, "bundle", tiny, "-o", mine, "--force")
    assert code != 0 and "is not an edgecnn bundle" in err and (mine / "thesis.tex").read_text() == "precious"


def test_a_failed_build_leaves_nothing_behind(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgecnn.exporters.ort_format as ort_format

    def fail(*args, **kwargs):
        raise EdgecnnError("ORT-format conversion failed: simulated")

    monkeypatch.setattr(ort_format, "to_ort_format", fail)
    with pytest.raises(EdgecnnError, match="simulated"):
        build_bundle(tiny, tmp_path / "new" / "deeper" / "b")
    assert not (tmp_path / "new").exists()
    old = tmp_path / "old"
    monkeypatch.undo()
    build_bundle(tiny, old)
    before = {p.name: sha(p) for p in old.iterdir() if p.is_file()}
    monkeypatch.setattr(ort_format, "to_ort_format", fail)
    with pytest.raises(EdgecnnError, match="simulated"):
        build_bundle(tiny, old, force=True)
    assert {p.name: sha(p) for p in old.iterdir() if p.is_file()} == before  # the old bundle is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old", "tiny.onnx"]


def test_usage_errors_are_one_line(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "b").mkdir()
    cases = [
        (["bundle", tiny], "give the bundle's folder with -o DIR"),
        (["bundle", tmp_path / "missing.onnx", "-o", tmp_path / "x"], "model file not found"),
        (["bundle", tiny, "-o", tmp_path], "lies inside"),
        (["bundle", "--verify", tmp_path / "nothing"], "bundle folder not found"),
        (["bundle", "--verify", tmp_path / "b"], "manifest.json is missing"),
    ]
    for args, needle in cases:
        code, _, err = run_cli(capsys, *args)
        assert code != 0 and needle in err and "Traceback" not in err, (args, err)
    code, _, err = run_cli(capsys, "bundle", tiny, "--verify", tmp_path / "b")
    assert code == 2 and "give no FILE" in err


def test_bundle_and_verify_run_with_torch_blocked(tiny: Path, tmp_path: Path) -> None:
    """As on an install without torch: ``sys.modules['torch'] = None`` makes ``import torch`` fail and
    ``find_spec('torch')`` return None (ONNX Runtime's converter looks torch up that way and imports it when found)."""
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None
        from edgecnn.bundle import build_bundle, verify_bundle
        build_bundle(sys.argv[1], sys.argv[2])
        assert verify_bundle(sys.argv[2])["hashes"] == "match"
        assert sys.modules["torch"] is None, "torch was imported"
        print("TORCH-FREE-OK")
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(tiny), str(tmp_path / "b")], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and "TORCH-FREE-OK" in proc.stdout, proc.stderr[-2000:]


def test_runtime_optimized_ort_file_keeps_the_bundle_names(tiny: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli(capsys, "bundle", tiny, "-o", tmp_path / "b", "--optimization", "runtime", "--json")
    assert code == 0, err
    written = json.loads(out)
    assert set(written["files"]) >= {"tiny.ort", "tiny.required_operators.config"} and written["fallback"] == []
    run = json.loads((tmp_path / "b" / "runtime.json").read_text())
    assert run["ort_format"]["optimization"] == "runtime" and run["ort_format"]["file"] == "tiny.ort"
    assert verify_bundle(tmp_path / "b")["ort_rel_diff"] <= 1e-3
