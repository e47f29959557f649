"""``edgecnn.export``: torch model -> validated, simplified, self-describing ``.onnx`` file.

Steps: build (zoo name, ``module:factory``/``file.py:factory``, or an ``nn.Module``) and load weights;
export in eval mode keeping the first output only (training-only heads such as GoogLeNet's aux
classifiers vanish) and prune unreachable initializers; simplify with onnxsim (checked, reverted on
failure); convert to fp16 if asked; write metadata; write atomically; validate against torch fp32.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from edgecnn import __version__, onnxfile
from edgecnn._io import atomic_path
from edgecnn.errors import EdgecnnError
from edgecnn.exporters import onnx_export
from edgecnn.exporters import validate as _validate
from edgecnn.exporters.onnx_export import DEFAULT_OPSET
from edgecnn.graphcost.nodes import count
from edgecnn.metadata import IMAGENET_MEAN, IMAGENET_STD, MAX_SIDE
from edgecnn.models import inference_params
from edgecnn.outputs import plain_name, plan_output
from edgecnn.runtime.precision import EXPORT_PRECISIONS
from edgecnn.runtime.shapes import shapes_from_run

PRECISIONS = EXPORT_PRECISIONS  # defined once, in edgecnn.runtime.precision
IO_DTYPES = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16"}


@dataclass
class ExportResult:
    """What an export produced; ``to_dict()`` is JSON-ready."""

    path: str
    model: str
    family: str
    source: str
    precision: str
    io_dtype: str
    opset: int
    batch: str
    input_shape: list[int]
    num_classes: int
    num_params: int
    macs: int
    size_bytes: int
    external_data: bool
    nodes_before: int
    nodes_after: int
    initializers: int
    simplified: bool
    simplify_note: str | None
    weights_sha256: str
    validation: dict[str, Any] | None
    timings: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: what the export decided that the user should read (a fixed batch after the shape sweep, where NMS went)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True unless validation ran and failed."""
        return self.validation is None or bool(self.validation.get("passed"))

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d


class ValidationFailed(EdgecnnError):
    """The exported file does not match torch; it was kept as ``*.FAILED.onnx``. ``.result`` has the figures."""

    exit_code = 1

    def __init__(self, message: str, result: ExportResult) -> None:
        super().__init__(message)
        self.result = result


class Progress:
    """Step-by-step progress on stderr (only when enabled: a TTY and not --json)."""

    def __init__(self, enabled: bool, label: str = "") -> None:
        self.enabled = enabled
        self.label = label

    @contextlib.contextmanager
    def step(self, name: str, timings: dict[str, float], key: str) -> Iterator[None]:
        t0 = time.perf_counter()
        if self.enabled:
            print(f"  {self.label}{name} ...", end="", file=sys.stderr, flush=True)
        try:
            yield
        except BaseException:
            if self.enabled:
                print(" failed", file=sys.stderr, flush=True)
            raise
        timings[key] = round(time.perf_counter() - t0, 3)
        if self.enabled:
            print(f"\r  {self.label}{name} {timings[key]:.1f} s", file=sys.stderr, flush=True)


def default_filename(name: str, precision: str, io_dtype: str = "float32") -> str:
    """``<model>[-fp16].onnx`` (``-fp16io`` when inputs and outputs are float16 too)."""
    suffix = "" if precision == "fp32" else "-fp16io" if io_dtype == "float16" else f"-{precision}"
    return f"{name}{suffix}.onnx"


def failed_path(target: Path) -> Path:
    """Where a file that failed validation is kept: ``resnet18.onnx`` -> ``resnet18.FAILED.onnx``."""
    return target.with_name(f"{target.stem}.FAILED{target.suffix or '.onnx'}")


def resolve_output(output: str | os.PathLike | None, filename: str, force: bool) -> Path:
    """Target file for ``output`` (file, folder or None = current folder): the shared output policy
    (:func:`edgecnn.outputs.plan_output`); a missing folder is created when the file is written."""
    return plan_output(output, filename, force=force)


@dataclass
class _Built:
    model: nn.Module
    name: str
    family: str
    source: str
    input_shape: tuple[int, int, int]
    mean: list[float]
    std: list[float]
    num_classes: int | None
    train_only: tuple[str, ...]
    zoo: bool
    task: str = "classification"
    resize: str = "crop"


