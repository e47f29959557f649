"""The shapes task: detection and segmentation that need no download (seeded synthetic scenes, COCO format).

    from edgecnn.tasks.shapes import shapes_task

    task = shapes_task()   # trains both models once (a few minutes on 2 cores), then reuses the cached weights
    task.detector, task.segmenter              # state_dicts of shapes_ssd and shapes_lraspp
    task.test.images, task.test.annotations, task.test.masks   # the held-out split, written once
    task.calib                                  # a folder of training scenes, for int8 calibration

Each scene is 128x128 RGB: a smooth random colour field with a striped texture, then 2 to 6 shapes (circle,
square, triangle, cross: :data:`CLASSES`) of 12 to 48 pixels, rotated, in random colours, drawn one over the
other (a later shape covers an earlier one; a placement that would hide more than half of an earlier shape is
tried elsewhere), then Gaussian noise. Scene ``i`` of a split is drawn from seed ``base + i`` (training base 0,
test base 1,000,000: disjoint). A split is written as a COCO-format set (Lin et al. 2014): ``images/<n>.png``,
``instances.json`` (bbox and area of the *visible* pixels, segmentation as uncompressed RLE, ``iscrowd`` 0) and
``masks/<n>.png`` label maps (0 background, k = category id k) for mean IoU.

The models are the zoo's ``shapes_ssd`` (torchvision's SSD, Liu et al. 2016) and ``shapes_lraspp`` (torchvision's
LR-ASPP, Howard et al. 2019). Training inputs go through the runtime's own preprocessing, so the exported files see
what they were trained on. Weights are cached under ``<edgecnn cache>/tasks/shapes`` (``state_dict`` read back with
``torch.load(weights_only=True)``); the data under ``<edgecnn cache>/tasks/shapes/data-r<version>``. torch is
imported only to train.

The SSDlite reference (:func:`ssdlite_on_shapes`) is the zoo's ``ssdlite320_mobilenet_v3_large`` (torchvision's
builder, random weights) with background + the 4 shapes, trained the same way at 128x128 within a wall-time cap,
cached beside them and exported with :func:`export_onnx` ``("ssdlite", ...)`` (the task's labels in the metadata).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from edgecnn._io import atomic_path, user_cache_dir
from edgecnn.errors import EdgecnnError
from edgecnn.runtime.images import PreprocessConfig

#: bump when the scenes change (the cached data and weights of an older version are not reused)
DATA_VERSION = 1
#: bump when a training recipe changes
RECIPE_VERSION = 1
CLASSES = ("circle", "square", "triangle", "cross")
SIZE = 128
MIN_SIDE, MAX_SIDE = 12, 48
MIN_SHAPES, MAX_SHAPES = 2, 6
#: an earlier shape keeps at least this share of its pixels visible
MIN_VISIBLE = 0.5
TRAIN_SEED, TEST_SEED = 0, 1_000_000
TRAIN_SCENES, TEST_SCENES, CALIB_SCENES = 3000, 300, 128
DET_EPOCHS, SEG_EPOCHS = 6, 8
#: the runtime's preprocessing of a stretch-resized file (no crop); scenes are already at the input size
CONFIG = PreprocessConfig(input_size=(SIZE, SIZE), channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                          crop_fraction=None)
#: the SSDlite reference: the zoo's ssdlite320_mobilenet_v3_large (torchvision's builder, random init, reduced tail)
#: re-headed for background + 4 shapes, trained from scratch at the scenes' own size (its six feature maps are
#: 8, 4, 2, 1, 1, 1 cells at 128) within a wall-time budget: its warm-up and cosine schedule runs on whichever is
#: further along, the steps or SSDLITE_MAX_SECONDS of wall time, so that it ends annealed in under ten minutes on
#: 2 CPU cores however busy they are (a busy machine does fewer steps; the training record says how many).
SSDLITE = "ssdlite320_mobilenet_v3_large"
SSDLITE_RECIPE_VERSION = 2
SSDLITE_SIZE = 128
SSDLITE_SCENES, SSDLITE_EPOCHS, SSDLITE_BATCH, SSDLITE_LR = 3000, 12, 16, 3e-3
SSDLITE_MAX_SECONDS = 540.0
#: the runtime's preprocessing of the SSDlite file (the zoo entry's mean and std, stretch resize)
SSDLITE_CONFIG = PreprocessConfig(input_size=(SSDLITE_SIZE, SSDLITE_SIZE), channels=3, mean=(0.5, 0.5, 0.5),
                                  std=(0.5, 0.5, 0.5), crop_fraction=None)


# --------------------------------------------------------------------------- scenes


@dataclass
class Scene:
    """One scene: the image (H, W, 3) uint8, each instance's category id (1..4) and visible mask (H, W) bool,
    and the semantic label map (H, W) uint8."""

    image: np.ndarray
    categories: list[int]
    masks: list[np.ndarray]
    label_map: np.ndarray

    def boxes(self) -> np.ndarray:
        """(K, 4) float32 x1, y1, x2, y2 of each visible mask (pixel edges: x2 = last column + 1)."""
        out = np.zeros((len(self.masks), 4), np.float32)
        for k, m in enumerate(self.masks):
            ys, xs = np.nonzero(m)
            out[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        return out


def _polygon(kind: str, cx: float, cy: float, side: float, angle: float) -> list[tuple[float, float]]:
    r = side / 2
    if kind == "square":
        pts = [(-r, -r), (r, -r), (r, r), (-r, r)]
    elif kind == "triangle":
        pts = [(r * math.cos(a), r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    else:  # cross: a plus sign, arms a third of the side wide
        a = r / 3
        pts = [(-a, -r), (a, -r), (a, -a), (r, -a), (r, a), (a, a), (a, r), (-a, r), (-a, a), (-r, a), (-r, -a),
               (-a, -a)]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def _shape_mask(kind: str, cx: float, cy: float, side: float, angle: float) -> np.ndarray:
    canvas = Image.new("L", (SIZE, SIZE), 0)
    pen = ImageDraw.Draw(canvas)
    if kind == "circle":
        r = side / 2
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    else:
        pen.polygon(_polygon(kind, cx, cy, side, angle), fill=1)
    return np.asarray(canvas, dtype=bool)


def _background(rng: np.random.Generator) -> np.ndarray:
    field = rng.uniform(30, 225, size=(4, 4, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(field).resize((SIZE, SIZE), Image.Resampling.BICUBIC), np.float32)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    theta, period = rng.uniform(0, math.pi), rng.uniform(4, 16)
    stripes = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period)
    return base + rng.uniform(5, 25) * stripes[..., None]


def make_scene(seed: int) -> Scene:
    """The scene of ``seed`` (deterministic)."""
    rng = np.random.default_rng(seed)
    img = _background(rng)
    masks: list[np.ndarray] = []
    full: list[int] = []
    cats: list[int] = []
    colours: list[np.ndarray] = []
    for _ in range(int(rng.integers(MIN_SHAPES, MAX_SHAPES + 1))):
        cat = int(rng.integers(1, len(CLASSES) + 1))
        for _try in range(10):
            side = float(rng.uniform(MIN_SIDE, MAX_SIDE))
            cx, cy = rng.uniform(side / 2, SIZE - side / 2, size=2)
            m = _shape_mask(CLASSES[cat - 1], float(cx), float(cy), side, float(rng.uniform(0, 2 * math.pi)))
            if m.sum() < 40:
                continue
            if all((old & ~m).sum() >= MIN_VISIBLE * n for old, n in zip(masks, full, strict=True)):
                break
        else:
            continue
        masks = [old & ~m for old in masks]
        masks.append(m)
        full.append(int(m.sum()))
        cats.append(cat)
        under = img[m].mean(axis=0)
        colour = rng.uniform(0, 255, size=3)
        if np.abs(colour - under).sum() < 120:  # keep the shape visible against what it covers
            colour = 255 - under
        colours.append(colour)
    label_map = np.zeros((SIZE, SIZE), np.uint8)
    shade = 1 + 0.08 * rng.standard_normal((SIZE, SIZE, 1))
    for m, cat, colour in zip(masks, cats, colours, strict=True):
        img[m] = (colour[None, None, :] * shade)[m]
        label_map[m] = cat
    img = img + rng.normal(0, rng.uniform(3, 12), size=img.shape)
    return Scene(np.clip(img, 0, 255).astype(np.uint8), cats, masks, label_map)


def rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed RLE of a (H, W) mask: run lengths in column-major order, starting with a 0-run."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]]))
    counts = ([0] if flat.size and flat[0] else []) + [int(v) for v in runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def coco_dict(scenes: list[Scene], names: list[str]) -> dict[str, Any]:
    """The COCO-format dict (images, annotations, categories) of scenes saved as ``names``."""
    images, anns = [], []
    for i, (scene, name) in enumerate(zip(scenes, names, strict=True)):
        images.append({"id": i + 1, "file_name": name, "width": SIZE, "height": SIZE})
        for cat, m, box in zip(scene.categories, scene.masks, scene.boxes(), strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(m.sum()), "segmentation": rle(m),
                         "iscrowd": 0})
    cats = [{"id": k + 1, "name": n, "supercategory": "shape"} for k, n in enumerate(CLASSES)]
    return {"info": {"description": "edgecnn shapes task (synthetic, seeded)", "version": str(DATA_VERSION)},
            "images": images, "annotations": anns, "categories": cats}


@dataclass(frozen=True)
class SplitFiles:
    """A written split: the image folder, the COCO annotation file and the label-map folder."""

    root: Path
    images: Path
    annotations: Path
    masks: Path


def split_files(root: str | os.PathLike) -> SplitFiles:
    root = Path(root)
    return SplitFiles(root, root / "images", root / "instances.json", root / "masks")


def write_split(root: str | os.PathLike, count: int, seed: int = TEST_SEED) -> SplitFiles:
    """Write scenes ``seed .. seed + count - 1`` as a COCO-format split under ``root`` (built in a temporary folder
    beside it and renamed: an interrupted write leaves nothing)."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        out = split_files(tmp)
        out.images.mkdir()
        out.masks.mkdir()
        scenes, names = [], []
        for i in range(count):
            scene = make_scene(seed + i)
            name = f"{i:05d}.png"
            Image.fromarray(scene.image).save(out.images / name)
            Image.fromarray(scene.label_map).save(out.masks / name)
            scenes.append(scene)
            names.append(name)
        out.annotations.write_text(json.dumps(coco_dict(scenes, names)))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's folder is private (0700); the split is an ordinary folder
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return split_files(root)


