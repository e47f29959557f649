"""A real task to measure quantization on: LeNet-5 on scikit-learn's UCI handwritten digits.

    python tools/digits.py --out runs/digits            # train, export fp32/fp16/int8, evaluate each
    python tools/digits.py --out runs/digits --json

The 1,797 8x8 digits (bundled with scikit-learn, no download) are upsampled to 32x32 grayscale PNGs.
A fixed stratified split (seed 0) gives 1,437 training and 360 test images; the test split is written
as an ImageFolder (``test/<digit>/<n>.png``) and 256 training images as the calibration folder
(``calib/``), so calibration and evaluation never share an image. Training inputs go through the
runtime's own preprocessing (:func:`edgecnn.runtime.preprocess`), so the exported models see exactly
what they were trained on. The task itself lives in :mod:`edgecnn.tasks.digits`; scikit-learn is
the ``digits`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from edgecnn.tasks.digits import (
    export_onnx,
    load_split,
    to_array,
    torch_accuracy,
    train_lenet,
    write_image_folder,
    write_images,
)


def run_chain(out: str | os.PathLike, *, epochs: int = 12, calib_size: int = 256, log: Any = print,
              quiet: bool = True) -> dict[str, Any]:
    """Train, write the data, export fp32 -> fp16 -> int8 (static QDQ, calibrated on training images),
    evaluate each on the held-out test ImageFolder; return the figures."""
    from edgecnn.profiler.accuracy import compare_models, evaluate
    from edgecnn.quantize import quantize

    out = Path(out)
    t0 = time.perf_counter()
    split = load_split()
    xtr = to_array(split.train_images)
    xte = to_array(split.test_images)
    t1 = time.perf_counter()
    model = train_lenet(xtr, split.train_labels, epochs=epochs, log=log)
    train_s = time.perf_counter() - t1
    torch_acc = torch_accuracy(model, xte, split.test_labels)
    log(f"trained lenet5 in {train_s:.1f} s: torch test accuracy {100 * torch_acc:.2f}%")
    test_dir = write_image_folder(split.test_images, split.test_labels, out / "test")
    calib_dir = write_images(split.train_images[:calib_size], out / "calib")
    fp32 = export_onnx(model, out / "lenet5.onnx", "fp32")
    fp16 = export_onnx(model, out / "lenet5.fp16.onnx", "fp16")
    q = quantize(fp32, out / "lenet5.int8.onnx", calib=str(calib_dir), calib_size=calib_size)
    results: dict[str, Any] = {"epochs": epochs, "train_seconds": round(train_s, 2), "torch_top1": torch_acc,
                               "train_images": len(xtr), "test_images": len(xte), "calib_images": calib_size,
                               "models": {}}
    for name, path in (("fp32", fp32), ("fp16", fp16), ("int8", Path(q.output))):
        rep = evaluate(path, test_dir, quiet=quiet)
        row = rep.as_dict()
        if name != "fp32":
            row["vs_fp32"] = compare_models(fp32, path, test_dir, quiet=quiet).as_dict()
        from edgecnn.onnxfile import file_size

        row["size"] = file_size(path)
        results["models"][name] = row
        log(f"{name}: top-1 {100 * rep.top1:.2f}%  top-5 {100 * rep.top5:.2f}%  ({row['size']:,} bytes)")
    results["seconds"] = round(time.perf_counter() - t0, 2)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/digits", help="output folder (data and models)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = p.parse_args(argv)
    log = (lambda m: print(m, file=sys.stderr)) if a.json else print
    res = run_chain(a.out, epochs=a.epochs, log=log)
    if a.json:
        print(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
