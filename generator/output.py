"""The only writer of the output tree.

Guarantees: deterministic bytes; files whose bytes and mode are unchanged are
never rewritten (same inode, same mtime); only files recorded in the tree's
manifest are ever pruned, never a user's file; and a crash at any moment leaves
either the old tree or the complete new one. The new tree is assembled in a
sibling staging directory (unchanged and user files hard-linked, so it is
cheap) and swapped in with one atomic ``renameat2(RENAME_EXCHANGE)``.
Nothing here knows about Kasten.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from generator.errors import EnvironmentFailure, InvalidInput, OutputLocked
from generator.problems import Problem
from generator.tools import in_forked_child, parallel_jobs

MANIFEST = ".k10fleet-manifest.json"
MANIFEST_FORMAT = 1
_ENTRY_MODE = re.compile(r"0[0-7]{3}\Z")
STAGE_MARK = ".k10fleet-stage-"


@dataclass(frozen=True)
class FileSpec:
    """Desired content of one file and who owns it (``render`` or ``inject``)."""

    content: bytes
    mode: int = 0o644
    owner: str = "render"
    fingerprint: str | None = None  # inject: salted digest of the plaintext, never the secret
    inputs: str | None = None  # inject: the non-secret inputs it was made from (lifecycle.py)


def _compact(value: Any) -> str:
    if isinstance(value, dict) and all(type(v) is str for v in value.values()):
        # file entries (thousands of them): the C string encoder, without json.dumps' setup
        return "{" + ", ".join(f"{_string(k)}: {_string(value[k])}" for k in sorted(value)) + "}"
    if type(value) is str:
        return _string(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


_string = json.encoder.encode_basestring  # the C encoder json.dumps(ensure_ascii=False) uses


@dataclass
class Manifest:
    """What the tool wrote into a tree, plus opaque metadata for its callers."""

    files: dict[str, dict[str, str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def owned_by(self, owner: str) -> dict[str, dict[str, str]]:
        return {p: e for p, e in self.files.items() if e.get("owner") == owner}

    def to_bytes(self) -> bytes:
        """Stable JSON, one line per entry so Git diffs stay readable (and fast to write)."""
        doc = {"format": MANIFEST_FORMAT, "generator": "k10fleet", **self.meta,
               "files": self.files}
        blocks = []
        for key in sorted(doc):
            value = doc[key]
            if isinstance(value, dict) and value:
                entries = ",\n".join(f"    {_compact(k)}: {_compact(value[k])}"
                                      for k in sorted(value))
                blocks.append(f"  {_compact(key)}: {{\n{entries}\n  }}")
            else:
                blocks.append(f"  {_compact(key)}: {_compact(value)}")
        return ("{\n" + ",\n".join(blocks) + "\n}\n").encode()


@dataclass
class Drift:
    """How the tree on disk differs from the desired one."""

    missing: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.differing or self.extra)


@dataclass
class WriteResult:
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def read_manifest(out_dir: str) -> Manifest:
    """The tree's manifest; an absent tree or manifest is an empty one."""
    path = os.path.join(out_dir, MANIFEST)
    try:
        with open(path, "rb") as handle:
            doc = json.loads(handle.read())
    except FileNotFoundError:
        return Manifest()
    except (OSError, ValueError) as e:
        raise InvalidInput([Problem(path, 1, 1, "", f"cannot read the k10fleet manifest ({e}); "
                                    "restore it from Git, or delete it and remove stale "
                                    "generated files by hand", rule="manifest")]) from e
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict) or not all(
            isinstance(entry, dict) and _ENTRY_MODE.match(str(entry.get("mode", "0644")))
            and isinstance(entry.get("owner", ""), str) for entry in doc["files"].values()):
        raise InvalidInput([Problem(path, 1, 1, "", "not a valid k10fleet manifest; restore it "
                                    "from Git or delete it", rule="manifest")])
    meta = {k: v for k, v in doc.items() if k not in ("generator", "format", "files")}
    return Manifest(files=doc["files"], meta=meta)


def _sibling(out_dir: str, suffix: str) -> str:
    parent, name = os.path.split(os.path.abspath(out_dir))
    return os.path.join(parent, f".{name}{suffix}")


