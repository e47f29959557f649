"""Option groups shared by the commands, each defined once (the pattern of Polygraphy's ``tools/args/``).

A command declares the groups it needs; an option that two commands declare parses the same way and
means the same thing in both:

- **model source**: the ``MODEL_OR_FILE`` argument (an ``.onnx`` file, or a zoo name exported on first
  use and cached) and, where a zoo name can be made several ways, ``--precision``;
- **runtime**: ``--provider`` (one choice list, :data:`edgecnn.runtime.backends.ort_providers.PROVIDERS`, default
  ``auto`` everywhere), ``--device`` (OpenVINO device or CUDA device index), ``--fallback``, ``--threads``;
- **batching**: ``--batch`` is the number of images per inference run: one integer, or a comma list
  (``1,8,32``) where a command sweeps batch sizes. The batch dimension written into an exported file is
  another thing and has its own name, ``export --batch-dim N|dynamic``;
- **output**: ``-o/--output``, ``--force`` (the policy behind them is :mod:`edgecnn.outputs`: nothing existing is
  replaced without ``--force``, an input never);
- **image folders**: ``--strict`` (a bad image fails the run instead of being skipped with a count);
- **reporting**: ``--json`` (the tables and JSON themselves are printed by :mod:`edgecnn.cli.output`);
- **preprocessing**: ``--layout``, ``--size``, ``--bgr/--rgb``, ``--range``, ``--mean``, ``--std``, ``--crop``,
  ``--labels`` for files without edgecnn metadata, handed to :func:`prepared_model` as one ``preprocess`` dict.

A bad value of one of these options ends in one ``error:`` line and exit code 2, as every user error does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from edgecnn.cli._params import Choice, F, _name, _stack
from edgecnn.cli.preprocess_options import parse_crop, parse_size, preprocessing
from edgecnn.errors import EdgecnnError
from edgecnn.runtime.backends.ort_providers import PREFERENCE, PROVIDER_NAMES, PROVIDERS
from edgecnn.runtime.precision import PRECISIONS
from edgecnn.tables import printable

if TYPE_CHECKING:
    from edgecnn.modelfile import Prepared



_SHORT = {full: short for short, full in PROVIDER_NAMES.items()}
PROVIDER_HELP = (f"Where the model runs: {', '.join(PROVIDERS)}. auto = the best provider this install has "
                 f"({' > '.join(_SHORT.get(p, p) for p in PREFERENCE)}); the output names the one that ran. "
                 "GPU providers need edgecnn[gpu], openvino edgecnn[openvino] (see 'edgecnn doctor').")
FALLBACK_HELP = "If --provider is not available, warn and run on the best available one instead of failing."
DEVICE_HELP = ("Device to run on: with --provider openvino the OpenVINO device (CPU default; GPU, NPU, AUTO or e.g. "
               "GPU.1, passed through to OpenVINO); with cuda/tensorrt the CUDA device index (0, 1, cuda:1).")
THREADS_HELP = "CPU threads of ONNX Runtime's intra-op pool [default: all CPUs available to this process]."
JSON_HELP = "Print the result as JSON on stdout (no tables, no progress bars)."
FORCE_HELP = "Replace existing output instead of stopping with an error."


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


class ProviderChoice(Choice):
    """``--provider``: ``auto`` and every registered backend, read when parsing (plug-ins registered after import
    count); a bad name is one line listing the available ones."""

    def __init__(self) -> None:
        super().__init__(PROVIDERS)

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        from edgecnn.runtime.backends import choices

        return tuple(choices())

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:  # click sets it in __init__; the registry is the source
        pass

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from edgecnn.runtime.backends import failures

        why = failures().get(str(value).strip().lower())
        if why:  # a plug-in that failed to load: say why, not only that the name is unknown
            raise EdgecnnError(f"{_name(param)}: backend {str(value).strip().lower()!r} is not available: {why}")
        return super().convert(value, param, ctx)


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


# --------------------------------------------------------------------------- groups


def model_source(*, precision: bool = False) -> Callable[[F], F]:
    """``MODEL_OR_FILE`` (parameter ``model``) and, with ``precision``, ``--precision`` for zoo names."""
    decorators = [click.argument("model", metavar="MODEL_OR_FILE")]
    if precision:
        decorators.append(click.option(
            "--precision", type=Choice(PRECISIONS), default="auto", show_default=True,
            help="What to run at. For a zoo name, fp16/int8 pick its fp16 export or int8 (static QDQ) "
                 "quantization, made once and cached; bf16 (and fp16 on openvino and tensorrt) is the runtime's "
                 "inference precision on the fp32 file; auto never changes the file and, where the provider can run "
                 "it at several precisions, measures them once on this machine (reduced ones only above 30 dB SQNR "
                 "from fp32). A precision the file and provider cannot run is an error (see docs/runtimes.md)."))
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
            click.echo(f"note: {label + ': ' if label else ''}{printable(line, 2000)}", err=True)
    return prepared


def runtime(*, fallback: bool = True, threads: bool = True, provider: bool = True,
            device: bool | None = None) -> Callable[[F], F]:
    """``--provider``, ``--device`` (with ``--provider`` unless ``device`` says otherwise), ``--fallback``,
    ``--threads``: where and how the model runs."""
    decorators = []
    if provider:
        decorators.append(click.option("--provider", type=ProviderChoice(), default="auto", show_default=True,
                                       help=PROVIDER_HELP))
    if provider if device is None else device:
        decorators.append(click.option("--device", default=None, metavar="DEVICE", help=DEVICE_HELP))
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


def reference() -> Callable[[F], F]:
    """``--reference FP32.onnx``: the fp32 file a reduced-precision run is compared with."""
    return click.option("--reference", type=click.Path(dir_okay=False), default=None, metavar="FP32.onnx",
                        help="The fp32 model to compare a reduced-precision run with (agreement, cosine, SQNR) "
                             "[default: a zoo name's fp32 export, or the file itself at an inference precision].")


def task_labels() -> Callable[[F], F]:
    """``--annotations FILE`` (COCO instances: a detector's mAP) and ``--masks DIR`` (PNG label maps: a segmenter's
    mean IoU), the labels of a folder of images, defined once for ``evaluate``, ``quantize`` and ``optimize``."""
    return _stack(
        click.option("--annotations", type=click.Path(dir_okay=False), default=None, metavar="FILE",
                     help="Detection: a COCO-format instances file (Lin et al. 2014) for the images; scores COCO "
                          "mAP@[.5:.95] and mAP@.5 with pycocotools."),
        click.option("--masks", type=click.Path(file_okay=False), default=None, metavar="DIR",
                     help="Segmentation: PNG label maps (class indices, 255 = ignore) named as the images; scores "
                          "mean IoU."))


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


def strict_images() -> Callable[[F], F]:
    """``--strict``: a bad image in a folder fails the run instead of being skipped with a count."""
    return click.option("--strict", is_flag=True,
                        help="Fail on the first image of a folder that cannot be read [default: skip such images "
                             "and say how many, with the first reasons].")


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
    "preprocessing", "reference", "reporting", "runtime", "strict_images", "top_k")
