"""Validation of an exported file: ONNX's full checker, then ONNX Runtime (CPU) against torch fp32.

Figures (all computed in float64 over every random input):

* ``max_abs_diff``: max |onnx - torch|.
* ``max_rel_diff``: ``max_abs_diff`` / max |torch logit|.
* ``centered_rel_diff``: the same on the input-dependent part of the logits (logits minus their mean over
  the batch), at the batch size > 1. Random-weight CNNs (GoogLeNet especially) give nearly the same
  logits for every input, so a small ``max_rel_diff`` alone could hide a wrong graph; this cannot.
* ``cosine``: smallest per-sample cosine similarity; ``centered_cosine``: on the centered logits.
* ``input_dependence``: max |centered torch logit| / max |torch logit|. Near 0 the model gives the same
  logits for every input (random-init GoogLeNet): the centered figures then measure rounding noise, so
  they are judged only above ``Tolerances.min_input_dependence`` (a warning says when they are not).
* ``max_activation`` (fp16 only): the largest |activation| in torch; above 65504 a warning says that a
  GPU computing in fp16 would overflow (ORT's CPU kernels compute those ops in fp32, hiding it).
* ``top1_agreement`` / ``top5_agreement``: share of samples with the same top-1 class / the same top-5
  set. Reported, not judged: random-weight models often give one class for every input.

A file passes when the checker accepts it and every judged figure is within :data:`TOLERANCES`
(fp16 rounds weights and activations to 11-bit mantissas, hence its looser bounds).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from edgecnn import metrics
from edgecnn.exporters.onnx_export import INPUT_NAME, first_output

FP16_MAX = 65504.0


@dataclass(frozen=True)
class Tolerances:
    """Bounds a validated export must meet."""

    max_rel_diff: float
    centered_rel_diff: float
    min_cosine: float
    min_centered_cosine: float
    #: the centered figures are judged only above this input dependence: below it they measure rounding
    #: noise (centered_rel_diff ~ max_rel_diff / input_dependence), not the graph.
    min_input_dependence: float


#: fp32: kernel-order rounding only. fp16: 11-bit mantissas through 10..150 layers.
TOLERANCES: dict[str, Tolerances] = {
    "fp32": Tolerances(max_rel_diff=1e-4, centered_rel_diff=1e-3, min_cosine=0.99999, min_centered_cosine=0.99999,
                       min_input_dependence=1e-3),
    "fp16": Tolerances(max_rel_diff=1e-2, centered_rel_diff=5e-2, min_cosine=0.999, min_centered_cosine=0.999,
                       min_input_dependence=1e-2),
}


@dataclass
class Validation:
    """Result of :func:`validate`; ``to_dict()`` is JSON-ready."""

    passed: bool
    checker: str
    batch_sizes: list[int]
    num_inputs: int
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    centered_rel_diff: float | None = None
    cosine: float | None = None
    centered_cosine: float | None = None
    input_dependence: float | None = None
    max_activation: float | None = None
    top1_agreement: float | None = None
    top5_agreement: float | None = None
    tolerances: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: detection/segmentation: the shape sweep's figures per batch size (``exporters/tasks.py``); empty otherwise
    task: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line with the figures."""
        def f(v: float | None, fmt: str) -> str:
            return "n/a" if v is None else format(v, fmt)

        return (f"max abs diff {f(self.max_abs_diff, '.2e')}, max rel diff {f(self.max_rel_diff, '.2e')}, "
                f"centered rel diff {f(self.centered_rel_diff, '.2e')}, cosine {f(self.cosine, '.6f')}, "
                f"centered cosine {f(self.centered_cosine, '.6f')}, top-1 {f(self.top1_agreement, '.0%')}, "
                f"top-5 {f(self.top5_agreement, '.0%')} over {self.num_inputs} inputs at batch "
                + "/".join(map(str, self.batch_sizes)))