def _build(model: str | nn.Module | Callable[[], nn.Module], name: str | None, weights: str | os.PathLike | None,
           input_size: tuple[int, int] | None, channels: int | None, num_classes: int | None) -> _Built:
    from edgecnn.exporters.user_model import is_user_ref, load_factory_model
    from edgecnn.models import ModelSpec, check_state_dict, create_model, get_spec, load_weights, read_state_dict

    if isinstance(model, str) and not is_user_ref(model):
        spec = get_spec(model)
        if channels is not None and channels != spec.channels:
            raise EdgecnnError(f"{model} takes {spec.channels}-channel input; --channels is for user models")
        m = create_model(model, num_classes=num_classes, weights=str(weights) if weights is not None else None)
        size = tuple(input_size) if input_size else spec.input_size
        return _Built(m, name or spec.name, spec.family, "zoo", (spec.channels, int(size[0]), int(size[1])),
                      list(spec.mean), list(spec.std), m.spec.num_classes, tuple(spec.train_only), True,
                      spec.task, spec.resize)
    if isinstance(model, str):
        m, factory = load_factory_model(model)
        source = model
        default_name = factory
    elif isinstance(model, nn.Module):
        spec = getattr(model, "spec", None)
        if isinstance(spec, ModelSpec):  # a zoo model built (and maybe modified) in Python keeps its description
            size = tuple(input_size) if input_size else spec.input_size
            if weights is not None:
                load_weights(model, weights)
            return _Built(model, name or spec.name, spec.family, "module", (spec.channels, int(size[0]), int(size[1])),
                          list(spec.mean), list(spec.std), num_classes, tuple(spec.train_only), True, spec.task,
                          spec.resize)
        m, source, default_name = model, f"{type(model).__module__}:{type(model).__name__}", type(model).__name__
    elif callable(model):
        m = model()
        if not isinstance(m, nn.Module):
            raise EdgecnnError(f"the factory returned {type(m).__name__}, not a torch nn.Module")
        source, default_name = getattr(model, "__qualname__", "factory"), getattr(model, "__name__", "model")
    else:
        raise EdgecnnError(f"cannot export {type(model).__name__}: give a zoo name, module:factory or an nn.Module")
    if weights is not None:
        state = read_state_dict(weights)
        check_state_dict(m, state, source=str(weights))
        m.load_state_dict(state, strict=True)
    c = int(channels or 3)
    size = tuple(input_size) if input_size else (224, 224)
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if c == 3 else ([0.5] * c, [0.5] * c)
    user_name = (name or default_name).lower().replace(" ", "_")
    return _Built(m, user_name, "custom", source, (c, int(size[0]), int(size[1])), list(mean), list(std),
                  num_classes, (), False)


def _finish(graph: onnx.ModelProto, precision: str, io: str, opset: int, meta: dict[str, Any], prog: Progress,
            timings: dict[str, float]) -> onnx.ModelProto:
    """fp16 conversion if asked, opset check, metadata: the model as it will be written."""
    if precision == "fp16":
        with prog.step("convert to fp16", timings, "fp16"):
            from edgecnn.exporters.fp16 import to_fp16

            graph = to_fp16(graph, keep_io_types=io == "float32")  # in place: each candidate is converted once
    written = onnx_export.model_opset(graph)
    if written != opset:
        raise EdgecnnError(f"the exported graph has opset {written}, not the requested {opset}")
    onnxfile.set_metadata(graph, meta)
    graph.producer_name, graph.producer_version = "edgecnn", __version__
    return graph


class _NotValid(Exception):
    """Internal: the written candidate failed validation (aborts the atomic rename)."""


