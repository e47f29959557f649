"""Offline batch inference over a folder of images on this machine: Engine + Batcher, one results file.

This is the local counterpart of :mod:`edgecnn.scale.ray` and writes the same file, so the two are
comparable row by row: one row per image with

* ``path``: the image's path relative to the input folder (POSIX separators),
* ``classes``: the top-k class indices, best first,
* ``labels``: their names (ImageNet names for 1000-class models, else the index as text),
* ``probabilities``: their softmax probabilities (float32).

Detection and segmentation files (``edgecnn.task``) write one row per box or per class instead
(:data:`TASK_COLUMNS`), post-processed by :func:`edgecnn.runtime.vision.run.task_rows` as ``predict`` does:

* detection: ``path``, ``class`` (index), ``label``, ``score``, ``x1``, ``y1``, ``x2``, ``y2`` (the image's own
  pixels), for every box scoring at least ``min_score``, best first; an image without such a box has no row;
* segmentation: ``path``, ``class``, ``label``, ``share`` (of the pixels whose most likely class it is), for the
  classes present, largest share first.

Results go to ``.parquet`` (needs pyarrow: ``pip install edgecnn[ray]``) or ``.jsonl`` (no extra
dependency). The file is written atomically. Loader threads decode and preprocess images while the
:class:`~edgecnn.runtime.Batcher` groups them into batches for the engine.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

import numpy as np

from edgecnn._io import atomic_path
from edgecnn.errors import EdgecnnError
from edgecnn.outputs import check_writable

FORMATS = (".parquet", ".jsonl")
COLUMNS = ("path", "classes", "labels", "probabilities")
#: the columns of a results file, by the file's task
TASK_COLUMNS = {"classification": COLUMNS,
                "detection": ("path", "class", "label", "score", "x1", "y1", "x2", "y2"),
                "segmentation": ("path", "class", "label", "share")}


def _schema(pa: Any, task: str) -> Any:
    if task == "detection":
        return pa.schema([("path", pa.string()), ("class", pa.int64()), ("label", pa.string()),
                          ("score", pa.float32()), *[(k, pa.float32()) for k in ("x1", "y1", "x2", "y2")]])
    if task == "segmentation":
        return pa.schema([("path", pa.string()), ("class", pa.int64()), ("label", pa.string()),
                          ("share", pa.float64())])
    return pa.schema([("path", pa.string()), ("classes", pa.list_(pa.int64())),
                      ("labels", pa.list_(pa.string())), ("probabilities", pa.list_(pa.float32()))])


@dataclass
class BatchPredictResult:
    """What a batch-predict run did (``as_dict`` for JSON)."""

    output: str
    images: int
    seconds: float
    mode: str
    model: str
    providers: list[str] = field(default_factory=list)
    workers: int = 1
    batch: int = 32
    #: the precision that ran and why (``--precision auto``: what it measured and chose)
    precision: str | None = None
    precision_reason: str = ""

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_s": round(self.images_per_s, 2)}


def require_pyarrow() -> Any:
    """Import pyarrow.parquet or raise the one-line install hint."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError:
        raise EdgecnnError("writing .parquet results needs pyarrow: pip install 'edgecnn[ray]' "
                           "(or write .jsonl instead)") from None
    return pq


def check_output(output: str | os.PathLike, force: bool) -> Path:
    """Validate the results path (suffix, not a folder, not existing unless ``force``)."""
    out = Path(output)
    if out.suffix.lower() not in FORMATS:
        raise EdgecnnError(f"results file must end in {' or '.join(FORMATS)}, got {out.name!r}.")
    if out.is_dir():
        raise EdgecnnError(f"results path is a folder: {out}; give a file name like results.parquet.")
    if out.exists() and not force:
        raise EdgecnnError(f"{out} already exists; pass --force to overwrite it.")
    check_writable(out.parent)
    if out.suffix.lower() == ".parquet":
        require_pyarrow()
    return out


