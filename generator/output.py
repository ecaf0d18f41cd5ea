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

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import re
import shlex
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from generator import statcache
from generator.errors import (
    EnvironmentFailure,
    InternalError,
    InvalidInput,
    OutputLocked,
    UsageFailure,
)
from generator.forking import in_forked_child, parallel_jobs
from generator.problems import Problem

MANIFEST = ".k10fleet-manifest.json"
MANIFEST_FORMAT = 1
_ENTRY_MODE = re.compile(r"0[0-7]{3}\Z")
STAGE_MARK = ".k10fleet-stage-"


class FileSpec(NamedTuple):
    """Desired content of one file and who owns it (``render`` or ``inject``). A named
    tuple: a tree has tens of thousands, and a frozen dataclass costs 10x more to make."""

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
_PLAIN_ENTRY = frozenset({"mode", "owner", "sha256"})
_MODES = {0o644: "0644", 0o755: "0755"}


def _key(value: Any) -> str:
    return _string(value) if type(value) is str else _compact(value)


def _compact_entry(value: Any) -> str:
    """:func:`_compact`, the usual file entry (mode, owner, sha256 as strings) made at once."""
    if type(value) is dict and value.keys() == _PLAIN_ENTRY:
        mode, owner, sha = value["mode"], value["owner"], value["sha256"]
        if type(mode) is str and type(owner) is str and type(sha) is str:
            return (f'{{"mode": {_string(mode)}, "owner": {_string(owner)}, '
                    f'"sha256": {_string(sha)}}}')
    return _compact(value)


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
                entries = ",\n".join([f"    {_key(k)}: {_compact_entry(value[k])}"
                                       for k in sorted(value)])
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
    foreign: list[str] = field(default_factory=list)  # in the way and not written by k10fleet

    @property
    def clean(self) -> bool:
        return not (self.missing or self.differing or self.extra)

    def entries(self) -> Iterator[tuple[str, str]]:
        """(status, path) in report order; status is missing, differs or extra."""
        for status, paths in (("missing", self.missing), ("differs", self.differing),
                              ("extra", self.extra)):
            for path in paths:
                yield status, path


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


MAX_MANIFEST_BYTES = 256 * 1024 * 1024  # a 10,000-cluster tree's manifest is ~10 MB
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_OWNERS = ("render", "inject")
_CLUSTER_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z")
_CLUSTER_ROLES = ("primary", "secondary")


