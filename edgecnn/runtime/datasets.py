"""Image folders for evaluation and calibration, preprocessed like :func:`edgecnn.runtime.preprocess` (no torch).

``load_image_folder(root)`` reads torchvision's ImageFolder layout (``root/<class>/<image>``): labels come
from the sub-folder names. When every class folder name is a non-negative integer (``0``, ``1``, ... ``9``)
the name *is* the class index; otherwise the index is the folder's position in sorted order (torchvision's
rule, which gives the standard ImageNet indices for ``n01440764``-style folders).

``list_images(root)`` finds every image under a folder (any depth, no labels) for calibration.

**Bad images in a folder are skipped, with a count.** Both functions screen each file before it is used: its
header is read, its declared size checked against the pixel budget (:func:`edgecnn.runtime.images.pixel_budget`)
and its data verified by Pillow, without decoding pixels. Files that fail are left out and one
:class:`SkippedImagesWarning` says how many and why (the first three reasons). A folder collected from the wild
(a scrape, a camera dump, ImageNet's own validation set) often holds a few unreadable files, and an
hour of ``batch-predict`` or a calibration run should not be lost to one of them; the count is never silent.
``strict=True`` (``--strict`` on the command line, or :func:`strict_images`) makes the first bad image an
error instead, for a run whose numbers must cover every file (a benchmark, an accuracy figure to publish).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edgecnn.errors import EdgecnnError, EdgecnnWarning
from edgecnn.runtime.images import PreprocessConfig, open_image, pixel_budget, preprocess

#: file suffixes treated as images (lower case), as torchvision's ImageFolder
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


_STRICT: contextvars.ContextVar[bool] = contextvars.ContextVar("edgecnn_strict_images", default=False)


class SkippedImagesWarning(EdgecnnWarning):
    """Some images of a folder could not be read and were left out (the message says how many and why)."""


@contextlib.contextmanager
def strict_images(strict: bool = True) -> Iterator[None]:
    """Within the block, a bad image in a folder is an error instead of being skipped (``--strict``)."""
    token = _STRICT.set(bool(strict))
    try:
        yield
    finally:
        _STRICT.reset(token)


def image_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable image (header, declared size, Pillow's verify), without decoding pixels."""
    budget = pixel_budget()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if budget and img.width * img.height > budget:
                    return f"declares {img.width}x{img.height} pixels, over the {budget:,}-pixel limit"
                img.verify()
    except Image.DecompressionBombError:
        return f"declares more than twice the {budget:,}-pixel limit"
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for bad files
        return (str(e).splitlines()[0] if str(e) else type(e).__name__)[:200]
    return None


def screen(paths: Sequence[Path], root: Path, strict: bool | None = None) -> list[Path]:
    """``paths`` without the unreadable images; a :class:`SkippedImagesWarning` (or, strict, an error) for those."""
    strict = _STRICT.get() if strict is None else strict
    bad: list[tuple[Path, str]] = []
    good = []
    for p in paths:
        reason = image_problem(p)
        if reason is None:
            good.append(p)
            continue
        if strict:
            open_image(p)  # Pillow's own one-line error for the file, when it has one
            raise EdgecnnError(f"cannot read image {p}: {reason} (--strict)")
        bad.append((p, reason))
    if bad:
        from edgecnn.tables import printable

        first = "; ".join(f"{printable(os.path.relpath(p, root))}: {printable(r, 120)}" for p, r in bad[:3])
        warnings.warn(f"skipped {len(bad)} of {len(paths)} images in {root} that cannot be read (--strict makes "
                      f"this an error): {first}{' ...' if len(bad) > 3 else ''}", SkippedImagesWarning, stacklevel=3)
    return good


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name has an image suffix (the content is checked when it is read)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


@dataclass(frozen=True)
class ImageFolder:
    """An ImageFolder-layout dataset: ``classes[i]`` is the folder name of class index ``class_index[i]``."""

    root: Path
    classes: tuple[str, ...]
    class_index: tuple[int, ...]
    samples: tuple[tuple[Path, int], ...] = field(repr=False)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def paths(self) -> list[Path]:
        """Image paths in dataset order."""
        return [p for p, _ in self.samples]

    @property
    def labels(self) -> np.ndarray:
        """Class indices (int64), one per image."""
        return np.asarray([y for _, y in self.samples], dtype=np.int64)

    @property
    def num_classes(self) -> int:
        """Smallest number of model outputs that covers every label."""
        return max(self.class_index) + 1


