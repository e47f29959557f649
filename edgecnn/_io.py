"""Small file helpers shared by every part (torch-free)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgecnn.errors import EdgecnnError


def umask() -> int:
    """The process umask, read without changing it where the system allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only where /proc is missing)
    os.umask(mask)
    return mask


def new_file_mode(target: str | os.PathLike) -> int:
    """The mode a file written to ``target`` gets: the replaced file's own mode, else ``0o666`` less the umask
    (what ``open()`` gives; ``mkstemp`` alone would make every file 0600)."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~umask()


def _write_error(target: Path, e: OSError) -> EdgecnnError:
    where = f" ({e.filename})" if e.filename and str(e.filename) != str(target) else ""
    return EdgecnnError(f"cannot write {target}: {e.strerror or e}{where}; choose another path with -o")


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move the finished temporary file onto ``target``: replace it, or (``overwrite=False``) only if nothing is
    there yet, decided by the file system (an exclusive hard link), so two runs cannot both pass an exists check."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise EdgecnnError(f"{target} appeared while this run was writing it (another run?); it was left as it "
                           "is: use --force to replace it") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # no hard links here: claim the name first
        os.close(fd)
        os.replace(tmp, target)
        return
    os.unlink(tmp)


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "", *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it onto ``target`` only if the block succeeds.

    An interrupted or failed write leaves no file under the target name (and no temporary file: the CLI turns
    SIGTERM into an exception, so this cleanup runs). The file gets the mode of the file it replaces, or the
    umask's. ``overwrite=False`` refuses to replace a file that appeared meanwhile (see :func:`_publish`).
    The missing folders of ``target`` are created; a folder or temporary file that cannot be made is one
    :class:`EdgecnnError` line.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent)
        os.close(fd)
    except OSError as e:
        raise _write_error(target, e) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            os.chmod(tmp_path, new_file_mode(target))
            _publish(tmp_path, target, overwrite)
        except OSError as e:
            raise _write_error(target, e) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(target: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def user_cache_dir() -> Path:
    """edgecnn's cache root (not created here): ``$EDGECNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgecnn``,
    else ``~/.cache/edgecnn``. Exports, the measured compute peak and TensorRT engines live below it."""
    override = os.environ.get("EDGECNN_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgecnn"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
