"""``edgecnn.optimize(...)``: measure every candidate, choose the fastest one within the accuracy budget.

    import edgecnn

    report = edgecnn.optimize("resnet50", batches=(1, 8), output="out/")      # synthetic data, SQNR budget
    report = edgecnn.optimize("model.onnx", data="val/", budget=1.0, output="out/")
    report["chosen"]["path"], report["chosen"]["speedup_vs_fp32"]

The returned dict is the JSON contract of ``edgecnn optimize --json`` and ``report.json`` (see
``docs/optimize.md``). Steps: the fp32 file (a zoo name is exported, ``lenet5`` without data uses the
digits task); calibration and evaluation inputs, never the same images; the candidate matrix; each
candidate measured in its own process (:mod:`edgecnn.optimize.measure`), the fp32 ORT CPU reference
first; int8 with the most sensitive layers kept in float when plain int8 misses the budget; the choice.

Accuracy is scored against the fp32 reference's logits from its own measuring process. The kept-float
search scores its trial files in this process, with ONNX Runtime's CPU provider and the same threads
(accuracy does not depend on the thread pools that distort timing; no other runtime runs meanwhile);
the file it finds is then measured in its own process like every other candidate.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.optimize import backends
from edgecnn.optimize import data as D
from edgecnn.optimize.matrix import Candidate, build_matrix, choose, choose_by_size, parse_choices
from edgecnn.optimize.measure import ChildTimeout, run_child
from edgecnn.optimize.search import KeepFloatResult, keep_float_search

#: seconds of timed runs per candidate, and the fewest timed runs
DEFAULT_DURATION = 2.0
MIN_ITERS = 10


class _TimeUp(Exception):
    """The time limit passed during the kept-float search."""


def _looks_like_file(model: str | os.PathLike) -> bool:
    text = str(model)
    return Path(text).exists() or text.endswith(".onnx") or os.sep in text or "/" in text


def _source(model: str | os.PathLike, data: Any, log: Callable[[str], None]) -> tuple[Path, str, Any]:
    """``(fp32 file, model name, digits task or None)``."""
    if _looks_like_file(model):
        path = Path(model)
        if not path.is_file():
            raise EdgecnnError(f"model file not found: {path} (give an fp32 .onnx file or a zoo name)")
        meta = backends.read_metadata(path)
        if meta.get("precision") in ("fp16", "int8"):
            raise EdgecnnError(f"{path} is {meta['precision']}: optimize starts from the fp32 model.")
        return path, str(meta.get("model") or path.name.removesuffix(".onnx")), None
    name = str(model)
    if name == "lenet5" and data is None:
        from edgecnn.tasks.digits import digits_task, weights_path

        if not weights_path().is_file():
            log("training LeNet-5 on scikit-learn's digits (once; the weights are cached)")
        task = digits_task(log=None)
        return backends.export_fp32(name, weights=task.weights), name, task
    return backends.export_fp32(name), name, None


def _task_data(fp32: Path, data: Any, task: Any, calib_size: int | None, eval_limit: int | None,
               seed: int, flat: bool = False) -> D.TaskData:
    if task is not None:
        return D.from_digits(task)
    config = backends.preprocess_config(fp32)
    if data is None:
        return D.synthetic(config, calib_size=calib_size or 32, eval_size=min(eval_limit or 64, 64), seed=seed)
    return D.from_folder(data, config, calib_size=calib_size or 128, eval_limit=eval_limit, seed=seed, flat=flat)


class _TaskScorer:
    """Scores a detection or segmentation file's named outputs against fp32's: agreement without labels (matched-box
    F1 at IoU 0.5, pixel agreement), per-output SQNR, and the labelled ``metric`` (a
    :data:`~edgecnn.quantize.taskeval.TaskMetric`) when given; the budget is in points of the task's primary metric
    with labels (mAP@.5, mIoU), else of the agreement."""

    def __init__(self, task: str, meta: dict[str, Any], n: int, budget: float, metric: Any = None) -> None:
        from edgecnn.quantize.taskeval import PRIMARY

        self.task, self.meta, self.n, self.budget, self.metric = task, meta, n, float(budget), metric
        self.primary = PRIMARY[task]
        self.agreement_key = "matched_f1" if task == "detection" else "pixel_agreement"
        self.reference: dict[str, np.ndarray] | None = None
        self.reference_labelled: dict[str, float] | None = None

    def set_reference(self, outputs: dict[str, np.ndarray], path: Path) -> None:
        self.reference = outputs
        if self.metric is not None:
            self.reference_labelled = self.metric(path)

    def __call__(self, outputs: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
        from edgecnn.quantize.taskeval import compare_outputs

        if self.reference is None:
            return {}
        m = compare_outputs(self.reference, outputs, self.meta, self.n)
        agreement = float(m[self.agreement_key])
        out: dict[str, Any] = {self.agreement_key: agreement, "agreement": agreement, "sqnr_db": m["min_sqnr_db"]}
        if self.reference_labelled is not None and self.metric is not None:
            labelled = self.metric(path)
            out.update({k: labelled.get(k) for k in ("map50", "map", "miou") if k in labelled})
            drop = float(self.reference_labelled[self.primary]) - float(labelled[self.primary])
        else:
            drop = 100.0 * (1.0 - agreement)
        out["accuracy_drop"] = round(drop, 3)
        out["within_budget"] = bool(drop <= self.budget + 1e-9)
        return out

    def rule(self) -> str:
        from edgecnn.quantize.taskeval import MATCH_IOU

        names = {"map50": "mAP@.5", "miou": "mIoU"}
        if self.metric is not None:
            return f"{names[self.primary]} at most {self.budget:g} points below fp32 (labelled)"
        what = (f"matched-box F1 against fp32 at IoU {MATCH_IOU:g}" if self.task == "detection"
                else "pixel agreement with fp32")
        return f"{what} at least {100 - self.budget:g}% (no labels: {names[self.primary]} not measured)"


def _load_outputs(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


class _Scorer:
    """Scores logits against the fp32 reference's: accuracy, agreement, cosine, SQNR, budget verdict."""

    def __init__(self, td: D.TaskData, budget: float, min_sqnr: float) -> None:
        self.td, self.budget, self.min_sqnr = td, float(budget), float(min_sqnr)
        self.reference: np.ndarray | None = None

    def __call__(self, logits: np.ndarray) -> dict[str, Any]:
        if self.reference is None:
            return {}
        m = backends.compare_outputs(self.reference, logits, self.td.eval_labels)
        labelled = self.td.eval_labels is not None
        drop = (100.0 * (m["top1_reference"] - m["top1_candidate"]) if labelled
                else 100.0 * (1.0 - m["top1_agreement"]))
        sqnr = float(m["sqnr_db"])
        within = sqnr >= self.min_sqnr if self.td.kind == D.SYNTHETIC else drop <= self.budget + 1e-9
        return {"accuracy": m["top1_candidate"], "top5": m["top5_candidate"], "agreement": m["top1_agreement"],
                "cosine": m["cosine_mean"], "sqnr_db": sqnr, "accuracy_drop": round(drop, 3),
                "within_budget": bool(within)}