@contextmanager
def locked(out_dir: str) -> Iterator[None]:
    """Exclusive lock on a sibling ``.NAME.lock`` so two runs never interleave."""
    lock_path = _sibling(out_dir, ".lock")
    try:
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise EnvironmentFailure(f"cannot create lock file {lock_path}: {e.strerror}") from e
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise OutputLocked(f"another k10fleet run is writing {out_dir} (lock {lock_path}); "
                               "wait for it to finish and run again") from e
        yield
    finally:
        os.close(handle)


def _matches(path: str, spec: FileSpec) -> bool:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_size != len(spec.content):
        return False
    # Git records only the executable bit, so a clone under another umask must not drift.
    if bool(info.st_mode & 0o111) != bool(spec.mode & 0o111):
        return False
    with open(path, "rb") as handle:
        return handle.read() == spec.content


def _desired(files: Mapping[str, FileSpec], meta: Mapping[str, Any]) -> dict[str, FileSpec]:
    manifest = Manifest(
        files={p: _entry(s) for p, s in sorted(files.items())},
        meta=dict(meta),
    )
    return {**files, MANIFEST: FileSpec(manifest.to_bytes())}


def _entry(spec: FileSpec) -> dict[str, str]:
    entry = {"mode": f"{spec.mode:04o}", "owner": spec.owner, "sha256": sha256(spec.content)}
    if spec.fingerprint:
        entry["fingerprint"] = spec.fingerprint
    if spec.inputs:
        entry["inputs"] = spec.inputs
    return entry


def _check_paths(files: Mapping[str, FileSpec]) -> None:
    for path in files:
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"unsafe output path {path!r}")


def diff_tree(out_dir: str, files: Mapping[str, FileSpec], meta: Mapping[str, Any]) -> Drift:
    """Compare without writing: what ``write_tree`` would create, change and prune."""
    _check_paths(files)
    return _diff(out_dir, _desired(files, meta))


def _diff(out_dir: str, desired: Mapping[str, FileSpec]) -> Drift:
    drift = Drift()
    if not os.path.lexists(out_dir):  # a first render: everything is missing, nothing to stat
        drift.missing = sorted(desired)
        return drift
    for rel, spec in sorted(desired.items()):
        full = os.path.join(out_dir, rel)
        if not os.path.lexists(full):
            drift.missing.append(rel)
        elif not _matches(full, spec):
            drift.differing.append(rel)
    old = read_manifest(out_dir)
    drift.extra = sorted(p for p in old.files
                         if p not in desired and os.path.lexists(os.path.join(out_dir, p)))
    return drift


def _renameat2_exchange() -> Any:
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    return getattr(libc, "renameat2", None)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: str, b: str) -> bool:
    """Atomically swap two directories; False when the platform cannot."""
    fn = _renameat2_exchange()
    if fn is None:
        return False
    result = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), a)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_file(path: str, spec: FileSpec, umask: int = 0o022) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, spec.mode)
    try:
        view = memoryview(spec.content)
        while view:
            view = view[os.write(fd, view):]
        if spec.mode & umask:  # the umask took bits away: set the mode we promise
            os.fchmod(fd, spec.mode)
    finally:
        os.close(fd)


