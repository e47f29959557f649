"""``verify_bundle``: every file of a bundle against its manifest, then one run with the Python runtime."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn._io import sha256_file
from edgecnn.bundle import contents as C
from edgecnn.errors import EdgecnnError

#: largest relative difference allowed between the ORT-format file's output and the .onnx file's
ORT_MAX_REL = {"float32": 1e-3, "float16": 1e-2}
_SHA = re.compile(r"^[0-9a-f]{64}$")


def _manifest(folder: Path) -> dict[str, Any]:
    if not folder.exists():
        raise EdgecnnError(f"bundle folder not found: {folder}")
    if not folder.is_dir():
        raise EdgecnnError(f"not a folder: {folder} (edgecnn bundle --verify takes the bundle's folder)")
    path = folder / C.MANIFEST
    if not path.is_file():
        raise EdgecnnError(f"{folder} is not an edgecnn bundle: {C.MANIFEST} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise EdgecnnError(f"bundle {folder}: {C.MANIFEST} is not readable JSON ({e}); rebuild the bundle") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != C.FORMAT or not isinstance(files, dict) or not files:
        raise EdgecnnError(f"bundle {folder}: {C.MANIFEST} is not an {C.FORMAT} manifest; rebuild the bundle")
    for rel, entry in files.items():
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or not parts:
            raise EdgecnnError(f"bundle {folder}: {C.MANIFEST} lists {rel!r}, a path outside the bundle")
        if not isinstance(entry, dict) or not _SHA.match(str(entry.get("sha256", ""))):
            raise EdgecnnError(f"bundle {folder}: {C.MANIFEST} has no SHA-256 for {rel!r}; rebuild the bundle")
    return data


def check_hashes(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest, once every file it lists has its SHA-256 and no other file is there; one error line naming
    the first file that differs, is missing or is not listed."""
    d = Path(folder)
    data = _manifest(d)
    files: dict[str, Any] = data["files"]
    for rel in sorted(files):
        path = d / rel
        if path.is_symlink() or not path.is_file():
            raise EdgecnnError(f"bundle {d}: {rel} is missing (listed in {C.MANIFEST}); rebuild the bundle")
        if sha256_file(path) != files[rel]["sha256"]:
            raise EdgecnnError(f"bundle {d}: {rel} was changed after bundling (its SHA-256 differs from "
                               f"{C.MANIFEST}); rebuild the bundle with 'edgecnn bundle'")
    for path in sorted(d.rglob("*")):
        rel = path.relative_to(d).as_posix()
        if (path.is_file() or path.is_symlink()) and rel != C.MANIFEST and rel not in files:
            raise EdgecnnError(f"bundle {d}: {rel} is not listed in {C.MANIFEST} (added after bundling?); remove "
                               "it or rebuild the bundle")
    return data