def _metric(td: D.TaskData) -> str:
    return {D.LABELLED: "top1", D.UNLABELLED: "agreement", D.SYNTHETIC: "sqnr"}[td.kind]


def optimize(model: str | os.PathLike, *, data: str | os.PathLike | None = None, budget: float = 1.0,
             batches: Sequence[int] = (1, 8), providers: Sequence[str] | None = None,
             precisions: Sequence[str] | None = None, output: str | os.PathLike | None = None,
             time_limit: float | None = None, min_sqnr: float = 20.0, threads: int | None = None,
             calib_size: int | None = None, eval_limit: int | None = 1000, duration: float = DEFAULT_DURATION,
             progress: bool | None = None, seed: int = 0, target_arch: str | None = None,
             log: Callable[[str], None] | None = None, task_metric: Any = None) -> dict[str, Any]:
    """Measure every runtime x precision x batch candidate of ``model`` and choose the one to ship.

    ``model``: an fp32 ``.onnx`` file or a zoo name. ``data``: an ImageFolder (top-1/top-5) or a folder
    of images (agreement with fp32); None: the digits task for ``lenet5``, else synthetic inputs judged
    by the logits' SQNR (``min_sqnr`` dB). ``budget``: allowed top-1 drop (or agreement drop) in points.
    ``batches``: the first is the one optimised for. ``providers``/``precisions``: subsets of the registered
    backends (:func:`edgecnn.runtime.backends.names`, plug-ins included) / ``backends.PRECISIONS`` (None: all).
    ``output``: folder for the chosen file and the reports (None: nothing written). ``time_limit``: seconds;
    candidates not started by then are ``skipped: time limit`` (the fp32 reference is always measured). A
    candidate whose backend reports another precision than its label (a reduced precision whose outputs equal
    fp32 bit for bit) is listed with ``ran_precision`` and never chosen. ``target_arch``: the architecture the file
    is for (``aarch64``, ``x86_64``; None: this machine's): int8 files get that architecture's activation type, and
    when it is not this machine's, or this process is emulated, timings cannot speak for the target and the choice is
    by accuracy and size only (the smallest file within budget), said in the report and the file's metadata.
    Detection and segmentation files (``edgecnn.task``): ``data`` is a folder of images (no labels), accuracy is the
    agreement with fp32 (matched-box F1 at IoU 0.5, pixel agreement) and ``budget`` its points; ``task_metric`` (a
    labelled :data:`~edgecnn.quantize.taskeval.TaskMetric`, ``path -> {"map50", "map"}`` or ``{"miou"}``) makes the
    budget points of mAP@.5 or mIoU; latency is end to end (decoding and host NMS included).
    Returns the report dict (``report.json``).
    """
    clock = time.monotonic
    t_start = clock()
    deadline = t_start + float(time_limit) if time_limit is not None else None
    say = log or (lambda _msg: None)
    if not batches or any(int(b) < 1 for b in batches):
        raise EdgecnnError(f"batch sizes must be >= 1, got {list(batches)}.")
    batches = list(dict.fromkeys(int(b) for b in batches))
    if budget < 0:
        raise EdgecnnError(f"--budget must be >= 0 points, got {budget}.")
    provs = parse_choices(providers, backends.runtimes(), "runtime")
    precs = parse_choices(precisions, backends.PRECISIONS, "precision")
    from edgecnn.runtime.engine import default_threads

    threads = int(threads or default_threads())
    primary = batches[0]

    fp32, name, task = _source(model, data, say)
    fp32_meta = backends.read_metadata(fp32)
    from edgecnn.runtime.vision import task_of

    file_task = task_of(fp32_meta)
    td = _task_data(fp32, data, task, calib_size, eval_limit, seed, flat=file_task != "classification")
    cpu = backends.cpu_info()
    target = backends.target_arch(target_arch, cpu)
    act = backends.int8_activation_type({**cpu, "arch": target})
    untimed = backends.timing_unusable(target, cpu)
    available = backends.available_runtimes()
    valid = {p: backends.valid_precisions(p, cpu) if available.get(p) is None else {} for p in provs}
    ref_runtime = backends.reference_runtime()
    cands = build_matrix(provs, precs, batches, available, valid, reference=ref_runtime)
    scorer = _Scorer(td, budget, min_sqnr)
    tscorer = _TaskScorer(file_task, fp32_meta, len(td.eval_x), budget, task_metric) \
        if file_task != "classification" else None
    if task_metric is not None and tscorer is None:
        raise EdgecnnError("a task metric is for detection and segmentation files; a classifier's labels come "
                           "from an ImageFolder (--data).")
    notes: list[str] = []
    if td.kind == D.SYNTHETIC:
        notes.append(D.SYNTHETIC_NOTE)

    work = Path(tempfile.mkdtemp(prefix="edgecnn-optimize-"))
    try:
        inputs = work / "eval.npy"
        np.save(inputs, np.ascontiguousarray(td.eval_x, dtype=np.float32))
        files: dict[str, Path] = {"fp32": fp32}
        file_errors: dict[str, str] = {}
        calib: list[Any] = []
        scores: dict[tuple[str, str, str], dict[str, Any]] = {}
        kf: KeepFloatResult | None = None
        kf_error: str | None = None
        stopped = False

        def calibration() -> Any:
            if not calib:
                calib.append(backends.calibrate_once(fp32, td.calib_x, td.calib_source))
            return calib[0]

        def ensure(kind: str) -> Path:
            if kind in file_errors:
                raise EdgecnnError(file_errors[kind])
            if kind not in files:
                try:
                    if kind == "fp16":
                        files[kind] = backends.export_fp16(fp32, work / f"{name}.fp16.onnx")
                    elif kind == "int8":
                        files[kind] = backends.quantize_int8(fp32, calibration(), work / f"{name}.int8.onnx",
                                                             activation_type=act)
                    else:
                        raise EdgecnnError(f"no {kind} file")
                except EdgecnnError as e:
                    file_errors[kind] = str(e)
                    raise
                except Exception as e:  # noqa: BLE001 - a file that cannot be made fails its candidates only
                    file_errors[kind] = f"making the {kind} file failed: {type(e).__name__}: {str(e)[:200]}"
                    raise EdgecnnError(file_errors[kind]) from None
            return files[kind]

        def accept(path: Path) -> tuple[bool, dict[str, Any]]:
            if deadline is not None and clock() >= deadline:
                raise _TimeUp
            if tscorer is not None:
                from edgecnn.quantize.taskeval import run_outputs

                s = tscorer(run_outputs(path, td.eval_x)[0], path)
                return bool(s.get("within_budget")), {k: v for k, v in s.items() if k != "within_budget"}
            s = scorer(backends.run_outputs(path, td.eval_x, threads=threads))
            return bool(s.get("within_budget")), {k: s.get(k) for k in ("accuracy", "agreement", "sqnr_db",
                                                                        "accuracy_drop")}

        show = sys.stderr.isatty() if progress is None else progress
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=len(cands), desc="optimize", unit="candidate", file=sys.stderr, dynamic_ncols=True)
        i = 0
        while i < len(cands):
            c = cands[i]
            i += 1
            if bar is not None:
                bar.set_postfix_str(c.name)
            try:
                if c.status != "pending":
                    continue
                if deadline is not None and clock() >= deadline and not c.reference:
                    c.skip("time limit")
                    stopped = True
                    continue
                try:
                    path = ensure(c.file)
                except EdgecnnError as e:
                    c.fail(str(e))
                    continue
                c.size_bytes = backends.file_size(path)
                spec = {"path": str(path), "provider": c.provider, "precision": c.precision, "threads": threads,
                        "batch": c.batch, "duration": duration, "min_iters": MIN_ITERS, "warmup": 3,
                        "inputs": str(inputs), "eval": c.key not in scores,
                        "logits_out": str(work / "logits.npy"), "outputs_out": str(work / "outputs.npz"),
                        **backends.backend_origin(c.provider)}
                timeout = None if deadline is None or c.reference else max(1.0, deadline - clock())
                try:
                    res = run_child(spec, work / "runs", timeout=timeout)
                except ChildTimeout:
                    c.skip("time limit (stopped while measuring)")
                    stopped = True
                    continue
                c.status = res["status"]
                if not c.ok:
                    continue
                for k in ("p50_ms", "p99_ms", "mean_ms", "throughput", "iters", "build_s", "peak_rss_bytes",
                          "latency_scope"):
                    setattr(c, k, res.get(k))
                c.providers_used = list(res.get("providers") or [])
                c.ran_precision = res.get("precision") or c.precision
                if spec["eval"] and tscorer is not None:
                    outs = _load_outputs(work / "outputs.npz")
                    if c.reference:
                        tscorer.set_reference(outs, path)
                    scores[c.key] = tscorer(outs, path)
                elif spec["eval"]:
                    logits = np.load(work / "logits.npy")
                    if c.reference:
                        scorer.reference = logits
                    scores[c.key] = scorer(logits)
                for k, v in scores.get(c.key, {}).items():
                    setattr(c, k, v)
                if (c.precision == "int8" and c.file == "int8" and c.batch == primary
                        and c.within_budget is False and kf_error is None):
                    if kf is None:
                        if bar is not None:
                            bar.set_postfix_str("kept-float search")
                        try:
                            kf = keep_float_search(fp32, calibration(), accept, output_dir=work / "keep-float",
                                                   int8=files["int8"], activation_type=act)
                        except _TimeUp:
                            kf_error = "the kept-float search stopped at the time limit"
                            stopped = True
                        except EdgecnnError as e:
                            kf_error = f"the kept-float search failed: {e}"
                        if kf_error:
                            notes.append(kf_error)
                    if kf is not None and kf.within_budget and kf.path is not None:
                        files["int8-kf"] = kf.path
                        new = [Candidate(c.provider, "int8", b, file="int8-kf", kept_float=list(kf.kept))
                               for b in batches]
                        cands[i:i] = new[:1]
                        cands.extend(new[1:])
                        if bar is not None:
                            bar.total += len(new)
                            bar.refresh()
                    elif kf is not None:
                        notes.append("int8 misses the budget even with every ranked layer kept in float.")
            finally:
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()

        ref_key = cands[0].key
        refs = {c.batch: c for c in cands if c.key == ref_key and c.ok}
        for c in cands:
            r = refs.get(c.batch)
            if c.ok and r is not None and c.p50_ms:
                c.speedup_vs_fp32 = round(float(r.p50_ms or 0.0) / c.p50_ms, 3)
        if (tscorer.reference if tscorer is not None else scorer.reference) is None:
            notes.append(f"the fp32 reference could not be measured on {ref_runtime}, so no accuracy "
                         "was scored and nothing was chosen.")
        for c in cands:
            if c.ok and not c.label_ran and c.batch == primary:
                notes.append(f"{c.provider} {c.precision} ran {c.ran_precision} (its outputs equal {c.ran_precision} "
                             f"bit for bit on probe inputs): listed as what ran, never chosen.")
        best = choose(cands, primary) if untimed is None else choose_by_size(cands, primary, prefer=ref_runtime)
        if untimed is not None:
            notes.append(f"chosen by accuracy and size only, not by speed: {untimed}.")
        if best is None and (tscorer.reference if tscorer is not None else scorer.reference) is not None:
            notes.append(f"no candidate at batch {primary} is within the budget.")
        if stopped:
            notes.append(f"stopped by the time limit ({time_limit:g} s): the remaining candidates were skipped.")

        report: dict[str, Any] = {
            "model": name, "source": str(model), "fp32_file": str(fp32),
            "task": "digits" if task is not None else None,
            "file_task": file_task,
            "data": td.describe(), "accuracy_measured": td.kind != D.SYNTHETIC,
            "metric": _metric(td) if tscorer is None else (tscorer.primary if task_metric is not None
                                                           else tscorer.agreement_key),
            "budget": {"points": float(budget), "min_sqnr_db": float(min_sqnr),
                       "rule": _rule(td, budget, min_sqnr) if tscorer is None else tscorer.rule(),
                       "primary_metric": {"classification": "top1", "detection": "map50",
                                          "segmentation": "miou"}[file_task]},
            "batches": batches, "primary_batch": primary, "threads": threads, "int8_activation_type": act,
            "target_arch": target, "chosen_by": "latency" if untimed is None else "accuracy and size",
            "timing_note": untimed,
            "machine": backends.machine(), "candidates": [c.as_dict() for c in cands],
            "chosen": None, "keep_float": kf.as_dict() if kf is not None else None, "notes": notes,
            "time_limit_s": time_limit, "stopped_by_time_limit": stopped,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "edgecnn_version": _version(),
        }
        if best is not None:
            report["chosen"] = _chosen(best, files, name)
        report = _plain(report)
        report["seconds"] = round(clock() - t_start, 2)
        if output is not None:
            from edgecnn.optimize.report import write_outputs

            write_outputs(report, Path(output), files.get(best.file) if best is not None else None)
        elif report["chosen"] is not None:
            report["chosen"]["path"] = None
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _plain(obj: Any) -> Any:
    """``obj`` with infinite floats as the string ``"inf"`` (strict JSON has no Infinity)."""
    if isinstance(obj, float) and np.isinf(obj):
        return "inf" if obj > 0 else "-inf"
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _version() -> str:
    from edgecnn import __version__

    return __version__