def read_manifest(out_dir: str) -> Manifest:
    """The tree's manifest; an absent tree or manifest is an empty one.

    The manifest sits in a tree anyone can edit, so it is untrusted input: a symlink is
    not followed, and every path, mode, owner and cluster in it is checked before use.
    """
    path = os.path.join(out_dir, MANIFEST)
    try:
        raw = _read_regular(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        return Manifest()
    except OSError as e:
        raise EnvironmentFailure(f"cannot read {path}: {e.strerror or e}") from e
    if raw is None:
        raise _bad_manifest(path, "it is not a regular file (a symbolic link?)")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise _bad_manifest(path, "it is not JSON") from e
    reason = _manifest_problem(doc)
    if reason:
        raise _bad_manifest(path, reason)
    meta = {k: v for k, v in doc.items() if k not in ("generator", "format", "files")}
    return Manifest(files=doc["files"], meta=meta)


def _bad_manifest(path: str, reason: str) -> InvalidInput:
    return InvalidInput([Problem(path, 1, 1, "", f"not a valid k10fleet manifest ({reason}); "
                                 "restore it from Git, or delete it and remove stale "
                                 "generated files by hand", rule="manifest")])


def _manifest_problem(doc: Any) -> str:
    """Why ``doc`` is not a manifest k10fleet could have written ("" when it is)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        return "no files mapping"
    for rel, entry in doc["files"].items():
        if not (type(rel) is str and type(entry) is dict and _plain_entry(rel, entry)):
            reason = _entry_problem(rel, entry)
            if reason:
                return reason
    clusters = doc.get("clusters", {})
    if not isinstance(clusters, dict):
        return "clusters is not a mapping"
    for name, info in clusters.items():
        if not (isinstance(name, str) and _CLUSTER_NAME.match(name) and isinstance(info, dict)
                and info.get("role") in _CLUSTER_ROLES
                and _CLUSTER_NAME.match(str(info.get("clusterName", name)))):
            return f"cluster {name!r} is not a cluster k10fleet could have written"
    return ""


def _plain_entry(rel: str, entry: dict[str, Any]) -> bool:
    """The usual entry, proven fine at once: a safe path, exactly mode, owner and sha256."""
    return (entry.keys() == _PLAIN_ENTRY and entry["mode"] in _PLAIN_MODES
            and entry["owner"] in _OWNERS and type(entry["sha256"]) is str
            and _SHA256.match(entry["sha256"]) is not None and not unsafe_path(rel)
            and rel != MANIFEST)


_PLAIN_MODES = frozenset(_MODES.values())


def _entry_problem(rel: Any, entry: Any) -> str:
    """What is wrong with one manifest entry ("" when nothing is)."""
    if not isinstance(rel, str) or unsafe_path(rel) or rel == MANIFEST:
        return f"file path {rel!r} is not a path inside the tree"
    if not isinstance(entry, dict) or not _ENTRY_MODE.match(str(entry.get("mode", "0644"))):
        return f"entry for {rel} has no valid mode"
    if entry.get("owner", "render") not in _OWNERS:
        return f"entry for {rel} has an unknown owner"
    if not _SHA256.match(str(entry.get("sha256", "0" * 64))):
        return f"entry for {rel} has no valid sha256"
    if not isinstance(entry.get("fingerprint", ""), str):
        return f"entry for {rel} has an invalid fingerprint"
    return ""


def _read_regular(path: str, limit: int) -> bytes | None:
    """The bytes of a regular file, never through a symlink and never blocking on a FIFO
    or device; None when ``path`` is something else. OSError when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:  # the last component is a symbolic link
            return None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class TreeEntry(NamedTuple):
    """What is at a path inside the tree, found without following any symbolic link."""

    kind: str  # missing | file | link | other (a folder, FIFO, device) | blocked
    info: os.stat_result | None = None
    blocker: str = ""  # for ``blocked``: the ancestor that is not a real folder


DirCache = dict[str, tuple[str, str]]


def _folder_state(root: str, rel_dir: str, cache: DirCache) -> tuple[str, str]:
    """("ok", "") when every component of ``rel_dir`` is a real folder (no symlink), else
    ("missing" | "blocked", the first component that is not)."""
    prefix = ""
    for part in rel_dir.split("/") if rel_dir else ():
        prefix = f"{prefix}/{part}" if prefix else part
        state = cache.get(prefix)
        if state is None:
            try:
                info = os.lstat(os.path.join(root, prefix))
            except FileNotFoundError:
                state = ("missing", prefix)
            except NotADirectoryError:
                state = ("blocked", prefix)
            except OSError as e:
                raise EnvironmentFailure(f"cannot read {os.path.join(root, prefix)}: "
                                         f"{e.strerror}") from e
            else:
                state = ("ok", "") if stat.S_ISDIR(info.st_mode) else ("blocked", prefix)
            cache[prefix] = state
        if state[0] != "ok":
            return state
    return ("ok", "")


def tree_entry(root: str, rel: str, cache: DirCache | None = None) -> TreeEntry:
    """What ``rel`` is inside ``root``; a symlink anywhere below ``root`` is never followed
    (``root`` itself may be one)."""
    state, where = _folder_state(root, os.path.dirname(rel), {} if cache is None else cache)
    if state != "ok":
        return TreeEntry(state, blocker=where if state == "blocked" else "")
    try:
        info = os.lstat(os.path.join(root, rel))
    except FileNotFoundError:
        return TreeEntry("missing")
    except OSError as e:
        raise EnvironmentFailure(f"cannot read {os.path.join(root, rel)}: {e.strerror}") from e
    if stat.S_ISREG(info.st_mode):
        return TreeEntry("file", info)
    return TreeEntry("link" if stat.S_ISLNK(info.st_mode) else "other", info)


def read_tree_file(root: str, rel: str, cache: DirCache | None = None) -> bytes | None:
    """The bytes of the regular file ``rel`` inside ``root``; None when it is missing, a
    symlink (which may lead out of the tree), under a symlinked folder, or not a file."""
    if tree_entry(root, rel, cache).kind != "file":
        return None
    try:
        return _read_regular(os.path.join(root, rel), MAX_TREE_FILE)
    except OSError:
        return None


MAX_TREE_FILE = 64 * 1024 * 1024


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


def _matches(path: str, info: os.stat_result, spec: FileSpec,
             known_sha: str | None = None) -> bool:
    """``info`` is the lstat of a regular file at ``path``; ``known_sha``: the digest of its
    bytes when the stat cache proves it, so the file need not be read again."""
    if info.st_size != len(spec.content):
        return False
    # Git records only the executable bit, so a clone under another umask must not drift.
    if bool(info.st_mode & 0o111) != bool(spec.mode & 0o111):
        return False
    if known_sha is not None:
        return known_sha == sha256(spec.content)
    try:
        return _read_regular(path, len(spec.content)) == spec.content
    except OSError:
        return False


def _desired(files: Mapping[str, FileSpec], meta: Mapping[str, Any]) -> dict[str, FileSpec]:
    manifest = Manifest(
        files={p: _entry(s) for p, s in sorted(files.items())},
        meta=dict(meta),
    )
    return {**files, MANIFEST: FileSpec(manifest.to_bytes())}


def _entry(spec: FileSpec) -> dict[str, str]:
    entry = {"mode": _MODES.get(spec.mode) or f"{spec.mode:04o}", "owner": spec.owner,
             "sha256": hashlib.sha256(spec.content).hexdigest()}
    if spec.fingerprint:
        entry["fingerprint"] = spec.fingerprint
    if spec.inputs:
        entry["inputs"] = spec.inputs
    return entry


def unsafe_path(path: str) -> bool:
    """Whether ``path`` could point outside the tree (or nowhere) as a tree-relative path:
    a part that is empty (the empty path; a leading, trailing or double slash), "." or "..",
    a NUL or backslash, or more than 4096 characters."""
    framed = f"/{path}/"
    return ("//" in framed or "/./" in framed or "/../" in framed or "\0" in path
            or "\\" in path or len(path) > 4096)


def _check_paths(files: Mapping[str, FileSpec]) -> None:
    for path in files:
        if unsafe_path(path):
            raise InternalError(f"unsafe output path {path!r}")


def diff_tree(out_dir: str, files: Mapping[str, FileSpec], meta: Mapping[str, Any],
              old: Manifest | None = None) -> Drift:
    """Compare without writing: what ``write_tree`` would create, change and prune.
    ``old``: the tree's manifest, when the caller has just read it."""
    _check_paths(files)
    return _diff(out_dir, _desired(files, meta), statcache.load(out_dir), old)


Verdict = tuple[str, str]  # (same | missing | differs, the ancestor in the way or "")


def _compare(out_dir: str, rels: list[str], desired: Mapping[str, FileSpec],
             known: statcache.StatCache) -> list[Verdict]:
    """Each of ``rels`` on disk against its desired bytes and mode."""
    dirs: DirCache = {}
    verdicts: list[Verdict] = []
    for rel in rels:
        entry = tree_entry(out_dir, rel, dirs)
        if entry.kind == "missing":
            verdicts.append(("missing", ""))
        elif entry.kind == "file" and entry.info is not None and _matches(
                os.path.join(out_dir, rel), entry.info, desired[rel],
                known.known_sha(out_dir, rel)):
            verdicts.append(("same", ""))
        else:
            verdicts.append(("differs", entry.blocker))
    return verdicts


PARALLEL_COMPARE = 2000  # files; fewer are compared faster than a second process starts


def _compare_all(out_dir: str, rels: list[str], desired: Mapping[str, FileSpec],
                 known: statcache.StatCache) -> list[Verdict]:
    """:func:`_compare`, every second file in a forked helper when the tree is large."""
    if len(rels) < PARALLEL_COMPARE or parallel_jobs() < 2:
        return _compare(out_dir, rels, desired, known)
    helper = in_forked_child(lambda: _compare(out_dir, rels[1::2], desired, known))
    try:
        mine = _compare(out_dir, rels[0::2], desired, known)
    finally:
        theirs = _answer(helper)  # always reaped
    if theirs is None:  # the helper failed: compare its share here
        theirs = _compare(out_dir, rels[1::2], desired, known)
    verdicts = [("", "")] * len(rels)
    verdicts[0::2], verdicts[1::2] = mine, theirs
    return verdicts


def _answer(helper: Callable[[], Any]) -> Any | None:
    try:
        return helper()
    except OSError:
        return None


def _diff(out_dir: str, desired: Mapping[str, FileSpec],
          cache: statcache.StatCache | None = None, old: Manifest | None = None) -> Drift:
    drift = Drift()
    if not os.path.lexists(out_dir):  # a first render: everything is missing, nothing to stat
        drift.missing = sorted(desired)
        return drift
    old = read_manifest(out_dir) if old is None else old
    rels = sorted(desired)
    foreign: set[str] = set()
    for rel, (verdict, blocker) in zip(rels, _compare_all(
            out_dir, rels, desired, cache or statcache.StatCache()), strict=True):
        if verdict == "missing":
            drift.missing.append(rel)
        elif verdict == "differs":
            drift.differing.append(rel)
            in_the_way = blocker or rel
            if in_the_way != MANIFEST and in_the_way not in old.files:
                foreign.add(in_the_way)  # not ours: never overwritten
    drift.foreign = sorted(foreign)
    dirs: DirCache = {}
    drift.extra = sorted(p for p in old.files if p not in desired
                         and tree_entry(out_dir, p, dirs).kind not in ("missing", "blocked"))
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


def _walk(root: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry below ``root``, parents first; symlinks are listed, never entered.
    Iterative, so a user's very deep folder cannot exhaust the stack."""
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as entries:
            for entry in entries:
                child = f"{rel}/{entry.name}" if rel else entry.name
                yield child, entry
                if entry.is_dir(follow_symlinks=False):
                    pending.append(child)


def remove_tree(path: str) -> None:
    """``shutil.rmtree(path, ignore_errors=True)`` without recursion: a user's folders in
    the staged copy may nest deeper than Python's stack."""
    stack = [(path, False)]
    while stack:
        current, emptied = stack.pop()
        if emptied:
            with contextlib.suppress(OSError):
                os.rmdir(current)
            continue
        stack.append((current, True))
        with contextlib.suppress(OSError), os.scandir(current) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, False))
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def remove_stale_staging(out_dir: str) -> None:
    """Staging left by a killed run is removed by the next one (under the lock)."""
    parent, name = os.path.split(os.path.abspath(out_dir))
    prefix = f".{name}{STAGE_MARK}"
    for entry in os.scandir(parent):
        if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False):
            remove_tree(entry.path)