def write_images(root: str | os.PathLike, count: int, seed: int = TRAIN_SEED) -> Path:
    """Unlabelled ``root/<n>.png`` of scenes ``seed ..`` (a calibration folder)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        with atomic_path(root / f"{i:05d}.png", suffix=".png") as tmp:
            Image.fromarray(make_scene(seed + i).image).save(tmp, format="PNG")
    return root


def data_dir() -> Path:
    """``<edgecnn cache>/tasks/shapes/data-r<DATA_VERSION>``."""
    return user_cache_dir() / "tasks" / "shapes" / f"data-r{DATA_VERSION}"


def test_split(count: int = TEST_SCENES) -> SplitFiles:
    """The held-out test split (scenes from seed 1,000,000), written to the cache on first use."""
    files = split_files(data_dir() / f"test-{count}")
    if not files.annotations.is_file():
        write_split(files.root, count, TEST_SEED)
    return files


def calib_folder(count: int = CALIB_SCENES) -> Path:
    """A folder of ``count`` training scenes (no labels), for int8 calibration; written on first use."""
    root = data_dir() / f"calib-{count}"
    if len(list(root.glob("*.png"))) < count:
        write_images(root, count, TRAIN_SEED)
    return root


# --------------------------------------------------------------------------- training


def normalise(images: np.ndarray, config: PreprocessConfig = CONFIG) -> np.ndarray:
    """uint8 scenes (N, 3, H, W) -> the runtime's preprocessing of them (float32, ``(x / 255 - 0.5) / 0.25``):
    :func:`edgecnn.runtime.preprocess` with :data:`CONFIG` (or ``config``'s mean and std), done on a batch."""
    x = np.asarray(images, dtype=np.float32) / np.float32(255.0)
    mean = np.asarray(config.mean, np.float32)[:, None, None]
    std = np.asarray(config.std, np.float32)[:, None, None]
    return ((x - mean) / std).astype(np.float32)


def training_arrays(count: int, seed: int = TRAIN_SEED) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray],
                                                                  np.ndarray]:
    """``count`` scenes: images (N, 3, 128, 128) uint8 (:func:`normalise` makes the model's input), boxes (K, 4)
    and category ids per scene, and label maps (N, 128, 128) int64."""
    xs, boxes, labels, maps = [], [], [], []
    for i in range(count):
        s = make_scene(seed + i)
        xs.append(s.image.transpose(2, 0, 1))
        boxes.append(s.boxes())
        labels.append(np.asarray(s.categories, np.int64))
        maps.append(s.label_map)
    return np.stack(xs), boxes, labels, np.stack(maps).astype(np.int64)


