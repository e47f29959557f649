"""The output policy: where a command may write, decided once for every writer (torch-free, stdlib only).

- ``-o DIR/`` (a trailing separator, or an existing folder) means ``DIR/<default name>``; a missing folder is
  created when the file is written (``edgecnn._io.atomic_path``), never before the work succeeds.
- An existing file is replaced only with ``force``; a folder is never replaced by a file.
- Writability is checked up front, on the nearest folder that exists, so a long job does not fail at the end.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgecnn.errors import EdgecnnError


def is_folder_arg(output: str | os.PathLike) -> bool:
    """True when ``output`` names a folder: it exists as one, or it ends with a path separator."""
    text = os.fspath(output)
    return Path(text).expanduser().is_dir() or text.endswith(("/", os.sep))


def plan_output(output: str | os.PathLike | None, default_name: str, *, force: bool = False) -> Path:
    """The file a command will write for ``-o output`` (file, folder, or None = current folder).

    Creates nothing. Raises :class:`EdgecnnError` (one line) when the target is a folder, exists and ``force``
    is off, or lies under a folder that cannot be written.
    """
    if output is None:
        target = Path.cwd() / default_name
    elif is_folder_arg(output):
        target = Path(output).expanduser() / default_name
    else:
        target = Path(output).expanduser()
    if target.is_dir():
        raise EdgecnnError(f"output path {target} is a folder; name a file, or end the folder with '/'")
    if target.exists() and not force:
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
