"""A Triton Inference Server model repository from an edgecnn ``.onnx`` file (onnx only, no torch).

``write_triton_repo("resnet18.onnx", "repo")`` writes Triton's documented layout for the ONNX Runtime
backend::

    repo/
      resnet18/
        config.pbtxt             # platform "onnxruntime_onnx", inputs/outputs, batching, instances
        imagenet_classes.txt     # only for ImageNet-1k classifiers (output label_filename)
        1/
          model.onnx             # the file, byte for byte (plus its external-data files, if any)

Inputs, outputs, data types and dims come from the file's graph. A file with a dynamic batch dim gets
``max_batch_size`` > 0 (dims without the batch dim) and a ``dynamic_batching`` block; a fixed-batch file
gets ``max_batch_size: 0`` and full dims, as Triton requires.

Detection and segmentation files list every output (``config.pbtxt`` names each, dynamic dims as -1). A file whose
``edgecnn.outputs`` metadata says an output's first dimension is not the batch (a detector with NMS in the graph:
``boxes`` (K, 4), ``scores``, ``labels``, ``batch_index`` (K), the kept detections of the whole request) gets
``max_batch_size: 0``, full dims (the batch as -1) and no dynamic batching, even with a dynamic batch: Triton's
batcher would split such outputs along K as if it were the batch and hand each request the wrong rows. A client
sends N images in one request and reads ``batch_index`` to tell them apart. Host-NMS detectors (``boxes`` (N, A,
4), ``scores`` (N, A, C)) and segmenters (``masks`` (N, C, H, W)) are batched per image like classifiers.

The provider is an edgecnn backend name; the
backend says how Triton's ONNX Runtime backend runs it (:class:`edgecnn.runtime.backends.TritonSpec`):
``tensorrt`` adds the TensorRT GPU execution accelerator (precision mode, workspace, engine cache), ``openvino``
its OpenVINO CPU execution accelerator (CPU instances). The TensorRT precision mode is never measured here: it is
the one an ``edgecnn optimize`` decision recorded in the file for that backend, else the file's own precision.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn._io import atomic_path, atomic_write_bytes, umask
from edgecnn.errors import EdgecnnError
from edgecnn.outputs import check_writable, plain_name

PLATFORM = "onnxruntime_onnx"
MODEL_FILENAME = "model.onnx"
LABELS_FILENAME = "imagenet_classes.txt"
#: the backends with a Triton counterpart (built in); plug-ins with a ``triton`` spec are accepted too
PROVIDERS = ("cuda", "tensorrt", "cpu", "openvino")
TRT_PRECISIONS = ("FP32", "FP16", "INT8")
_KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
DEFAULT_MAX_BATCH = 32
DEFAULT_QUEUE_DELAY_US = 100

#: ONNX TensorProto element type -> Triton DataType name (model_config.proto)
_TRITON_TYPES: dict[int, str] = {
    1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16", 5: "TYPE_INT16", 6: "TYPE_INT32",
    7: "TYPE_INT64", 8: "TYPE_STRING", 9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64", 12: "TYPE_UINT32",
    13: "TYPE_UINT64", 16: "TYPE_BF16",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class TritonTensor:
    """One model input or output as Triton sees it: dims exclude the batch dim when batching."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    label_filename: str | None = None