def resized(images: np.ndarray, boxes: list[np.ndarray], size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """uint8 scenes (N, 3, 128, 128) resized to ``size`` as the runtime's stretch resize does (PIL bilinear on the
    uint8 image), and their boxes scaled with them; unchanged at 128."""
    if size == SIZE:
        return images, boxes
    out = np.stack([np.asarray(Image.fromarray(im.transpose(1, 2, 0)).resize((size, size), Image.Resampling.BILINEAR)
                               ).transpose(2, 0, 1) for im in images])
    return out, [b * np.float32(size / SIZE) for b in boxes]


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise EdgecnnError("training the shapes task's models needs torch: pip install 'edgecnn[export]'") from None
    return torch


def _schedule(torch: Any, opt: Any, steps: int) -> Any:
    """Linear warm-up over the first 5% of the steps, then cosine decay to zero."""
    warm = max(1, steps // 20)

    def factor(i: int) -> float:
        return (i + 1) / warm if i < warm else 0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, steps - warm)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def ssd_targets(model: Any, anchors: Any, boxes: list[np.ndarray], labels: list[np.ndarray], chunk: int = 256
                ) -> tuple[Any, Any]:
    """Every anchor's class (N, A) and encoded box (N, A, 4) for each scene, computed once: torchvision's
    ``SSDMatcher`` (an anchor takes the object it overlaps most when IoU >= 0.5, and each object its best anchor) and
    ``BoxCoder``, as ``SSD.forward`` does per image, here for ``chunk`` scenes at a time (a scene without objects
    is all background)."""
    torch = _torch()
    from edgecnn.models._torchvision import torchvision

    tv = torchvision()
    n, a = len(boxes), len(anchors)
    cls = torch.zeros(n, a, dtype=torch.int64)
    reg = torch.zeros(n, a, 4)
    thr = float(model.proposal_matcher.high_threshold)
    for s in range(0, n, chunk):
        part = range(s, min(n, s + chunk))
        g = max([len(boxes[i]) for i in part] + [1])
        gt = torch.zeros(len(part), g, 4)
        lab = torch.zeros(len(part), g, dtype=torch.int64)
        valid = torch.zeros(len(part), g, dtype=torch.bool)
        for j, i in enumerate(part):
            k = len(boxes[i])
            gt[j, :k], lab[j, :k], valid[j, :k] = torch.from_numpy(boxes[i]), torch.from_numpy(labels[i]), True
        iou = tv.ops.box_iou(gt.view(-1, 4), anchors).view(len(part), g, a)
        iou[~valid] = -1.0
        best, idx = iou.max(1)
        matched = torch.where(best >= thr, idx, torch.full_like(idx, -1))
        best_anchor = iou.argmax(2)
        rows = torch.arange(len(part))
        for k in range(g):
            sel = valid[:, k]
            matched[rows[sel], best_anchor[sel, k]] = k
        fg = matched >= 0
        take = matched.clamp(min=0)
        cls[s:s + len(part)] = torch.where(fg, lab.gather(1, take), torch.zeros_like(take))
        gtb = gt.gather(1, take.unsqueeze(-1).expand(-1, -1, 4))
        enc = model.box_coder.encode_single(gtb.reshape(-1, 4), anchors.repeat(len(part), 1)).view(len(part), a, 4)
        reg[s:s + len(part)] = torch.where(fg.unsqueeze(-1), enc, torch.zeros_like(enc))
    return cls, reg


def ssd_loss(torch: Any, head: dict[str, Any], cls_t: Any, reg_t: Any, neg_to_pos: float = 3.0) -> Any:
    """SSD's loss (Liu et al. 2016) as torchvision's ``SSD.compute_loss``, on a whole batch at once: smooth L1 over
    the matched anchors plus cross-entropy over them and the hardest ``neg_to_pos`` x as many background anchors,
    divided by the number of matched anchors."""
    reg, logits = head["bbox_regression"], head["cls_logits"]
    fg = cls_t > 0
    n = max(1, int(fg.sum()))
    box_loss = torch.nn.functional.smooth_l1_loss(reg[fg], reg_t[fg], reduction="sum")
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), cls_t.reshape(-1),
                                           reduction="none").view(cls_t.shape)
    neg = ce.detach().clone()
    neg[fg] = -float("inf")
    rank = neg.sort(1, descending=True)[1].sort(1)[1]
    bg = rank < neg_to_pos * fg.sum(1, keepdim=True)
    return (box_loss + ce[fg].sum() + ce[bg].sum()) / n


