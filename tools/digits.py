"""A real task to measure quantization on: LeNet-5 on scikit-learn's UCI handwritten digits.

    python tools/digits.py --out runs/digits            # train, export fp32/fp16/int8, evaluate each
    python tools/digits.py --out runs/digits --json

The 1,797 8x8 digits (bundled with scikit-learn, no download) are upsampled to 32x32 grayscale PNGs.
A fixed stratified split (seed 0) gives 1,437 training and 360 test images; the test split is written
as an ImageFolder (``test/<digit>/<n>.png``) and 256 training images as the calibration folder
(``calib/``), so calibration and evaluation never share an image. Training inputs go through the
runtime's own preprocessing (:func:`edgecnn.runtime.preprocess`), so the exported models see exactly
what they were trained on. scikit-learn is a dev/tools dependency only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgecnn.runtime.images import PreprocessConfig, preprocess

CONFIG = PreprocessConfig(input_size=(32, 32), channels=1, mean=(0.5,), std=(0.5,))
SIZE = 32


@dataclass
class DigitsSplit:
    """Train/test images (PIL, 32x32 grayscale) and labels."""

    train_images: list[Image.Image]
    train_labels: np.ndarray
    test_images: list[Image.Image]
    test_labels: np.ndarray


def to_image(row: np.ndarray) -> Image.Image:
    """One 64-value digit (0..16) -> a 32x32 grayscale PIL image: upsampled to 28x28 (bilinear) and
    centred with a 2-pixel border, as LeNet-5 saw MNIST (the runtime's centre crop keeps the digit)."""
    arr = np.clip(np.asarray(row, dtype=np.float32).reshape(8, 8) * (255.0 / 16.0), 0, 255).astype(np.uint8)
    inner = Image.fromarray(arr, mode="L").resize((SIZE - 4, SIZE - 4), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (SIZE, SIZE))
    canvas.paste(inner, (2, 2))
    return canvas


def load_split(test_size: float = 0.2, seed: int = 0) -> DigitsSplit:
    """The fixed stratified split of ``sklearn.datasets.load_digits``."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("tools/digits.py needs scikit-learn: pip install 'edgecnn[dev]'") from None
    digits = load_digits()
    xtr, xte, ytr, yte = train_test_split(digits.data, digits.target, test_size=test_size, random_state=seed,
                                          stratify=digits.target)
    return DigitsSplit([to_image(r) for r in xtr], np.asarray(ytr, dtype=np.int64),
                       [to_image(r) for r in xte], np.asarray(yte, dtype=np.int64))


def to_array(images: list[Image.Image]) -> np.ndarray:
    """PIL images -> N x 1 x 32 x 32 float32, preprocessed exactly as the runtime does."""
    return np.stack([preprocess(img, CONFIG) for img in images])


def train_lenet(x: np.ndarray, y: np.ndarray, *, epochs: int = 12, batch_size: int = 32, lr: float = 2e-3,
                seed: int = 0, shift: int = 2, log: Any = None) -> Any:
    """Train ``edgecnn.models.create_model("lenet5")`` with Adam and a cosine schedule, on random shifts of up
    to ``shift`` pixels; returns the model in eval mode."""
    import torch
    from torch import nn

    from edgecnn.models import create_model

    torch.manual_seed(seed)
    model = create_model("lenet5")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), batch_size):
            idx = perm[i:i + batch_size]
            xb = xt[idx]
            if shift:
                dy, dx = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=gen))
                xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            opt.zero_grad()
            loss = loss_fn(model(xb), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {total / len(xt):.4f}")
    return model.eval()


def torch_accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a torch model on preprocessed inputs."""
    import torch

    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    return float(np.mean(pred == y))


def write_image_folder(images: list[Image.Image], labels: np.ndarray, root: str | os.PathLike) -> Path:
    """Write ``root/<label>/<n>.png`` (ImageFolder layout)."""
    root = Path(root)
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        d = root / str(int(label))
        d.mkdir(parents=True, exist_ok=True)
        img.save(d / f"{i:04d}.png")
    return root


def write_images(images: list[Image.Image], root: str | os.PathLike) -> Path:
    """Write unlabelled ``root/<n>.png`` (a calibration folder)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        img.save(root / f"{i:04d}.png")
    return root


def export_onnx(model: Any, path: str | os.PathLike, precision: str = "fp32") -> Path:
    """Export the trained LeNet to an edgecnn ``.onnx`` file (fp32 or fp16), with metadata.

    Uses :func:`edgecnn.exporters.export` with the trained weights when the exporter API is
    installed; otherwise the exporter's building blocks (TorchScript export, fp16 conversion).
    """
    import tempfile

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from edgecnn.exporters.api import export
    except ImportError:
        export = None
    if export is not None:
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp) / "lenet5-digits.pt"
            torch.save(model.state_dict(), weights)
            export("lenet5", path, weights=weights, precision=precision, force=True, progress=False)
        return path
    import onnx  # fallback: the exporter's blocks, metadata written here

    from edgecnn import __version__
    from edgecnn.exporters.onnx_export import model_opset, torch_to_onnx
    from edgecnn.metadata import encode

    onx = torch_to_onnx(model, torch.zeros(1, 1, SIZE, SIZE))
    if precision == "fp16":
        from edgecnn.exporters.fp16 import to_fp16

        onx = to_fp16(onx, keep_io_types=True)
    meta = {"model": "lenet5", "family": "lenet", "input_layout": "NCHW", "input_size": [SIZE, SIZE],
            "channels": 1, "mean": [0.5], "std": [0.5], "num_classes": 10, "class_names": "",
            "precision": precision, "io_dtype": "float32", "opset": model_opset(onx), "batch": "dynamic",
            "edgecnn_version": __version__, "source": "tools/digits.py"}
    for k, v in encode(meta).items():
        onx.metadata_props.add(key=k, value=v)
    onnx.save(onx, str(path))
    return path


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