@dataclass(frozen=True)
class TritonConfig:
    """Everything ``config.pbtxt`` says; :meth:`to_pbtxt` renders it in protobuf text format."""

    name: str
    max_batch_size: int
    inputs: tuple[TritonTensor, ...]
    outputs: tuple[TritonTensor, ...]
    instance_count: int = 1
    instance_kind: str = "KIND_GPU"
    dynamic_batching: bool = True
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    platform: str = PLATFORM
    #: the ONNX Runtime backend's execution accelerator (``tensorrt``, ``openvino``), None: none
    accelerator: str | None = None
    #: True: a gpu_execution_accelerator, False: a cpu_execution_accelerator
    gpu_accelerator: bool = False
    #: the accelerator's parameters (ordered)
    accelerator_parameters: dict[str, str] | None = None

    @property
    def tensorrt(self) -> dict[str, str] | None:
        """The TensorRT accelerator's parameters (precision mode, workspace, cache, profiles), None without it."""
        return self.accelerator_parameters if self.gpu_accelerator else None

    def to_pbtxt(self) -> str:
        """The ``config.pbtxt`` text (protobuf text format of Triton's ``inference.ModelConfig``)."""
        lines = [f'name: "{self.name}"', f'platform: "{self.platform}"', f"max_batch_size: {self.max_batch_size}"]
        for kind, tensors in (("input", self.inputs), ("output", self.outputs)):
            lines.append(f"{kind} [")
            for i, t in enumerate(tensors):
                lines.append("  {")
                lines.append(f'    name: "{_escape(t.name)}"')
                lines.append(f"    data_type: {t.data_type}")
                lines.append(f"    dims: [ {', '.join(str(d) for d in t.dims)} ]")
                if t.label_filename:
                    lines.append(f'    label_filename: "{t.label_filename}"')
                lines.append("  }" + ("," if i < len(tensors) - 1 else ""))
            lines.append("]")
        lines += ["instance_group [", "  {", f"    count: {self.instance_count}", f"    kind: {self.instance_kind}",
                  "  }", "]"]
        if self.dynamic_batching:
            lines.append("dynamic_batching {")
            if self.preferred_batch_sizes:
                lines.append(f"  preferred_batch_size: [ {', '.join(str(b) for b in self.preferred_batch_sizes)} ]")
            lines.append(f"  max_queue_delay_microseconds: {self.max_queue_delay_us}")
            lines.append("}")
        if self.accelerator:
            where = "gpu" if self.gpu_accelerator else "cpu"
            lines += ["optimization {", "  execution_accelerators {", f"    {where}_execution_accelerator: [",
                      "      {", f'        name: "{_escape(self.accelerator)}"']
            lines += [f'        parameters {{ key: "{k}" value: "{_escape(v)}" }}'
                      for k, v in (self.accelerator_parameters or {}).items()]
            lines += ["      }", "    ]", "  }", "}"]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class TritonRepo:
    """What :func:`write_triton_repo` wrote."""

    root: Path
    model_dir: Path
    version_dir: Path
    model_file: Path
    config_file: Path
    config: TritonConfig
    extra_files: tuple[Path, ...] = field(default_factory=tuple)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _dim(d: Any) -> int | None:
    """A dim's size, or None when dynamic (dim_param, or dim_value unset/0)."""
    if d.HasField("dim_value") and d.dim_value > 0:
        return int(d.dim_value)
    return None


def _load_graph(path: Path) -> Any:
    from edgecnn import onnxfile

    return onnxfile.open_model(path, load_data=False)


def _tensors(values: Sequence[Any], graph_inputs: bool) -> list[tuple[str, int, list[int | None]]]:
    out = []
    for v in values:
        tt = v.type.tensor_type
        if not v.type.HasField("tensor_type"):
            raise EdgecnnError(f"{'input' if graph_inputs else 'output'} {v.name!r} is not a tensor; Triton's "
                               "ONNX Runtime backend serves tensor inputs and outputs only.")
        out.append((v.name, tt.elem_type, [_dim(d) for d in tt.shape.dim]))
    return out


def _triton_type(name: str, elem_type: int) -> str:
    try:
        return _TRITON_TYPES[elem_type]
    except KeyError:
        raise EdgecnnError(f"tensor {name!r} has ONNX element type {elem_type}, which Triton does not "
                           "support.") from None


def _metadata(model: Any) -> dict[str, Any]:
    from edgecnn.metadata import decode

    return decode({p.key: p.value for p in model.metadata_props})