def _walk(root: str, rel: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    with os.scandir(os.path.join(root, rel) if rel else root) as entries:
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            yield child, entry
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(root, child)


def remove_stale_staging(out_dir: str) -> None:
    """Staging left by a killed run is removed by the next one (under the lock)."""
    parent, name = os.path.split(os.path.abspath(out_dir))
    prefix = f".{name}{STAGE_MARK}"
    for entry in os.scandir(parent):
        if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


Progress = Callable[[int, int], None]


def _stage(out_dir: str, stage: str, desired: Mapping[str, FileSpec], changed: set[str],
           old: Manifest, result: WriteResult, progress: Progress | None = None) -> None:
    made: set[str] = {""}

    def ensure_dir(rel: str) -> None:
        if rel in made:
            return
        ensure_dir(os.path.dirname(rel))
        old_path = os.path.join(out_dir, rel)
        if os.path.lexists(old_path) and not stat.S_ISDIR(os.lstat(old_path).st_mode):
            raise EnvironmentFailure(f"{old_path} is not a directory (a symlink or file?); "
                                     "k10fleet needs a real directory there: move it away")
        try:
            os.mkdir(os.path.join(stage, rel))
        except FileExistsError as e:
            raise EnvironmentFailure(f"{old_path} is in the way of a generated file") from e
        if os.path.isdir(old_path):  # keep the modes of existing directories
            os.chmod(os.path.join(stage, rel), stat.S_IMODE(os.lstat(old_path).st_mode))
        made.add(rel)

    keep_links: set[str] = set()
    if os.path.isdir(out_dir):
        dirs_with_files: set[str] = set()
        all_dirs: list[str] = []
        for rel, entry in _walk(out_dir):
            if entry.is_dir(follow_symlinks=False):
                all_dirs.append(rel)
                continue
            parent = os.path.dirname(rel)
            while True:
                dirs_with_files.add(parent)
                if not parent:
                    break
                parent = os.path.dirname(parent)
            if rel in desired:
                if rel not in changed:
                    keep_links.add(rel)
                    ensure_dir(os.path.dirname(rel))
                    os.link(entry.path, os.path.join(stage, rel), follow_symlinks=False)
            elif rel in old.files:
                result.removed.append(rel)  # ours and no longer produced: pruned
            else:  # the user's file: always kept
                ensure_dir(os.path.dirname(rel))
                os.link(entry.path, os.path.join(stage, rel), follow_symlinks=False)
        for rel in all_dirs:  # empty directories the user made stay
            if rel not in dirs_with_files:
                ensure_dir(rel)
    umask = _current_umask()
    to_write = []
    for rel in sorted(desired):
        if rel in keep_links:
            result.unchanged += 1
        else:
            ensure_dir(os.path.dirname(rel))
            to_write.append(rel)
    share = to_write[1::2] if len(to_write) >= PARALLEL_WRITES and parallel_jobs() > 1 else []
    # file creation is most of a cold render: a forked helper writes every second file
    helper = in_forked_child(lambda: _write_files(
        stage, [(rel, desired[rel]) for rel in share], umask)) if share else None
    mine = to_write[0::2] if share else to_write
    try:
        for index, rel in enumerate(mine):
            if progress is not None and index % 250 == 0:
                done = result.unchanged + (2 * index if share else index)
                progress(min(done, len(desired)), len(desired))
            _write_file(os.path.join(stage, rel), desired[rel], umask)
    finally:
        if helper is not None:
            helper()  # always reaped; raises if its half failed
    result.written.extend(rel for rel in to_write if rel != MANIFEST)


PARALLEL_WRITES = 2000  # files; fewer are written faster than a second process starts


def _write_files(stage: str, files: list[tuple[str, FileSpec]], umask: int) -> None:
    for rel, spec in files:
        _write_file(os.path.join(stage, rel), spec, umask)


def write_tree(out_dir: str, files: Mapping[str, FileSpec], meta: Mapping[str, Any],
               progress: Progress | None = None) -> WriteResult:
    """Make ``out_dir`` hold exactly ``files`` (plus the user's own files), atomically."""
    _check_paths(files)
    desired = _desired(files, meta)
    out_dir = os.path.realpath(out_dir)
    with locked(out_dir):
        remove_stale_staging(out_dir)
        old = read_manifest(out_dir)
        drift = _diff(out_dir, desired)
        if drift.clean:
            return WriteResult(unchanged=len(desired) - 1)
        parent, name = os.path.split(os.path.abspath(out_dir))
        stage = tempfile.mkdtemp(prefix=f".{name}{STAGE_MARK}", dir=parent)
        result = WriteResult()
        try:
            changed = set(drift.missing) | set(drift.differing)
            _stage(out_dir, stage, desired, changed, old, result, progress)
            if progress is not None:
                progress(len(desired), len(desired))
            if os.path.isdir(out_dir):
                os.chmod(stage, stat.S_IMODE(os.stat(out_dir).st_mode))
                if not exchange(stage, out_dir):
                    old_dir = stage + ".old"
                    os.rename(out_dir, old_dir)
                    os.rename(stage, out_dir)
                    stage = old_dir
            else:
                os.chmod(stage, 0o755)
                os.rename(stage, out_dir)
                stage = ""
        except OSError as e:
            raise EnvironmentFailure(f"cannot write {out_dir}: {e.strerror or e}; the previous "
                                     "tree is unchanged") from e
        finally:
            if stage:
                shutil.rmtree(stage, ignore_errors=True)
        result.written.sort()
        result.removed.sort()
        return result