def sample_image(width: int = 96, height: int = 80, seed: int = 0) -> Any:
    """A deterministic RGB test picture (gradients and noise), a PIL image."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 2.6) % 256, (y * 3.5) % 256, ((x + y) * 1.7) % 256], -1)
    return Image.fromarray(np.clip(img + rng.integers(0, 60, (height, width, 3)), 0, 255).astype(np.uint8))


def _run_ort(d: Path, ort_path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the ORT-format file on ``x``, by name (one error line when it does not run)."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(ort_path), providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: x}), strict=True))
    except Exception as e:  # noqa: BLE001 - ONNX Runtime's own errors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgecnnError(f"bundle {d}: {ort_path.name} does not run on ONNX Runtime {ort.__version__}: "
                           f"{reason}") from None


def _verify_task(d: Path, engine: Any, x: np.ndarray, ort_path: Path) -> dict[str, Any]:
    """A detector or segmenter: the ``.onnx`` file's outputs post-processed as ``predict`` does (NMS on the host
    for ``--nms host`` files), then the ``.ort`` file's, which must agree: every detection matched (same label,
    IoU >= 0.99, scores within 1e-3: :func:`edgecnn.runtime.vision.detection.judge`), or the per-pixel classes
    on at least 99.9% of the pixels."""
    from edgecnn.runtime.vision import detection as D
    from edgecnn.runtime.vision import segmentation as S
    from edgecnn.runtime.vision.run import segment

    outs = engine.run_named(x)
    got = _run_ort(d, ort_path, x)
    base = {"runtime": engine.backend_obj.name, "providers": list(engine.providers), "precision": engine.precision,
            "input": [list(x.shape), str(x.dtype)], "task": engine.task}
    if engine.task == "detection":
        ref, cand = D.detections(outs, engine.metadata, 1), D.detections(got, engine.metadata, 1)
        matches = D.agreement(ref, cand)
        bad = D.judge(matches, min_matched=len(ref[0]))
        if len(cand[0]) != len(ref[0]) or bad:
            raise EdgecnnError(f"bundle {d}: {ort_path.name} and the .onnx file disagree: {len(cand[0])} vs "
                               f"{len(ref[0])} detections{'; ' + bad[0] if bad else ''}; rebuild the bundle")
        m = matches[0]
        return {**base, "nms": D.NmsParams.from_metadata(engine.metadata).placement, "detections": len(ref[0]),
                "top": D.rows(D.to_image(ref[0], engine.preprocess_config().input_size, sample_image().size),
                              engine.metadata.get("labels"), 5),
                "ort_matched": m.matched, "ort_min_iou": m.min_iou, "ort_max_score_diff": m.max_score_diff}
    classes, c = segment(engine, [sample_image()])
    masks = next((v for k, v in got.items() if engine.output_roles.get(k) == "masks"), next(iter(got.values())))
    agree = float((S.class_map(masks) == classes).mean())
    if agree < S.MIN_PIXEL_AGREEMENT:
        raise EdgecnnError(f"bundle {d}: {ort_path.name} and the .onnx file disagree on {1 - agree:.2%} of the "
                           f"pixels (> {1 - S.MIN_PIXEL_AGREEMENT:.1%}); rebuild the bundle")
    names = S.labels_of(engine.metadata, c)
    return {**base, "classes": S.describe(classes[0], c, names)[:5], "ort_pixel_agreement": agree}


def verify_bundle(folder: str | os.PathLike, *, run: bool = True) -> dict[str, Any]:
    """Check a bundle: every SHA-256 in its manifest (:func:`check_hashes`), then (``run``) one run of the
    ``.onnx`` file on the Python runtime (ONNX Runtime's CPU provider at the file's precision) with a test picture
    preprocessed from the file's metadata, and of the ``.ort`` file on the same tensor, which must agree.
    Returns what was checked; raises :class:`EdgecnnError` (one line) at the first problem."""
    d = Path(folder)
    data = check_hashes(d)
    name = str(data.get("model", ""))
    report: dict[str, Any] = {"path": str(d), "model": name, "files": len(data["files"]), "hashes": "match"}
    if not run:
        return report
    onnx_path, ort_path = d / f"{name}.onnx", d / f"{name}.ort"
    for p in (onnx_path, ort_path):
        if f"{p.name}" not in data["files"]:
            raise EdgecnnError(f"bundle {d}: {C.MANIFEST} does not list {p.name}; rebuild the bundle")

    from edgecnn.runtime import load_images
    from edgecnn.runtime.engine import reference_engine
    from edgecnn.runtime.postprocess import class_scores, topk

    engine = reference_engine(onnx_path, threads=1)
    x = load_images([sample_image()], engine.preprocess_config())
    if engine.task != "classification":
        report.update(_verify_task(d, engine, x, ort_path))
        return report
    y = engine.run(x)
    top = [p["index"] for p in topk(class_scores(y, engine.metadata), 5)[0]]
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(ort_path), providers=["CPUExecutionProvider"])
        y_ort = sess.run([sess.get_outputs()[0].name], {sess.get_inputs()[0].name: x})[0]
    except Exception as e:  # noqa: BLE001 - ONNX Runtime's own errors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgecnnError(f"bundle {d}: {ort_path.name} does not run on ONNX Runtime {ort.__version__}: "
                           f"{reason}") from None
    ref = np.asarray(y, dtype=np.float64)
    diff = float(np.abs(np.asarray(y_ort, dtype=np.float64) - ref).max() / max(float(np.abs(ref).max()), 1e-30))
    limit = ORT_MAX_REL.get(str(x.dtype), 1e-3)
    if not diff <= limit:
        raise EdgecnnError(f"bundle {d}: {ort_path.name} and {onnx_path.name} disagree (relative difference "
                           f"{diff:.2e} > {limit:g}); rebuild the bundle")
    report.update({"runtime": engine.backend_obj.name, "providers": list(engine.providers),
                   "precision": engine.precision, "input": [list(x.shape), str(x.dtype)], "top5": top,
                   "ort_rel_diff": diff})
    return report