Progress = Callable[[int, int], None]


def _stage(out_dir: str, stage: str, desired: Mapping[str, FileSpec], changed: set[str],
           old: Manifest, result: WriteResult, progress: Progress | None = None) -> None:
    made: set[str] = {""}

    def ensure_dir(rel: str) -> None:
        missing = []  # outermost last; a loop, as a user's folders may nest 1,000 deep
        while rel not in made:
            missing.append(rel)
            rel = os.path.dirname(rel)
        for rel in reversed(missing):
            make_dir(rel)

    def make_dir(rel: str) -> None:
        old_path = os.path.join(out_dir, rel)
        try:
            old_info: os.stat_result | None = os.lstat(old_path)
        except FileNotFoundError:
            old_info = None
        if old_info is not None and not stat.S_ISDIR(old_info.st_mode):
            raise EnvironmentFailure(f"{old_path} is not a directory (a symlink or file?); "
                                     "k10fleet needs a real directory there: move it away")
        try:
            os.mkdir(os.path.join(stage, rel))
        except FileExistsError as e:
            raise EnvironmentFailure(f"{old_path} is in the way of a generated file") from e
        if old_info is not None:  # keep the mode and owner of existing directories
            os.chmod(os.path.join(stage, rel), stat.S_IMODE(old_info.st_mode))
            keep_owner(os.path.join(stage, rel), old_info)
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
    if os.geteuid() == 0:  # root rewrites a user's file: it stays the user's
        for rel in changed:
            old_info = _lstat_or_none(os.path.join(out_dir, rel))
            if old_info is not None and stat.S_ISREG(old_info.st_mode):
                keep_owner(os.path.join(stage, rel), old_info)
    result.written.extend(rel for rel in to_write if rel != MANIFEST)