def _external_files(model: Any, base: Path) -> list[Path]:
    """Side files (``.onnx.data``) that the graph's tensors point to, relative to the model's folder."""
    from edgecnn import onnxfile

    return onnxfile.check_external_data(model, base)


def build_config(
    model_path: str | os.PathLike,
    *,
    name: str | None = None,
    max_batch_size: int | None = None,
    provider: str = "cuda",
    instance_count: int = 1,
    instance_kind: str | None = None,
    dynamic_batching: bool = True,
    preferred_batch_sizes: Sequence[int] = (),
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    trt_precision: str | None = None,
    trt_workspace_bytes: int = 1 << 30,
    trt_cache_path: str | None = None,
    trt_profiles: bool = True,
) -> TritonConfig:
    """The Triton model configuration that ``model_path`` implies, with the given serving options.

    ``name``: model name (default: the file's ``edgecnn.model`` metadata, else its stem). ``max_batch_size``:
    for a dynamic-batch file (default 32); a fixed-batch file always gets 0. ``provider``: ``cuda`` (plain
    GPU), ``tensorrt`` (adds the TensorRT accelerator), ``cpu`` or ``openvino`` (CPU instances with the
    OpenVINO accelerator): the backend's :class:`~edgecnn.runtime.backends.TritonSpec`. ``instance_kind``:
    ``gpu``/``cpu`` (default: the backend's). ``trt_precision``: FP32, FP16 or INT8 (default: the precision an
    ``edgecnn optimize`` decision in the file records for this backend, else the file's precision; never
    measured). ``trt_cache_path``: engine cache folder inside the server (default ``/tmp/triton_trt_cache/<name>``).
    """
    path = Path(model_path)
    model = _load_graph(path)
    meta = _metadata(model)
    name = name or str(meta.get("model") or path.stem)
    if not _NAME_RE.match(name):
        raise EdgecnnError(f"invalid Triton model name {name!r}: use letters, digits, '_', '-' and '.' "
                           "(it is also the folder name); pass --name.")
    from edgecnn.runtime.backends import registry

    try:
        backend = registry.get(provider)
    except EdgecnnError:
        backend = None
    spec = backend.triton if backend is not None else None
    if backend is None or spec is None:
        raise EdgecnnError(f"unknown Triton provider {provider!r}: choose one of {', '.join(PROVIDERS)}.")
    provider = backend.name
    default_kind = spec.instance_kind
    kind = _KINDS.get((instance_kind or "").lower()) if instance_kind else default_kind
    if kind is None:
        raise EdgecnnError(f"unknown instance kind {instance_kind!r}: choose gpu or cpu.")
    if default_kind == _KINDS["gpu"] and kind != default_kind:
        raise EdgecnnError(f"provider {provider} runs on GPU instances; use --instance-kind gpu or --provider cpu.")
    if default_kind == _KINDS["cpu"] and kind != default_kind:
        raise EdgecnnError(f"provider {provider} needs --instance-kind cpu (GPU instances use the cuda provider).")
    if instance_count < 1:
        raise EdgecnnError(f"instance count must be >= 1, got {instance_count}.")
    if max_queue_delay_us < 0:
        raise EdgecnnError(f"queue delay must be >= 0 microseconds, got {max_queue_delay_us}.")

    inits = {i.name for i in model.graph.initializer}
    inputs = _tensors([v for v in model.graph.input if v.name not in inits], True)
    outputs = _tensors(list(model.graph.output), False)
    if not inputs or not outputs:
        raise EdgecnnError(f"{path}: the graph has no {'inputs' if not inputs else 'outputs'}.")
    first = inputs[0][2]
    if not first:
        raise EdgecnnError(f"{path}: input {inputs[0][0]!r} is a scalar; expected a batched tensor.")
    batch_dim = first[0]
    dynamic = batch_dim is None
    from edgecnn.runtime.vision import output_roles

    unbatched = sorted(n for n, r in output_roles(meta).items() if not r["batch"])
    if dynamic and unbatched:  # graph NMS: the outputs are the request's detections, not per image
        if max_batch_size not in (None, 0):
            raise EdgecnnError(f"{path}: outputs {', '.join(unbatched)} are not batched per image (the detections of "
                               "the whole request, after NonMaxSuppression in the graph): Triton gets max_batch_size "
                               "0 and the batch as -1 in dims; drop --max-batch-size, or export with --nms host for "
                               "Triton's dynamic batcher.")
        dynamic = False

    if dynamic:
        mbs = DEFAULT_MAX_BATCH if max_batch_size is None else int(max_batch_size)
        if mbs < 1:
            raise EdgecnnError(f"max batch size must be >= 1 for a dynamic-batch model, got {mbs}.")
        for t_name, _, dims in inputs + outputs:
            if not dims or dims[0] is not None:
                raise EdgecnnError(f"{path}: tensor {t_name!r} has no dynamic batch dim like the first input "
                                   f"({list(dims)}); export it with a fixed batch for Triton, or pass a file "
                                   "whose inputs and outputs all share the dynamic batch dim.")
    else:
        if max_batch_size not in (None, 0):
            raise EdgecnnError(f"{path} has a fixed batch of {batch_dim}: Triton gets max_batch_size 0 and the batch "
                               "dim in dims. Export with a dynamic batch to use --max-batch-size.")
        mbs = 0

    def tensors(items: list[tuple[str, int, list[int | None]]]) -> tuple[TritonTensor, ...]:
        out = []
        for t_name, elem, dims in items:
            shown = dims[1:] if dynamic else dims
            out.append(TritonTensor(t_name, _triton_type(t_name, elem), tuple(-1 if d is None else d for d in shown)))
        return tuple(out)

    tin, tout = tensors(inputs), tensors(outputs)
    if (len(tout) == 1 and tout[0].dims and tout[0].dims[-1] == 1000
            and meta.get("class_names", "imagenet") == "imagenet" and len(tout[0].dims) == 1):
        tout = (TritonTensor(tout[0].name, tout[0].data_type, tout[0].dims, LABELS_FILENAME),)

    batching = dynamic and dynamic_batching
    preferred = tuple(int(b) for b in preferred_batch_sizes)
    if preferred and not batching:
        why = f"outputs {', '.join(unbatched)} not batched per image" if unbatched else f"a fixed batch of {batch_dim}"
        raise EdgecnnError("preferred batch sizes need dynamic batching, which needs a model batched per image "
                           f"({path} has {why})." if not dynamic
                           else "preferred batch sizes need dynamic batching (drop --no-dynamic-batching).")
    bad = [b for b in preferred if b < 1 or b > mbs]
    if bad:
        raise EdgecnnError(f"preferred batch sizes must be between 1 and max_batch_size {mbs}, got {bad}.")

    trt: dict[str, str] | None = None
    if spec.precision_modes:
        from edgecnn.runtime.auto_precision import recorded

        file_precision = str(recorded(meta, backend) or meta.get("precision") or "fp32").upper()
        precision = (trt_precision or (file_precision if file_precision in spec.precision_modes else "FP32")).upper()
        if precision not in spec.precision_modes:
            raise EdgecnnError(f"unknown TensorRT precision {trt_precision!r}: choose one of "
                               f"{', '.join(TRT_PRECISIONS)}.")
        if trt_workspace_bytes < 1:
            raise EdgecnnError(f"TensorRT workspace must be >= 1 byte, got {trt_workspace_bytes}.")
        trt = {
            "precision_mode": precision,
            "max_workspace_size_bytes": str(int(trt_workspace_bytes)),
            "trt_engine_cache_enable": "1",
            "trt_engine_cache_path": trt_cache_path or f"/tmp/triton_trt_cache/{name}",
        }
        if dynamic and trt_profiles:
            # one optimization profile over the whole batch range, so TensorRT builds one engine, not one per size
            opt = max(preferred) if preferred else mbs
            sample = inputs[0][2][1:]
            if all(d is not None for d in sample):
                def shape(n: int) -> str:
                    return f"{inputs[0][0]}:" + "x".join(str(d) for d in [n, *sample])

                trt["trt_profile_min_shapes"] = shape(1)
                trt["trt_profile_opt_shapes"] = shape(opt)
                trt["trt_profile_max_shapes"] = shape(mbs)
    elif trt_precision is not None:
        raise EdgecnnError("--trt-precision applies to --provider tensorrt only.")

    return TritonConfig(
        name=name, max_batch_size=mbs, inputs=tin, outputs=tout, instance_count=int(instance_count),
        instance_kind=kind, dynamic_batching=batching, preferred_batch_sizes=preferred,
        max_queue_delay_us=int(max_queue_delay_us), accelerator=spec.accelerator, gpu_accelerator=spec.gpu_accelerator,
        accelerator_parameters=trt,
    )


