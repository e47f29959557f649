"""User errors, failed validation, atomic writes, user models and the export cache."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest
import torch

from edgecnn import onnxfile
from edgecnn.cli import main
from edgecnn.errors import EdgecnnError
from edgecnn.exporters import ValidationFailed, cache, export, onnx_export, read_metadata, validate

EDGECNN = Path(sys.executable).parent / "edgecnn"


def _cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code), out.out, out.err


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("out", ["{tmp}/made/by/export/", "{tmp}/made/by/export/named.onnx"])
def test_missing_output_folder_is_created_when_the_file_is_written(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                   out: str) -> None:
    """``-o DIR/`` on a fresh clone (make demo's ``-o artifacts/``): the folder is created, with the file in it."""
    main(["export", "lenet5", "-o", out.format(tmp=tmp_path)])  # returns (no SystemExit) on success
    assert "wrote" in capsys.readouterr().out
    made = sorted(p.name for p in (tmp_path / "made" / "by" / "export").iterdir())
    assert made == (["lenet5.onnx"] if out.endswith("/") else ["named.onnx"])
    onnx.checker.check_model(str(tmp_path / "made" / "by" / "export" / made[0]))


@pytest.mark.parametrize(("args", "expected"), [
    (["export", "resnet19"], "unknown model 'resnet19'"),
    (["export", "lenet5", "--weights", "{tmp}/missing.pth"], "weights file not found"),
    (["export", "lenet5", "--weights", "{tmp}/garbage.pth"], "cannot read weights"),
    (["export", "lenet5", "-o", "{tmp}/garbage.pth/x.onnx"], "is a file"),
    (["export", "resnet19", "-o", "{tmp}/new/"], "unknown model 'resnet19'"),
    (["export", "lenet5", "-o", "{tmp}/exists.onnx"], "already exists; use --force"),
    (["export", "{tmp}/user.py:not_a_module"], "returned int, not a torch nn.Module"),
    (["export", "{tmp}/user.py:missing"], "has no attribute 'missing'"),
    (["export", "{tmp}/nofile.py:f"], "model file not found"),
    (["export", "no_such_pkg.mod:f"], "cannot import module 'no_such_pkg.mod'"),
    (["export", "lenet5", "--opset", "99"], "opset 99 is not supported"),
    (["export", "lenet5", "--io", "fp16"], "--io fp16 needs --fp16"),
    (["export", "lenet5", "--input-size", "16"], "cannot run on a 1x16x16 input"),
    (["inspect", "{tmp}/garbage.pth"], "not a readable ONNX file"),
])
def test_user_errors_one_line_exit_2_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                      expected: str) -> None:
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "exists.onnx").write_bytes(b"keep me")
    (tmp_path / "user.py").write_text("def not_a_module():\n    return 3\n")
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = _cli([a.format(tmp=tmp_path) for a in args], capsys)
    assert code == 2
    assert expected in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == before
    assert (tmp_path / "exists.onnx").read_bytes() == b"keep me"


def test_unwritable_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    # root writes anywhere on a normal file system; /sys refuses even root
    target = "/sys/edgecnn-test.onnx" if os.geteuid() == 0 else str(ro / "x.onnx")
    try:
        code, _, err = _cli(["export", "lenet5", "-o", target], capsys)
        assert code == 2 and "cannot write to" in _one_error_line(err)
    finally:
        ro.chmod(0o700)
    assert not Path(target).exists()