def _lstat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def keep_owner(path: str, old: os.stat_result) -> None:
    """Give ``path`` the owner and group of what it replaces (root's renders must not hand
    a user's folders to root); a no-op when they already match or when we may not."""
    if (old.st_uid, old.st_gid) == (os.geteuid(), os.getegid()):
        return
    with contextlib.suppress(PermissionError):  # not root: a new folder is ours, as usual
        os.lchown(path, old.st_uid, old.st_gid)


def _not_ours(shown: str, path: str) -> Problem:
    """A file (or link, or folder) k10fleet did not write, where it must write: refused."""
    kind = {"link": "a symbolic link", "other": "a folder or special file"}.get(
        tree_entry(os.path.dirname(path), os.path.basename(path)).kind, "a file")
    return Problem(shown, 1, 1, "", f"{kind} that k10fleet did not write is where k10fleet "
                   "must write; it is never overwritten. To hand it over to k10fleet, delete "
                   f"it or move it aside (mv {shlex.quote(shown)} "
                   f"{shlex.quote(shown + '.orig')}), then run again", rule="user-file")


PARALLEL_WRITES = 2000  # files; fewer are written faster than a second process starts


def _write_files(stage: str, files: list[tuple[str, FileSpec]], umask: int) -> None:
    for rel, spec in files:
        _write_file(os.path.join(stage, rel), spec, umask)


