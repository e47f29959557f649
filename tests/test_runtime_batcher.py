"""Batcher: many threads, nothing lost or swapped, per-batch errors, draining close()."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import numpy as np
import pytest
from onnx_factory import make_classifier

from edgecnn.errors import EdgecnnError
from edgecnn.runtime import Batcher, Engine


@pytest.fixture(scope="module", params=["dynamic", "fixed"])
def engine(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("batcher")
    if request.param == "dynamic":
        return Engine(make_classifier(d / "dyn.onnx"), "cpu", max_batch=16)
    return Engine(make_classifier(d / "fixed.onnx", batch=4), "cpu")


def test_stress_1000_requests_16_threads(engine):
    n, clients = 1000, 16
    xs = np.random.default_rng(0).standard_normal((n, 3, 32, 32)).astype(np.float32)
    expected = np.stack([engine.run(xs[i:i + 1])[0] for i in range(n)])
    results: list[np.ndarray | None] = [None] * n
    errors: list[BaseException] = []

    with Batcher(engine, max_batch=16, max_wait_ms=2) as batcher:
        def client(k):
            try:
                for i in range(k, n, clients):
                    results[i] = batcher.submit(xs[i]).result(timeout=30)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert all(r is not None for r in results)
    got = np.stack(results)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # rows are distinct enough that any swap would show
    assert len({tuple(np.round(r, 3)) for r in expected}) == n
    assert batcher.stats.requests == n and batcher.stats.failed_batches == 0
    assert batcher.stats.mean_batch > 1  # requests really were batched


def test_errors_reach_exactly_their_batch(engine, monkeypatch):
    real_run = engine.run

    def flaky(x):
        if np.any(x[:, 0, 0, 0] == -999):
            raise RuntimeError("boom")
        return real_run(x)

    xs = np.random.default_rng(1).standard_normal((12, 3, 32, 32)).astype(np.float32)
    xs[5, 0, 0, 0] = -999
    monkeypatch.setattr(engine, "run", flaky)
    with Batcher(engine, max_batch=4, max_wait_ms=500, workers=1) as batcher:
        futures = [batcher.submit(x) for x in xs]  # one thread, FIFO: batches are [0-3], [4-7], [8-11]
        done = [f.exception(timeout=10) for f in futures]
    failed = [i for i, e in enumerate(done) if e is not None]
    assert failed == [4, 5, 6, 7]
    assert all(isinstance(done[i], RuntimeError) for i in failed)
    monkeypatch.setattr(engine, "run", real_run)
    for i in (0, 3, 8, 11):
        np.testing.assert_allclose(futures[i].result(), engine.run(xs[i:i + 1])[0], rtol=1e-5, atol=1e-6)
    assert batcher.stats.failed_batches == 1 and batcher.stats.batches == 3


def test_close_drains_queue(engine):
    xs = np.random.default_rng(2).standard_normal((50, 3, 32, 32)).astype(np.float32)
    batcher = Batcher(engine, max_batch=8, max_wait_ms=50)
    futures = [batcher.submit(x) for x in xs]
    batcher.close()
    assert all(f.done() for f in futures)
    np.testing.assert_allclose(np.stack([f.result() for f in futures]), engine.run(xs), rtol=1e-5, atol=1e-6)
    with pytest.raises(EdgecnnError, match="closed"):
        batcher.submit(xs[0])
    batcher.close()  # idempotent


def test_submit_checks_and_helpers(engine):
    with Batcher(engine, max_wait_ms=0, workers=2) as batcher:
        with pytest.raises(EdgecnnError, match=r"received \[2, 3, 32, 32\]"):
            batcher.submit(np.zeros((2, 3, 32, 32), np.float32))
        with pytest.raises(EdgecnnError, match="wrong input dtype"):
            batcher.submit(np.zeros((3, 32, 32), np.float64))
        with pytest.raises(EdgecnnError, match="wrong input shape"):
            batcher.submit(np.zeros((3, 16, 16), np.float32))
        x = np.ones((1, 3, 32, 32), np.float32)
        fut = batcher.submit(x)
        assert isinstance(fut, Future)
        np.testing.assert_allclose(fut.result(5), batcher.infer(x[0]), rtol=1e-6)
        assert batcher(x[0]).shape == (10,)
    assert batcher.closed
    with pytest.raises(EdgecnnError):
        Batcher(engine, max_batch=0)


def test_waits_for_max_wait_when_idle(engine):
    with Batcher(engine, max_batch=64, max_wait_ms=30, workers=1) as batcher:
        x = np.zeros((3, 32, 32), np.float32)
        t0 = time.perf_counter()
        batcher.infer(x)
        elapsed = time.perf_counter() - t0
    assert elapsed >= 0.025  # a lone request waits for company up to max_wait_ms


def test_default_workers_fill_the_cpus(engine, tmp_path):
    from edgecnn.runtime import default_threads

    single = Engine(make_classifier(tmp_path / "m.onnx"), "cpu", threads=1)
    with Batcher(single) as b:
        assert b.workers == default_threads()
        assert b.infer(np.zeros((3, 32, 32), np.float32)).shape == (10,)
    with Batcher(Engine(tmp_path / "m.onnx", "cpu")) as b:
        assert b.workers == 1  # an engine already using every CPU gets one worker