def write_triton_repo(
    model_path: str | os.PathLike,
    repo: str | os.PathLike,
    *,
    version: int = 1,
    force: bool = False,
    move: bool = False,
    **options: Any,
) -> TritonRepo:
    """Write ``repo/<name>/<version>/model.onnx`` and ``repo/<name>/config.pbtxt`` for ``model_path``.

    ``options`` go to :func:`build_config`. An existing version folder is an error unless ``force``
    (then it is replaced as a whole). The version folder appears complete or not at all: it is built
    beside its target and renamed into place; ``config.pbtxt`` is written atomically. ``move``: move
    the model (and its external data) into the repository instead of copying it, for a file made only
    for the repository (``export --triton-repo`` without ``-o``).
    """
    if isinstance(version, bool) or int(version) < 1:
        raise EdgecnnError(f"Triton model versions are positive integers, got {version!r}.")
    version = int(version)
    src = Path(model_path)
    config = build_config(src, **options)
    model = _load_graph(src)
    extras = _external_files(model, src.parent)
    root = Path(repo)
    if root.exists() and not root.is_dir():
        raise EdgecnnError(f"Triton repository must be a folder, got a file: {root}")
    plain_name(config.name, "the Triton model name")
    model_dir = root / config.name
    version_dir = model_dir / str(version)
    if version_dir.exists() and not force:
        raise EdgecnnError(f"{version_dir} already exists; pass --force to replace version {version}, or --version "
                           f"N for a new one.")
    config_file = model_dir / "config.pbtxt"
    text = config.to_pbtxt()
    if config_file.exists() and not force and config_file.read_text(encoding="utf-8", errors="replace") != text:
        raise EdgecnnError(f"{config_file} already exists with another configuration; pass --force to replace it "
                           "(it serves every version of the model).")
    check_writable(model_dir)
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgecnnError(f"cannot create {model_dir}: {e.strerror}") from None

    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=model_dir))
    os.chmod(staging, 0o777 & ~umask())  # mkdtemp makes 0700: the server's group must read the version folder
    try:
        put = shutil.move if move else shutil.copyfile
        put(src, staging / MODEL_FILENAME)
        for rel in extras:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            put(src.parent / rel, staging / rel)
        old = None
        if version_dir.exists():
            old = model_dir / f".{version}.old.{os.getpid()}"
            os.replace(version_dir, old)
        os.replace(staging, version_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)

    if any(t.label_filename for t in config.outputs):
        from importlib import resources

        labels = resources.files("edgecnn").joinpath("data/imagenet_classes.txt").read_bytes()
        atomic_write_bytes(model_dir / LABELS_FILENAME, labels)
    with atomic_path(config_file) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return TritonRepo(root=root, model_dir=model_dir, version_dir=version_dir, model_file=version_dir / MODEL_FILENAME,
                      config_file=config_file, config=config, extra_files=tuple(version_dir / p for p in extras))