def write_tree(out_dir: str, files: Mapping[str, FileSpec], meta: Mapping[str, Any],
               progress: Progress | None = None) -> WriteResult:
    """Make ``out_dir`` hold exactly ``files`` (plus the user's own files), atomically."""
    _check_paths(files)
    desired = _desired(files, meta)
    shown, out_dir = out_dir, os.path.realpath(out_dir)
    with locked(out_dir):
        started = statcache.now()
        remove_stale_staging(out_dir)
        old = read_manifest(out_dir)
        drift = _diff(out_dir, desired, statcache.load(out_dir), old)
        if drift.clean:  # verified: what the next run may skip re-reading
            statcache.record(out_dir, started, _digests(desired))
            return WriteResult(unchanged=len(desired) - 1)
        if drift.foreign:
            raise InvalidInput([_not_ours(os.path.join(shown, rel), os.path.join(out_dir, rel))
                                for rel in drift.foreign])
        statcache.forget(out_dir)
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
                keep_owner(stage, os.stat(out_dir))
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
                remove_tree(stage)
        statcache.record(out_dir, started, _digests(desired))
        result.written.sort()
        result.removed.sort()
        return result


def write_private_files(folder: str, files: Mapping[str, bytes], ours: bytes) -> list[str]:
    """Write plaintext files (0600) into a folder only their owner may enter.

    A missing folder is created 0700; an existing one is never chmod'ed, and is refused
    when group or others may enter it or another user owns it. A file there that does not
    start with ``ours`` (k10fleet's header) is someone else's and is never overwritten.
    On any failure (a full or read-only disk) every file this call wrote is removed again.
    """
    _private_folder(folder)
    targets = {os.path.join(folder, name): content for name, content in files.items()}
    for target in targets:
        try:
            existing = _read_regular(target, 1 << 20)
        except FileNotFoundError:
            continue
        except OSError:
            existing = None
        if existing is None or not existing.startswith(ours):
            raise InvalidInput([_not_ours(target, target)])
    written: list[str] = []
    try:
        for target, content in targets.items():
            written.append(target)
            _write_private(target, content)
    except OSError as e:
        for path in written:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise EnvironmentFailure(f"cannot write {written[-1]}: {e.strerror or e}; no "
                                 "plaintext file was left behind") from e
    return list(targets)


def _private_folder(folder: str) -> None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(folder)), exist_ok=True)
        os.mkdir(folder, 0o700)
        os.chmod(folder, 0o700)  # ours: the umask may have taken bits away
        return
    except OSError as e:
        if e.errno != errno.EEXIST or not os.path.lexists(folder):
            raise EnvironmentFailure(f"cannot create {folder}: {e.strerror}") from e
    try:
        info = os.stat(folder)
    except OSError as e:
        raise EnvironmentFailure(f"cannot use {folder}: {e.strerror}") from e
    if not stat.S_ISDIR(info.st_mode):
        raise UsageFailure(f"{folder} exists and is not a folder")
    if info.st_mode & 0o077 or info.st_uid != os.geteuid():
        whose = "another user" if info.st_uid != os.geteuid() else "you"
        raise UsageFailure(
            f"{folder} is not private (mode {stat.S_IMODE(info.st_mode):04o}, owned by "
            f"{whose}): plaintext Secrets go only into a folder no one else may enter. Name a "
            f"new folder (k10fleet creates it 0700), or run chmod 700 on one you own; "
            "k10fleet never changes the mode of a folder it did not create")


def _write_private(path: str, content: bytes) -> None:
    """Through a 0600 temporary file and a rename; the temporary is gone on failure."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".k10fleet-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _digests(desired: Mapping[str, FileSpec]) -> Iterator[tuple[str, str]]:
    return ((rel, sha256(spec.content)) for rel, spec in desired.items())
