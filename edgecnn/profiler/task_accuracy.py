"""Accuracy of detection and segmentation files: COCO mAP, mean IoU, and agreement with an fp32 reference.

    from edgecnn.profiler.task_accuracy import evaluate_detection, evaluate_segmentation, compare_task

    evaluate_detection("shapes_ssd.onnx", "test/images", "test/instances.json").map50
    evaluate_segmentation("shapes_lraspp.onnx", "test/images", "test/masks").miou
    compare_task("shapes_ssd.onnx", "shapes_ssd.int8.onnx", "test/images").f1    # no labels needed

Detection is scored as COCO does (Lin et al. 2014), by ``pycocotools``' own ``COCOeval`` (bbox): mAP over IoU
0.50:0.05:0.95 (``stats[0]``) and at IoU 0.5 (``stats[1]``), 101-point interpolated precision, at most 100
detections per image. Each file runs with its own preprocessing; its boxes are mapped back to the original image's
pixels (:func:`edgecnn.runtime.vision.detection.to_image`) before scoring. The file's label index becomes the
annotation's ``category_id`` by name when the file's ``labels`` metadata names every category, else by identity
(label k is category k); the report says which.

Segmentation: each class map is resized back to the label map's size (nearest) and a confusion matrix is
accumulated over the whole set (255 ignored); IoU per class = TP / (TP + FP + FN) over the classes present in
the labels or the predictions, mIoU their mean.

Without labels, :func:`compare_task` measures a candidate (int8, fp16) against a reference file on the same
images: detections matched at IoU >= 0.5 with the same label (F1 = 2 x matched / (reference + candidate) boxes),
SQNR of each output whose shapes agree, and the share of pixels whose class agrees for masks. Torch-free;
``pycocotools`` is the ``tasks`` extra.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError

#: IoU at which detections of a candidate must match the reference's (agreement without labels)
AGREEMENT_IOU = 0.5
#: detections below this score are left out of the agreement (the boxes a user would keep)
AGREEMENT_MIN_SCORE = 0.3
IGNORE_INDEX = 255
MAX_DETS = 100


def _coco() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise EdgecnnError("COCO mAP needs pycocotools: pip install 'edgecnn[tasks]'") from None
    return COCO, COCOeval


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# --------------------------------------------------------------------------- COCO annotations and mAP


def load_annotations(path: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """A COCO-format annotation dict from a file (or a dict), checked: ``images``, ``annotations`` and
    ``categories`` lists, each annotation with an ``image_id`` of a listed image, a known ``category_id`` and an
    ``[x, y, w, h]`` bbox."""
    if isinstance(path, Mapping):
        data: Any = dict(path)
        where = "the annotations"
    else:
        p = Path(path)
        where = str(p)
        if not p.is_file():
            raise EdgecnnError(f"annotation file {p} does not exist.")
        try:
            data = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise EdgecnnError(f"{p} is not JSON ({e}); expected a COCO-format instances file.") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations",
                                                                                    "categories")):
        raise EdgecnnError(f"{where} is not a COCO-format file: it needs 'images', 'annotations' and 'categories' "
                           "lists (Lin et al. 2014).")
    try:
        ids = {int(im["id"]) for im in data["images"]}
        cats = {int(c["id"]) for c in data["categories"]}
        for im in data["images"]:
            str(im["file_name"])
        for a in data["annotations"]:
            bad = (int(a["image_id"]) not in ids or int(a["category_id"]) not in cats
                   or len(a["bbox"]) != 4 or float(a["bbox"][2]) < 0 or float(a["bbox"][3]) < 0)
            if bad:
                raise ValueError(f"annotation {a.get('id')}: image_id, category_id or bbox not valid")
    except (KeyError, TypeError, ValueError) as e:
        what = f"missing key {e}" if isinstance(e, KeyError) else str(e)
        raise EdgecnnError(f"{where} is not a valid COCO-format file: {what}.") from None
    data.setdefault("info", {})
    for a in data["annotations"]:
        a.setdefault("iscrowd", 0)
        a.setdefault("area", float(a["bbox"][2]) * float(a["bbox"][3]))
    return data


@dataclass
class CocoScores:
    """COCO's detection figures: mAP@[.5:.95], mAP@.5, mAP@.75 and AP@[.5:.95] per category name."""

    map: float
    map50: float
    map75: float
    per_category: dict[str, float] = field(default_factory=dict)
    detections: int = 0


