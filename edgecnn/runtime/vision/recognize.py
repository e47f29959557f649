"""What a detection or segmentation file from elsewhere outputs, recognised from its output names and shapes and
its input size (torch-free, onnx-free: pass plain ``(name, shape, dtype)`` descriptions).

    spec = recognize(outputs, input_size=(640, 640), batch=1)
    spec.task, spec.head["kind"]       # 'detection', 'yolo'
    spec.lines()                       # what was given, detected and assumed, one line each
    spec.metadata()                    # edgecnn metadata keys that make the file self-describing

Heads (``head["kind"]``), by output shapes (``N`` detections or anchors, ``C`` classes, ``M`` mask coefficients):

=============== ======================================================= =============================================
kind            outputs                                                 decoded as
=============== ======================================================= =============================================
``yolo``        ``[1, 4+C, N]`` or ``[1, N, 4+C]``                      Ultralytics v8/v11: centre-xywh in input
                                                                        pixels, class scores; NMS on the host
``yolov5``      ``[1, N, 5+C]`` (or ``[1, 5+C, N]``)                    YOLOv5/v7: an objectness column after the box
``yolo_seg``    ``[1, 4+C+M, N]`` + prototypes ``[1, M, H/4, W/4]``     Ultralytics segmentation: masks from
                                                                        ``sigmoid(coefficients @ prototypes)``
``ssd``         boxes ``[1, N, 4]`` + scores ``[1, N, C]``              x1y1x2y2, class 0 background; NMS on the host
``torchvision`` boxes ``[K, 4]``, scores ``[K]``, labels ``[K]``        torchvision's detectors exported by
                                                                        ``torch.onnx``: NMS done, labels 1-based
``nms_rows6``   ``[1, K, 6]``                                           x1, y1, x2, y2, score, class (Ultralytics
                                                                        ``nms=True``/end-to-end exports)
``nms_rows7``   ``[K, 7]``                                              batch, x1, y1, x2, y2, class, score (YOLOv7
                                                                        ``--end2end``)
``logits``      ``[1, C, H, W]`` (H, W > 1)                             segmentation: class map by argmax
=============== ======================================================= =============================================

A head is ``detected`` when the shapes (and the anchor count of strides 8/16/32 at the input size) leave one
reading; ``assumed`` when a default decides (objectness, box format, background class); ``given`` when an
override (``--task``, ``--head``, ``--box-format``, ``--letterbox``, thresholds) decides. Shapes that fit no head,
or fit two, end in one :class:`EdgecnnError` line naming the options that settle it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgecnn.errors import EdgecnnError

#: the decoders of foreign files; ``edgecnn`` is a file edgecnn exported (roles in its own metadata)
HEADS = ("yolo", "yolov5", "yolo_seg", "ssd", "torchvision", "nms_rows6", "nms_rows7", "logits")
BOX_FORMATS = ("xyxy", "cxcywh")
#: decoding thresholds per head family: (score_threshold, iou_threshold). YOLO: Ultralytics' val conf 0.001 and
#: IoU 0.7 (predict's display threshold, 0.25, is ``predict --min-score``); YOLOv5's own IoU is 0.45; SSD:
#: torchvision's SSD post-processing (0.001 and 0.55)
THRESHOLDS = {"yolo": (0.001, 0.7), "yolo_seg": (0.001, 0.7), "yolov5": (0.001, 0.45), "ssd": (0.001, 0.55),
              "torchvision": (0.0, 0.5), "nms_rows6": (0.001, 0.5), "nms_rows7": (0.0, 0.5)}
#: most detections kept per image (Ultralytics' max_det, torchvision's detections_per_image)
MAX_DETECTIONS = 300
#: strides of YOLO's three detection levels
STRIDES = (8, 16, 32)
#: the options that settle what a file is, for error lines
OPTIONS_HINT = ("--task detection|segmentation|classification, --head " + "|".join(HEADS)
                + ", --box-format xyxy|cxcywh")


@dataclass(frozen=True)
class OutputInfo:
    """One graph output: its name, its shape (ints, strings for symbolic dims, None when unknown) and whether its
    element type is an integer type."""

    name: str
    shape: tuple[Any, ...]
    integer: bool = False

    @property
    def rank(self) -> int:
        return len(self.shape)

    def dim(self, i: int) -> int | None:
        d = self.shape[i]
        return d if isinstance(d, int) and d > 0 else None

    def text(self) -> str:
        return f"{self.name} [" + ", ".join(str(d) if d is not None else "?" for d in self.shape) + "]"


@dataclass(frozen=True)
class Overrides:
    """What the user said (None: not said): ``--task``, ``--head``, ``--box-format``, ``--letterbox``,
    ``--score-threshold``, ``--iou-threshold``."""

    task: str | None = None
    head: str | None = None
    box_format: str | None = None
    letterbox: bool | None = None
    score_threshold: float | None = None
    iou_threshold: float | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Overrides:
        return cls(**{k: options.get(k) for k in cls.__dataclass_fields__})

    def any(self) -> bool:
        return any(getattr(self, k) is not None for k in self.__dataclass_fields__)


@dataclass(frozen=True)
class TaskSpec:
    """A recognised task and how to decode its outputs."""

    task: str
    #: ``{"kind": one of HEADS, "layout": "cn"|"nc" (yolo: channels first or last), "objectness": bool,
    #: "masks": M (yolo_seg), "background": bool (ssd: score column 0 is background)}``
    head: dict[str, Any]
    #: output name -> role (``head``, ``protos``, ``boxes``, ``scores``, ``labels``, ``rows``, ``masks``)
    roles: dict[str, str]
    box_format: str = "xyxy"
    num_classes: int | None = None
    letterbox: bool = False
    score_threshold: float = 0.001
    iou_threshold: float = 0.7
    detected: tuple[str, ...] = ()
    assumed: tuple[str, ...] = ()
    given: tuple[str, ...] = field(default=())
    #: for a file whose metadata declares the task: only the keys the overrides change (None: all of them)
    only: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        return str(self.head.get("kind", ""))

    def metadata(self) -> dict[str, Any]:
        """These choices as edgecnn metadata keys (without prefix)."""
        if self.only is not None:
            return dict(self.only)
        meta: dict[str, Any] = {"task": self.task, "head": dict(self.head),
                                "outputs": [{"name": n, "role": r, "batch": r not in ("rows", "boxes", "scores",
                                                                                      "labels")
                                             or self.kind in ("ssd", "nms_rows6")}
                                            for n, r in self.roles.items()],
                                "resize": "letterbox" if self.letterbox else "stretch", "crop_fraction": None}
        if self.task == "detection":
            placement = "graph" if self.kind in ("torchvision", "nms_rows6", "nms_rows7") else "host"
            meta.update(box_format=self.box_format,
                        nms={"placement": placement, "score_threshold": self.score_threshold,
                             "iou_threshold": self.iou_threshold, "detections_per_image": MAX_DETECTIONS})
        if self.num_classes is not None:
            meta["num_classes"] = self.num_classes
        return meta

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"task": self.task, "head": dict(self.head), "roles": dict(self.roles), "box_format": self.box_format,
                "num_classes": self.num_classes, "letterbox": self.letterbox,
                "score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold,
                "given": list(self.given), "detected": list(self.detected), "assumed": list(self.assumed)}


def anchor_counts(input_size: Sequence[int]) -> tuple[int, int]:
    """Anchors of an anchor-free YOLO head (one per cell of strides 8, 16, 32) and of an anchor-based one (three)."""
    h, w = input_size
    cells = sum(-(-h // s) * -(-w // s) for s in STRIDES)
    return cells, 3 * cells


def _fmt(outputs: Sequence[OutputInfo]) -> str:
    return ", ".join(o.text() for o in outputs)


def _unrecognised(outputs: Sequence[OutputInfo], why: str) -> EdgecnnError:
    return EdgecnnError(f"cannot tell what the outputs {_fmt(outputs)} are ({why}); say it with {OPTIONS_HINT} "
                        "(see docs/tasks.md, 'Files from elsewhere').")


def _role_by_name(name: str) -> str | None:
    low = name.lower()
    for role, words in (("boxes", ("box", "bbox", "loc")), ("scores", ("score", "conf", "prob")),
                        ("labels", ("label", "class", "cls"))):
        if any(w in low for w in words):
            return role
    return None


def is_classifier_output(o: OutputInfo, batch: Any) -> bool:
    """An output the classifier path reads: at most one dim after the first is not 1 ((N, C), (N, C, 1, 1),
    (N, 1, 1, C), (N, 1, C)...)."""
    return o.rank >= 1 and sum(not (isinstance(d, int) and d == 1) for d in o.shape[1:]) <= 1


def _torchvision(outputs: Sequence[OutputInfo]) -> dict[str, str] | None:
    """Roles of torchvision-style boxes (K, 4), scores (K,), labels (K,) (leading 1 allowed), else None."""
    if len(outputs) not in (3, 4):
        return None
    roles: dict[str, str] = {}
    flat = [o for o in outputs if o.rank == 1 or (o.rank == 2 and o.shape[0] == 1 and o.dim(1) != 4)]
    boxes = [o for o in outputs if o.shape[-1:] == (4,) and o.rank in (2, 3) and o not in flat]
    if len(boxes) != 1 or len(flat) < 2:
        return None
    roles[boxes[0].name] = "boxes"
    named = {o.name: _role_by_name(o.name) for o in flat}
    ints = [o for o in flat if o.integer]
    floats = [o for o in flat if not o.integer]
    if len(ints) == 1 and len(floats) == 1:
        roles[ints[0].name], roles[floats[0].name] = "labels", "scores"
    elif sorted(r for r in named.values() if r) == ["labels", "scores"]:
        roles.update({n: r for n, r in named.items() if r})
    else:
        return None
    return roles


def _not_batch(dim: Any, batch: Any) -> bool:
    """Dimension 0 of an output is not the input's batch: a fixed size other than a fixed batch, or a symbol while
    the batch is fixed (a symbol beside a symbolic batch may be the same batch renamed: a classifier)."""
    if isinstance(dim, int):
        return dim != batch
    return dim is not None and isinstance(batch, int)


def _ssd_roles(rank3: Sequence[OutputInfo]) -> tuple[OutputInfo, OutputInfo] | None:
    """(boxes (1, N, 4), scores (1, N, C)) of two rank-3 outputs with the same N: by the last dim, or by the names
    when both end in 4; None when neither tells."""
    a, b = rank3
    if a.shape[1] != b.shape[1]:
        return None
    fours = [o for o in rank3 if o.dim(2) == 4]
    if len(fours) == 1:
        return fours[0], b if fours[0] is a else a
    if len(fours) == 2:
        roles = (_role_by_name(a.name), _role_by_name(b.name))
        if roles == ("boxes", "scores"):
            return a, b
        if roles == ("scores", "boxes"):
            return b, a
    return None


def _yolo_layout(o: OutputInfo, input_size: Sequence[int], masks: int,
                 over: Overrides) -> tuple[str, int, bool, str, str | None]:
    """(layout 'cn'|'nc', channels, objectness, what told the layout, what told the objectness (None: assumed))."""
    a, b = o.dim(1), o.dim(2)
    free, based = anchor_counts(input_size)
    if (a is None) == (b is None) and a is None:
        raise _unrecognised([o], "a YOLO head needs its columns fixed")
    dynamic = a is None or b is None  # a dynamic number of anchors (a dynamic-size export): the fixed dim is columns
    h, w = input_size
    objectness: bool | None = None
    why_obj: str | None = None
    n = 0
    if dynamic:
        layout, why = ("cn" if b is None else "nc"), "the fixed dim taken as the columns (a dynamic anchor count)"
    elif a in (free, based) and b not in (free, based):
        layout, n = "nc", a
    elif b in (free, based) and a not in (free, based):
        layout, n = "cn", b
    elif a != b and min(a, b) >= 5 + masks:
        layout = "cn" if a < b else "nc"
        why = "the smaller dim taken as 4 box + class columns"
    elif a == b and over.head in ("yolo", "yolov5", "yolo_seg"):
        layout, why = ("nc" if over.head == "yolov5" else "cn"), f"--head {over.head}'s usual layout"
    else:
        raise _unrecognised([o], f"rows and columns of [{a}, {b}] cannot be told apart" if a == b
                            else "too few columns for a box and a class")
    if n:
        why = f"{n} anchors at {h}x{w} (strides 8/16/32{', 3 anchors per cell' if n == based else ''})"
        objectness, why_obj = n == based, f"{n} anchors: {'anchor-based (YOLOv5/v7)' if n == based else 'anchor-free'}"
    channels = a if layout == "cn" else b
    if over.head in ("yolo", "yolo_seg"):
        objectness, why_obj = False, f"--head {over.head}"
    elif over.head == "yolov5":
        objectness, why_obj = True, "--head yolov5"
    if objectness is None:
        if channels - masks == 85:
            objectness, why_obj = True, "85 columns: box, objectness and COCO's 80 classes"
        elif channels - masks == 84:
            objectness, why_obj = False, "84 columns: box and COCO's 80 classes"
        else:
            objectness = layout == "nc"  # YOLOv5/v7 export rows of box + objectness; Ultralytics v8 channels first
    if channels - masks - 4 - int(objectness) < 1:
        raise _unrecognised([o], f"{channels} columns leave no class scores")
    return layout, channels, bool(objectness), why, why_obj


def recognize(outputs: Sequence[OutputInfo], *, input_size: Sequence[int], batch: Any = 1,
              overrides: Overrides | None = None) -> TaskSpec | None:
    """The task spec of a file without edgecnn task metadata; None for a classifier (nothing to say).

    ``input_size``: (H, W) of the image input; ``batch``: its first dim (int or symbol)."""
    over = overrides or Overrides()
    outs = list(outputs)
    given: list[str] = []
    detected: list[str] = []
    assumed: list[str] = []
    if over.task == "classification":
        return None
    if over.head is not None and over.head not in HEADS:
        raise EdgecnnError(f"--head {over.head!r}: expected one of {', '.join(HEADS)}.")
    if over.box_format is not None and over.box_format not in BOX_FORMATS:
        raise EdgecnnError(f"--box-format {over.box_format!r}: expected xyxy or cxcywh.")
    if over.task is not None:
        given.append(f"task {over.task}")
    if over.head is not None:
        given.append(f"head {over.head}")
    head: dict[str, Any] = {}
    roles: dict[str, str] = {}
    num_classes: int | None = None
    box_format = "xyxy"
    kind = over.head
    h, w = (int(v) for v in input_size)

    rank4 = [o for o in outs if o.rank == 4]
    rank3 = [o for o in outs if o.rank == 3]
    tv = _torchvision(outs) if kind in (None, "torchvision") else None
    protos = [o for o in rank4 if o.dim(2) and o.dim(3) and o.dim(2) * 4 == h and o.dim(3) * 4 == w]

    one = outs[0] if len(outs) == 1 else None
    if kind is None:
        if tv is not None:
            kind = "torchvision"
        elif len(rank3) == 1 and len(protos) == 1 and len(outs) >= 2:
            kind = "yolo_seg"
        elif len(outs) == 2 and len(rank3) == 2 and _ssd_roles(rank3) is not None:
            kind = "ssd"
        elif one and one.rank == 2 and one.dim(1) == 7 and _not_batch(one.shape[0], batch):
            kind = "nms_rows7"
        elif one and one.rank == 3 and one.dim(2) == 6 and one.dim(1) not in anchor_counts((h, w)):
            kind = "nms_rows6"
        elif one and one.rank == 3 and 1 not in one.shape[1:] and (one.dim(1) or one.dim(2) or 0) > 1:
            kind = "yolo"  # with or without objectness: settled below
        elif rank4 and all(o.dim(2) and o.dim(3) and o.dim(2) > 1 and o.dim(3) > 1 for o in rank4) \
                and not is_classifier_output(outs[0], batch):
            kind = "logits"
        elif over.task is None:
            if all(is_classifier_output(o, batch) or o.rank not in (3, 4) for o in outs[:1]):
                return None
            raise _unrecognised(outs, "no known detection or segmentation head")
        else:
            raise _unrecognised(outs, f"--task {over.task} given, but no known head fits")
        if kind not in ("yolo", "yolo_seg"):
            detected.append(f"head {kind} from outputs {_fmt(outs)}")

    if kind in ("yolo", "yolov5", "yolo_seg"):
        if kind == "yolo_seg" or (protos and len(rank3) == 1 and kind == "yolo_seg"):
            if len(rank3) != 1 or not rank4:
                raise _unrecognised(outs, "--head yolo_seg needs a [1, 4+C+M, N] head and [1, M, H/4, W/4] "
                                    "prototypes")
            proto = protos[0] if protos else rank4[0]
            m = proto.dim(1) or 32
            roles[proto.name] = "protos"
            o = rank3[0]
        else:
            m = 0
            cands = rank3 if rank3 else outs
            if len(cands) != 1 or cands[0].rank != 3:
                raise _unrecognised(outs, f"--head {kind} needs one rank-3 output")
            o = cands[0]
        layout, channels, objectness, why, why_obj = _yolo_layout(o, (h, w), m, over)
        if kind == "yolo" and objectness and over.head is None:
            kind = "yolov5"
        num_classes = channels - 4 - int(objectness) - m
        roles[o.name] = "head"
        head = {"kind": kind, "layout": layout, "objectness": objectness, "masks": m}
        if over.head is None:
            detected.append(f"head {kind} from output {o.text()}" + (f" and prototypes {proto.text()}" if m else ""))
        detected.append(f"{'channels first [1, 4+C, N]' if layout == 'cn' else 'rows [1, N, 4+C]'}: {why}")
        (detected if why_obj else assumed).append(
            ("an objectness column after the box" if objectness else "no objectness column")
            + (f" ({why_obj})" if why_obj else " (pass --head yolo or --head yolov5 if not)"))
        detected.append(f"{num_classes} classes, 0-based, no background"
                        + (f"; {m} mask coefficients" if m else ""))
        box_format = "cxcywh"
        if over.box_format is None:
            assumed.append("boxes centre-x, centre-y, width, height in input pixels (Ultralytics); pass "
                           "--box-format xyxy if not")
    elif kind == "torchvision":
        roles = tv or _torchvision(outs) or {}
        if not roles:
            raise _unrecognised(outs, "--head torchvision needs boxes [K, 4], scores [K] and labels [K]")
        head = {"kind": kind}
        detected.append("roles " + ", ".join(f"{n}={r}" for n, r in roles.items()) + "; NMS done in the graph")
        assumed.append("labels 1-based with 0 the background (torchvision's COCO-91 category ids); boxes x1, y1, "
                       "x2, y2 in input pixels; one image per run")
    elif kind == "ssd":
        if len(rank3) != 2:
            raise _unrecognised(outs, "--head ssd needs boxes [1, N, 4] and scores [1, N, C]")
        found = _ssd_roles(rank3)
        if found is None:
            raise _unrecognised(outs, "--head ssd: which output holds the boxes is not told by the shapes or names")
        b, s = found
        roles = {b.name: "boxes", s.name: "scores"}
        c = s.dim(2)
        num_classes = None if c is None else c - 1
        head = {"kind": kind, "background": True}
        detected.append(f"boxes {b.text()}, scores {s.text()}")
        assumed.append("score column 0 is the background (torchvision/TensorFlow SSD), scores are probabilities; "
                       "boxes x1, y1, x2, y2 (in input pixels, or 0-1 and scaled)")
    elif kind == "nms_rows6":
        o = next((o for o in outs if o.rank == 3 and o.dim(2) == 6), None)
        if o is None:
            raise _unrecognised(outs, "--head nms_rows6 needs a [1, K, 6] output")
        roles = {o.name: "rows"}
        head = {"kind": kind}
        assumed.append("rows x1, y1, x2, y2, score, class (Ultralytics NMS/end-to-end export), classes 0-based; "
                       "pass --box-format cxcywh if the boxes are centre-xywh")
    elif kind == "nms_rows7":
        o = next((o for o in outs if o.rank == 2 and o.dim(1) == 7), None)
        if o is None:
            raise _unrecognised(outs, "--head nms_rows7 needs a [K, 7] output")
        roles = {o.name: "rows"}
        head = {"kind": kind}
        assumed.append("rows batch index, x1, y1, x2, y2, class, score (YOLOv7 --end2end), classes 0-based")
    elif kind == "logits":
        maps = [o for o in rank4 if o.dim(2) and o.dim(2) > 1]
        if not maps:
            raise _unrecognised(outs, "--head logits needs a [1, C, H, W] output")
        o = next((o for o in maps if o.name.lower() in ("out", "output", "logits")), maps[0])
        roles = {o.name: "masks"}
        head = {"kind": kind}
        num_classes = o.dim(1)
        detected.append(f"per-pixel class scores {o.text()}: {num_classes} classes, class map by argmax"
                        + (f" (of {len(maps)} maps, {o.name!r} used)" if len(maps) > 1 else ""))

    task = "segmentation" if kind == "logits" else "detection"
    if over.task is not None and over.task != task:
        raise EdgecnnError(f"--task {over.task} does not fit head {kind} ({_fmt(outs)}), a {task} head; "
                           f"leave --task out or pass --head ({', '.join(HEADS)}).")
    if over.box_format is not None:
        box_format = over.box_format
        given.append(f"box format {box_format}")
    yolo = kind in ("yolo", "yolov5", "yolo_seg")
    if over.letterbox is not None:
        letterbox = over.letterbox
        given.append("letterbox resize" if letterbox else "stretch resize (no letterbox)")
    else:
        letterbox = yolo
        assumed.append("letterbox resize (aspect kept, grey 114 padding: Ultralytics); pass --no-letterbox if not"
                       if yolo else "stretch resize to the input size; pass --letterbox if the model was trained "
                       "on letterboxed images")
    default_score, default_iou = THRESHOLDS.get(kind, (0.001, 0.5))
    score = default_score if over.score_threshold is None else float(over.score_threshold)
    iou = default_iou if over.iou_threshold is None else float(over.iou_threshold)
    if task == "detection":
        if over.score_threshold is not None:
            given.append(f"score threshold {score:g}")
        if over.iou_threshold is not None:
            given.append(f"IoU threshold {iou:g}")
        if kind not in ("torchvision", "nms_rows7", "nms_rows6") and over.iou_threshold is None:
            assumed.append(f"class-wise NMS on the host at IoU {iou:g}, scores above {score:g}; pass "
                           "--iou-threshold/--score-threshold")
    return TaskSpec(task=task, head=head, roles=roles, box_format=box_format, num_classes=num_classes,
                    letterbox=letterbox, score_threshold=score, iou_threshold=iou, detected=tuple(detected),
                    assumed=tuple(assumed), given=tuple(given))


def from_metadata(meta: Mapping[str, Any], overrides: Overrides | None = None) -> TaskSpec | None:
    """The overrides applied to a file whose metadata declares a task (metadata wins; nothing is re-recognised).

    Returns None when the file is a classifier and no override asks otherwise."""
    over = overrides or Overrides()
    task = meta.get("task")
    if not task or task == "classification":
        return None
    given: list[str] = []
    only: dict[str, Any] = {}
    head = meta.get("head") if isinstance(meta.get("head"), Mapping) else {"kind": "edgecnn"}
    nms = dict(meta.get("nms") or {}) if isinstance(meta.get("nms"), Mapping) else {}
    box_format = str(meta.get("box_format") or "xyxy")
    if over.box_format is not None:
        box_format = only["box_format"] = over.box_format
        given.append(f"box format {box_format}")
    letterbox = meta.get("resize") == "letterbox"
    if over.letterbox is not None:
        letterbox = bool(over.letterbox)
        only["resize"] = "letterbox" if letterbox else "stretch"
        given.append("letterbox resize" if letterbox else "stretch resize (no letterbox)")
    if over.score_threshold is not None:
        nms["score_threshold"] = float(over.score_threshold)
        given.append(f"score threshold {over.score_threshold:g}")
    if over.iou_threshold is not None:
        nms["iou_threshold"] = float(over.iou_threshold)
        given.append(f"IoU threshold {over.iou_threshold:g}")
    if over.score_threshold is not None or over.iou_threshold is not None:
        only["nms"] = nms
    roles = {str(o["name"]): str(o.get("role", "")) for o in meta.get("outputs") or []
             if isinstance(o, Mapping) and "name" in o}
    return TaskSpec(task=str(task), head=dict(head), roles=roles, box_format=box_format,
                    num_classes=meta.get("num_classes") if isinstance(meta.get("num_classes"), int) else None,
                    letterbox=letterbox, score_threshold=float(nms.get("score_threshold", 0.001)),
                    iou_threshold=float(nms.get("iou_threshold", 0.5)),
                    detected=(f"task {task}, head {head.get('kind')} (file metadata)",), given=tuple(given),
                    only=only)