def test_subprocess_unknown_model_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run([str(EDGECNN), "export", "googlenett"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown model 'googlenett'. Did you mean: googlenet")
    assert not list(tmp_path.iterdir())


def test_unsupported_operator_is_one_line(tmp_path: Path) -> None:
    """torch's exporter prints its whole IR graph from C++ when it fails: the user sees one line only."""
    (tmp_path / "svdnet.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class SVDNet(nn.Module):
            def forward(self, x):
                return torch.linalg.svd(x.flatten(1))[0]

        def build():
            return SVDNet()
    """))
    proc = subprocess.run([str(EDGECNN), "export", "svdnet.py:build", "--input-size", "8"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "torch could not export the model" in lines[0] and "linalg_svd" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["svdnet.py"]


def test_failed_validation_exits_1_with_figures(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    strict = validate.Tolerances(max_rel_diff=0.0, centered_rel_diff=0.0, min_cosine=1.01, min_centered_cosine=1.01,
                                 min_input_dependence=0.0)
    monkeypatch.setitem(validate.TOLERANCES, "fp32", strict)
    out = tmp_path / "lenet5.onnx"
    code, stdout, err = _cli(["export", "lenet5", "-o", str(out), "--no-simplify"], capsys)
    assert code == 1
    assert "validation: FAILED" in stdout and "max abs diff" in stdout and "cosine" in stdout
    assert "failed: cosine" in stdout
    assert "validation failed for lenet5" in err and "lenet5.FAILED.onnx" in err
    assert not out.exists() and (tmp_path / "lenet5.FAILED.onnx").is_file()
    assert read_metadata(tmp_path / "lenet5.FAILED.onnx")["model"] == "lenet5"


def test_model_whose_onnx_differs_from_torch(tmp_path: Path) -> None:
    """Data-dependent control flow is frozen by tracing: the file disagrees with torch and must fail."""
    (tmp_path / "branchy.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Branchy(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3 * 8 * 8, 5)

            def forward(self, x):
                y = self.fc(x.flatten(1))
                if bool(x[0, 0, 0, 0] > 0):  # traced once: the other branch is lost
                    return y
                return -y

        def build():
            torch.manual_seed(0)
            return Branchy()
    """))
    with pytest.raises(ValidationFailed) as exc:
        export(f"{tmp_path}/branchy.py:build", tmp_path / "b.onnx", input_size=(8, 8), progress=False)
    r = exc.value.result
    assert exc.value.exit_code == 1 and not r.passed and r.validation["cosine"] < 0
    assert Path(r.path).name == "b.FAILED.onnx" and not (tmp_path / "b.onnx").exists()


def test_interrupted_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = onnxfile.write_model

    def half_then_interrupt(model, path, *a, **k):
        real(model, path, *a, **k)
        Path(path).write_bytes(Path(path).read_bytes()[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(onnxfile, "write_model", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        export("lenet5", tmp_path / "lenet5.onnx", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_user_model_from_file_and_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "tinynet.py").write_text(textwrap.dedent("""
        from torch import nn

        def build():
            return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    """))
    monkeypatch.chdir(tmp_path)
    main(["export", "tinynet.py:build", "--input-size", "28", "--channels", "1", "--num-classes", "10", "--fp16"])
    meta = read_metadata(tmp_path / "build-fp16.onnx")
    assert meta["family"] == "custom" and meta["input_size"] == [28, 28] and meta["channels"] == 1
    assert meta["num_classes"] == 10 and meta["class_names"] == "" and meta["source"] == "tinynet.py:build"
    assert meta["num_params"] == 1 * 4 * 9 + 4 + 4 * 10 + 10 and meta["mean"] == [0.5]
    capsys.readouterr()
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = _cli(["export", "tinynet:build", "--channels", "1", "--num-classes", "7", "-o", "t.onnx"], capsys)
    assert code == 2 and "outputs 10 classes, not 7" in err
    main(["export", "tinynet:build", "--channels", "1", "--name", "Tiny", "-o", "t.onnx"])
    assert read_metadata(tmp_path / "t.onnx")["model"] == "tiny"


def test_weights_are_loaded_and_hashed(tmp_path: Path) -> None:
    from edgecnn.models import create_model

    torch.manual_seed(3)
    m = create_model("lenet5")
    torch.save({"state_dict": m.state_dict()}, tmp_path / "w.pth")
    r = export("lenet5", tmp_path / "a.onnx", weights=tmp_path / "w.pth", progress=False)
    assert r.weights_sha256 == onnx_export.weights_sha256(m)
    wrong = create_model("resnet18").state_dict()
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(EdgecnnError, match="does not match model lenet5"):
        export("lenet5", tmp_path / "b.onnx", weights=tmp_path / "wrong.pth", progress=False)
    assert not (tmp_path / "b.onnx").exists()


# ---------------------------------------------------------------------------- cache


def test_cache_dir_honours_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EDGECNN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "edgecnn" / "exports"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_dir() == Path.home() / ".cache" / "edgecnn" / "exports"
    monkeypatch.setenv("EDGECNN_CACHE_DIR", str(tmp_path / "mine"))  # the root of every edgecnn cache
    assert cache.cache_dir() == tmp_path / "mine" / "exports"


def test_cached_export_exports_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import edgecnn.exporters.api as api

    monkeypatch.setenv("EDGECNN_CACHE_DIR", str(tmp_path / "c"))
    calls = []
    real = api.export

    def counting(*a, **k):
        calls.append(k)
        return real(*a, **k)

    monkeypatch.setattr(api, "export", counting)
    p1 = cache.cached_export("lenet5")
    p2 = cache.cached_export("lenet5", precision="fp32")
    assert p1 == p2 and p1.is_file() and p1.parent == tmp_path / "c" / "exports" and len(calls) == 1
    p3 = cache.cached_export("lenet5", precision="fp16")
    p4 = cache.cached_export("lenet5", simplify=False)
    assert len({p1, p3, p4}) == 3 and len(calls) == 3
    assert read_metadata(p3)["precision"] == "fp16"
    torch.save(__import__("edgecnn.models", fromlist=["create_model"]).create_model("lenet5").state_dict(),
               tmp_path / "w.pth")
    p5 = cache.cached_export("lenet5", weights=tmp_path / "w.pth")
    assert p5 not in {p1, p3, p4} and len(calls) == 4
    assert [p.name for p in (tmp_path / "c" / "exports").iterdir() if not p.name.endswith(".onnx")] == []


def test_cached_export_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGECNN_CACHE_DIR", str(tmp_path / "c"))
    with pytest.raises(EdgecnnError, match="unknown precision 'int4'"):
        cache.cached_export("lenet5", precision="int4")
    with pytest.raises(EdgecnnError, match="unknown model"):
        cache.cached_export("lenet6")
    with pytest.raises(EdgecnnError, match="weights file not found"):
        cache.cached_export("lenet5", weights=tmp_path / "nope.pth")
    assert not (tmp_path / "c").exists()
