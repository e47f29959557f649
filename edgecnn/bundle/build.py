"""``build_bundle``: write a bundle folder (see :mod:`edgecnn.bundle`) complete or not at all.

The output policy (:mod:`edgecnn.outputs`) applies: the folder is built under a temporary name beside the target
and renamed into place when every file is written; missing parent folders are created (and removed again when the
build fails); an existing target is replaced only with ``force``, and only when it is an edgecnn bundle or empty,
so ``--force`` can never delete an unrelated folder; the input file may not lie inside the target.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from edgecnn import onnxfile
from edgecnn._io import sha256_file, umask
from edgecnn.bundle import contents as C
from edgecnn.errors import EdgecnnError
from edgecnn.modelfile import prepare
from edgecnn.outputs import check_writable, plain_name


@dataclass(frozen=True)
class BundleResult:
    """A written bundle: its folder, its files (relative path -> SHA-256) and what was said on the way."""

    path: Path
    files: dict[str, str]
    preprocessing: dict[str, Any]
    runtime: dict[str, Any]
    #: what was normalised or assumed about the input file (``note:`` lines)
    notices: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"path": str(self.path), "files": dict(self.files), "runtime": self.runtime["chosen"],
                "fallback": self.runtime["fallback"], "notices": list(self.notices)}


def is_bundle(folder: Path) -> bool:
    """True when ``folder`` holds an edgecnn bundle's manifest."""
    import json

    try:
        return json.loads((folder / C.MANIFEST).read_text(encoding="utf-8")).get("format") == C.FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_target(out: Path, source: Path, force: bool) -> None:
    """One error line when ``out`` may not become the bundle folder (see the module docstring)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise EdgecnnError(f"output path {out} is a file or a link; a bundle is a folder: choose another with -o")
    if _inside(source, out):
        raise EdgecnnError(f"the input {source} lies inside {out}; write the bundle to another folder with -o")
    if out.is_dir():
        if not force:
            raise EdgecnnError(f"{out} already exists; use --force to replace it")
        if any(out.iterdir()) and not is_bundle(out):
            raise EdgecnnError(f"{out} is not an edgecnn bundle (no {C.MANIFEST}); --force replaces only a bundle "
                               "folder or an empty one: choose another folder with -o")
    check_writable(out.parent)


def build_bundle(model: str | os.PathLike, output: str | os.PathLike, *, force: bool = False,
                 preprocess: Mapping[str, Any] | None = None, optimization: str = "fixed",
                 target_platform: str | None = None) -> BundleResult:
    """Bundle the ``.onnx`` file ``model`` into the folder ``output``; return what was written.

    ``preprocess``: choices for a file without metadata (the keyword arguments of
    :func:`edgecnn.io_spec.detect`, as for every command); they are saved in the bundled model's metadata.
    ``optimization`` and ``target_platform``: the ORT-format conversion's (:func:`edgecnn.exporters.ort_format.
    to_ort_format`). Raises :class:`EdgecnnError` (one line) for anything the user can fix.
    """
    source = Path(model)
    out = Path(output).expanduser()
    if not source.is_file():
        raise EdgecnnError(f"model file not found: {source}" if not source.exists() else f"not a file: {source}")
    check_target(out, source, force)
    prepared = prepare(source, preprocess=preprocess)
    stem = source.name[:-len(".onnx")] if source.name.endswith(".onnx") else source.stem
    name = plain_name(stem, "the model file's name")
    parent = out.absolute().parent
    created = [p for p in [parent, *parent.parents] if not p.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp's 0700 would outlive the rename
    except OSError as e:
        raise EdgecnnError(f"cannot create {out}: {e.strerror or e}; choose another folder with -o") from None
    try:
        result = _fill(tmp, name, prepared.path, source, prepared.spec, optimization, target_platform)
        _publish(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in created:  # deepest first: a failed build leaves no empty folder behind
            try:
                p.rmdir()
            except OSError:
                break
        raise
    return BundleResult(out, result["files"], result["preprocessing"], result["runtime"], prepared.notices)


def _publish(tmp: Path, out: Path, force: bool) -> None:
    """Rename the finished folder onto ``out``; an old bundle there is moved aside first, then removed."""
    old: Path | None = None
    if out.exists():
        if not force:
            raise EdgecnnError(f"{out} appeared while the bundle was being built (another run?); it was left as it "
                               "is: use --force to replace it")
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.absolute().parent))
        os.replace(out, old / "bundle")
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old / "bundle", out)  # put the old bundle back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _write(folder: Path, rel: str, data: bytes | str) -> None:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def _fill(tmp: Path, name: str, model_path: Path, source: Path, spec: Any, optimization: str,
          target_platform: str | None) -> dict[str, Any]:
    from edgecnn.exporters.ort_format import to_ort_format
    from edgecnn.runtime.postprocess import class_names
    from edgecnn.runtime.precision import file_precision

    shutil.copyfile(model_path, tmp / f"{name}.onnx")
    skeleton = onnxfile.open_model(model_path, load_data=False)
    for rel in onnxfile.check_external_data(skeleton, model_path.parent):  # side files, by the path policy
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_path.parent / rel, tmp / rel)
    made = to_ort_format(tmp / f"{name}.onnx", tmp, optimization=optimization, target_platform=target_platform)
    # one name whatever the optimization style (runtime.json records it): the READMEs and apps load NAME.ort
    os.replace(made["ort"], tmp / f"{name}.ort")
    os.replace(made["config"], tmp / f"{name}.required_operators.config")

    meta = onnxfile.read_metadata(skeleton)
    out = skeleton.graph.output[0]
    out_dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in out.type.tensor_type.shape.dim]
    out_dtype = "float16" if out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 else "float32"
    labels_file = None
    task = meta.get("task") or "classification"
    if task != "classification":  # a detector's or segmenter's names come from its metadata (class 0 included)
        names = meta.get("labels") if isinstance(meta.get("labels"), list) else None
        if names:
            labels_file = C.LABELS
            _write(tmp, C.LABELS, "\n".join(str(n) for n in names) + "\n")
    elif spec.num_classes is not None:
        names = class_names(meta, spec.num_classes - int(spec.background_class))
        if names:
            labels_file = C.LABELS
            _write(tmp, C.LABELS, "\n".join(names) + "\n")
    pre = C.preprocessing(spec, meta, (out.name, out_dims, out_dtype), labels_file,
                          outputs=[C.output_entry(o) for o in skeleton.graph.output])
    run = C.runtime_choice(meta, file_precision(meta, skeleton))
    run["ort_format"] = {"file": f"{name}.ort", "optimization": optimization,
                         "target_platform": target_platform or "the converter's default",
                         "note": "an ORT-format file loads in an ONNX Runtime at least as new as the one that wrote "
                                 "it (manifest.json: versions.onnxruntime)"}
    _write(tmp, C.PREPROCESSING, C.dumps(pre))
    _write(tmp, C.RUNTIME, C.dumps(run))
    _write(tmp, "README.md", C.readme(name, pre, run))
    for target, (folder, *_rest) in C.TARGETS.items():
        _write(tmp, f"{folder}/README.md", C.target_readme(target, name, pre, run))

    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
        rel = path.relative_to(tmp).as_posix()
        files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    src = {"file": source.name, "sha256": sha256_file(source), "normalised": model_path != source}
    _write(tmp, C.MANIFEST, C.dumps(C.manifest(name, files, src)))
    return {"files": {k: v["sha256"] for k, v in files.items()}, "preprocessing": pre, "runtime": run}
