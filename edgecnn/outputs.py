"""The output policy: where a command may write, decided once for every writer (torch-free, stdlib only).

- ``-o DIR/`` (a trailing separator, or an existing folder) means ``DIR/<default name>``; a missing folder is
  created when the file is written (``edgecnn._io.atomic_path``), never before the work succeeds.
- An existing file is replaced only with ``force``; a folder is never replaced by a file.
- Writability is checked up front, on the nearest folder that exists, so a long job does not fail at the end.
- A file that is one of the command's inputs (the same file, by ``os.path.samefile``, through any link or
  normalised copy) is never the output, ``force`` or not.
- Names that become file or folder names (``--name``, a model name from a file's metadata) are plain names
  (:func:`plain_name`), never paths.
- Files are written by :func:`edgecnn._io.atomic_path`: complete or not at all, with the umask's mode (a replaced
  file keeps its own), and without ``force`` published by an exclusive link, so two runs cannot both write.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edgecnn.errors import EdgecnnError


def is_folder_arg(output: str | os.PathLike) -> bool:
    """True when ``output`` names a folder: it exists as one, or it ends with a path separator."""
    text = os.fspath(output)
    return Path(text).expanduser().is_dir() or text.endswith(("/", os.sep))


def plain_name(name: str, what: str = "--name") -> str:
    """``name`` when it is a plain file or folder name (no separator, not ``.``/``..``, no control character,
    at most 200 characters); one :class:`EdgecnnError` line otherwise."""
    bad = (not name or name in (".", "..") or "/" in name or "\\" in name or len(name) > 200
           or any(ord(c) < 32 or ord(c) == 127 for c in name))
    if bad:
        from edgecnn.tables import printable

        raise EdgecnnError(f"{what} must be a plain name (no '/', '\\', '..' or control characters, at most 200 "
                           f"characters), got {printable(repr(name))}; choose the folder with -o")
    return name


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` are one file on disk (links followed); False when either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_inputs(target: str | os.PathLike, inputs: Sequence[str | os.PathLike]) -> None:
    """Fail when ``target`` is one of ``inputs`` (the user's file, or the normalised copy made from it)."""
    for source in inputs:
        if source is not None and same_file(target, source):
            raise EdgecnnError(f"output {target} is the input file {source}; write the result to another file "
                               "with -o (an input is never replaced, --force or not)")


def refuse_existing(paths: Sequence[str | os.PathLike], force: bool) -> None:
    """Fail when one of ``paths`` (the files a command is about to write) exists and ``force`` is off."""
    if force:
        return
    for p in paths:
        if Path(p).is_dir():
            raise EdgecnnError(f"output path {p} is a folder; name a file, or end the folder with '/'")
        if Path(p).exists() or Path(p).is_symlink():
            raise EdgecnnError(f"{p} already exists; use --force to overwrite it")


def plan_output(output: str | os.PathLike | None, default_name: str, *, force: bool = False,
                inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """The file a command will write for ``-o output`` (file, folder, or None = current folder).

    Creates nothing. Raises :class:`EdgecnnError` (one line) when the target is a folder, is one of ``inputs``,
    exists and ``force`` is off, or lies under a folder that cannot be written.
    """
    if output is None:
        target = Path.cwd() / default_name
    elif is_folder_arg(output):
        target = Path(output).expanduser() / default_name
    else:
        target = Path(output).expanduser()
    if target.is_dir():
        raise EdgecnnError(f"output path {target} is a folder; name a file, or end the folder with '/'")
    refuse_inputs(target, inputs)
    if (target.exists() or target.is_symlink()) and not force:
        raise EdgecnnError(f"{target} already exists; use --force (force=True) to overwrite it")
    check_writable(target.parent)
    return target


def check_writable(folder: str | os.PathLike) -> None:
    """Fail now if ``folder`` (or, when missing, the nearest folder above it that exists) cannot take a new file."""
    folder = Path(folder).absolute()
    probe_dir = folder
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise EdgecnnError(f"cannot create folder {folder}: {probe_dir} is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".edgecnn-probe-", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise EdgecnnError(f"cannot write to {probe_dir}: {e.strerror or e}; choose another path with -o") from None
