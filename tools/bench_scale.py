"""Benchmark ``edgecnn batch-predict``: the local engine path vs Ray Data with N workers, same images, same model.

    .venv/bin/python tools/bench_scale.py                      # ResNet-18, 1,000 generated 224x224 JPEGs, 2 workers
    .venv/bin/python tools/bench_scale.py --model m.onnx --images 200 --workers 2 --json
    .venv/bin/python tools/bench_scale.py --render saved.json   # (re)write the results file from a saved --json run

Reports images/s for each path (end to end: listing, decoding, preprocessing, inference, writing the
parquet file), Ray's start-up (``ray.init``) separately, and the overhead Ray adds on this machine.
Also checks that both paths wrote the same predictions. CPU benchmark; other processes on the
machine change the figures: the results file (``docs/results/scale.md``, with the machine from
``tools/results.py``) gives the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import results  # noqa: E402


def make_images(folder: Path, n: int, size: int, seed: int = 0) -> None:
    """``n`` smooth random JPEGs (gradients + noise, so JPEG decoding costs what photos cost)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(n):
        a, b, c = rng.uniform(0, 255, 3)
        img = np.stack([a * xx + (255 - a) * yy, b * yy, c * (1 - xx)], axis=-1)
        img += rng.normal(0, 12, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"img{i:05d}.jpg", quality=90)


def render(data: dict[str, Any]) -> str:
    """Markdown: images/s of the local path and of Ray Data, Ray's start-up and overhead."""
    local = data["local"]
    rows = [[f"local (Engine, {local['ort_threads']} ORT threads + Batcher)", f"{local['images_per_s']:.1f}",
             local["seconds"], "-"]]
    if "ray" in data:
        ray = data["ray"]
        rows.append([f"Ray Data ({ray['workers']} actors x {ray['ort_threads_per_worker']} thread)",
                     f"{ray['images_per_s']:.1f}", ray["seconds"], data["ray_init_s"]])
    lines = [f"`edgecnn batch-predict`, {data['model']}, {data['images']} generated {data['size']}x{data['size']} "
             f"JPEGs, batch {data['batch']}, {data['cpus']} CPUs", "",
             results.table(rows, ["path", "images/s", "seconds", "ray.init s"])]
    if "ray" in data:
        lines += ["", f"Ray overhead: {data['ray_overhead_s']:+.2f} s ({data['ray_slowdown']:.2f}x the local time); "
                  f"same top-1 for every image: {data['same_predictions']}."]
    return "\n".join(lines)


def publish(args: argparse.Namespace, data: dict[str, Any]) -> str:
    """Write ``scale`` (unless --no-results); return the results text."""
    return results.write(args, "scale", "batch-predict: the local engine path vs Ray Data", render(data), data)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18", help="zoo name (exported and cached) or .onnx file")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--size", type=int, default=224, help="generated image side in pixels")
    ap.add_argument("--workers", type=int, default=2, help="Ray actors (one Engine, 1 CPU each)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the results text")
    ap.add_argument("--render", metavar="JSON", help="(re)write the results file of a saved --json run and exit")
    results.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.render:
        print(publish(args, results.load(args.render)))
        return

    from edgecnn.scale.local import batch_predict, read_results

    model = args.model
    if not os.path.isfile(model):
        from edgecnn.exporters.cache import cached_export

        model = str(cached_export(model, precision="fp32"))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out: dict = {"model": args.model, "file": model, "images": args.images, "size": args.size, "batch": args.batch,
                 "cpus": cpus}
    with tempfile.TemporaryDirectory(prefix="edgecnn-bench-scale-") as tmp:
        tmpd = Path(tmp)
        t = time.perf_counter()
        make_images(tmpd / "images", args.images, args.size)
        out["generate_s"] = round(time.perf_counter() - t, 2)

        # warm-up: one small local run so file caches and ORT's first session cost do not count
        batch_predict(model, tmpd / "images", tmpd / "warm.jsonl", batch=args.batch, progress=False, limit=args.batch)

        local = batch_predict(model, tmpd / "images", tmpd / "local.parquet", batch=args.batch, progress=False)
        out["local"] = {"seconds": round(local.seconds, 2), "images_per_s": round(local.images_per_s, 1),
                        "ort_threads": cpus, "loader_threads": local.workers}

        if not args.skip_ray:
            import logging

            import ray

            from edgecnn.scale.ray import ray_batch_predict

            t = time.perf_counter()
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
            out["ray_init_s"] = round(time.perf_counter() - t, 2)
            logging.getLogger("ray.data").setLevel(logging.WARNING)
            try:
                r = ray_batch_predict(model, str(tmpd / "images"), tmpd / "ray.parquet", batch=args.batch,
                                      concurrency=args.workers, cpus_per_worker=1.0, provider="cpu", progress=False)
            finally:
                ray.shutdown()
            out["ray"] = {"workers": args.workers, "seconds": round(r.seconds, 2),
                          "images_per_s": round(r.images_per_s, 1), "ort_threads_per_worker": 1}
            out["ray_overhead_s"] = round(r.seconds - local.seconds, 2)
            out["ray_slowdown"] = round(r.seconds / local.seconds, 2)
            a = {x["path"]: x for x in read_results(tmpd / "local.parquet")}
            b = read_results(tmpd / "ray.parquet")
            out["same_predictions"] = (len(b) == len(a) and all(a[x["path"]]["classes"][0] == x["classes"][0]
                                                                  for x in b))
    out["machine"] = results.machine(cpus)
    out["command"] = results.command(__file__, argv)
    text = publish(args, out)
    print(json.dumps(out, indent=2) if args.json else text)


if __name__ == "__main__":
    main()
