"""Option groups shared by the commands, each defined once (the pattern of Polygraphy's ``tools/args/``).

A command declares the groups it needs; an option that two commands declare parses the same way and
means the same thing in both:

- **model source**: the ``MODEL_OR_FILE`` argument (an ``.onnx`` file, or a zoo name exported on first
  use and cached) and, where a zoo name can be made several ways, ``--precision``;
- **runtime**: ``--provider`` (one choice list, :data:`edgecnn.runtime.providers.PROVIDERS`, default
  ``auto`` everywhere), ``--fallback``, ``--threads``;
- **batching**: ``--batch`` is the number of images per inference run: one integer, or a comma list
  (``1,8,32``) where a command sweeps batch sizes. The batch dimension written into an exported file is
  another thing and has its own name, ``export --batch-dim N|dynamic``;
- **output**: ``-o/--output``, ``--force``;
- **reporting**: ``--json`` (the tables and JSON themselves are printed by :mod:`edgecnn.cli.output`);
- **preprocessing**: ``--layout``, ``--size``, ``--bgr/--rgb``, ``--range``, ``--mean``, ``--std``, ``--crop``,
  ``--labels`` for files without edgecnn metadata, handed to :func:`prepared_model` as one ``preprocess`` dict.

A bad value of one of these options ends in one ``error:`` line and exit code 2, as every user error does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.precision import PRECISIONS
from edgecnn.runtime.providers import PREFERENCE, PROVIDER_NAMES, PROVIDERS

if TYPE_CHECKING:
    from edgecnn.modelfile import Prepared

F = TypeVar("F", bound=Callable[..., Any])


_SHORT = {full: short for short, full in PROVIDER_NAMES.items()}
PROVIDER_HELP = (f"Where the model runs: {', '.join(PROVIDERS)}. auto = the best provider this install has "
                 f"({' > '.join(_SHORT.get(p, p) for p in PREFERENCE)}); the output names the one that ran. "
                 "GPU providers need edgecnn[gpu], openvino edgecnn[openvino] (see 'edgecnn doctor').")
FALLBACK_HELP = "If --provider is not available, warn and run on the best available one instead of failing."
THREADS_HELP = "CPU threads of ONNX Runtime's intra-op pool [default: all CPUs available to this process]."
JSON_HELP = "Print the result as JSON on stdout (no tables, no progress bars)."
FORCE_HELP = "Replace existing output instead of stopping with an error."


def _name(param: click.Parameter | None) -> str:
    if param is None:
        return "value"
    return max(param.opts, key=len) if param.opts and isinstance(param, click.Option) else param.human_readable_name


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying ``decorators`` in the order written (the first one's option is listed first)."""

    def apply(f: F) -> F:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


# --------------------------------------------------------------------------- parameter types