def coco_map(annotations: str | os.PathLike | Mapping[str, Any], results: Sequence[Mapping[str, Any]]
             ) -> CocoScores:
    """COCO bbox mAP of ``results`` (``{image_id, category_id, bbox: [x, y, w, h], score}``) against the
    annotations, by ``pycocotools.cocoeval.COCOeval``. No detection at all scores 0."""
    COCO, COCOeval = _coco()
    data = load_annotations(annotations)
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in data["categories"]}
    if not results:
        return CocoScores(0.0, 0.0, 0.0, dict.fromkeys(names.values(), 0.0), 0)
    with _quiet():
        gt = COCO()
        gt.dataset = data
        gt.createIndex()
        dt = gt.loadRes([dict(r) for r in results])
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = [1, 10, MAX_DETS]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # (T, R, K) at area "all", maxDets 100
    per_cat = {}
    for k, cid in enumerate(ev.params.catIds):
        p = prec[:, :, k]
        per_cat[names[cid]] = float(p[p > -1].mean()) if (p > -1).any() else -1.0
    s = ev.stats
    return CocoScores(float(max(s[0], 0.0)), float(max(s[1], 0.0)), float(max(s[2], 0.0)), per_cat, len(results))


def category_mapping(labels: Sequence[str] | None, categories: Sequence[Mapping[str, Any]]
                     ) -> tuple[dict[int, int], str]:
    """``({label index: category_id}, how)``: by name when ``labels`` (the file's metadata) names every category
    (case-insensitive), else identity."""
    ids = [int(c["id"]) for c in categories]
    if labels:
        index = {str(n).strip().lower(): i for i, n in enumerate(labels)}
        names = [str(c.get("name", "")).strip().lower() for c in categories]
        if all(n in index for n in names):
            return {index[n]: cid for n, cid in zip(names, ids, strict=True)}, "by name (the file's labels)"
    return {i: i for i in ids}, "identity (label k = category_id k)"


# --------------------------------------------------------------------------- mean IoU


