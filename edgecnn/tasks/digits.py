"""LeNet-5 (LeCun et al., 1998) on the UCI handwritten digits (Alpaydin & Kaynak, 1998) bundled with scikit-learn.

    from edgecnn.tasks.digits import digits_task

    task = digits_task()        # trains once (about a minute on 2 cores), then reuses the cached weights
    task.weights, task.calib_x.shape, task.eval_x.shape, task.eval_labels[:5]

The 1,797 8x8 digits (no download) are upsampled to 32x32 grayscale images. A fixed stratified split
(seed 0) gives 1,437 training and 360 test images. Calibration data is taken from the training split and
accuracy is measured on the test split, so the two never share an image. Training inputs go through the
runtime's own preprocessing (:func:`edgecnn.runtime.preprocess`), so exported models see exactly what
they were trained on. The trained weights are cached under ``<edgecnn cache>/tasks/digits`` (a
``state_dict`` read back with ``torch.load(weights_only=True)``).

scikit-learn is the ``digits`` extra (``pip install 'edgecnn[digits]'``); torch is imported only to train.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgecnn._io import atomic_path, user_cache_dir
from edgecnn.errors import EdgecnnError
from edgecnn.runtime.images import PreprocessConfig, preprocess

#: bump when the training recipe changes, so cached weights of an older recipe are not reused
RECIPE_VERSION = 1
DEFAULT_EPOCHS = 12
CALIB_IMAGES = 256


def _sklearn() -> tuple[Any, Any]:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise EdgecnnError("the digits task needs scikit-learn: pip install 'edgecnn[digits]'") from None
    return load_digits, train_test_split


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
    load_digits, train_test_split = _sklearn()
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
    """Export a trained LeNet (torch module) to an edgecnn ``.onnx`` file (fp32 or fp16) with
    :func:`edgecnn.exporters.export` (validated, with metadata)."""
    import tempfile

    import torch

    from edgecnn.exporters.api import export

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "lenet5-digits.pt"
        torch.save(model.state_dict(), weights)
        export("lenet5", path, weights=weights, precision=precision, force=True, progress=False)
    return path


@dataclass(frozen=True)
class DigitsTask:
    """Trained LeNet-5 weights and the task's data, preprocessed (N x 1 x 32 x 32 float32)."""

    weights: Path
    #: calibration inputs: the first ``CALIB_IMAGES`` training images
    calib_x: np.ndarray
    #: held-out test inputs and labels: what accuracy is measured on
    eval_x: np.ndarray
    eval_labels: np.ndarray
    #: True when the weights were trained by this call (False: read from the cache)
    trained: bool = False

    @property
    def description(self) -> str:
        return (f"digits task: LeNet-5 on scikit-learn's UCI digits, {len(self.eval_x)} held-out test images; "
                f"calibration on {len(self.calib_x)} training images")


def weights_path(epochs: int = DEFAULT_EPOCHS, seed: int = 0) -> Path:
    """Where the trained weights are cached: ``<edgecnn cache>/tasks/digits/lenet5-r<recipe>-e<epochs>-s<seed>.pt``."""
    return user_cache_dir() / "tasks" / "digits" / f"lenet5-r{RECIPE_VERSION}-e{epochs}-s{seed}.pt"


def trained_weights(split: DigitsSplit | None = None, *, epochs: int = DEFAULT_EPOCHS, seed: int = 0,
                    log: Any = None) -> tuple[Path, bool]:
    """``(path, trained_now)``: the cached LeNet-5 digits weights, training them first when absent."""
    path = weights_path(epochs, seed)
    if path.is_file():
        return path, False
    try:
        import torch
    except ImportError:
        raise EdgecnnError("training LeNet-5 on the digits task needs torch: pip install 'edgecnn[export]'") from None
    split = split or load_split()
    model = train_lenet(to_array(split.train_images), split.train_labels, epochs=epochs, seed=seed, log=log)
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(model.state_dict(), tmp)
    return path, True


def digits_task(*, epochs: int = DEFAULT_EPOCHS, seed: int = 0, calib_images: int = CALIB_IMAGES,
                log: Any = None) -> DigitsTask:
    """The digits task: cached trained weights (trained on first use), calibration and test inputs."""
    split = load_split()
    path, trained = trained_weights(split, epochs=epochs, seed=seed, log=log)
    return DigitsTask(weights=path, calib_x=to_array(split.train_images[:calib_images]),
                      eval_x=to_array(split.test_images), eval_labels=split.test_labels, trained=trained)