def relative_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` relative to ``root`` with POSIX separators (``path`` itself when it is not under ``root``)."""
    p, r = os.path.abspath(path), os.path.abspath(root)
    try:
        rel = os.path.relpath(p, r)
    except ValueError:  # another drive on Windows
        return PurePosixPath(Path(p)).as_posix()
    if rel.startswith(".."):
        return Path(p).as_posix()
    return PurePosixPath(*Path(rel).parts).as_posix()


def output_labels(meta: dict[str, Any], num_classes: int) -> tuple[str, ...]:
    """Label per class index: ImageNet names where they apply, else the index as text."""
    from edgecnn.runtime.postprocess import class_names

    names = class_names(meta, num_classes)
    return tuple(names) if names else tuple(str(i) for i in range(num_classes))


class ResultWriter:
    """Append result rows to a ``.parquet`` or ``.jsonl`` file that appears only when closed cleanly; ``task``
    picks the columns (:data:`TASK_COLUMNS`)."""

    def __init__(self, output: str | os.PathLike, labels: Sequence[str], task: str = "classification") -> None:
        self.output = Path(output)
        self.labels = tuple(labels)
        self.task = task
        self.rows = 0
        self._kind = self.output.suffix.lower()
        self._ctx = atomic_path(self.output, suffix=self._kind)
        self._tmp = self._ctx.__enter__()
        self._pq_writer: Any = None
        self._file: Any = None
        if self._kind == ".parquet":
            pq = require_pyarrow()
            import pyarrow as pa

            self._pa = pa
            self.schema = _schema(pa, task)
            self._pq_writer = pq.ParquetWriter(str(self._tmp), self.schema)
        else:
            self._file = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, paths: Sequence[str], classes: np.ndarray, probabilities: np.ndarray) -> None:
        """Append rows: ``classes`` and ``probabilities`` are (N, k) arrays."""
        if not len(paths):
            return
        labels = [[self.labels[int(i)] for i in row] for row in classes]
        if self._pq_writer is not None:
            pa = self._pa
            table = pa.table({"path": pa.array([str(p) for p in paths], pa.string()),
                              "classes": pa.array(np.asarray(classes, np.int64).tolist(), pa.list_(pa.int64())),
                              "labels": pa.array(labels, pa.list_(pa.string())),
                              "probabilities": pa.array(np.asarray(probabilities, np.float32).tolist(),
                                                        pa.list_(pa.float32()))}, schema=self.schema)
            self._pq_writer.write_table(table)
        else:
            for p, c, lab, pr in zip(paths, classes, labels, probabilities, strict=True):
                self._file.write(json.dumps({"path": str(p), "classes": [int(v) for v in c], "labels": lab,
                                             "probabilities": [float(v) for v in pr]}) + "\n")
        self.rows += len(paths)

    def write_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows of a detection or segmentation file (dicts with the task's columns)."""
        if not rows:
            return
        if self._pq_writer is not None:
            self._pq_writer.write_table(self._pa.Table.from_pylist(list(rows), schema=self.schema))
        else:
            for r in rows:
                self._file.write(json.dumps({k: r[k] for k in TASK_COLUMNS[self.task]}) + "\n")
        self.rows += len(rows)

    def close(self, ok: bool = True) -> None:
        """Finish the file; with ``ok=False`` discard it."""
        if self._pq_writer is not None:
            self._pq_writer.close()
            self._pq_writer = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if ok:
            self._ctx.__exit__(None, None, None)
        else:
            err = RuntimeError("discarded")
            try:
                self._ctx.__exit__(RuntimeError, err, None)
            except RuntimeError:
                pass

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close(ok=et is None)


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a results file written by ``batch-predict`` back into row dicts."""
    p = Path(path)
    if p.suffix.lower() == ".parquet":
        return require_pyarrow().read_table(str(p)).to_pylist()
    with open(p, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="img", desc=desc, dynamic_ncols=True, leave=False)


def batch_predict(
    model: str | os.PathLike,
    input_dir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    top: int = 5,
    batch: int = 32,
    provider: str = "auto",
    fallback: bool = False,
    threads: int | None = None,
    precision: str = "auto",
    device: str | None = None,
    loaders: int = 2,
    max_wait_ms: float = 5.0,
    force: bool = False,
    progress: bool = True,
    limit: int | None = None,
    engine: Any = None,
    min_score: float = 0.25,
) -> BatchPredictResult:
    """Classify every image under ``input_dir`` with ``model`` on this machine and write ``output`` (a detector's
    boxes scoring at least ``min_score``, a segmenter's class shares: :data:`TASK_COLUMNS`).

    ``loaders`` threads decode and preprocess; a :class:`~edgecnn.runtime.Batcher` runs them on one
    :class:`~edgecnn.runtime.Engine` in batches of up to ``batch``. Rows come out in sorted path order.
    ``precision``/``device`` are the Engine's (ignored when ``engine`` is given).
    """
    from edgecnn.runtime import Batcher, Engine
    from edgecnn.runtime.datasets import list_images
    from edgecnn.runtime.images import preprocess
    from edgecnn.runtime.postprocess import class_scores, topk_arrays

    if top < 1:
        raise EdgecnnError(f"--top must be >= 1, got {top}.")
    if batch < 1 or loaders < 1:
        raise EdgecnnError(f"--batch and --loaders must be >= 1, got {batch} and {loaders}.")
    out = check_output(output, force)
    paths = list_images(input_dir, limit=limit)
    eng = engine or Engine(model, provider, fallback=fallback, threads=threads, max_batch=batch, precision=precision,
                           device=device)
    if eng.task != "classification":
        return _task_batch_predict(eng, model, input_dir, out, paths, batch=batch, loaders=loaders,
                                   progress=progress, min_score=min_score)
    config = eng.preprocess_config()
    labels: tuple[str, ...] | None = None  # from the first scores: (N, C, 1, 1) and 1001-class outputs vary

    start = time.perf_counter()
    window = max(2 * batch, batch + 4 * loaders)
    pending: deque[tuple[Path, Future]] = deque()
    done_paths: list[str] = []
    done_scores: list[np.ndarray] = []
    writer: ResultWriter | None = None

    def flush() -> None:
        nonlocal writer, labels
        if not done_paths:
            return
        scores = class_scores(np.stack(done_scores), eng.metadata)
        if labels is None:
            labels = output_labels(eng.metadata, scores.shape[1])
        if writer is None:
            writer = ResultWriter(out, labels)
        classes, probs = topk_arrays(scores, top)
        writer.write(done_paths, classes, probs)
        done_paths.clear()
        done_scores.clear()

    ok = False
    try:
        with Batcher(eng, max_batch=batch, max_wait_ms=max_wait_ms) as batcher, \
                ThreadPoolExecutor(loaders, thread_name_prefix="edgecnn-loader") as pool, \
                _progress(len(paths), progress, "batch-predict") as bar:
            def load(p: Path) -> Future:
                return batcher.submit(preprocess(p, config))

            it: Iterable[Path] = iter(paths)
            for p in it:
                pending.append((p, pool.submit(load, p)))
                if len(pending) >= window:
                    break
            while pending:
                p, fut = pending.popleft()
                row = fut.result().result()
                done_paths.append(relative_path(p, input_dir))
                done_scores.append(row)
                bar.update(1)
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(load, nxt)))
                if len(done_paths) >= 4 * batch:
                    flush()
            flush()
        ok = True
    finally:
        for _, fut in pending:
            fut.cancel()
        if writer is not None:
            writer.close(ok=ok)
    seconds = time.perf_counter() - start
    return BatchPredictResult(output=str(out), images=writer.rows if writer else 0, seconds=seconds, mode="local",
                              model=str(model), providers=list(eng.providers), workers=loaders, batch=batch,
                              precision=eng.precision, precision_reason=eng.info.precision_reason)


def _task_batch_predict(eng: Any, model: str | os.PathLike, input_dir: str | os.PathLike, out: Path,
                        paths: Sequence[Path], *, batch: int, loaders: int, progress: bool, min_score: float
                        ) -> BatchPredictResult:
    """A detection or segmentation file: images opened by ``loaders`` threads, run ``batch`` at a time, rows from
    :func:`edgecnn.runtime.vision.run.task_rows` (the post-processing of ``predict``), in sorted path order."""
    from edgecnn.runtime.images import open_image
    from edgecnn.runtime.vision.run import task_rows

    channels = eng.preprocess_config().channels
    start = time.perf_counter()
    ok = False
    writer = ResultWriter(out, (), task=eng.task)
    try:
        with ThreadPoolExecutor(loaders, thread_name_prefix="edgecnn-loader") as pool, \
                _progress(len(paths), progress, "batch-predict") as bar:
            for i in range(0, len(paths), batch):
                group = list(paths[i:i + batch])
                images = list(pool.map(lambda p: open_image(p, channels), group))
                for p, rows in zip(group, task_rows(eng, images, min_score=min_score), strict=True):
                    rel = relative_path(p, input_dir)
                    writer.write_rows([{"path": rel, **r} for r in rows])
                bar.update(len(group))
        ok = True
    finally:
        writer.close(ok=ok)
    return BatchPredictResult(output=str(out), images=len(paths), seconds=time.perf_counter() - start,
                              mode="local", model=str(model), providers=list(eng.providers), workers=loaders,
                              batch=batch, precision=eng.precision, precision_reason=eng.info.precision_reason)