def confusion(pred: np.ndarray, truth: np.ndarray, num_classes: int, ignore: int = IGNORE_INDEX) -> np.ndarray:
    """(C, C) confusion matrix, rows the true class, columns the predicted; pixels labelled ``ignore`` skipped."""
    t = np.asarray(truth).astype(np.int64).ravel()
    p = np.asarray(pred).astype(np.int64).ravel()
    keep = t != ignore
    t, p = t[keep], p[keep]
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise EdgecnnError(f"a label map holds class {int(t.max())}, but the model has {num_classes} classes "
                           f"(0..{num_classes - 1}; {ignore} = ignore).")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_from_confusion(cm: np.ndarray) -> tuple[float, list[float | None]]:
    """(mIoU, IoU per class) from a confusion matrix; a class absent from both labels and predictions is None and
    left out of the mean."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    per = [float(tp[i] / union[i]) if union[i] > 0 else None for i in range(len(cm))]
    present = [v for v in per if v is not None]
    return (float(np.mean(present)) if present else 0.0), per


# --------------------------------------------------------------------------- running files


def _engine(model: str | os.PathLike, task: str, provider: str, **engine_kw: Any) -> Any:
    from edgecnn.runtime.engine import Engine

    engine = Engine(model, provider=provider, **engine_kw)
    if engine.task != task:
        raise EdgecnnError(f"{Path(model).name} is a {engine.task} model; this evaluation is for {task} files.")
    return engine


def _run(engine: Any, paths: Sequence[Path], batch_size: int) -> Iterator[tuple[list[Any], dict[str, np.ndarray]]]:
    """(PIL images, named outputs) per batch, each image preprocessed as the file says; one image per run for
    files whose outputs do not say which image a detection belongs to."""
    from edgecnn.runtime.images import load_images, open_image
    from edgecnn.runtime.vision.detection import images_per_run

    config = engine.preprocess_config()
    batch_size = images_per_run(engine.metadata) or batch_size
    for i in range(0, len(paths), batch_size):
        pil = [open_image(p, config.channels) for p in paths[i:i + batch_size]]
        yield pil, engine.run_named(load_images(pil, config))


def _check_images(images: str | os.PathLike) -> Path:
    root = Path(images)
    if not root.is_dir():
        raise EdgecnnError(f"image folder {root} does not exist.")
    return root


def _labels(meta: Mapping[str, Any]) -> list[str] | None:
    labels = meta.get("labels")
    return [str(v) for v in labels] if isinstance(labels, list) else None


def _letterbox(config: Any) -> dict[str, bool]:
    """``{"letterbox": True}`` for a file whose preprocessing letterboxes (boxes and class maps then lose the
    padding on the way back to the image's pixels), else nothing: a stretch resize is undone by scaling."""
    return {"letterbox": True} if getattr(config, "letterbox", False) else {}


def _masks_output(engine: Any, outs: Mapping[str, np.ndarray]) -> np.ndarray:
    name = next((k for k, r in engine.output_roles.items() if r == "masks"), engine.output_names[0])
    return np.asarray(outs[name])


@dataclass
class TaskEvaluation:
    """A detection file's COCO mAP or a segmentation file's mean IoU on a labelled image set."""

    model: str
    task: str
    images: str
    labels: str
    samples: int
    provider: str
    precision: str | None
    seconds: float
    #: detection: COCO mAP@[.5:.95], mAP@.5, mAP@.75, AP per category, how labels became category ids
    map: float | None = None
    map50: float | None = None
    map75: float | None = None
    detections: int | None = None
    category_mapping: str | None = None
    #: segmentation: mean IoU over the classes present, IoU per class (None: absent), pixel accuracy
    miou: float | None = None
    pixel_accuracy: float | None = None
    per_class: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        head = f"{self.model} on {self.images}: {self.samples} images, {self.provider}, {self.precision}"
        if self.task == "detection":
            return [head, f"  COCO mAP@[.5:.95] {self.map:.4f}   mAP@.5 {self.map50:.4f}   mAP@.75 {self.map75:.4f}"
                          f"   ({self.detections} detections; labels -> category ids {self.category_mapping})"]
        per = "  ".join(f"{k} {v:.3f}" for k, v in self.per_class.items() if v is not None)
        return [head, f"  mIoU {self.miou:.4f}   pixel accuracy {self.pixel_accuracy:.4f}", f"  IoU: {per}"]


def evaluate_detection(model: str | os.PathLike, images: str | os.PathLike, annotations: str | os.PathLike, *,
                       provider: str = "cpu", batch_size: int = 16, limit: int | None = None, **engine_kw: Any
                       ) -> TaskEvaluation:
    """COCO mAP of a detection file on ``images`` described by a COCO-format ``annotations`` file (every image it
    lists must be in the folder; ``limit``: the first N images by id)."""
    from edgecnn.runtime.vision import detection as D

    root = _check_images(images)
    data = load_annotations(annotations)
    entries = sorted(data["images"], key=lambda im: int(im["id"]))[:limit]
    if not entries:
        raise EdgecnnError(f"{annotations} lists no images.")
    paths = [root / str(im["file_name"]) for im in entries]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise EdgecnnError(f"{annotations} lists {missing[0].name} but {missing[0]} is missing "
                           f"({len(missing)} of {len(paths)} images missing).")
    engine = _engine(model, "detection", provider, **engine_kw)
    mapping, how = category_mapping(_labels(engine.metadata), data["categories"])
    config = engine.preprocess_config()
    h, w = config.input_size
    results: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    done = 0
    for pil, outs in _run(engine, paths, batch_size):
        for img, det in zip(pil, D.detections(outs, engine.metadata, len(pil)), strict=True):
            entry = entries[done]
            done += 1
            det = D.to_image(det, (h, w), img.size, **_letterbox(config))
            for box, score, label in zip(det.boxes[:MAX_DETS], det.scores[:MAX_DETS], det.labels[:MAX_DETS],
                                         strict=True):
                cid = mapping.get(int(label))
                if cid is None:
                    continue
                x1, y1, x2, y2 = (float(v) for v in box)
                results.append({"image_id": int(entry["id"]), "category_id": cid,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    seconds = time.perf_counter() - t0
    if limit:
        keep = {int(im["id"]) for im in entries}
        data = {**data, "images": entries, "annotations": [a for a in data["annotations"]
                                                            if int(a["image_id"]) in keep]}
    scores = coco_map(data, results)
    return TaskEvaluation(model=str(model), task="detection", images=str(root), labels=str(annotations),
                          samples=len(entries), provider=engine.providers[0], precision=engine.precision,
                          seconds=round(seconds, 3), map=round(scores.map, 6), map50=round(scores.map50, 6),
                          map75=round(scores.map75, 6), detections=scores.detections, category_mapping=how,
                          per_class={k: round(v, 6) for k, v in scores.per_category.items()})


def _mask_pairs(images: Path, masks: str | os.PathLike, limit: int | None) -> list[tuple[Path, Path]]:
    from edgecnn.runtime.datasets import list_images

    mroot = Path(masks)
    if not mroot.is_dir():
        raise EdgecnnError(f"label-map folder {mroot} does not exist.")
    pairs = []
    for p in list_images(images, limit=limit):
        m = mroot / p.relative_to(images).with_suffix(".png")
        if not m.is_file():
            raise EdgecnnError(f"no label map for {p.name}: expected {m} (a PNG of class indices, 255 = ignore).")
        pairs.append((p, m))
    return pairs


def evaluate_segmentation(model: str | os.PathLike, images: str | os.PathLike, masks: str | os.PathLike, *,
                          provider: str = "cpu", batch_size: int = 16, limit: int | None = None, **engine_kw: Any
                          ) -> TaskEvaluation:
    """Mean IoU of a segmentation file on ``images``, against ``masks/<same name>.png`` label maps (class indices,
    255 ignored); each class map is resized back to its label map's size (nearest)."""
    from PIL import Image

    from edgecnn.runtime.vision import segmentation as S

    root = _check_images(images)
    pairs = _mask_pairs(root, masks, limit)
    engine = _engine(model, "segmentation", provider, **engine_kw)
    cm: np.ndarray | None = None
    t0 = time.perf_counter()
    done = 0
    c = 0
    config = engine.preprocess_config()
    for pil, outs in _run(engine, [p for p, _ in pairs], batch_size):
        scores = _masks_output(engine, outs)
        c = scores.shape[1]
        for img, cls in zip(pil, S.class_map(scores), strict=True):
            truth = np.asarray(Image.open(pairs[done][1]))
            done += 1
            if truth.ndim != 2:
                raise EdgecnnError(f"{pairs[done - 1][1]} is not a label map (one channel of class indices).")
            if _letterbox(config):  # the padding is no part of the image
                cls = S.unletterbox(cls, config.input_size, img.size)
            if cls.shape != truth.shape:
                cls = np.asarray(Image.fromarray(cls.astype(np.int32)).resize((truth.shape[1], truth.shape[0]),
                                                                              Image.Resampling.NEAREST))
            part = confusion(cls, truth, c)
            cm = part if cm is None else cm + part
    seconds = time.perf_counter() - t0
    assert cm is not None
    miou, per = iou_from_confusion(cm)
    names = S.labels_of(engine.metadata, c) or [str(i) for i in range(c)]
    return TaskEvaluation(model=str(model), task="segmentation", images=str(root), labels=str(masks),
                          samples=len(pairs), provider=engine.providers[0], precision=engine.precision,
                          seconds=round(seconds, 3), miou=round(miou, 6),
                          pixel_accuracy=round(float(np.trace(cm) / max(cm.sum(), 1)), 6),
                          per_class={n: (round(v, 6) if v is not None else None) for n, v in zip(names, per,
                                                                                                   strict=True)})


# --------------------------------------------------------------------------- agreement without labels


@dataclass
class TaskAgreement:
    """A candidate file against a reference file on the same images, no labels needed."""

    reference: str
    candidate: str
    task: str
    images: str
    samples: int
    #: detection: F1 of boxes matched at IoU >= ``iou`` with the same label, scores >= ``min_score``
    f1: float | None = None
    iou: float | None = None
    min_score: float | None = None
    reference_boxes: int | None = None
    candidate_boxes: int | None = None
    matched_boxes: int | None = None
    #: segmentation: share of pixels whose class agrees
    pixel_agreement: float | None = None
    #: SQNR (dB) of each output whose shapes agree in every batch ("inf": identical; None: shapes differ)
    sqnr_db: dict[str, float | str | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = [f"{self.candidate} vs {self.reference} on {self.images}: {self.samples} images"]
        if self.task == "detection":
            out.append(f"  box F1 {self.f1:.4f} at IoU >= {self.iou:g}, scores >= {self.min_score:g} "
                       f"({self.matched_boxes} matched of {self.reference_boxes} reference and "
                       f"{self.candidate_boxes} candidate boxes)")
        else:
            out.append(f"  pixel agreement {self.pixel_agreement:.4%}")
        sq = ", ".join(f"{k} {'n/a (shapes differ)' if v is None else v if isinstance(v, str) else round(v, 2)}"
                       for k, v in self.sqnr_db.items())
        return [*out, f"  SQNR dB: {sq}"]


def compare_task(reference: str | os.PathLike, candidate: str | os.PathLike, images: str | os.PathLike, *,
                 provider: str = "cpu", batch_size: int = 16, limit: int | None = None,
                 min_score: float = AGREEMENT_MIN_SCORE, iou: float = AGREEMENT_IOU,
                 reference_provider: str = "cpu", **engine_kw: Any) -> TaskAgreement:
    """How a detection or segmentation ``candidate`` agrees with ``reference`` (typically fp32) on ``images``:
    matched-box F1 (:func:`edgecnn.boxes.match_detections` at ``iou``, :func:`edgecnn.boxes.matched_f1`) or pixel
    agreement, and per-output SQNR."""
    from edgecnn.boxes import match_detections, matched_f1
    from edgecnn.metrics import sqnr_db
    from edgecnn.runtime.datasets import list_images
    from edgecnn.runtime.engine import Engine
    from edgecnn.runtime.vision import detection as D
    from edgecnn.runtime.vision import segmentation as S

    root = _check_images(images)
    paths = list_images(root, limit=limit)
    ref = Engine(reference, provider=reference_provider)
    task = ref.task
    if task not in ("detection", "segmentation"):
        raise EdgecnnError(f"{Path(reference).name} is a {task} model: compare classifiers with "
                           "edgecnn.profiler.accuracy.compare_models.")
    cand = _engine(candidate, task, provider, **engine_kw)
    batch_size = D.images_per_run(ref.metadata) or D.images_per_run(cand.metadata) or batch_size
    matches, agree, pixels = [], 0, 0
    sq: dict[str, list[tuple[np.ndarray, np.ndarray]] | None] = {n: [] for n in ref.output_names}
    for (_p, ro), (_q, co) in zip(_run(ref, paths, batch_size), _run(cand, paths, batch_size), strict=True):
        for name, pairs in sq.items():
            if pairs is None:
                continue
            if name in co and np.shape(ro[name]) == np.shape(co[name]):
                pairs.append((np.asarray(ro[name], np.float64), np.asarray(co[name], np.float64)))
            else:
                sq[name] = None
        n = len(_p)
        if task == "detection":
            for r, g in zip(D.detections(ro, ref.metadata, n), D.detections(co, cand.metadata, n), strict=True):
                r, g = (D.Detections(d.boxes[d.scores >= min_score], d.scores[d.scores >= min_score],
                                     d.labels[d.scores >= min_score]) for d in (r, g))
                matches.append(match_detections(r.as_tuple(), g.as_tuple(), iou))
        else:
            rc, gc = S.class_map(_masks_output(ref, ro)), S.class_map(_masks_output(cand, co))
            agree += int((rc == gc).sum())
            pixels += rc.size
    sqnr: dict[str, float | str | None] = {}
    for name, pairs in sq.items():
        if pairs is None or not pairs:
            sqnr[name] = None
            continue
        v = sqnr_db([a for a, _ in pairs], [b for _, b in pairs])
        sqnr[name] = "inf" if np.isinf(v) else round(v, 3)
    out = TaskAgreement(reference=str(reference), candidate=str(candidate), task=task, images=str(root),
                        samples=len(paths), sqnr_db=sqnr)
    if task == "detection":
        out.f1, out.iou, out.min_score = round(matched_f1(matches), 6), iou, min_score
        out.reference_boxes = sum(m.reference for m in matches)
        out.candidate_boxes = sum(m.candidate for m in matches)
        out.matched_boxes = sum(m.matched for m in matches)
    else:
        out.pixel_agreement = round(agree / max(pixels, 1), 6)
    return out


def labelled_metric(images: str | os.PathLike, *, annotations: str | os.PathLike | None = None,
                    masks: str | os.PathLike | None = None, limit: int | None = None, provider: str = "cpu"
                    ) -> Callable[[Path], dict[str, float]]:
    """The labelled metric ``quantize --keep-float auto`` and ``optimize`` judge a task file by
    (:data:`edgecnn.quantize.taskeval.TaskMetric`): ``path -> {"map50", "map"}`` from COCO ``annotations`` or
    ``path -> {"miou"}`` from PNG label ``masks``, in points (0..100). The labels are checked here, once."""
    if (annotations is None) == (masks is None):
        raise EdgecnnError("give --annotations FILE (a detector) or --masks DIR (a segmenter), with the images.")
    root = _check_images(images)
    if annotations is not None:
        if not Path(annotations).is_file():
            raise EdgecnnError(f"annotation file {annotations} does not exist.")

        def detection(path: Path) -> dict[str, float]:
            ev = evaluate_detection(path, root, annotations, provider=provider, limit=limit)
            return {"map50": 100.0 * float(ev.map50 or 0.0), "map": 100.0 * float(ev.map or 0.0)}

        return detection
    if not Path(masks).is_dir():  # type: ignore[arg-type]
        raise EdgecnnError(f"label-map folder {masks} does not exist.")

    def segmentation(path: Path) -> dict[str, float]:
        ev = evaluate_segmentation(path, root, masks, provider=provider, limit=limit)  # type: ignore[arg-type]
        return {"miou": 100.0 * float(ev.miou or 0.0)}

    return segmentation
