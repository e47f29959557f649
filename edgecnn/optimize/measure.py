"""Measure one candidate in its own process: ``python -m edgecnn.optimize.measure SPEC.json RESULT.json``.

Two runtimes' thread pools in one process distort each other (ORT int8 measured 1.5x fp32 interleaved
with OpenVINO, 2.9x alone) and a process's RSS only grows, so every candidate gets a fresh interpreter.
The child opens the engine (build/compile time = construction + first run), times ``batch``-sized runs
for ``duration`` seconds (at least ``min_iters``), reads its peak RSS, then, when asked, runs the
evaluation inputs with the same engine and saves the logits; the parent scores them. The child imports
the runtime only (through :mod:`edgecnn.optimize.backends`), never torch.

The spec (JSON): ``path``, ``provider``, ``precision``, ``threads``, ``batch``, ``duration``,
``min_iters``, ``warmup``, ``inputs`` (an ``.npy`` of preprocessed inputs), ``eval`` (bool),
``logits_out`` (``.npy`` path), ``outputs_out`` (``.npz`` path: every named output of a detection or segmentation
file), ``origin``/``origin_path`` (a plug-in backend's ``module:Class`` and the folder
holding it). The result (JSON):
``status`` (``ok`` or ``failed: <reason>``) and, when ok, ``p50_ms``, ``p99_ms``, ``mean_ms``,
``throughput``, ``iters``, ``build_s``, ``peak_rss_bytes``, ``providers``, ``precision`` (what the backend
verified ran), ``precision_reason`` and ``latency_scope`` (a detector is timed end to end: graph, decoding and NMS on
the host when the file leaves it there; a segmenter with its per-pixel argmax).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (bytes).

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process's own memory map.
    Not ``getrusage``'s ``ru_maxrss``: Linux carries it over ``execve`` from the parent that spawned us,
    so a child of a large parent would report the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    info = psutil.Process().memory_info()
    return int(getattr(info, "peak_wset", 0) or info.rss)  # Windows has a peak; elsewhere the current RSS


def _batch_of(inputs: np.ndarray, batch: int) -> np.ndarray:
    rows = inputs[:batch]
    if len(rows) < batch:
        rows = np.resize(rows, (batch, *rows.shape[1:]))
    return np.ascontiguousarray(rows)


def _pipeline(engine: Any, x: np.ndarray) -> tuple[Any, str]:
    """What one timed run does, and its scope in words: a detector's graph plus its host decoding (the per-image cut
    after graph NMS, or NMS on the host), a segmenter's graph plus the per-pixel argmax, else the graph."""
    task = getattr(engine, "task", "classification")
    if task == "detection":
        from edgecnn.runtime.vision.detection import NmsParams, detections

        meta, n = engine.metadata, len(x)
        host = NmsParams.from_metadata(meta).placement == "host"
        return (lambda: detections(engine.run_named(x), meta, n),
                "end to end: graph + decoding" + (" + NMS on the host" if host else " (NMS in the graph)"))
    if task == "segmentation":
        from edgecnn.runtime.vision.segmentation import class_map

        return lambda: class_map(engine.run(x)), "end to end: graph + per-pixel argmax"
    return lambda: engine.run(x), "graph"


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one candidate as ``spec`` says; raise on any failure (the caller turns it into a status)."""
    from edgecnn.optimize.backends import open_engine

    batch = int(spec["batch"])
    t0 = time.perf_counter()
    engine = open_engine(spec["path"], spec["provider"], spec["precision"], int(spec["threads"]),
                         max_batch=max(batch, 32), origin=spec.get("origin"),
                         origin_path=spec.get("origin_path"))
    inputs = np.load(spec["inputs"], mmap_mode="r")
    x = _batch_of(inputs, batch).astype(engine.input_dtype, copy=False)
    step, scope = _pipeline(engine, x)
    step()
    build_s = time.perf_counter() - t0 - float(getattr(engine, "verify_seconds", 0.0))  # the precision check apart
    for _ in range(int(spec.get("warmup", 3))):
        step()
    lat: list[float] = []
    duration, min_iters = float(spec.get("duration", 2.0)), int(spec.get("min_iters", 10))
    start = time.perf_counter()
    while len(lat) < min_iters or time.perf_counter() - start < duration:
        t1 = time.perf_counter()
        step()
        lat.append(time.perf_counter() - t1)
    peak = _peak_rss_bytes()
    ms = np.asarray(lat) * 1e3
    out: dict[str, Any] = {
        "status": "ok", "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()), "throughput": batch / float(ms.mean() / 1e3), "iters": len(lat),
        "build_s": build_s, "peak_rss_bytes": peak,
        "providers": [str(p) for p in getattr(engine, "providers", ())],
        "precision": str(engine.precision), "precision_reason": engine.info.precision_reason, "latency_scope": scope}
    if spec.get("eval") and spec.get("outputs_out") and getattr(engine, "task", "classification") != "classification":
        t2 = time.perf_counter()
        named = engine.run_named(np.ascontiguousarray(np.asarray(inputs).astype(engine.input_dtype, copy=False)))
        np.savez(spec["outputs_out"], **named)
        out["eval_s"] = time.perf_counter() - t2
    elif spec.get("eval"):
        t2 = time.perf_counter()
        logits = engine.run(np.ascontiguousarray(np.asarray(inputs).astype(engine.input_dtype, copy=False)))
        np.save(spec["logits_out"], np.asarray(logits, dtype=np.float32).reshape(len(inputs), -1))
        out["eval_s"] = time.perf_counter() - t2
    return out


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 240 else line[:237] + "..."


def main(argv: list[str] | None = None) -> int:
    """Child entry point: read the spec, measure, write the result JSON (a failure is a result too)."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = measure(spec)
    except Exception as e:  # noqa: BLE001 - any failure of a candidate is reported, never raised
        from edgecnn.errors import EdgecnnError

        reason = _first_line(e) if isinstance(e, EdgecnnError) else f"{type(e).__name__}: {_first_line(e)}"
        result = {"status": f"failed: {reason}"}
    Path(args[1]).write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- parent side


def _child_env() -> dict[str, str]:
    """The parent's environment, with the folder holding this edgecnn first on PYTHONPATH."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return env


class ChildTimeout(Exception):
    """The measurement ran past its time limit and was stopped."""


def run_child(spec: dict[str, Any], work: Path, *, timeout: float | None = None) -> dict[str, Any]:
    """Measure ``spec`` in a fresh Python process; return its result (a crash is ``failed: <reason>``).

    Raises :class:`ChildTimeout` when it runs longer than ``timeout`` seconds (the child is killed).
    """
    work.mkdir(parents=True, exist_ok=True)
    tag = f"{spec['provider']}-{spec['precision']}-b{spec['batch']}-{os.getpid()}-{time.monotonic_ns()}"
    spec_path, result_path = work / f"{tag}.spec.json", work / f"{tag}.result.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "edgecnn.optimize.measure", str(spec_path), str(result_path)]
    try:
        proc = subprocess.run(cmd, env=_child_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ChildTimeout from None
    finally:
        spec_path.unlink(missing_ok=True)
    if result_path.is_file():
        result = json.loads(result_path.read_text())
        result_path.unlink()
        return result
    tail = [line for line in (proc.stderr or "").strip().splitlines() if line.strip()]
    why = tail[-1][:240] if tail else "no output"
    return {"status": f"failed: the measuring process exited with code {proc.returncode} ({why})"}


if __name__ == "__main__":
    sys.exit(main())
