"""Offline batch inference on a Ray cluster with Ray Data (``pip install edgecnn[ray]``; no torch).

:class:`RayPredictor` is a callable class for :meth:`ray.data.Dataset.map_batches`: each actor builds
one :class:`~edgecnn.runtime.Engine` and classifies whole batches::

    import ray
    from edgecnn.scale.ray import RayPredictor, model_payload

    ds = ray.data.read_images("s3://bucket/images/", mode="RGB", include_paths=True)
    preds = ds.map_batches(RayPredictor, fn_constructor_kwargs={"model": model_payload("resnet18.onnx")},
                           concurrency=4, batch_size=32, num_gpus=1)

:func:`ray_batch_predict` is what ``edgecnn batch-predict --ray`` runs: it reads the images with Ray
Data, predicts with ``concurrency`` actors and streams the rows into one results file on the driver,
the same file (same columns, same preprocessing, same top-k) as the local path in
:mod:`edgecnn.scale.local`. The model's bytes travel through Ray's object store, so workers on
other nodes need no shared file system for the model; they do need to read the images.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn._io import atomic_write_bytes
from edgecnn.errors import EdgecnnError
from edgecnn.runtime.postprocess import class_scores, topk_arrays
from edgecnn.runtime.vision import task_of
from edgecnn.scale.local import (
    TASK_COLUMNS,
    BatchPredictResult,
    ResultWriter,
    check_output,
    output_labels,
    relative_path,
)


def require_ray() -> Any:
    """Import ray (with Ray Data) or raise the one-line install hint."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise EdgecnnError("--ray needs Ray Data: pip install 'edgecnn[ray]'") from None
    return ray


def model_payload(path: str | os.PathLike) -> dict[str, bytes]:
    """The ``.onnx`` file and its external-data files as ``{relative name: bytes}`` (for the object store)."""
    from edgecnn import onnxfile

    src = Path(path)
    model = onnxfile.open_model(src, load_data=False)
    files = {"model.onnx": src.read_bytes()}
    for rel in onnxfile.check_external_data(model, src.parent):
        files[rel.as_posix()] = (src.parent / rel).read_bytes()
    return files