def check_file(path: str | Path) -> str:
    """ONNX's full checker (strict shape inference) on a file; returns 'ok' or the error's first line."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # noqa: BLE001 - ValidationError, InferenceError...
        text = str(e).strip()
        return (text.splitlines()[0] if text else type(e).__name__)[:300]
    return "ok"


def cpu_session(path: str | Path, result: Validation) -> Any:
    """An ONNX Runtime CPU session of ``path`` (ORT's own logging quiet), or None with the reason added to
    ``result.failures``: the one way both validators (classifiers here, tasks in ``exporters.tasks``) open a file."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        result.failures.append(f"ONNX Runtime cannot load the file: {str(e).strip().splitlines()[0][:300]}")
        return None


def validate(path: str | Path, model: nn.Module, input_shape: tuple[int, int, int], precision: str,
             batch: int | None = None, seed: int = 0, tolerances: Tolerances | None = None) -> Validation:
    """Check ``path`` and compare ONNX Runtime CPU with torch fp32 ``model`` on random inputs.

    Dynamic batch: batch sizes 1 and 3. Fixed batch ``N``: two draws at batch N.
    """
    import time


    t0 = time.perf_counter()
    tol = tolerances or TOLERANCES["fp16" if precision == "fp16" else "fp32"]
    sizes = [1, 3] if batch is None else [batch, batch]
    result = Validation(passed=False, checker=check_file(path), batch_sizes=sizes, num_inputs=sum(sizes),
                        tolerances=asdict(tol))
    if result.checker != "ok":
        result.failures.append(f"ONNX checker: {result.checker}")
        result.seconds = time.perf_counter() - t0
        return result
    sess = cpu_session(path, result)
    if sess is None:
        result.seconds = time.perf_counter() - t0
        return result
    in_type = sess.get_inputs()[0].type
    rng = np.random.default_rng(seed)
    ref, got, centered = [], [], []
    model.eval()
    peak = [0.0]

    def track(_mod: nn.Module, _inp: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel():
            peak[0] = max(peak[0], float(out.detach().abs().max()))

    hooks = [m.register_forward_hook(track) for m in model.modules()] if precision == "fp16" else []
    try:
        refs = []
        for n in sizes:
            x = rng.standard_normal((n, *input_shape)).astype(np.float32)
            with torch.no_grad():
                refs.append((x, first_output(model(torch.from_numpy(x))).double().numpy()))
    finally:
        for h in hooks:
            h.remove()
    if precision == "fp16":
        result.max_activation = peak[0]
        if peak[0] > FP16_MAX:
            result.warnings.append(f"torch activations reach {peak[0]:.3g}, beyond fp16's largest value {FP16_MAX:g}: "
                                   "ONNX Runtime's CPU kernels run these ops in fp32, but a GPU computing in fp16 "
                                   "would overflow to inf (random weights? trained weights rarely do)")
    for x, r in refs:
        n = x.shape[0]
        feed = x.astype(np.float16) if "float16" in in_type else x
        g = np.asarray(sess.run(None, {INPUT_NAME: feed})[0]).astype(np.float64)
        if g.shape != r.shape:
            result.failures.append(f"output shape {list(g.shape)} differs from torch's {list(r.shape)}")
            result.seconds = time.perf_counter() - t0
            return result
        ref.append(r.reshape(n, -1))
        got.append(g.reshape(n, -1))
        if n > 1:
            centered.append((r.reshape(n, -1) - r.reshape(n, -1).mean(0), g.reshape(n, -1) - g.reshape(n, -1).mean(0)))
    _figures(result, np.concatenate(ref), np.concatenate(got), centered)
    _judge(result, tol)
    if result.input_dependence is not None and result.input_dependence < tol.min_input_dependence:
        result.warnings.append(f"the logits barely depend on the input (input dependence {result.input_dependence:.1e}"
                               f" < {tol.min_input_dependence:g}; random weights?): the centered figures are not "
                               "judged; validate with trained weights for a stronger check")
    result.seconds = time.perf_counter() - t0
    return result


def _figures(res: Validation, ref: np.ndarray, got: np.ndarray,
             centered: list[tuple[np.ndarray, np.ndarray]]) -> None:
    res.max_abs_diff = metrics.max_abs_error(ref, got)
    res.max_rel_diff = metrics.max_rel_error(ref, got)
    res.cosine = float(np.min(metrics.cosine_similarity(ref, got)))
    if centered:
        cr = np.concatenate([c for c, _ in centered])
        cg = np.concatenate([c for _, c in centered])
        scale = float(np.abs(cr).max())
        res.input_dependence = scale / max(float(np.abs(ref).max()), 1e-30)
        if scale > 0:
            res.centered_rel_diff = metrics.max_rel_error(cr, cg)
            res.centered_cosine = float(metrics.cosine_similarity(cr.reshape(1, -1), cg.reshape(1, -1))[0])
    if ref.shape[1] > 1:
        res.top1_agreement = metrics.topk_agreement(ref, got, 1)
    if ref.shape[1] >= 5:
        res.top5_agreement = metrics.topk_set_agreement(ref, got, 5)


def _judge(res: Validation, tol: Tolerances) -> None:
    checks = [("max rel diff", res.max_rel_diff, tol.max_rel_diff, "<="),
              ("centered rel diff", res.centered_rel_diff, tol.centered_rel_diff, "<="),
              ("cosine", res.cosine, tol.min_cosine, ">="),
              ("centered cosine", res.centered_cosine, tol.min_centered_cosine, ">=")]
    judge_centered = res.input_dependence is not None and res.input_dependence >= tol.min_input_dependence
    for name, value, bound, op in checks:
        if value is None or (name.startswith("centered") and not judge_centered):
            continue
        ok = value <= bound if op == "<=" else value >= bound
        if not ok or not np.isfinite(value):
            res.failures.append(f"{name} {value:.3g} not {op} {bound:g}")
    res.passed = not res.failures
