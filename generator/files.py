"""Writing one file safely outside the output tree (stores, the stat cache, a new fleet)."""

from __future__ import annotations

import os


def atomic_write(path: str, content: bytes, mode: int) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see
    half a file, and the file never exists with looser permissions than ``mode``."""
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".k10fleet-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