def _check_dir(root: str | os.PathLike, what: str) -> Path:
    path = Path(root)
    if not path.exists():
        raise EdgecnnError(f"{what} folder not found: {path}")
    if not path.is_dir():
        raise EdgecnnError(f"{what} must be a folder of images, got a file: {path}")
    return path


def load_image_folder(root: str | os.PathLike, *, min_classes: int = 2, strict: bool | None = None) -> ImageFolder:
    """Read ``root/<class>/<image>``; raise :class:`EdgecnnError` (one line) for an unusable folder.

    Fails for: a missing folder, a folder without class sub-folders, class folders without images,
    fewer than ``min_classes`` classes (accuracy over one class says nothing). Unreadable images are skipped with
    a warning, or fail with ``strict`` (module docstring; None: :func:`strict_images`' setting).
    """
    path = _check_dir(root, "evaluation data")
    class_dirs = sorted((d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")),
                        key=lambda d: d.name)
    if not class_dirs:
        loose = sum(1 for f in path.iterdir() if f.is_file() and is_image_file(f))
        hint = (f" (found {loose} loose images: labelled data needs one sub-folder per class, "
                "root/<class>/<image>)") if loose else ""
        raise EdgecnnError(f"no class sub-folders in {path}{hint}; expected the ImageFolder layout "
                           "root/<class>/<image>.")
    names = [d.name for d in class_dirs]
    numeric = all(n.isdigit() for n in names)
    index = [int(n) for n in names] if numeric else list(range(len(names)))
    if numeric and len(set(index)) != len(index):
        raise EdgecnnError(f"class folders in {path} name the same index twice: {', '.join(names)}.")
    samples: list[tuple[Path, int]] = []
    empty: list[str] = []
    skipped = 0
    for d, y in zip(class_dirs, index, strict=True):
        files = sorted(f for f in d.rglob("*") if f.is_file() and not f.name.startswith("."))
        images = [f for f in files if is_image_file(f)]
        skipped += len(files) - len(images)
        if not images:
            empty.append(d.name)
        samples.extend((f, y) for f in images)
    if samples:
        usable = set(screen([f for f, _ in samples], path, strict))
        samples = [(f, y) for f, y in samples if f in usable]
    if not samples:
        extra = (f" ({skipped} non-image files skipped; image suffixes: {', '.join(IMAGE_EXTENSIONS)})"
                 if skipped else "")
        raise EdgecnnError(f"no images in the class folders of {path}{extra}.")
    if empty:
        raise EdgecnnError(f"class folder(s) without images in {path}: {', '.join(empty[:5])}"
                           f"{' ...' if len(empty) > 5 else ''}; remove them or add images.")
    if len(class_dirs) < min_classes:
        raise EdgecnnError(f"{path} has {len(class_dirs)} class folder ({names[0]!r}); accuracy needs at "
                           f"least {min_classes} classes, one sub-folder each.")
    return ImageFolder(root=path, classes=tuple(names), class_index=tuple(index), samples=tuple(samples))


def list_images(root: str | os.PathLike, *, limit: int | None = None, strict: bool | None = None) -> list[Path]:
    """Every readable image file under ``root`` (any depth, sorted); raise :class:`EdgecnnError` when none.
    Unreadable images are skipped with a warning, or fail with ``strict`` (see the module docstring)."""
    path = _check_dir(root, "image")
    files = sorted(f for f in path.rglob("*") if f.is_file() and not f.name.startswith("."))
    images = [f for f in files if is_image_file(f)]
    if not images:
        extra = f" ({len(files)} non-image files)" if files else ""
        raise EdgecnnError(f"no images in {path}{extra}; image suffixes: {', '.join(IMAGE_EXTENSIONS)}.")
    images = screen(images[:limit] if limit else images, path, strict)
    if not images:
        raise EdgecnnError(f"no readable images in {path}.")
    return images


def iter_batches(paths: Sequence[str | os.PathLike], config: PreprocessConfig, batch_size: int = 32
                 ) -> Iterator[np.ndarray]:
    """Preprocess ``paths`` in order, yielding NCHW batches of at most ``batch_size`` images."""
    if batch_size < 1:
        raise EdgecnnError(f"batch size must be >= 1, got {batch_size}.")
    for start in range(0, len(paths), batch_size):
        yield np.stack([preprocess(p, config) for p in paths[start:start + batch_size]])


def load_array(paths: Sequence[str | os.PathLike], config: PreprocessConfig) -> np.ndarray:
    """Preprocess every path into one NCHW array."""
    if not paths:
        raise EdgecnnError("no images given.")
    return np.stack([preprocess(p, config) for p in paths])