def _materialize(files: Mapping[str, bytes]) -> Path:
    """Write a payload once per node (keyed by content hash) and return the model's path there."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode())
        h.update(hashlib.sha256(files[name]).digest())
    folder = Path(tempfile.gettempdir()) / "edgecnn-ray" / h.hexdigest()[:16]
    for name, data in files.items():
        target = folder / name
        if not (target.is_file() and target.stat().st_size == len(data)):
            atomic_write_bytes(target, data)
    return folder / "model.onnx"


class RayPredictor:
    """One Engine per Ray actor; ``__call__`` classifies a Ray Data batch of decoded images.

    ``model``: an ``.onnx`` path readable on every node, or :func:`model_payload` bytes (or an
    ``ObjectRef`` to them). Input batches have an ``image`` column (HWC/HW uint8 arrays from
    ``read_images``; RGB for 3-channel models, ``L`` for 1-channel) and optionally ``path``. Output
    batches have ``path`` (relative to ``root`` when given), ``classes`` (int64, N x k) and
    ``probabilities`` (float32, N x k); for a detection or segmentation file, one row per box or class with
    the columns of :data:`edgecnn.scale.local.TASK_COLUMNS` (boxes scoring at least ``min_score``).
    ``threads``: ONNX Runtime intra-op threads (match the actor's ``num_cpus``). ``precision``/``device``:
    the Engine's (OpenVINO device, or CUDA device index).
    """

    def __init__(self, model: Any, *, top: int = 5, provider: str = "auto", fallback: bool = True,
                 threads: int | None = 1, root: str | None = None, max_batch: int = 32, precision: str = "auto",
                 device: str | None = None, min_score: float = 0.25) -> None:
        from edgecnn.runtime import Engine

        if isinstance(model, list | tuple) and len(model) == 1:  # a wrapped ObjectRef: Ray does not resolve it
            model = model[0]
        if type(model).__name__ == "ObjectRef":
            import ray

            model = ray.get(model)
        path = _materialize(model) if isinstance(model, Mapping) else Path(model)
        self.engine = Engine(path, provider, fallback=fallback, threads=threads, max_batch=max_batch,
                             precision=precision, device=device)
        self.config = self.engine.preprocess_config()
        self.top = int(top)
        self.root = root
        self.min_score = float(min_score)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """A decoded image array -> the model's normalized CHW input (edgecnn's resize + center crop)."""
        from PIL import Image

        from edgecnn.runtime.images import open_image, resize_crop, to_array

        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        img = open_image(Image.fromarray(arr), self.config.channels)
        return to_array(resize_crop(img, self.config), self.config)

    def _paths(self, batch: Mapping[str, Any]) -> list[str]:
        paths = [str(p) for p in batch["path"]] if "path" in batch else [""] * len(batch["image"])
        return [relative_path(p, self.root) for p in paths] if self.root is not None and "path" in batch else paths

    def _task_rows(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """A detection or segmentation file: one row per box or class (``predict``'s post-processing)."""
        from PIL import Image

        from edgecnn.runtime.images import open_image
        from edgecnn.runtime.vision.run import task_rows

        images = [open_image(Image.fromarray(np.clip(np.asarray(a), 0, 255).astype(np.uint8)), self.config.channels)
                  for a in batch["image"]]
        columns = TASK_COLUMNS[self.engine.task]
        out: dict[str, list[Any]] = {k: [] for k in columns}
        for path, rows in zip(self._paths(batch), task_rows(self.engine, images, min_score=self.min_score),
                              strict=True):
            for r in rows:
                for k in columns:
                    out[k].append(path if k == "path" else r[k])
        types = {"path": object, "label": object, "class": np.int64, "share": np.float64}
        return {k: np.asarray(v, dtype=types.get(k, np.float32)) for k, v in out.items()}

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if self.engine.task != "classification":
            return self._task_rows(batch)
        images = batch["image"]
        x = np.stack([self.preprocess(img) for img in images])
        classes, probs = topk_arrays(class_scores(self.engine.run(x), self.engine.metadata), self.top)
        out: dict[str, np.ndarray] = {"classes": classes, "probabilities": probs}
        if "path" in batch:
            paths = [str(p) for p in batch["path"]]
            if self.root is not None:
                paths = [relative_path(p, self.root) for p in paths]
            out["path"] = np.asarray(paths, dtype=object)
        return out


def _file_meta(path: Path) -> tuple[dict[str, Any], int | None, int]:
    """(edgecnn metadata, number of classes if static, input channels) read with onnx, without a session."""
    from edgecnn import onnxfile

    model = onnxfile.open_model(path, load_data=False)
    meta = onnxfile.read_metadata(model)
    from edgecnn.io_spec import output_classes
    from edgecnn.runtime.postprocess import has_background

    classes = output_classes(model)  # (N, C), (N, C, 1, 1) or (N, 1, 1, C); 1001 loses the background
    if classes and has_background(meta, classes):
        classes -= 1
    inits = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in inits]
    in_dims = inputs[0].type.tensor_type.shape.dim if inputs else []
    channels = meta.get("channels")
    if not isinstance(channels, int):
        channels = in_dims[1].dim_value if len(in_dims) == 4 and in_dims[1].HasField("dim_value") else 3
    return meta, classes or None, int(channels)


def _ray_error(e: BaseException) -> EdgecnnError:
    """A one-line error from a failed Ray job: the edgecnn message, else the first non-Ray cause."""
    chain: list[BaseException] = []
    cause: BaseException | None = e
    while cause is not None and all(cause is not c for c in chain):
        if isinstance(cause, EdgecnnError):
            return EdgecnnError(str(cause))
        chain.append(cause)
        cause = getattr(cause, "cause", None) or cause.__cause__
    user = [c for c in chain if not type(c).__module__.startswith("ray") and "RayTaskError" not in type(c).__name__]
    inner = user[0] if user else chain[-1]
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return EdgecnnError(f"the Ray job failed: {type(inner).__name__}: {(lines or [''])[0][:300]}")


