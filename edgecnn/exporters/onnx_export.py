"""torch -> ONNX with the TorchScript exporter, in eval mode, keeping only the inference output.

Exporter choice: ``torch.onnx.export(..., dynamo=False)`` (the TorchScript exporter). Measured on the
2-core reference machine it is ~10x faster than the dynamo exporter (GoogLeNet ~1 s vs ~12 s), it
honours ``opset_version=17`` (dynamo may silently write opset 18), it returns one self-contained
protobuf (dynamo writes a side ``.onnx.data`` file), and onnxsim simplifies its output well. It is
deprecated in torch 2.9+, so its deprecation warnings are silenced here; the opset actually written
is checked after every export whichever exporter produced it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence

import onnx
import torch
from torch import nn

from edgecnn import onnxfile
from edgecnn.errors import EdgecnnError

#: Opset 17: the newest opset that ONNX Runtime (>= 1.14), TensorRT 10 and onnxruntime-web all run,
#: and the first with LayerNormalization; these CNNs need nothing newer.
DEFAULT_OPSET = 17
MIN_OPSET = 11
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


class InferenceOnly(nn.Module):
    """Wrap a model so that its forward returns one tensor: the first output of a tuple/list/dict.

    Models whose forward returns extra outputs (GoogLeNet's aux heads in training mode, detection-style
    tuples) export their main output only; together with eval mode this drops training-only heads.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return first_output(self.model(x))


def first_output(out: object) -> torch.Tensor:
    """The main output of a forward: the tensor itself, or the first element of a tuple/list/dict."""
    while not isinstance(out, torch.Tensor):
        if isinstance(out, (tuple, list)) and out:
            out = out[0]
        elif isinstance(out, Mapping) and out:
            out = next(iter(out.values()))
        else:
            raise EdgecnnError(f"the model's forward returned {type(out).__name__}, not a tensor or a tuple of tensors")
    return out


class MatrixAdaptiveAvgPool2d(nn.Module):
    """``AdaptiveAvgPool2d`` for one fixed input size, as two matrix products (exact, exportable).

    torch's TorchScript exporter only handles adaptive pooling whose output size divides the input size;
    VGG's 7x7 or AlexNet's 6x6 pool at a reduced input size (e.g. 2x2 -> 7x7) becomes two MatMuls with
    constant averaging matrices instead: bin ``i`` averages rows ``floor(i*H/oh) .. ceil((i+1)*H/oh)``.
    """

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("rows", _bins(in_hw[0], out_hw[0]), persistent=False)
        self.register_buffer("cols_t", _bins(in_hw[1], out_hw[1]).t().contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.rows.to(x.dtype), x), self.cols_t.to(x.dtype))


def _bins(size: int, out: int) -> torch.Tensor:
    m = torch.zeros(out, size)
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