def _write_and_validate(final: onnx.ModelProto, target: Path, result: ExportResult, m: nn.Module, built: _Built,
                        precision: str, batch: int | None, validate: bool, prog: Progress,
                        timings: dict[str, float], last: bool, overwrite: bool = True,
                        validator: Callable[[Path], Any] | None = None) -> bool:
    """Write ``final`` atomically onto ``target``, validating it before the rename (``overwrite=False``: an
    exclusive rename, so two exports to one path cannot both pass the exists check).

    Returns True when the file is in place. When validation fails it returns False and leaves nothing,
    except on the ``last`` candidate, whose file is kept as ``*.FAILED.onnx``.
    """
    data_file = target.parent / f"{target.name}.data"
    try:
        with atomic_path(target, suffix=".onnx", overwrite=overwrite) as tmp:
            with prog.step("write", timings, "write"):
                big = onnxfile.over_protobuf_limit(final)
                result.external_data = onnxfile.write_model(final, tmp, data_file.name if big else None)
                result.size_bytes = tmp.stat().st_size + (data_file.stat().st_size if result.external_data else 0)
            if validate:
                with prog.step("validate", timings, "validate"):
                    v = (validator(tmp) if validator is not None
                         else _validate.validate(tmp, m, built.input_shape, precision, batch=batch))
                result.validation = v.to_dict()
                if not v.passed:
                    if last:
                        bad = failed_path(target)
                        os.replace(tmp, bad)
                        result.path = str(bad)
                    raise _NotValid
    except _NotValid:
        return False
    except OSError as e:
        if result.external_data and data_file.exists():
            data_file.unlink()
        raise EdgecnnError(f"cannot write {target}: {e.strerror or e}") from None
    except BaseException:
        if result.external_data and data_file.exists():
            data_file.unlink()
        raise
    return True