def ssdlite_model() -> Any:
    """The zoo's ``ssdlite320_mobilenet_v3_large`` (torchvision's builder, seeded random weights, reduced tail)
    with background + the 4 shape classes."""
    from edgecnn.models import create_model

    return create_model(SSDLITE, num_classes=len(CLASSES) + 1)


def train_detector(images: np.ndarray, boxes: list[np.ndarray], labels: list[np.ndarray], *,
                   epochs: int = DET_EPOCHS, batch_size: int = 16, lr: float = 4e-3, seed: int = 0,
                   log: Any = None, timings: list[float] | None = None, model: str = "shapes_ssd",
                   size: int = SIZE, config: PreprocessConfig = CONFIG, max_seconds: float | None = None,
                   info: dict[str, Any] | None = None) -> Any:
    """Train the zoo's ``shapes_ssd`` (or ``model`` = :data:`SSDLITE`, at ``size`` with ``config``'s
    normalisation) on uint8 scenes with SSD's matching and loss (:func:`ssd_targets`, :func:`ssd_loss`), AdamW and
    a warm-up and cosine schedule; returns it in eval mode. ``max_seconds``: the schedule's progress is the larger of
    the share of steps done and the share of this wall time (counted from the call) spent, and training ends when it
    reaches 1 (``info`` gets ``steps`` done and ``steps_planned``)."""
    torch = _torch()
    from edgecnn.models import create_model

    start = time.perf_counter()
    torch.manual_seed(seed)
    model_name = model
    model = ssdlite_model() if model_name == SSDLITE else create_model(model_name)
    images, boxes = resized(images, boxes, size)
    with torch.no_grad():
        from torchvision.models.detection.image_list import ImageList

        z = torch.zeros(1, 3, size, size)
        model.eval()
        anchors = model.anchor_generator(ImageList(z, [(size, size)]), list(model.backbone(z).values()))[0]
    cls_t, reg_t = ssd_targets(model, anchors, boxes, labels)
    steps = epochs * -(-len(images) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = _schedule(torch, opt, steps)
    gen = torch.Generator().manual_seed(seed)
    done, stop = 0, False
    if max_seconds is not None:  # the schedule follows the steps or the wall time, whichever is further along
        sched = None
        warm = 0.05

        def progress() -> float:
            return max(done / steps, (time.perf_counter() - start) / max(max_seconds, 1e-9))
    for epoch in range(epochs):
        if sched is None and done > 0 and progress() >= 1:
            break
        model.train()
        perm = torch.randperm(len(images), generator=gen)
        total, seen, t0 = 0.0, 0, time.perf_counter()
        for i in range(0, len(images), batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) < 2 and model_name == SSDLITE:
                continue  # SSDlite's extra layers end at 1x1: batch norm needs two images
            if sched is None:
                p = progress()
                if p >= 1 and done > 0:
                    stop = True
                    break
                f = (p + 1 / steps) / warm if p < warm else 0.5 * (1 + math.cos(math.pi * (p - warm) / (1 - warm)))
                for group in opt.param_groups:
                    group["lr"] = lr * min(1.0, f)
            xb = torch.from_numpy(normalise(images[idx.numpy()], config))
            loss = ssd_loss(torch, model.head(list(model.backbone(xb).values())), cls_t[idx], reg_t[idx],
                            model.neg_to_pos_ratio)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            done += 1
            total, seen = total + float(loss.detach()) * len(idx), seen + len(idx)
        if timings is not None:
            timings.append(round(time.perf_counter() - t0, 2))
        if log:
            log(f"{model_name} epoch {epoch + 1}/{epochs}: loss {total / max(1, seen):.4f} "
                f"({time.perf_counter() - t0:.1f} s){' - wall-time budget spent' if stop else ''}")
        if stop:
            break
    if info is not None:
        info.update(steps=done, steps_planned=steps)
    return model.eval()


def train_segmenter(images: np.ndarray, maps: np.ndarray, *, epochs: int = SEG_EPOCHS, batch_size: int = 16,
                    lr: float = 4e-3, seed: int = 0, log: Any = None, timings: list[float] | None = None) -> Any:
    """Train the zoo's ``shapes_lraspp`` with per-pixel cross-entropy, AdamW, a warm-up and cosine schedule and
    horizontal flips; returns it in eval mode."""
    torch = _torch()
    from edgecnn.models import create_model

    torch.manual_seed(seed)
    model = create_model("shapes_lraspp")
    steps = epochs * -(-len(images) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = _schedule(torch, opt, steps)
    yt = torch.from_numpy(maps)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(images), generator=gen)
        total, t0 = 0.0, time.perf_counter()
        for i in range(0, len(images), batch_size):
            idx = perm[i:i + batch_size]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb, yb = torch.from_numpy(normalise(images[idx.numpy()])), yt[idx].clone()
            xb[flip], yb[flip] = xb[flip].flip(-1), yb[flip].flip(-1)
            loss = loss_fn(model(xb)["out"], yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if timings is not None:
            timings.append(round(time.perf_counter() - t0, 2))
        if log:
            log(f"segmenter epoch {epoch + 1}/{epochs}: loss {total / len(images):.4f} "
                f"({time.perf_counter() - t0:.1f} s)")
    return model.eval()


# --------------------------------------------------------------------------- cached weights and the task


#: the task's models by kind; ``ssdlite`` is the SSDlite reference (:func:`ssdlite_on_shapes`), not in ShapesTask
MODELS = {"detector": "shapes_ssd", "segmenter": "shapes_lraspp", "ssdlite": SSDLITE}
EPOCHS = {"detector": DET_EPOCHS, "segmenter": SEG_EPOCHS, "ssdlite": SSDLITE_EPOCHS}


def weights_path(kind: str, epochs: int | None = None, scenes: int | None = None, seed: int = 0) -> Path:
    """``<edgecnn cache>/tasks/shapes/<model>-d<data>-r<recipe>-n<scenes>-e<epochs>-s<seed>.pt`` (SSDlite's:
    ``...-r<recipe>-i<input size>-n...``)."""
    if kind not in MODELS:
        raise EdgecnnError(f"shapes task model {kind!r}: use detector, segmenter or ssdlite.")
    epochs = epochs if epochs is not None else EPOCHS[kind]
    if kind == "ssdlite":
        recipe = f"r{SSDLITE_RECIPE_VERSION}-i{SSDLITE_SIZE}"
        scenes = SSDLITE_SCENES if scenes is None else scenes
    else:
        recipe = f"r{RECIPE_VERSION}"
        scenes = TRAIN_SCENES if scenes is None else scenes
    name = f"{MODELS[kind]}-d{DATA_VERSION}-{recipe}-n{scenes}-e{epochs}-s{seed}.pt"
    return user_cache_dir() / "tasks" / "shapes" / name


@dataclass
class Trained:
    """Where a model's weights are, whether this call trained them, and the training record kept beside them
    (``<weights>.json``: wall seconds, seconds per epoch, load average, threads)."""

    path: Path
    trained: bool
    record: dict[str, Any] = field(default_factory=dict)


def _record(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}


def trained_weights(kind: str, *, epochs: int | None = None, scenes: int | None = None, seed: int = 0,
                    data: tuple[np.ndarray, list[np.ndarray], list[np.ndarray], np.ndarray] | None = None,
                    log: Any = None, max_seconds: float | None = None) -> Trained:
    """The cached weights of the task's ``detector``, ``segmenter`` or ``ssdlite``, training them first when absent
    (``data``: :func:`training_arrays` of at least ``scenes`` scenes; the first ``scenes`` are used). SSDlite's
    training fits ``max_seconds`` of wall time (default :data:`SSDLITE_MAX_SECONDS`; the record says how many steps
    it did)."""
    path = weights_path(kind, epochs, scenes, seed)
    if path.is_file():
        return Trained(path, False, _record(path))
    scenes = scenes if scenes is not None else SSDLITE_SCENES if kind == "ssdlite" else TRAIN_SCENES
    torch = _torch()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t_data = time.perf_counter()
    x, boxes, labels, maps = data if data is not None else training_arrays(scenes)
    x, boxes, labels, maps = x[:scenes], boxes[:scenes], labels[:scenes], maps[:scenes]
    data_seconds = round(time.perf_counter() - t_data, 2)
    epochs = epochs or EPOCHS[kind]
    timings: list[float] = []
    extra: dict[str, Any] = {}
    t0 = time.perf_counter()
    if kind == "detector":
        model = train_detector(x, boxes, labels, epochs=epochs, seed=seed, log=log, timings=timings)
    elif kind == "ssdlite":
        cap = SSDLITE_MAX_SECONDS if max_seconds is None else max_seconds
        model = train_detector(x, boxes, labels, epochs=epochs, batch_size=SSDLITE_BATCH, lr=SSDLITE_LR, seed=seed,
                               log=log, timings=timings, model=SSDLITE, size=SSDLITE_SIZE, config=SSDLITE_CONFIG,
                               max_seconds=cap, info=extra)
        extra.update(input_size=[SSDLITE_SIZE, SSDLITE_SIZE], num_classes=len(CLASSES) + 1, batch_size=SSDLITE_BATCH,
                     lr=SSDLITE_LR, max_seconds=cap, stopped_early=extra["steps"] < extra["steps_planned"],
                     data_seconds=data_seconds if data is None else None)
    else:
        model = train_segmenter(x, maps, epochs=epochs, seed=seed, log=log, timings=timings)
    record = {"model": MODELS[kind], "seconds": round(time.perf_counter() - t0, 2), "epoch_seconds": timings,
              "epochs": epochs, "scenes": scenes, "seed": seed, "threads": torch.get_num_threads(),
              "load_average_start": load,
              "load_average_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None, **extra}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(model.state_dict(), tmp)
    with atomic_path(path.with_suffix(".json"), suffix=".json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return Trained(path, True, record)


@dataclass(frozen=True)
class ShapesTask:
    """The shapes task's trained weights and data."""

    #: ``state_dict`` of ``shapes_ssd`` and of ``shapes_lraspp``
    detector: Path
    segmenter: Path
    #: the held-out test split: images/, instances.json (COCO), masks/ (label maps)
    test: SplitFiles
    #: training scenes without labels, for calibration
    calib: Path
    #: each model's training record (``Trained.record``: seconds, seconds per epoch, load average), {} if unknown
    training: dict[str, dict[str, Any]] = field(default_factory=dict)


def shapes_task(*, scenes: int = TRAIN_SCENES, test_scenes: int = TEST_SCENES, calib_scenes: int = CALIB_SCENES,
                det_epochs: int = DET_EPOCHS, seg_epochs: int = SEG_EPOCHS, seed: int = 0, log: Any = None
                ) -> ShapesTask:
    """The shapes task: cached trained weights of both models (trained on first use), the test split and a
    calibration folder."""
    data = None
    if not (weights_path("detector", det_epochs, scenes, seed).is_file()
            and weights_path("segmenter", seg_epochs, scenes, seed).is_file()):
        data = training_arrays(scenes)
    det = trained_weights("detector", epochs=det_epochs, scenes=scenes, seed=seed, data=data, log=log)
    seg = trained_weights("segmenter", epochs=seg_epochs, scenes=scenes, seed=seed, data=data, log=log)
    return ShapesTask(det.path, seg.path, test_split(test_scenes), calib_folder(calib_scenes),
                      {"detector": det.record, "segmenter": seg.record})


def ssdlite_on_shapes(*, scenes: int = SSDLITE_SCENES, epochs: int = SSDLITE_EPOCHS, seed: int = 0,
                      data: tuple[np.ndarray, list[np.ndarray], list[np.ndarray], np.ndarray] | None = None,
                      log: Any = None, max_seconds: float | None = None) -> Trained:
    """The SSDlite reference on the shapes task: the zoo's ``ssdlite320_mobilenet_v3_large`` with 5 classes,
    trained from random weights at :data:`SSDLITE_SIZE` on the first ``scenes`` training scenes (once; then the
    cached ``state_dict`` at :func:`weights_path` ``("ssdlite", ...)`` and its training record). Export it with
    :func:`export_onnx` ``("ssdlite", ...)``; evaluate on :func:`test_split`."""
    return trained_weights("ssdlite", epochs=epochs, scenes=scenes, seed=seed, data=data, log=log,
                           max_seconds=max_seconds)


def export_onnx(kind: str, weights: str | os.PathLike, path: str | os.PathLike, *, nms: str = "graph") -> Path:
    """Export the task's detector or SSDlite (``nms`` graph or host) or segmenter with trained ``weights`` to an
    edgecnn ``.onnx`` file (:func:`edgecnn.exporters.export`: validated by the shape sweep, task metadata; SSDlite
    at :data:`SSDLITE_SIZE` with the task's labels)."""
    from edgecnn.exporters.api import export

    if kind not in MODELS:
        raise EdgecnnError(f"shapes task model {kind!r}: use detector, segmenter or ssdlite.")
    if kind == "ssdlite":
        from edgecnn.models.shapes import shapes_labels

        export(SSDLITE, path, weights=weights, force=True, progress=False, nms=nms, num_classes=len(CLASSES) + 1,
               input_size=(SSDLITE_SIZE, SSDLITE_SIZE), labels=shapes_labels())
        return Path(path)
    export(MODELS[kind], path, weights=weights, force=True, progress=False,
           **({"nms": nms} if kind == "detector" else {}))
    return Path(path)