def _rule(td: D.TaskData, budget: float, min_sqnr: float) -> str:
    if td.kind == D.LABELLED:
        return f"top-1 accuracy at most {budget:g} points below fp32"
    if td.kind == D.UNLABELLED:
        return f"top-1 agreement with fp32 at least {100 - budget:g}%"
    return f"logits' SQNR against fp32 at least {min_sqnr:g} dB (synthetic inputs: accuracy NOT measured)"


def _chosen(c: Candidate, files: Mapping[str, Path], name: str) -> dict[str, Any]:
    tag = f"{c.provider}-{c.precision}" + ("-keepfloat" if c.kept_float else "")
    return {"path": f"{name}.{tag}.onnx", "provider": c.provider, "precision": c.precision, "batch": c.batch,
            "file_precision": "int8" if c.file.startswith("int8") else c.file,
            "speedup_vs_fp32": c.speedup_vs_fp32, "accuracy_drop": c.accuracy_drop, "kept_float": list(c.kept_float),
            "p50_ms": c.p50_ms, "p99_ms": c.p99_ms, "throughput": c.throughput, "size_bytes": c.size_bytes,
            "accuracy": c.accuracy, "agreement": c.agreement, "cosine": c.cosine,
            "sqnr_db": c.sqnr_db, "matched_f1": c.matched_f1, "pixel_agreement": c.pixel_agreement,
            "map50": c.map50, "map": c.map, "miou": c.miou, "latency_scope": c.latency_scope}