def ray_batch_predict(
    model: str | os.PathLike,
    input_dir: str,
    output: str | os.PathLike,
    *,
    top: int = 5,
    batch: int = 32,
    concurrency: int = 2,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    provider: str = "auto",
    address: str | None = None,
    read_cpus: float = 0.0,
    read_concurrency: int | None = None,
    force: bool = False,
    progress: bool = True,
    precision: str = "auto",
    device: str | None = None,
    min_score: float = 0.25,
) -> BatchPredictResult:
    """Classify every image under ``input_dir`` on a Ray cluster and write one results file on the driver
    (a detector's boxes scoring at least ``min_score``, a segmenter's class shares: the local path's columns).

    ``address``: None starts (and stops) a local Ray instance unless one is already running in this
    process; ``auto`` joins the cluster this machine belongs to; ``ray://host:10001`` connects with Ray
    Client. ``input_dir`` must be readable by the workers (shared file system, or s3://, gs://, ...).
    Rows arrive in completion order, not sorted. Read tasks reserve ``read_cpus`` (default 0, so the
    actors may take every CPU without starving the reads) and at most ``read_concurrency`` (default:
    ``concurrency``) run at once. ``precision``/``device`` go to each actor's Engine.
    """
    ray = require_ray()
    if top < 1 or batch < 1 or concurrency < 1:
        raise EdgecnnError(f"--top, --batch and --concurrency must be >= 1, got {top}, {batch}, {concurrency}.")
    if cpus_per_worker <= 0 and gpus_per_worker <= 0:
        raise EdgecnnError("each Ray worker needs some CPU or GPU: --cpus-per-worker or --gpus-per-worker > 0.")
    out = check_output(output, force)
    src = Path(model)
    payload = model_payload(src)
    meta, num_classes, channels = _file_meta(src)
    remote_input = "://" in str(input_dir)
    listed, seen = 0, set()  # images: those listed here, else (remote) those with a row
    if not remote_input:
        from edgecnn.runtime.datasets import list_images

        listed = len(list_images(input_dir))  # a clear error for a missing or empty folder before the cluster starts
        input_dir = os.path.abspath(input_dir)

    started_here = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level="WARNING", configure_logging=True)
        except ConnectionError as e:
            raise EdgecnnError(f"cannot connect to the Ray cluster at {address!r}: {str(e).splitlines()[0]}; "
                               "start one with 'ray start --head' or drop --address for a local one.") from None
        started_here = True
    from edgecnn.runtime.datasets import IMAGE_EXTENSIONS

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    if not progress:
        import logging

        logging.getLogger("ray.data").setLevel(logging.WARNING)
    exts = sorted({e.lstrip(".") for e in IMAGE_EXTENSIONS} | {e.lstrip(".").upper() for e in IMAGE_EXTENSIONS})
    start = time.perf_counter()
    writer: ResultWriter | None = None
    ok = False
    try:
        ds = ray.data.read_images(input_dir, mode="L" if channels == 1 else "RGB", include_paths=True,
                                  file_extensions=exts, num_cpus=read_cpus,
                                  concurrency=read_concurrency or concurrency)
        threads = max(1, int(round(cpus_per_worker))) if cpus_per_worker > 0 else 1
        preds = ds.map_batches(
            RayPredictor,
            fn_constructor_kwargs={"model": [ray.put(payload)], "top": top, "provider": provider,
                                   "threads": threads, "root": None if remote_input else input_dir,
                                   "max_batch": batch, "precision": precision, "device": device,
                                   "min_score": min_score},
            batch_size=batch, compute=ray.data.ActorPoolStrategy(size=concurrency), num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker or None, batch_format="numpy",
        )
        task = task_of(meta)
        if task != "classification":
            writer = ResultWriter(out, (), task=task)
            columns = TASK_COLUMNS[task]
        labels = output_labels(meta, num_classes) if num_classes and task == "classification" else None
        for b in preds.iter_batches(batch_size=None, batch_format="numpy"):
            if task != "classification":
                values = [np.asarray(b[k]).tolist() for k in columns]
                writer.write_rows([dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)])
                seen.update(values[0])
                continue
            if labels is None:
                labels = output_labels(meta, _num_classes(payload))
            if writer is None:
                writer = ResultWriter(out, labels)
            writer.write([str(p) for p in b["path"]], np.asarray(b["classes"]), np.asarray(b["probabilities"]))
        ok = True
    except EdgecnnError:
        raise
    except Exception as e:
        raise _ray_error(e) from None
    finally:
        if writer is not None:
            writer.close(ok=ok)
        if started_here:
            ray.shutdown()
    if writer is None:
        raise EdgecnnError(f"no images found under {input_dir}.")
    images = writer.rows if task == "classification" else listed or len(seen)
    return BatchPredictResult(output=str(out), images=images, seconds=time.perf_counter() - start, mode="ray",
                              model=str(model), providers=[provider], workers=concurrency, batch=batch)


def _num_classes(payload: Mapping[str, bytes]) -> int:
    """Number of classes of a model whose output dim is symbolic: run one zero image on the driver."""
    from edgecnn.runtime.engine import reference_engine

    eng = reference_engine(_materialize(payload), threads=1)
    x = np.zeros((1, *[d if isinstance(d, int) and d > 0 else 1 for d in eng.sample_shape]), eng.input_dtype)
    return int(class_scores(eng.run(x), eng.metadata).shape[1])
