"""``edgecnn triton`` and ``batch-predict``: serve a model file with Triton, classify a folder locally or on Ray."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from edgecnn.cli.options import (
    BatchSizes,
    batching,
    force_option,
    model_source,
    output,
    prepared_model,
    preprocessing,
    reporting,
    runtime,
    strict_images,
    top_k,
)
from edgecnn.cli.output import echo_json, open_engine
from edgecnn.errors import EdgecnnError


def _triton_options(f: Any) -> Any:
    """Options shared by 'edgecnn triton' (and the Triton part of 'edgecnn export --triton-repo')."""
    opts = [
        click.option("--name", default=None, help="Triton model name (and folder) [default: the file's model name]."),
        click.option("--version", "model_version", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Model version folder to write."),
        click.option("--max-batch-size", type=click.IntRange(min=1), default=None,
                     help="max_batch_size for a dynamic-batch file [default: 32]; a fixed-batch file gets 0."),
        click.option("--triton-provider", "triton_provider", type=click.Choice(["cuda", "tensorrt", "cpu", "openvino"]),
                     default="cuda", show_default=True,
                     help="How Triton's ONNX Runtime backend runs it: cuda, tensorrt (adds the TensorRT "
                          "accelerator), cpu or openvino (CPU instances with the OpenVINO accelerator)."),
        click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True,
                     help="instance_group count (model copies per device)."),
        click.option("--instance-kind", type=click.Choice(["gpu", "cpu"]), default=None,
                     help="instance_group kind [default: cpu for --triton-provider cpu/openvino, else gpu]."),
        click.option("--preferred-batch", type=BatchSizes(sweep=True), default=None, metavar="N,N,...",
                     help="dynamic_batching preferred batch sizes, e.g. 8,16."),
        click.option("--queue-delay-us", type=click.IntRange(min=0), default=100, show_default=True,
                     help="dynamic_batching max_queue_delay_microseconds."),
        click.option("--no-dynamic-batching", is_flag=True, help="Leave out the dynamic_batching block."),
        click.option("--trt-precision", type=click.Choice(["FP32", "FP16", "INT8"], case_sensitive=False),
                     default=None, help="TensorRT precision_mode [default: the file's precision]."),
        click.option("--trt-cache-path", default=None,
                     help="TensorRT engine cache folder inside the server [default: /tmp/triton_trt_cache/NAME]."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def write_triton(path: str, repo: str, *, force: bool = False, name: str | None = None, model_version: int = 1,
                 max_batch_size: int | None = None, triton_provider: str = "cuda", instances: int = 1,
                 instance_kind: str | None = None, preferred_batch: Sequence[int] | None = None,
                 queue_delay_us: int = 100, no_dynamic_batching: bool = False, trt_precision: str | None = None,
                 trt_cache_path: str | None = None, move: bool = False) -> Any:
    """Write the Triton repository for ``path`` (the options of :func:`_triton_options`) and say where it went
    (``move``: the file was made only for the repository and is moved into it)."""
    from edgecnn.scale.triton import write_triton_repo

    result = write_triton_repo(
        path, repo, version=model_version, force=force, name=name, max_batch_size=max_batch_size,
        provider=triton_provider, instance_count=instances, instance_kind=instance_kind,
        dynamic_batching=not no_dynamic_batching, preferred_batch_sizes=list(preferred_batch or []),
        max_queue_delay_us=queue_delay_us, trt_precision=trt_precision.upper() if trt_precision else None,
        trt_cache_path=trt_cache_path, move=move)
    click.echo(f"wrote Triton model {result.config.name!r} version {result.version_dir.name}: {result.model_file}, "
               f"{result.config_file} (max_batch_size {result.config.max_batch_size})", err=True)
    return result


@click.command("triton")
@model_source()
@click.argument("repo", metavar="REPO_DIR")
@_triton_options
@force_option()
@click.option("--print-config", is_flag=True, help="Also print the written config.pbtxt.")
@reporting()
@preprocessing()
def triton_cmd(model: str, repo: str, force: bool, print_config: bool, as_json: bool, preprocess: dict[str, Any],
               **options: Any) -> None:
    """Write a Triton Inference Server model repository for MODEL_OR_FILE into REPO_DIR.

    Writes REPO_DIR/NAME/VERSION/model.onnx and REPO_DIR/NAME/config.pbtxt for Triton's ONNX Runtime
    backend (platform onnxruntime_onnx); inputs, outputs, types and dims come from the file. --force
    replaces an existing version folder.

    \b
    Example:
      edgecnn triton resnet18.onnx repo/ --triton-provider tensorrt --trt-precision FP16 --preferred-batch 8,16
      docker run --gpus=all -p8000:8000 -p8001:8001 -p8002:8002 -v $PWD/repo:/models \\
          nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models
    """
    prepared = prepared_model(model, preprocess=preprocess)
    result = write_triton(str(prepared.path), repo, force=force, **options)
    if as_json:
        echo_json({"name": result.config.name, "version": int(result.version_dir.name),
                   "model_file": str(result.model_file), "config_file": str(result.config_file),
                   "max_batch_size": result.config.max_batch_size, "config": result.config.to_pbtxt(),
                   "notices": list(prepared.notices)})
    elif print_config:
        click.echo(result.config.to_pbtxt(), nl=False)


@click.command("batch-predict")
@model_source(precision=True)
@click.argument("input_dir", metavar="INPUT_DIR")
@output("Results file: .parquet (needs pyarrow) or .jsonl; one row per image (per box or class for detection and "
        "segmentation files).", required=True, dir_okay=True)
@top_k()
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.25, show_default=True,
              help="Detection files: write boxes scoring at least this.")
@batching(default=32)
@runtime(fallback=False)
@click.option("--ray", "use_ray", is_flag=True, help="Run on a Ray cluster with Ray Data (pip install 'edgecnn[ray]').")
@click.option("--address", default=None,
              help="With --ray: 'auto' (the cluster this machine is in) or ray://HOST:10001 [default: a local Ray].")
@click.option("--concurrency", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --ray: number of inference actors (one Engine each).")
@click.option("--cpus-per-worker", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="With --ray: CPUs each actor reserves (also its ONNX Runtime threads).")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="With --ray: GPUs each actor reserves (e.g. 1, or 0.5 to share a GPU).")
@click.option("--loaders", type=click.IntRange(min=1), default=2, show_default=True,
              help="Local path: image decoding threads feeding the batcher.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@strict_images()
@reporting()
@preprocessing()
def batch_predict_cmd(model: str, precision: str, input_dir: str, output: str, top: int, min_score: float, batch: int,
                      provider: str,
                      device: str | None, use_ray: bool, address: str | None, concurrency: int,
                      cpus_per_worker: float, gpus_per_worker: float, threads: int | None, loaders: int, force: bool,
                      no_progress: bool, strict: bool, as_json: bool, preprocess: dict[str, Any]) -> None:
    """Classify every image under INPUT_DIR and write path, top-k classes and probabilities per image.

    Locally (default) one Engine (--threads) and a Batcher run the images on this machine; with --ray, Ray
    Data reads the images and CONCURRENCY actors (one Engine each, --cpus-per-worker threads) predict them
    on a Ray cluster. Both write the same columns: path (relative to INPUT_DIR), classes, labels,
    probabilities. A detection file writes one row per box (path, class, label, score, x1, y1, x2, y2 in the
    image's pixels; --min-score), a segmentation file one row per class present (path, class, label, share of
    the pixels), post-processed as predict does.

    \b
    Examples:
      edgecnn batch-predict resnet18 images/ -o results.parquet
      edgecnn batch-predict resnet18.onnx /shared/images -o results.parquet --ray --address auto --concurrency 8
    """
    from edgecnn.outputs import is_folder_arg
    from edgecnn.runtime.datasets import strict_images as strict_context
    from edgecnn.scale.local import batch_predict, check_output

    if is_folder_arg(output):
        output = str(Path(output) / "results.jsonl")
    check_output(output, force)  # before any work
    prepared = prepared_model(model, precision, provider, preprocess=preprocess)
    path = str(prepared.path)
    _task_options(path, model)
    if not use_ray and (address or gpus_per_worker):
        raise EdgecnnError("--address and --gpus-per-worker apply to --ray runs only.")
    if use_ray and threads:
        raise EdgecnnError("--threads applies to local runs; with --ray, --cpus-per-worker sets each actor's threads.")
    if use_ray:
        from edgecnn.scale.ray import ray_batch_predict, require_ray

        require_ray()
        result = ray_batch_predict(path, input_dir, output, top=top, batch=batch,
                                   concurrency=concurrency, cpus_per_worker=cpus_per_worker,
                                   gpus_per_worker=gpus_per_worker, provider=provider, address=address, force=force,
                                   progress=not no_progress, precision=precision, device=device,
                                   min_score=min_score)
    else:
        engine = open_engine(path, provider=provider, threads=threads, max_batch=batch, precision=precision,
                             device=device)
        with strict_context(strict):
            result = batch_predict(path, input_dir, output, top=top, batch=batch, loaders=loaders, force=force,
                                   progress=not no_progress, engine=engine, min_score=min_score)
    if as_json:
        echo_json({**result.as_dict(), "notices": list(prepared.notices)})
    else:
        click.echo(f"{result.images} images -> {result.output} in {result.seconds:.1f} s "
                   f"({result.images_per_s:.1f} images/s, {result.mode}"
                   f"{f', {result.workers} workers' if result.mode == 'ray' else ''})")


def _task_options(path: str, model: str) -> None:
    """One error line when --top meets a detector or segmenter, or --min-score a classifier."""
    from edgecnn import onnxfile
    from edgecnn.runtime.vision import task_of

    ctx = click.get_current_context()
    given = {k for k in ("top", "min_score") if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
    task = task_of(onnxfile.read_metadata(path))
    if task != "classification" and "top" in given:
        raise EdgecnnError(f"--top ranks a classifier's classes; {model} is a {task} model: its rows are "
                           + ("boxes (filter them with --min-score)." if task == "detection" else
                              "per-class pixel shares."))
    if task != "detection" and "min_score" in given:
        raise EdgecnnError(f"--min-score filters a detector's boxes; {model} is a {task} model.")


COMMANDS = [triton_cmd, batch_predict_cmd]
