"""Calibration data for static int8 quantization: an image folder, a ``.npy`` file or ``random:N``.

    data = load_calibration("calib_images/", config)        # preprocessed like the runtime does
    reader = ArrayReader("input", data, batch_size=8)       # onnxruntime CalibrationDataReader

Random calibration sets activation ranges from noise: fine for speed tests, wrong for accuracy. It
is reported loudly (``CalibrationData.random``, a warning, and the CLI's note).
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.datasets import list_images, load_array
from edgecnn.runtime.images import PreprocessConfig

RANDOM_NOTE = ("random calibration data: the int8 ranges come from noise, so accuracy is meaningless; "
               "use it for speed tests only and calibrate with --calib DIR or FILE.npy for real use.")
DEFAULT_CALIB_SIZE = 128


class RandomCalibrationWarning(UserWarning):
    """Calibration used random data: the quantized model is for speed tests only."""


@dataclass(frozen=True)
class CalibrationData:
    """Preprocessed NCHW calibration inputs and where they came from."""

    data: np.ndarray
    source: str
    random: bool = False

    def __len__(self) -> int:
        return int(self.data.shape[0])


def show_progress(quiet: bool = False) -> bool:
    """Progress bars go to stderr, only when it is a terminal and output is not JSON/quiet."""
    return not quiet and sys.stderr.isatty()


def load_calibration(spec: str | os.PathLike | np.ndarray, config: PreprocessConfig, *,
                     limit: int | None = DEFAULT_CALIB_SIZE, seed: int = 0) -> CalibrationData:
    """Turn a calibration spec into preprocessed inputs of the model's shape and dtype.

    ``spec``: a folder of images (any depth; preprocessed with the runtime's pipeline from the
    model's metadata), an ``.npy`` file holding an N x C x H x W array (already preprocessed), an
    array, or ``random:N`` (N standard-normal samples; warns). ``limit`` caps the number of samples
    (the first ones, in sorted file order).
    """
    sample = tuple(config.sample_shape)  # (C, H, W), or (H, W, C) for an NHWC model
    dims = " x ".join(map(str, sample))
    if isinstance(spec, np.ndarray):
        arr, source, rand = spec, "array", False
    elif isinstance(spec, str) and spec.startswith("random"):
        _, _, count = spec.partition(":")
        try:
            n = int(count or DEFAULT_CALIB_SIZE)
        except ValueError:
            raise EdgecnnError(f"bad calibration spec {spec!r}: use random:N with an integer N, e.g. "
                               "random:32.") from None
        if n < 1:
            raise EdgecnnError(f"bad calibration spec {spec!r}: N must be >= 1.")
        warnings.warn(RANDOM_NOTE, RandomCalibrationWarning, stacklevel=2)
        arr = np.random.default_rng(seed).standard_normal((n, *sample)).astype(np.float32)
        return CalibrationData(arr.astype(config.dtype), f"random:{n}", True)
    else:
        path = Path(spec)
        if path.is_dir():
            paths = list_images(path, limit=limit)
            arr, source, rand = load_array(paths, config), f"{path} ({len(paths)} images)", False
        elif path.suffix.lower() == ".npy":
            if not path.is_file():
                raise EdgecnnError(f"calibration file not found: {path}")
            try:
                arr = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise EdgecnnError(f"cannot read calibration array {path}: {str(e).splitlines()[0]}") from None
            source, rand = str(path), False
        elif not path.exists():
            raise EdgecnnError(f"calibration data not found: {path} (give a folder of images, an .npy file "
                               "or random:N).")
        else:
            raise EdgecnnError(f"unsupported calibration data {path}: give a folder of images, an N x {dims} "
                               ".npy file or random:N.")
    arr = np.asarray(arr)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or tuple(arr.shape[1:]) != sample:
        raise EdgecnnError(f"calibration data {source} has shape {list(arr.shape)}; the model needs "
                           f"[N, {', '.join(map(str, sample))}] (preprocessed like the runtime does).")
    if arr.shape[0] == 0:
        raise EdgecnnError(f"calibration data {source} is empty.")
    if not np.issubdtype(arr.dtype, np.floating):
        raise EdgecnnError(f"calibration data {source} is {arr.dtype.name}; expected preprocessed float data.")
    if limit:
        arr = arr[:limit]
    return CalibrationData(np.ascontiguousarray(arr.astype(config.dtype, copy=False)), source, rand)


class ArrayReader(CalibrationDataReader):
    """ONNX Runtime calibration reader over an NCHW array, in batches, with an optional tqdm bar."""

    def __init__(self, input_name: str, data: np.ndarray, batch_size: int = 1, *, progress: bool = False,
                 desc: str = "calibrating") -> None:
        self.input_name = input_name
        self.data = data
        self.batch_size = max(1, int(batch_size))
        self.progress = progress
        self.desc = desc
        self._bar: Any = None
        self.rewind()

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def rewind(self) -> None:
        """Start again from the first batch."""
        self._pos = 0
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._pos == 0 and self.progress and self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=len(self), desc=self.desc, unit="batch", file=sys.stderr, leave=False)
        if self._pos >= len(self.data):
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            return None
        batch = self.data[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        if self._bar is not None:
            self._bar.update(1)
        return {self.input_name: np.ascontiguousarray(batch)}


def fit_batch(data: np.ndarray, batch: int | None) -> np.ndarray:
    """Calibration rows for a model with a fixed ``batch`` dimension: a whole number of batches.

    Too few rows are repeated up to one batch; otherwise the rows past the last whole batch are dropped.
    A dynamic batch (None) keeps every row.
    """
    if not batch or len(data) % batch == 0:
        return data
    if len(data) < batch:
        return np.resize(data, (batch, *data.shape[1:])).astype(data.dtype)
    return data[: len(data) - len(data) % batch]