def _export(model: str | nn.Module | Callable[[], nn.Module], output: str | os.PathLike | None = None, *,
           weights: str | os.PathLike | None = None, precision: str = "fp32", io_dtype: str = "float32",
           opset: int = DEFAULT_OPSET, batch: int | None = None, input_size: tuple[int, int] | None = None,
           channels: int | None = None, num_classes: int | None = None, name: str | None = None,
           simplify: bool = True, validate: bool = True, force: bool = False,
           progress: bool | None = None, nms: str | None = None, labels: list[str] | None = None) -> ExportResult:
    """Export a model to one validated, self-describing ONNX file and return what was done.

    ``model``: a zoo name (``"resnet18"``), ``"package.module:factory"``, ``"path/file.py:factory"``, an
    ``nn.Module`` or a factory. ``output``: file or folder (default ``./<model>[-fp16].onnx``).
    ``precision``: ``"fp32"`` or ``"fp16"``; ``io_dtype``: ``"float32"`` (default, callers need no
    change) or ``"float16"``. ``batch``: fixed batch size, or None for a dynamic batch dimension.
    ``input_size``: (H, W); ``channels``/``num_classes`` describe user models (num_classes also
    re-heads zoo models). ``nms``: for detectors, ``"graph"`` (ONNX NonMaxSuppression in the file), ``"host"``
    (raw boxes and scores; NMS in the runtime, in numpy) or ``"auto"`` (default: graph unless a runtime here lacks
    the operator). Detectors and segmenters are validated by a shape sweep (``exporters/tasks.py``).
    ``labels``: a detector's or segmenter's class names (index = class, 0 = background) for the metadata, when
    they are not the zoo model's own (a zoo model re-headed with ``num_classes``, e.g. trained on the shapes task).
    Raises :class:`EdgecnnError` on user errors and :class:`ValidationFailed`
    (exit code 1) when the file does not match torch; that file is kept as ``*.FAILED.onnx``.
    """
    t_start = time.perf_counter()
    if precision == "int8":
        raise EdgecnnError("int8 is produced by 'edgecnn quantize' (static QDQ), not by export")
    if precision not in PRECISIONS:
        raise EdgecnnError(f"unknown precision {precision!r}: use fp32 or fp16")
    if io_dtype not in IO_DTYPES:
        raise EdgecnnError(f"unknown io dtype {io_dtype!r}: use float32 or float16")
    io = IO_DTYPES[io_dtype]
    if io == "float16" and precision != "fp16":
        raise EdgecnnError("float16 inputs/outputs need precision fp16 (--fp16 --io fp16)")
    opset = onnx_export.check_opset(opset)
    if batch is not None and int(batch) < 1:
        raise EdgecnnError(f"batch must be >= 1 (or dynamic), got {batch}")
    if input_size is not None and (len(input_size) != 2 or min(int(v) for v in input_size) < 1):
        raise EdgecnnError(f"input size must be two positive integers (H, W), got {input_size}")
    if name is not None:
        plain_name(str(name), "--name")  # it becomes the file name: never a path
    if input_size is not None and max(int(v) for v in input_size) > MAX_SIDE:
        raise EdgecnnError(f"input size must be at most {MAX_SIDE} per side, got {input_size}")
    if isinstance(model, str) and ":" not in model:
        from edgecnn.models import get_spec

        get_spec(model)  # unknown name: fail before touching the output path
        early = resolve_output(output, default_filename(name or model, precision, io), force)
    else:
        early = None
    progress = sys.stderr.isatty() if progress is None else progress
    prog = Progress(progress)
    timings: dict[str, float] = {}

    with prog.step("build model", timings, "build"):
        built = _build(model, name, weights, input_size, channels, num_classes)
    target = early or resolve_output(output, default_filename(plain_name(built.name, "the model name"), precision, io),
                                     force)
    m = built.model.eval()
    example = torch.randn(batch or 1, *built.input_shape, generator=torch.Generator().manual_seed(0))
    task_meta: dict[str, Any] = {}
    traced: nn.Module = m
    out_names: tuple[str, ...] | None = None
    nms_reason = ""
    if built.task == "classification":
        if nms is not None:
            raise EdgecnnError(f"--nms is for detection models; {built.name} is a classification model.")
    else:
        from edgecnn.exporters import tasks as T

        if precision != "fp32":
            raise EdgecnnError(f"{built.name} is a {built.task} model: its exports are fp32 (the shape sweep "
                               "validates fp32 boxes and masks); leave out --fp16.")
        if nms is not None and built.task != "detection":
            raise EdgecnnError(f"--nms is for detection models; {built.name} is a {built.task} model.")
        placement, nms_reason = T.resolve_nms(nms) if built.task == "detection" else (None, "")
        traced, out_names = T.exportable(m, built.task, built.input_shape[1:], placement or "graph")
        if labels is not None and built.num_classes is not None and len(labels) != built.num_classes:
            raise EdgecnnError(f"{len(labels)} labels for {built.name}'s {built.num_classes} classes")
        task_meta = T.task_metadata(built.task, m, placement, list(labels) if labels is not None else _labels(built),
                                    built.resize)
    try:
        with torch.no_grad():
            raw_out = traced(example)
            out = onnx_export.first_output(raw_out)
    except EdgecnnError:
        raise
    except Exception as e:  # noqa: BLE001
        h, w = built.input_shape[1:]
        raise EdgecnnError(f"{built.name} cannot run on a {built.input_shape[0]}x{h}x{w} input "
                           f"({type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}); "
                           "check --input-size/--channels") from None
    classes = int(out.shape[1]) if out.dim() >= 2 else int(out.shape[-1])
    if built.task == "detection":  # boxes (N, A, 4) first: the classes are the scores' last dimension
        anchors, classes = int(out.shape[1]), int(raw_out[1].shape[-1])
    if built.num_classes is not None and classes != built.num_classes:
        raise EdgecnnError(f"{built.name} outputs {classes} classes, not {built.num_classes} (--num-classes)")

    with prog.step("export to ONNX", timings, "export"):
        onx = onnx_export.torch_to_onnx(traced, example, opset=opset, dynamic_batch=batch is None,
                                        output_names=out_names)
        onnx_export.prune_initializers(onx)
    leftovers = onnx_export.find_names(onx, built.train_only)
    if leftovers:  # pragma: no cover - guards the aux-stripping contract
        raise EdgecnnError(f"training-only modules leaked into the graph: {', '.join(leftovers[:3])}")
    nodes_before = len(onx.graph.node)
    raw = onx
    note = None
    if simplify:
        with prog.step("simplify", timings, "simplify"):
            from edgecnn.exporters.simplify import simplify as _simplify

            # With validation on, onnxsim's graph is checked against torch below (and dropped if it fails);
            # without it, simplify() compares it with the unsimplified graph itself.
            onx, note = _simplify(onx, check=not validate)
        if note and progress:
            print(f"  note: {note}", file=sys.stderr)
    macs = count(onx, fill_shapes=shapes_from_run).macs_per_image
    num_params = (inference_params(m) if built.zoo else onnx_export.used_params(m, example))
    wsha = onnx_export.weights_sha256(m, exclude=built.train_only)
    meta = {
        "model": built.name, "family": built.family, "input_layout": "NCHW",
        "input_size": list(built.input_shape[1:]), "channels": built.input_shape[0],
        "mean": built.mean, "std": built.std, "num_classes": classes,
        "class_names": "imagenet" if built.zoo and classes == 1000 else "",
        "precision": precision, "io_dtype": io, "opset": opset, "num_params": num_params, "macs": macs,
        "batch": "dynamic" if batch is None else str(int(batch)), "edgecnn_version": __version__,
        "torch_version": torch.__version__.split("+")[0], "weights_sha256": wsha, "source": built.source,
        **task_meta,
    }
    result = ExportResult(
        path=str(target), model=built.name, family=built.family, source=built.source, precision=precision,
        io_dtype=io, opset=opset, batch=meta["batch"], input_shape=list(built.input_shape),
        num_classes=classes, num_params=num_params, macs=macs, size_bytes=0, external_data=False,
        nodes_before=nodes_before, nodes_after=len(onx.graph.node), initializers=0,
        simplified=simplify and note is None, simplify_note=note, weights_sha256=wsha, validation=None,
        timings=timings, metadata=meta, notes=[f"NMS placed by {nms_reason}"] if nms_reason else [])

    candidates = [onx] if onx is raw else [onx, raw]
    validator = None
    if built.task != "classification":
        from edgecnn.exporters import tasks as T

        candidates = [T.append_graph_nms(c, meta, anchors) if built.task == "detection" else c for c in candidates]

        def validator(path: Path) -> _validate.Validation:
            return T.validate_task(path, m, built.task, meta, built.input_shape, precision, batch)
    for attempt, graph in enumerate(candidates):
        result.nodes_after = len(graph.graph.node)
        final = _finish(graph, precision, io, opset, meta, prog, timings)
        result.initializers = len(final.graph.initializer)
        last = attempt == len(candidates) - 1
        passed = _write_and_validate(final, target, result, m, built, precision, batch, validate, prog, timings, last,
                                     overwrite=force, validator=validator)
        del final
        if passed:
            break
        v = result.validation or {}
        if last:
            timings["total"] = round(time.perf_counter() - t_start, 3)
            raise ValidationFailed(f"validation failed for {built.name} ({precision}): "
                                   f"{'; '.join(v.get('failures', []))}. Kept for inspection: {result.path}", result)
        result.simplified = False
        result.simplify_note = note = ("the simplified graph failed validation (" + "; ".join(v.get("failures", []))
                                       + "); kept the unsimplified graph")
        if progress:
            print(f"  note: {note}", file=sys.stderr)
    timings["total"] = round(time.perf_counter() - t_start, 3)
    return result


