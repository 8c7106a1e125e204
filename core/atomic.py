"""Outputs that appear whole or not at all: write beside the target, rename on success."""
import os
import tempfile
from contextlib import contextmanager


def temporary_beside(path: str, suffix: str = ".part") -> str:
    """A new empty hidden file in the target's folder (same file system: rename is atomic)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix,
                                    dir=directory)
    os.close(handle)
    return temp


def publish(temp: str, path: str) -> None:
    """Move a finished temporary file into place with the usual permissions (mkstemp's are
    private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)
    os.replace(temp, path)


def discard(*paths: str) -> None:
    for leftover in paths:
        if os.path.exists(leftover):
            os.remove(leftover)


@contextmanager
def atomic_output(path: str, suffix: str = ".part"):
    """Yield a temporary path; it replaces ``path`` if the block succeeds, else it is removed."""
    temp = temporary_beside(path, suffix)
    try:
        yield temp
        publish(temp, path)
    except BaseException:
        discard(temp)
        raise


def write_text(path: str, text: str) -> None:
    with atomic_output(path) as temp:
        with open(temp, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
