"""``--precision auto`` by measurement, and the check that a reduced precision really ran.

A CPU flag says what can run, never what is fast (bf16 with AVX512-BF16 was 2.1x fp32 on an AMD EPYC and 0.64x
on a Xeon that reports the same flag). So ``auto``:

1. never changes the file: the candidates are the runtime precisions the backend can run on *this* file
   (:meth:`~edgecnn.runtime.backends.base.Backend.candidates`; CPU flags only prune what cannot run). One
   candidate: nothing to decide;
2. uses the decision the file carries when ``edgecnn optimize`` chose it for this backend on this CPU; under an
   emulator (:mod:`edgecnn.runtime.emulation`) runs the file's own precision: emulated timings decide nothing;
3. else a decision cached for (CPU model, backend and version, device, file SHA-256, batch) under
   ``<edgecnn cache>/auto-precision/``;
4. else measures: each candidate on a fresh compile (no compiled-model cache), its outputs on probe inputs
   compared with the file's own precision (SQNR, :mod:`edgecnn.metrics`) and its p50 latency timed briefly.
   A candidate below :data:`MIN_SQNR_DB`, or whose outputs equal the reference's bit for bit (it did not run),
   is never chosen; among the rest the fastest wins, and a reduced precision must beat the reference by
   :data:`MIN_GAIN` (noise is not a speed-up). The whole probe stops after :data:`MAX_SECONDS`.

Torch-free; numpy and the backends only.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.metrics import sqnr_db
from edgecnn.runtime.backends.base import Backend, Runner, TensorInfo

#: the least SQNR (dB, vs the reference on the probe inputs) a precision needs to be picked by ``auto``
MIN_SQNR_DB = 30.0
#: a reduced precision must be this much faster than the reference (fraction of its p50) to be picked
MIN_GAIN = 0.03
#: the most seconds the first-time measurement may take (compiles included)
MAX_SECONDS = 10.0
#: seconds of timed runs per candidate, and the fewest runs
TIME_PER_CANDIDATE = 0.5
MIN_RUNS = 5


class AutoWarning(RuntimeWarning):
    """The ``auto`` decision could not be cached (it is measured again next time)."""


@dataclass
class AutoDecision:
    """What ``auto`` chose, from where (``only candidate``, ``optimize decision``, ``cached``, ``measured``), and
    the figures that decided it: precision -> ``p50_ms``, ``sqnr_db``, ``status``."""

    chosen: str
    source: str
    candidates: list[str]
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    key: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: why nothing was measured (``emulated``: the timing note)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One sentence for reports."""
        figs = "; ".join(f"{p} {_fmt(f)}" for p, f in self.figures.items())
        if self.source == "measured":
            return f"auto measured {', '.join(self.candidates)} and chose {self.chosen} ({figs}; {self.seconds:.1f} s)"
        if self.source == "cached":
            return f"auto chose {self.chosen}, measured earlier on this machine ({figs})"
        if self.source == "emulated":
            return f"auto ran {self.chosen} (the reference precision) without measuring: {self.note}"
        if self.source == "optimize decision":
            return f"auto uses the decision 'edgecnn optimize' recorded in the file for this machine: {self.chosen}"
        return f"auto: {self.chosen} is the only precision this backend runs this file at"


def _fmt(f: Mapping[str, Any]) -> str:
    parts = []
    if f.get("p50_ms") is not None:
        parts.append(f"{f['p50_ms']:.3g} ms")
    if f.get("sqnr_db") is not None:
        sq = f["sqnr_db"]
        parts.append(f"{sq if isinstance(sq, str) else f'{sq:.1f}'} dB")
    if f.get("status") not in (None, "ok"):
        parts.append(str(f["status"]))
    return " ".join(parts)


def probe_input(tensor: TensorInfo, metadata: Mapping[str, Any], batch: int = 1, seed: int = 0) -> np.ndarray:
    """Seeded standard-normal inputs for ``tensor`` (NCHW; dynamic dims from the metadata, else 3x224x224)."""
    shape = list(tensor.shape)
    size = list(metadata.get("input_size") or [224, 224])
    fill = [batch, int(metadata.get("channels") or 3), int(size[0]), int(size[-1])]
    dims = [d if isinstance(d, int) and d > 0 else fill[i] for i, d in enumerate(shape[:4])]
    if len(dims) == 4 and isinstance(shape[0], int) and shape[0] > 0:
        dims[0] = shape[0]
    dtype = np.dtype(tensor.dtype) if tensor.dtype in ("float32", "float16", "float64") else np.dtype(np.float32)
    return np.random.default_rng(seed).standard_normal(dims).astype(dtype)


def _outputs(runner: Runner, x: np.ndarray) -> np.ndarray:
    y = runner.run(x, [o.name for o in runner.outputs])[0]
    return np.asarray(y, dtype=np.float32).reshape(len(y), -1)


def same_outputs(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two runs' outputs are equal bit for bit (a reduced precision that did not run)."""
    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a.view(np.uint8), b.view(np.uint8)))


def time_candidate(runner: Runner, x: np.ndarray, *, seconds: float = TIME_PER_CANDIDATE,
                   min_runs: int = MIN_RUNS) -> float:
    """p50 latency (ms) of ``runner`` on ``x`` over ``seconds`` (at least ``min_runs`` runs, after 2 warm-ups)."""
    names = [o.name for o in runner.outputs]
    for _ in range(2):
        runner.run(x, names)
    lat: list[float] = []
    start = time.perf_counter()
    while len(lat) < min_runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        runner.run(x, names)
        lat.append(time.perf_counter() - t0)
    return float(np.median(lat) * 1e3)