def _labels(built: _Built) -> list[str] | None:
    """The label set of a torchvision task model at its default class count (COCO's 91, VOC's 21)."""
    if not built.zoo or built.task == "classification":
        return None
    if built.family == "shapes":  # the shapes task's own classes (edgecnn/models/shapes.py)
        from edgecnn.models.shapes import shapes_labels

        return shapes_labels() if built.num_classes in (None, len(shapes_labels())) else None
    from edgecnn.models.detection import coco_labels
    from edgecnn.models.segmentation import voc_labels

    names = coco_labels() if built.task == "detection" else voc_labels()
    return names if built.num_classes in (None, len(names)) else None


def _fixed_batch_fallback(e: ValidationFailed, model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                          ) -> ExportResult:
    """A detector or segmenter whose dynamic-batch file holds at batch 1 (the traced shape) but not at batch 2 in
    the shape sweep is exported again with a fixed batch of 1, and says so; anything else fails as it did."""
    v = e.result.validation or {}
    failures = v.get("failures", [])
    task = (v.get("task") or {}).get("task")
    if (task is None or e.result.batch != "dynamic" or not failures
            or not all(f.startswith("batch 2:") for f in failures)):
        raise e
    retry = _export(model, *args, **{**kwargs, "batch": 1, "force": True})
    with contextlib.suppress(OSError):
        if Path(e.result.path) != Path(retry.path):
            os.remove(e.result.path)  # the *.FAILED.onnx of the dynamic attempt: replaced by the fixed-batch file
    retry.notes.append("the dynamic-batch graph held only at batch 1 (the traced shape) in the shape sweep ("
                       + "; ".join(failures) + "): exported with a fixed batch of 1")
    return retry


@functools.wraps(_export)
def export(model: str | nn.Module | Callable[[], nn.Module], *args: Any, **kwargs: Any) -> ExportResult:
    # An nn.Module given by the caller is exported in eval mode and handed back in the mode it came in.
    mode = model.training if isinstance(model, nn.Module) else None
    try:
        try:
            return _export(model, *args, **kwargs)
        except ValidationFailed as e:
            return _fixed_batch_fallback(e, model, args, kwargs)
    finally:
        if mode is not None:
            model.train(mode)
