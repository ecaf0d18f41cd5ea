"""What the writer knew about each file of the tree when it last wrote or verified it.

The cache lies beside the tree (``.NAME.k10fleet-cache.json``, like the lock), never in
it. For each file it records the ``lstat`` signature (size, mtime, ctime, inode, mode) and
the SHA-256 of the bytes the writer wrote or read there. It only lets the writer skip
*reading* a file whose signature is unchanged: rendering, validation and reporting always
run in full.

Rules that keep it honest:
- only the writer records it, under the tree's lock, after it wrote or verified the tree
  (never ``render --check``, never a reader);
- an entry is trusted only when the file's signature is exactly the recorded one and the
  file last changed before the run that recorded it began (minus a clock margin), so a
  change in the same clock tick as the recording ("racy clean", as Git calls it) is
  always re-read;
- any cache that does not parse into exactly this shape is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from generator.files import atomic_write

FORMAT = 2
MARGIN_NS = 1_000_000_000  # file system clocks are coarse and may lag time.time_ns()
_SHA = re.compile(r"[0-9a-f]{64}\Z")

Signature = tuple[int, int, int, int, int]  # size, mtime_ns, ctime_ns, inode, st_mode


def cache_path(out_dir: str) -> str:
    parent, name = os.path.split(os.path.abspath(out_dir))
    return os.path.join(parent, f".{name}.k10fleet-cache.json")


def signature(path: str) -> Signature | None:
    """What changes whenever a file's content or mode changes (as Git's index relies on)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_mode)


def now() -> int:
    """A run's start, as the cache records it: files changed after it are never trusted."""
    return time.time_ns()


@dataclass
class StatCache:
    """The recorded entries: relative path -> (signature, sha256 of its bytes)."""

    started_ns: int = 0
    entries: dict[str, tuple[Signature, str]] = field(default_factory=dict)

    def known_sha(self, out_dir: str, rel: str) -> str | None:
        """The SHA-256 of the file's bytes if its signature proves it unchanged, else None."""
        entry = self.entries.get(rel)
        if entry is None:
            return None
        recorded, sha = entry
        current = signature(os.path.join(out_dir, rel))
        if current != recorded:
            return None
        if max(recorded[1], recorded[2]) >= self.started_ns - MARGIN_NS:
            return None  # changed while (or just before) the recording run: re-read it
        return sha


def load(out_dir: str) -> StatCache:
    """The tree's cache, or an empty one when it is absent, unreadable or malformed."""
    try:
        with open(cache_path(out_dir), "rb") as handle:
            doc = json.loads(handle.read(64 << 20))
    except (OSError, ValueError, RecursionError):
        return StatCache()
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return StatCache()
    started, files = doc.get("started_ns"), doc.get("files")
    if type(started) is not int or not isinstance(files, dict):
        return StatCache()
    cache = StatCache(started)
    for rel, entry in files.items():
        if not (isinstance(entry, list) and len(entry) == 6
                and all(type(n) is int for n in entry[:5])
                and isinstance(entry[5], str) and _SHA.match(entry[5])):
            return StatCache()
        cache.entries[rel] = ((entry[0], entry[1], entry[2], entry[3], entry[4]), entry[5])
    return cache


def record(out_dir: str, started_ns: int, files: Iterable[tuple[str, str]]) -> None:
    """Record the signatures of ``files`` (relative path, sha256 of the bytes the caller
    wrote or verified there). Call it only under the tree's lock. Best effort: the cache is
    only a shortcut, so a failure to write it changes nothing."""
    entries: dict[str, list[int | str]] = {}
    for rel, sha in files:
        sig = signature(os.path.join(out_dir, rel))
        if sig is not None:
            entries[rel] = [*sig, sha]
    doc = {"format": FORMAT, "started_ns": started_ns, "files": entries}
    with contextlib.suppress(OSError):
        atomic_write(cache_path(out_dir), json.dumps(doc, separators=(",", ":")).encode(),
                     0o644)


def forget(out_dir: str) -> None:
    """Drop the cache (before a tree changes under the lock)."""
    with contextlib.suppress(OSError):
        os.unlink(cache_path(out_dir))


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