def recorded(metadata: Mapping[str, Any], backend: Backend, cpu_model: str | None = None) -> str | None:
    """The precision an ``edgecnn optimize`` decision in the file records for ``backend`` (and, when given, for
    this CPU model), or None."""
    d = metadata.get("optimize")
    if not isinstance(d, Mapping) or str(d.get("runtime", "")) != backend.name:
        return None
    if cpu_model is not None and d.get("cpu") and d["cpu"] != cpu_model:
        return None
    p = str(d.get("precision") or "")
    return p or None


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) in this process: a second Engine on the same file
    costs no hashing."""
    from edgecnn._io import sha256_file

    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(p)
    return _SHA_CACHE[key]


def decision_key(backend: Backend, *, cpu_model: str, device: str, sha256: str, batch: int) -> dict[str, Any]:
    """What a cached decision is valid for."""
    return {"cpu": cpu_model, "backend": backend.name, "versions": backend.versions(), "device": device,
            "file_sha256": sha256, "batch": int(batch)}


def cache_path(key: Mapping[str, Any]) -> Path:
    """``<edgecnn cache>/auto-precision/<hash of the key>.json``."""
    from edgecnn._io import user_cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return user_cache_dir() / "auto-precision" / f"{digest}.json"


def _read_cached(key: Mapping[str, Any]) -> dict[str, Any] | None:
    path = cache_path(key)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != dict(key) or not isinstance(data.get("chosen"), str):
        return None  # corrupt or another key: measured again
    return data


def _write_cached(decision: AutoDecision) -> None:
    from edgecnn._io import atomic_write_bytes

    path = cache_path(decision.key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(decision.as_dict(), indent=1).encode())
    except OSError as e:
        warnings.warn(f"the --precision auto decision cannot be cached ({e.strerror or e}): it is measured again "
                      "next time", AutoWarning, stacklevel=5)


def decide(backend: Backend, candidates: list[str], *, key: Mapping[str, Any], metadata: Mapping[str, Any],
           open_runner: Callable[[str], Runner], batch: int = 1,
           timer: Callable[[Runner, np.ndarray], float] | None = None,
           clock: Callable[[], float] = time.monotonic) -> tuple[AutoDecision, Runner | None]:
    """Choose among ``candidates`` (the reference first) for ``backend``: the file's optimize decision, the cached
    decision, or a measurement. ``open_runner(precision)`` compiles a fresh runner; ``timer(runner, x)`` -> p50 ms
    (default :func:`time_candidate`; tests fake it). Returns the decision and, when measured, the winner's runner
    (so the Engine does not compile it again)."""
    t0 = clock()
    if len(candidates) <= 1:
        return AutoDecision(candidates[0] if candidates else "fp32", "only candidate", list(candidates)), None
    rec = recorded(metadata, backend, key.get("cpu"))
    if rec in candidates:
        return AutoDecision(rec, "optimize decision", list(candidates), key=dict(key)), None
    from edgecnn.runtime.emulation import emulation

    emu = emulation()
    if emu.emulated:  # emulated timings measure the emulator: they choose nothing; the file's own precision runs
        return AutoDecision(candidates[0], "emulated", list(candidates), key=dict(key),
                            note=emu.timing_note), None
    cached = _read_cached(key)
    if cached is not None and cached["chosen"] in candidates:
        return AutoDecision(cached["chosen"], "cached", list(candidates), dict(cached.get("figures") or {}),
                            dict(key), float(cached.get("seconds") or 0.0)), None
    timer = timer or time_candidate
    figures: dict[str, dict[str, Any]] = {}
    runners: dict[str, Runner] = {}
    ref_out: np.ndarray | None = None
    x: np.ndarray | None = None
    for i, p in enumerate(candidates):
        if i and clock() - t0 > MAX_SECONDS:
            figures[p] = {"p50_ms": None, "sqnr_db": None, "status": f"not measured (the {MAX_SECONDS:g} s budget)"}
            continue
        try:
            runner = open_runner(p)
        except EdgecnnError as e:
            if not i:
                raise
            figures[p] = {"p50_ms": None, "sqnr_db": None, "status": f"failed: {e}"}
            continue
        if x is None:
            x = probe_input(runner.inputs[0], metadata, batch)
        out = _outputs(runner, x)
        if ref_out is None:
            ref_out, status, sq = out, "ok", "inf"
        elif same_outputs(out, ref_out):
            status, sq = f"did not run: outputs equal {candidates[0]} bit for bit", "inf"
        else:
            s = sqnr_db(ref_out, out)
            sq = "inf" if np.isinf(s) else round(float(s), 2)
            status = "ok" if np.isinf(s) or s >= MIN_SQNR_DB else f"below {MIN_SQNR_DB:g} dB"
        figures[p] = {"p50_ms": round(timer(runner, x), 4) if status == "ok" else None, "sqnr_db": sq,
                      "status": status}
        runners[p] = runner
    ok = {p: f["p50_ms"] for p, f in figures.items() if f["status"] == "ok" and f["p50_ms"] is not None}
    ref = candidates[0]
    chosen = ref
    best = min(ok, key=lambda p: ok[p]) if ok else ref
    if best != ref and ref in ok and ok[best] <= ok[ref] * (1.0 - MIN_GAIN):
        chosen = best
    decision = AutoDecision(chosen, "measured", list(candidates), figures, dict(key), round(clock() - t0, 3))
    _write_cached(decision)
    return decision, runners.get(chosen)
