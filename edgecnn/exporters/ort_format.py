"""ONNX -> ONNX Runtime's ORT format, for mobile and reduced ("minimal") ONNX Runtime builds.

``to_ort_format("resnet18.onnx", "out/")`` writes next to each other in ``out/``:

- ``resnet18.ort``: the model in ORT format (a FlatBuffer loaded by onnxruntime-android / onnxruntime-c /
  onnxruntime-objc, including the mobile/minimal builds that cannot read ``.onnx`` files);
- ``resnet18.required_operators.config``: the operators (and opsets) the model uses, the input of a reduced
  build (``build.sh --minimal_build --include_ops_by_config resnet18.required_operators.config``).

It wraps ``onnxruntime.tools.convert_onnx_models_to_ort`` (onnxruntime only, no torch). The ORT file keeps
the edgecnn metadata (``session.get_modelmeta().custom_metadata_map``), so an app reads the input size and
mean/std from it as from the ``.onnx`` file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path

from edgecnn import onnxfile
from edgecnn.errors import EdgecnnError
from edgecnn.outputs import check_writable, refuse_existing

#: "fixed": graph optimizations applied at conversion (smallest, runs as is on the target);
#: "runtime": optimizations saved and replayed at load time (needs session.enable_saved_runtime_optimizations=1).
OPTIMIZATION_STYLES = ("fixed", "runtime")


def ort_targets(onnx_path: str | os.PathLike, out_dir: str | os.PathLike,
                optimization: str = "fixed") -> dict[str, Path]:
    """The two files :func:`to_ort_format` writes: ``DIR/NAME.ort`` and ``DIR/NAME.required_operators.config``."""
    src = Path(onnx_path)
    stem = src.name[:-len(".onnx")] if src.name.endswith(".onnx") else src.stem
    suffix = "" if optimization == "fixed" else ".with_runtime_opt"
    out = Path(out_dir)
    return {"ort": out / f"{stem}{suffix}.ort", "config": out / f"{stem}.required_operators{suffix}.config"}


def to_ort_format(onnx_path: str | os.PathLike, out_dir: str | os.PathLike, *, optimization: str = "fixed",
                  target_platform: str | None = None, force: bool = True) -> dict[str, Path]:
    """Convert ``onnx_path`` to ORT format in ``out_dir``; return ``{"ort": path, "config": path}``.

    ``target_platform``: ``"arm"`` or ``"amd64"`` to tune the saved optimizations (None: the converter's
    default). Files appear complete or not at all (written in a temporary folder, then moved); without ``force``
    neither may exist already. A folder this call created is removed again when the conversion fails.
    """
    src = Path(onnx_path)
    if not src.is_file():
        raise EdgecnnError(f"model file not found: {src}")
    if optimization not in OPTIMIZATION_STYLES:
        raise EdgecnnError(f"unknown ORT optimization style {optimization!r}: use fixed or runtime")
    if target_platform not in (None, "arm", "amd64"):
        raise EdgecnnError(f"unknown target platform {target_platform!r}: use arm or amd64")
    try:
        import onnxruntime.tools.convert_onnx_models_to_ort  # noqa: F401 - available in this build?
    except ImportError as e:
        raise EdgecnnError(f"the ORT-format converter is not available in this onnxruntime ({e}); "
                           "pip install -U onnxruntime") from None
    out = Path(out_dir)
    targets = ort_targets(src, out, optimization)
    refuse_existing(list(targets.values()), force)
    check_writable(out)
    created = [p for p in [out, *out.parents] if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgecnnError(f"cannot create {out}: {e.strerror}") from None
    try:
        return _convert(src, out, targets, style_name=optimization, target_platform=target_platform)
    except BaseException:
        for p in created:  # deepest first: a failed conversion leaves no empty folder behind
            try:
                p.rmdir()
            except OSError:
                break
        raise


def _convert(src: Path, out: Path, targets: dict[str, Path], *, style_name: str,
             target_platform: str | None) -> dict[str, Path]:
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    optimization = style_name
    style = OptimizationStyle.Fixed if optimization == "fixed" else OptimizationStyle.Runtime
    with tempfile.TemporaryDirectory(dir=out, prefix=".ort-") as tmp:
        # the converter reads every .onnx in a folder, and names outputs after the input: give it a clean copy
        work = Path(tmp) / "in"
        work.mkdir()
        shutil.copyfile(src, work / src.name)
        for rel in onnxfile.check_external_data(onnxfile.open_model(src, load_data=False), src.parent):
            (work / rel).parent.mkdir(parents=True, exist_ok=True)  # side files: only those the path policy allows
            shutil.copyfile(src.parent / rel, work / rel)
        log = io.StringIO()
        quiet = logging.getLogger("ort_format_model.utils")  # logs "Created config in <temporary path>"
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                convert_onnx_models_to_ort(work / src.name, output_dir=Path(tmp) / "out", optimization_styles=[style],
                                           target_platform=target_platform)
        except Exception as e:  # the converter raises plain RuntimeError/ValueError/onnxruntime errors
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EdgecnnError(f"ORT-format conversion of {src} failed: {reason}") from None
        finally:
            quiet.setLevel(level)
        produced = sorted((Path(tmp) / "out").iterdir())
        ort_files = [p for p in produced if p.suffix == ".ort"]
        configs = [p for p in produced if p.suffix == ".config"]
        if len(ort_files) != 1 or len(configs) != 1:
            raise EdgecnnError(f"ORT-format conversion of {src} wrote {[p.name for p in produced]}; "
                               f"expected one .ort and one .config. Converter log: {log.getvalue()[-300:]}")
        # the config's header names the model it came from: name the final file, not the temporary one
        text = configs[0].read_text(encoding="utf-8").replace(str(ort_files[0].resolve()), targets["ort"].name)
        configs[0].write_text(text, encoding="utf-8")
        os.replace(ort_files[0], targets["ort"])
        os.replace(configs[0], targets["config"])
    return targets
