"""Dynamic batching for serving: single requests from many threads, run as batches on one Engine."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.engine import Engine, default_threads

_STOP = object()


@dataclass
class BatcherStats:
    """Counters since the batcher started."""

    requests: int = 0
    batches: int = 0
    failed_batches: int = 0

    @property
    def mean_batch(self) -> float:
        return self.requests / self.batches if self.batches else 0.0


class Batcher:
    """Collect single-sample requests into batches of up to ``max_batch`` rows.

    A batch starts when ``max_batch`` requests are queued or ``max_wait_ms`` after its first request
    arrived, whichever comes first (a request that already waited that long while the engine was busy
    runs at once with whatever else is queued). Each request's :class:`~concurrent.futures.Future`
    gets its own output row; if a batch fails, exactly that batch's requests get the exception.
    ``workers`` batches run at once; the default fills the CPUs on CPU (CPUs // ``engine.threads``, so an
    ``Engine(threads=1)`` gets one worker per core) and is 1 on GPUs. ``close()`` (or leaving a ``with``
    block) runs everything queued, then stops the workers.
    """

    def __init__(self, engine: Engine, *, max_batch: int | None = None, max_wait_ms: float = 2.0,
                 workers: int | None = None) -> None:
        if max_batch is not None and max_batch < 1:
            raise EdgecnnError(f"max_batch must be >= 1, got {max_batch}.")
        if max_wait_ms < 0:
            raise EdgecnnError(f"max_wait_ms must be >= 0, got {max_wait_ms}.")
        if workers is None:
            on_cpu = bool(getattr(engine, "on_cpu", True))
            workers = max(1, default_threads() // max(1, getattr(engine, "threads", 1))) if on_cpu else 1
        if workers < 1:
            raise EdgecnnError(f"workers must be >= 1, got {workers}.")
        self.workers = int(workers)
        self.engine = engine
        self.max_batch = int(max_batch or engine.chunk_size)
        self.max_wait_ms = float(max_wait_ms)
        self.stats = BatcherStats()
        self._max_wait = self.max_wait_ms / 1000.0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._closed = False
        self._threads = [threading.Thread(target=self._worker, name=f"edgecnn-batcher-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ client side

    def submit(self, x: np.ndarray) -> Future:
        """Queue one sample (CHW, or NCHW with N = 1); the future resolves to its output row."""
        if not isinstance(x, np.ndarray):
            raise EdgecnnError(f"Batcher.submit expects a numpy array, got {type(x).__name__}.")
        if x.ndim == 4 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 3:
            raise EdgecnnError(f"Batcher.submit takes one sample of shape [C, H, W] (or [1, C, H, W]), "
                               f"received {list(x.shape)}.")
        self.engine.check_input(x[None])
        fut: Future = Future()
        with self._lock:
            if self._closed:
                raise EdgecnnError("the Batcher is closed; create a new one to submit more requests.")
            self._queue.put((x, fut, time.perf_counter()))
        return fut

    def infer(self, x: np.ndarray, timeout: float | None = None) -> np.ndarray:
        """Submit one sample and wait for its output row."""
        return self.submit(x).result(timeout)

    __call__ = infer

    def close(self, wait: bool = True) -> None:
        """Stop accepting requests, run everything already queued, then stop the workers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        if wait:
            for t in self._threads:
                t.join()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Batcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ worker side

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._queue.put(_STOP)  # let the other workers see it too
                return
            batch = [item]
            deadline = item[2] + self._max_wait
            stop = False
            while len(batch) < self.max_batch:
                remaining = deadline - time.perf_counter()
                try:
                    nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._run(batch)
            if stop:
                self._queue.put(_STOP)
                return

    def _count(self, n: int, failed: bool) -> None:
        with self._stats_lock:
            self.stats.batches += 1
            self.stats.requests += n
            self.stats.failed_batches += int(failed)

    def _run(self, batch: list[tuple[np.ndarray, Future, float]]) -> None:
        live = [(x, f) for x, f, _ in batch if f.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            out = self.engine.run(np.stack([x for x, _ in live]))
        except BaseException as e:  # every error belongs to exactly this batch's requests
            self._count(len(live), failed=True)
            for _, f in live:
                f.set_exception(e)
            return
        self._count(len(live), failed=False)
        for i, (_, f) in enumerate(live):
            f.set_result(out[i].copy())