def parse_batch_sizes(text: str, what: str = "--batch", *, sweep: bool = True) -> list[int]:
    """``'1,8,32'`` -> ``[1, 8, 32]``; with ``sweep=False`` exactly one size. The one batch-size parser."""
    try:
        sizes = [int(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError:
        sizes = []
    if sweep and sizes and min(sizes) >= 1:
        return sizes
    if not sweep and len(sizes) == 1 and sizes[0] >= 1:
        return sizes
    if sweep:
        raise EdgecnnError(f"{what} takes integers >= 1, comma-separated like 1,8,32; got {text!r}")
    hint = " (a comma list of sizes is for a sweep: 'edgecnn bench --batch 1,8,32')" if len(sizes) > 1 else ""
    raise EdgecnnError(f"{what} takes one integer >= 1; got {text!r}{hint}")


class BatchSizes(click.ParamType):
    """Batch sizes: one integer (``sweep=False``) or a comma list (``sweep=True``, converts to a list)."""

    def __init__(self, *, sweep: bool) -> None:
        self.sweep = sweep
        self.name = "N,N,..." if sweep else "N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        sizes = parse_batch_sizes(str(value), _name(param), sweep=self.sweep)
        return sizes if self.sweep else sizes[0]


class Choice(click.Choice):
    """``click.Choice`` whose bad value is one ``error:`` line (an :class:`EdgecnnError`), not a usage block."""

    def fail(self, message: str, param: click.Parameter | None = None, ctx: click.Context | None = None) -> NoReturn:
        raise EdgecnnError(f"{_name(param)}: {message}")


# --------------------------------------------------------------------------- groups


def model_source(*, precision: bool = False) -> Callable[[F], F]:
    """``MODEL_OR_FILE`` (parameter ``model``) and, with ``precision``, ``--precision`` for zoo names."""
    decorators = [click.argument("model", metavar="MODEL_OR_FILE")]
    if precision:
        decorators.append(click.option(
            "--precision", type=Choice(PRECISIONS), default="auto", show_default=True,
            help="What to run at. For a zoo name, fp16/int8 pick its fp16 export or int8 (static QDQ) "
                 "quantization, made once and cached; bf16 (and fp16 on openvino) is the runtime's inference "
                 "precision on the fp32 file; auto = bf16 under OpenVINO on CPUs with native bf16, else the "
                 "file's own. A precision the file and provider cannot run is an error (see docs/runtimes.md)."))
    return _stack(*decorators)


def model_path(model: str, precision: str = "fp32", provider: str = "cpu") -> str:
    """The ``.onnx`` path for ``MODEL_OR_FILE``: a file as is, a zoo name exported (and cached) on first use in the
    precision that ``precision`` on ``provider`` runs from."""
    from edgecnn.profiler.source import resolve_model
    from edgecnn.runtime.precision import export_precision

    return str(resolve_model(model, export_precision(precision, provider)))


def prepared_model(model: str, precision: str = "fp32", provider: str = "cpu", *, min_opset: int | None = None,
                   preprocess: dict[str, Any] | None = None, label: str = "",
                   said: Sequence[str] = ()) -> Prepared:
    """``MODEL_OR_FILE`` opened, normalised and read (:func:`edgecnn.modelfile.prepare`); what was normalised
    and assumed is printed once as ``note:`` lines on stderr (commands also put them in their JSON). A second
    file of the same command (``label``, e.g. ``reference``) prints only the lines not ``said`` already."""
    from edgecnn.modelfile import prepare

    prepared = prepare(model_path(model, precision, provider), min_opset=min_opset, preprocess=preprocess)
    for line in prepared.notices:
        if line not in said:
            click.echo(f"note: {label + ': ' if label else ''}{line}", err=True)
    return prepared


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        values = ()
    if not values:
        raise EdgecnnError(f"{what} takes one number or one per channel, comma-separated like "
                           f"0.485,0.456,0.406; got {text!r}")
    return values


def parse_size(text: str) -> tuple[int, int]:
    """``'224'`` -> (224, 224); ``'240x320'`` -> (240, 320)."""
    parts = str(text).lower().replace(" ", "").split("x")
    if len(parts) in (1, 2) and all(p.isdigit() and int(p) > 0 for p in parts):
        return (int(parts[0]), int(parts[-1]))
    raise EdgecnnError(f"--size takes HxW or N (e.g. 224x224 or 224); got {text!r}")


def parse_crop(text: str) -> float | str:
    """``'none'`` (resize without a crop) or a fraction in (0, 1]."""
    if str(text).lower() == "none":
        return "none"
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise EdgecnnError(f"--crop takes a fraction in (0, 1] (0.875 = torchvision's) or none; got {text!r}")
    return value


class _Parsed(click.ParamType):
    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name, self.parse = name, parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value if not isinstance(value, str) else self.parse(value)


#: option parameter -> ``io_spec.detect`` keyword
_PREPROCESS = {"layout": "layout", "size": "size", "bgr": "bgr", "input_range": "input_range", "mean": "mean",
               "std": "std", "crop": "crop_fraction", "labels": "labels"}


def preprocessing() -> Callable[[F], F]:
    """``--layout``, ``--size``, ``--bgr/--rgb``, ``--range``, ``--mean``, ``--std``, ``--crop``, ``--labels``:
    how to feed a file without edgecnn metadata; the command receives them as one ``preprocess`` dict
    (the keyword arguments of :func:`edgecnn.io_spec.detect`, None where not given)."""
    opts = [
        click.option("--layout", type=Choice(["nchw", "nhwc"]), default=None,
                     help="Input layout [default: from the input shape; NCHW when it does not tell]."),
        click.option("--size", type=_Parsed("HxW|N", parse_size), default=None,
                     help="Input image size, for inputs with symbolic spatial dims [default: the input shape]."),
        click.option("--bgr/--rgb", "bgr", default=None,
                     help="Channel order [default: BGR for Caffe-converted files, else RGB]."),
        click.option("--range", "input_range", type=Choice(["0-1", "0-255", "-1-1"]), default=None,
                     help="Input pixel range instead of --mean/--std (-1-1: TensorFlow's MobileNets, Inceptions)."),
        click.option("--mean", type=_Parsed("M[,M,M]", lambda t: _floats(t, "--mean")), default=None,
                     help="Per-channel mean, on 0-1 pixels (values above 1 read as 0-255) [default: ImageNet's]."),
        click.option("--std", type=_Parsed("S[,S,S]", lambda t: _floats(t, "--std")), default=None,
                     help="Per-channel std, same units as --mean [default: ImageNet's]."),
        click.option("--crop", type=_Parsed("FRACTION|none", parse_crop), default=None,
                     help="Center-crop fraction after resizing the shorter side to size / FRACTION, or none "
                          "(resize only) [default: 0.875]."),
        click.option("--labels", type=click.Path(dir_okay=False), default=None, metavar="FILE",
                     help="Class names, one per line [default: ImageNet's for 1000 classes, else indices]."),
    ]

    def apply(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            preprocess = {key: kwargs.pop(param) for param, key in _PREPROCESS.items()}
            return f(*args, preprocess=preprocess, **kwargs)

        return _stack(*opts)(wrapper)  # type: ignore[return-value]

    return apply


def runtime(*, fallback: bool = True, threads: bool = True, provider: bool = True) -> Callable[[F], F]:
    """``--provider`` (+ ``--fallback``, ``--threads``): where and how ONNX Runtime runs the model."""
    decorators = []
    if provider:
        decorators.append(click.option("--provider", type=Choice(PROVIDERS), default="auto", show_default=True,
                                       help=PROVIDER_HELP))
    if fallback:
        decorators.append(click.option("--fallback", is_flag=True, help=FALLBACK_HELP))
    if threads:
        decorators.append(click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP))
    return _stack(*decorators)


def batching(*, sweep: bool = False, default: int | str | None = None, help: str = "") -> Callable[[F], F]:
    """``--batch``: images per inference run; a comma list of sizes to sweep when ``sweep``."""
    what = ("Batch sizes to sweep (images per run), comma-separated like 1,8,32." if sweep
            else "Images per inference run.")
    return click.option("--batch", type=BatchSizes(sweep=sweep), default=default, show_default=default is not None,
                        help=f"{what} {help}".strip())


def output(help: str, *, required: bool = False, metavar: str = "FILE", dir_okay: bool = False,
           force: bool = True) -> Callable[[F], F]:
    """``-o/--output`` (``help`` says what is written there; a folder too when ``dir_okay``) and ``--force``."""
    decorators = [click.option("-o", "--output", type=click.Path(dir_okay=dir_okay), required=required, default=None,
                               metavar=metavar, help=help)]
    if force:
        decorators.append(force_option())
    return _stack(*decorators)


def force_option() -> Callable[[F], F]:
    """``--force`` alone, for commands whose output is named by an argument."""
    return click.option("--force", is_flag=True, help=FORCE_HELP)


def reporting() -> Callable[[F], F]:
    """``--json``."""
    return click.option("--json", "as_json", is_flag=True, help=JSON_HELP)


def top_k(default: int = 5) -> Callable[[F], F]:
    """``-k/--top``: classes per image, best first."""
    return click.option("--top", "-k", type=click.IntRange(min=1), default=default, show_default=True,
                        help="How many classes to report per image, best first.")


def deprecated_alias(old: str, new: str, name: str, *, callback: Any = None) -> Callable[[F], F]:
    """A hidden option ``old`` (parameter ``name``) kept working for ``new``; using it warns once on stderr."""

    def warn(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        click.echo(f"warning: {old} is deprecated here: use {new}", err=True)
        return callback(ctx, param, value) if callback else value

    return click.option(old, name, default=None, hidden=True, callback=warn)


__all__: Sequence[str] = (
    "PRECISIONS", "PROVIDERS", "BatchSizes", "Choice", "batching", "deprecated_alias", "force_option",
    "model_path", "model_source", "output", "parse_batch_sizes", "parse_crop", "parse_size", "prepared_model",
    "preprocessing", "reporting", "runtime", "top_k")