@contextlib.contextmanager
def exportable_adaptive_pools(model: nn.Module, example: torch.Tensor) -> Iterator[int]:
    """Temporarily swap adaptive average pools for static equivalents at the example's input size.

    The exporter needs static shapes for adaptive pooling, which it loses after ops such as
    LocalResponseNorm under a dynamic batch ("input size not accessible": vgg11_lrn), and rejects output
    sizes that do not divide the input. With H and W fixed per file, an adaptive pool is exactly an
    Identity, an AvgPool2d or (non-dividing sizes) :class:`MatrixAdaptiveAvgPool2d`; global (1x1) pools
    stay GlobalAveragePool. Yields how many were swapped; the model is restored on exit.
    """
    pools = {name: mod for name, mod in model.named_modules() if isinstance(mod, nn.AdaptiveAvgPool2d)}
    seen: dict[str, tuple[int, int]] = {}
    if pools:
        def record(name: str):  # a pre-hook must return None, or it replaces the input
            def hook(_mod: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
                seen.setdefault(name, (int(inp[0].shape[-2]), int(inp[0].shape[-1])))
            return hook

        hooks = [mod.register_forward_pre_hook(record(name)) for name, mod in pools.items()]
        try:
            with torch.no_grad():
                model(example[:1])
        finally:
            for h in hooks:
                h.remove()
    swaps: list[tuple[nn.Module, str, nn.Module]] = []
    for name, in_hw in seen.items():
        mod = pools[name]
        out = mod.output_size if isinstance(mod.output_size, (tuple, list)) else (mod.output_size, mod.output_size)
        out_hw = (int(in_hw[0] if out[0] is None else out[0]), int(in_hw[1] if out[1] is None else out[1]))
        if out_hw == (1, 1):
            continue  # exported as GlobalAveragePool, which needs no shape information
        if out_hw == in_hw:
            static: nn.Module = nn.Identity()
        elif all(i % o == 0 for i, o in zip(in_hw, out_hw, strict=True)):
            kernel = (in_hw[0] // out_hw[0], in_hw[1] // out_hw[1])
            static = nn.AvgPool2d(kernel, stride=kernel)
        else:
            static = MatrixAdaptiveAvgPool2d(in_hw, out_hw)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        swaps.append((parent, attr, mod))
        setattr(parent, attr, static)
    try:
        yield len(swaps)
    finally:
        for parent, attr, mod in swaps:
            setattr(parent, attr, mod)


@contextlib.contextmanager
def quiet_torch() -> Iterator[None]:
    """Silence torch.onnx's deprecation/tracer warnings and log noise for the user."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, lvl in zip(loggers, levels, strict=True):
                lg.setLevel(lvl)


@contextlib.contextmanager
def silenced_output() -> Iterator[None]:
    """Discard stdout/stderr at the file-descriptor level (torch's C++ side prints its IR on failure)."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = []
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # pragma: no cover - no /dev/null: keep the noise rather than fail
        yield
        return
    try:
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull, fd)
            except OSError:  # fd not open (embedded interpreters): nothing to silence
                pass
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def max_opset() -> int:
    """Highest opset the TorchScript exporter writes."""
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET

        return int(ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    except ImportError:  # pragma: no cover - older/newer torch
        return 20


def check_opset(opset: int) -> int:
    """Validate a requested opset, with a clear error outside the supported range."""
    hi = max_opset()
    if not MIN_OPSET <= int(opset) <= hi:
        raise EdgecnnError(f"opset {opset} is not supported: use {MIN_OPSET}..{hi} (default {DEFAULT_OPSET}, "
                           "which ONNX Runtime, TensorRT 10 and onnxruntime-web all run)")
    return int(opset)


def model_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset of an ONNX model."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise EdgecnnError("the ONNX model imports no default-domain opset")


def torch_to_onnx(model: nn.Module, example: torch.Tensor, opset: int = DEFAULT_OPSET,
                  dynamic_batch: bool = True, output_names: Sequence[str] | None = None) -> onnx.ModelProto:
    """Export ``model`` (put in eval mode, first output only) to an in-memory ONNX model.

    Input ``input`` [batch, C, H, W], output ``logits`` [batch, classes]; ``batch`` is a symbolic
    dimension when ``dynamic_batch``. ``output_names``: keep every output of a model returning a tuple, named so
    (detectors, segmenters), each with a symbolic batch as dimension 0. Raises :class:`EdgecnnError` if torch
    cannot export the model or writes another opset than requested.
    """
    model.eval()
    wrapped = InferenceOnly(model).eval() if output_names is None else model
    names = [OUTPUT_NAME] if output_names is None else list(output_names)
    dynamic_axes = ({INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in names}} if dynamic_batch else None)
    # In memory below ~1.8 GB of weights (saves a disk round trip: ~1 s on VGG-16); through a temporary
    # folder above, where torch must write external data.
    in_memory = sum(t.numel() * t.element_size() for t in model.state_dict().values()) < 1_800_000_000
    with tempfile.TemporaryDirectory(prefix="edgecnn-export-") as tmp, quiet_torch(), torch.no_grad():
        target: str | io.BytesIO = io.BytesIO() if in_memory else os.path.join(tmp, "model.onnx")
        try:
            # the exporter prints its whole IR graph on failure: the user gets one line instead
            with silenced_output(), exportable_adaptive_pools(model, example):
                torch.onnx.export(wrapped, (example,), target, dynamo=False, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=names,
                                  dynamic_axes=dynamic_axes, do_constant_folding=True)
        except EdgecnnError:
            raise
        except Exception as e:  # noqa: BLE001 - torch raises many types; the user gets one line
            raise EdgecnnError(f"torch could not export the model to ONNX opset {opset}: {_first_line(e)}") from None
        if isinstance(target, io.BytesIO):
            onx = onnxfile.from_bytes(target.getvalue(), "torch's export")
        else:
            onx = onnxfile.open_model(target)  # loads the external data too
    written = model_opset(onx)
    if written != opset:
        raise EdgecnnError(f"torch wrote opset {written} although opset {opset} was requested")
    return onx


def prune_initializers(model: onnx.ModelProto) -> int:
    """Remove initializers no node (or graph output) uses; returns how many were removed."""
    g = model.graph
    used = {name for node in g.node for name in node.input} | {o.name for o in g.output}
    for node in g.node:  # subgraphs (If/Loop) may reference outer initializers
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                used |= {name for n in sub.node for name in n.input}
    keep = [t for t in g.initializer if t.name in used]
    removed = len(g.initializer) - len(keep)
    if removed:
        del g.initializer[:]
        g.initializer.extend(keep)
        inits = {t.name for t in g.initializer}
        stale = [i for i in g.input if i.name not in inits and i.name != INPUT_NAME and i.name not in used]
        for i in stale:
            g.input.remove(i)
    return removed


def find_names(model: onnx.ModelProto, prefixes: tuple[str, ...]) -> list[str]:
    """Node and initializer names that belong to modules ``prefixes`` (e.g. aux heads), if any.

    The TorchScript exporter names nodes by module scope (``/model/aux1/conv/Conv``) and keeps parameter
    names (``model.aux1.fc1.weight``); a name belongs to ``aux1`` if ``aux1`` is one of its path parts.
    """
    if not prefixes:
        return []
    names = [t.name for t in model.graph.initializer] + [n.name for n in model.graph.node]
    return [n for n in names if set(n.replace(".", "/").split("/")) & set(prefixes)]


def weights_sha256(model: nn.Module, exclude: tuple[str, ...] = ()) -> str:
    """SHA-256 over the state_dict tensors in key order (names, dtypes, shapes and bytes), minus ``exclude``."""
    h = hashlib.sha256()
    for key, t in model.state_dict().items():
        if exclude and key.startswith(tuple(f"{p}." for p in exclude)):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def used_params(model: nn.Module, example: torch.Tensor) -> int:
    """Parameters that influence the eval-mode main output (a backward pass finds the unused ones)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return sum(p.numel() for p in model.parameters())
    model.eval()
    with torch.enable_grad():
        out = first_output(model(example[:1]))
        grads = torch.autograd.grad(out.float().sum(), params, allow_unused=True)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return frozen + sum(p.numel() for p, g in zip(params, grads, strict=True) if g is not None)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line[:300]
