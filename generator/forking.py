"""The second core: how many processes a large render may use, and a forked helper."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def parallel_jobs() -> int:
    """Processes worth forking for large renders: the cores this process may use, at most
    two (the measured gain stops there), or ``K10FLEET_JOBS`` (1 turns forking off)."""
    try:
        wanted = int(os.environ.get("K10FLEET_JOBS", "0"))
    except ValueError:
        wanted = 0
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return max(1, min(2, wanted or available))


def in_forked_child(work: Callable[[], Any]) -> Callable[[], Any]:
    """Start ``work`` in a forked process (on the other core) and return the call that waits
    for it: its picklable result, or OSError carrying the helper's error message."""
    import pickle  # only a large job forks

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; coverage cannot follow a fork
        code = 1
        try:
            os.close(read_end)
            try:
                payload, code = pickle.dumps((True, work()), pickle.HIGHEST_PROTOCOL), 0
            except BaseException as e:  # anything at all: the parent decides what it means
                payload = pickle.dumps((False, str(e)[:500]))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)
        finally:
            os._exit(code)
    os.close(write_end)

    def wait() -> Any:
        try:
            with os.fdopen(read_end, "rb") as pipe:
                done, value = pickle.loads(pipe.read())  # read whole: far fewer system calls
        except (EOFError, OSError, pickle.UnpicklingError):
            done, value = False, "a helper process ended without an answer"
        _, status = os.waitpid(pid, 0)
        if not done or os.waitstatus_to_exitcode(status) != 0:
            raise OSError(errno.EIO, str(value))
        return value

    return wait


class SharedQueue:
    """Parts of a job, taken by whichever process is free (the parent and a forked helper
    read the numbers of the parts from one pipe: a read of 4 bytes takes 4 bytes whole, and
    both processes run until the pipe is empty, so neither waits for the other's slow
    part). Make it before forking; each process iterates ``taken``; ``close`` after."""

    _ITEM = 4

    def __init__(self, parts: Sequence[T]) -> None:
        if len(parts) * self._ITEM > 65536:  # a pipe holds 64 KiB: written before any read
            raise ValueError("too many parts for one pipe")
        self._parts: Sequence[Any] = parts
        self._read, write = os.pipe()
        try:
            os.write(write, b"".join(i.to_bytes(self._ITEM, "little") for i in range(len(parts))))
        finally:
            os.close(write)

    def taken(self) -> Iterator[Any]:
        """The parts this process takes, until none is left."""
        while len(number := os.read(self._read, self._ITEM)) == self._ITEM:
            yield self._parts[int.from_bytes(number, "little")]

    def close(self) -> None:
        os.close(self._read)
