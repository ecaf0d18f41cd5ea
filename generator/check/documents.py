"""Read every YAML document of a tree, fast, remembering where each one starts."""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from generator import fastyaml
from generator.errors import InvalidInput
from generator.problems import Problem, RuleId, object_problem
from generator.yamllimits import TooDeep, TooLarge, may_be_too_deep

_DOC_START = re.compile(r"^---(?:[ \t]|$)", re.MULTILINE)
YAML_SUFFIXES = (".yaml", ".yml", ".json")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KSOPS = ("viaduct.ai/v1", "ksops")  # a KSOPS generator spec: read by kustomize, never applied
MANIFEST_FILE = ".k10fleet-manifest.json"  # k10fleet's bookkeeping of a rendered tree
NOT_MANIFESTS = {MANIFEST_FILE, ".sops.yaml"}  # our bookkeeping, sops' config
MAX_FILE_BYTES = 16 * 1024 * 1024


_STUB_KEYS = ("apiVersion", "kind", "sops")


@dataclass
class Document:
    """One YAML document (or one item of a ``kind: List``): where it is, and its data."""

    file: str  # path as shown to the user
    rel: str  # path relative to the checked tree
    line: int  # first line of its content, 1-based
    text: str  # the document's own text, for locating fields on demand
    data: Any
    at: tuple[str | int, ...] = ()  # where this object sits in its document (List items)

    kind: str = field(init=False, repr=False)
    api_version: str = field(init=False, repr=False)
    name: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """kind, apiVersion and metadata.name, each '' unless a string (read once: every
        rule asks)."""
        data = self.data if isinstance(self.data, dict) else {}
        kind, api_version, meta = data.get("kind"), data.get("apiVersion"), data.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        self.kind = kind if isinstance(kind, str) else ""
        self.api_version = api_version if isinstance(api_version, str) else ""
        self.name = name if isinstance(name, str) else ""

    def identity(self) -> Document:
        """This document, its data cut (in place) to what reports need (kind, name, sops
        block) and its text dropped (read again if a field must be located): cheap to send
        from a helper process. Call it when the document has been checked."""
        if isinstance(self.data, dict):
            stub = {k: self.data[k] for k in _STUB_KEYS if k in self.data}
            if self.name:
                stub["metadata"] = {"name": self.name}
            self.data = stub
        else:
            self.data = None
        self.text = ""
        return self

    def _own_text(self) -> str:
        """The document's text; an identity (which has none) finds it in its file again."""
        if self.text:
            return self.text
        try:
            text = read_text(self.file)
        except Unreadable:
            return ""
        objects = json_documents(text) if self.rel.endswith(".json") else None
        pieces = ([(line, chunk) for line, chunk, _ in objects] if objects is not None
                  else split_documents(text))
        return next((chunk for line, chunk in pieces if line == self.line), "")

    def line_of(self, path: tuple[str | int, ...]) -> int:
        """Line of a field inside this document (falls back to the document's start)."""
        path = self.at + path
        if not path:
            return self.line
        from generator.fleet.loader import LoadLimits, load_yaml_bytes  # only to locate

        text = self._own_text()
        if not text:
            return self.line
        try:
            marked = load_yaml_bytes(text.encode(), self.file, LoadLimits())
        except InvalidInput:  # locating is best effort; the finding stands
            return self.line
        line, _ = marked.locate(tuple(str(p) if not isinstance(p, int) else p for p in path))
        return self.line + line - 1 - _leading_lines(text)

    def finding(self, message: str, *, path: tuple[str | int, ...] = (), level: str = "error",
                source: str = "k10fleet", pointer: str = "", rule: RuleId = "objects"
                ) -> Problem:
        return object_problem(self.file, self.line_of(path), self.kind, self.name, message,
                              level, source, pointer, rule=rule)


# blank lines, comment lines and ``---`` marker lines, from the start
_LEADING = re.compile(r"(?:[^\S\n]*(?:#[^\n]*)?(?:\n|\Z)|---(?:[ \t][^\n]*)?(?:\n|\Z))*")


def _leading_lines(text: str) -> int:
    """Lines before the first content line (comments, blanks, the ``---`` marker)."""
    end = _LEADING.match(text).end()  # type: ignore[union-attr]  # it matches '' at least
    lines = text.count("\n", 0, end)
    return lines + 1 if end == len(text) and text and not text.endswith("\n") else lines


def tree_files(root: str) -> Iterator[str]:
    """YAML and JSON files under root in a stable order (hidden files too: kustomize reads
    them), skipping hidden folders such as .git and k10fleet's own bookkeeping."""
    return (rel for rel, _ in tree_entries(root))


_BY_NAME = attrgetter("name")


def leaves_tree(root: str, path: str) -> bool:
    """Whether ``path`` (a symbolic link, say) resolves to somewhere outside ``root``."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) != real_root


def tree_entries(root: str) -> Iterator[tuple[str, bool]]:
    """(path, is it a regular file?) of ``tree_files``, from the folder listings alone (no
    stat per file); folders are walked with a stack of their own, however deep. A link to
    a file outside the tree is not a regular file of it."""
    pending = [""]
    while pending:
        rel = pending.pop()
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as listing:
                entries = sorted(listing, key=_BY_NAME)
        except OSError:
            continue
        folders = []
        for entry in entries:
            if entry.is_dir():
                if not entry.is_symlink() and not entry.name.startswith("."):
                    folders.append(f"{rel}{entry.name}/")
            elif entry.name.endswith(YAML_SUFFIXES) and entry.name not in NOT_MANIFESTS:
                regular = entry.is_file()
                if regular and entry.is_symlink():  # rare: resolved only then
                    regular = not leaves_tree(root, entry.path)
                yield rel + entry.name, regular
        pending.extend(reversed(folders))


def is_kustomization(doc: Document) -> bool:
    return os.path.basename(doc.rel) in KUSTOMIZATION_FILES or (
        doc.kind == "Kustomization" and doc.api_version.startswith("kustomize.config.k8s.io/"))


def is_list(data: Any) -> bool:
    """A ``kind: List`` (any case, with an apiVersion), expanded into its items as kubectl
    and kubeconform do; typed lists such as ``SecretList`` are objects of their own."""
    return (isinstance(data, dict) and isinstance(data.get("kind"), str)
            and data["kind"].lower() == "list" and isinstance(data.get("apiVersion"), str)
            and bool(data["apiVersion"]))


def expand_lists(doc: Document) -> list[Document]:
    """The document, or the items of a List (nested Lists: the inner List itself, for its
    verdict, then its items, so that no object inside goes unchecked)."""
    if not is_list(doc.data):
        return [doc]
    items = doc.data.get("items")
    if not isinstance(items, list):
        return [doc] if items is not None else []
    out: list[Document] = []
    for index, item in enumerate(items):
        sub = Document(doc.file, doc.rel, doc.line, doc.text, item, (*doc.at, "items", index))
        out.append(sub)
        if is_list(item):
            out.extend(expand_lists(sub))
    return out


def split_documents(text: str) -> Iterator[tuple[int, str]]:
    """(first line, text) of each document in a multi-document stream."""
    if "---" not in text:  # the common case: one document, no marker
        yield 1 + _leading_lines(text), text
        return
    starts = [m.start() for m in _DOC_START.finditer(text)]
    bounds = ([0] if not starts or starts[0] != 0 else []) + starts + [len(text)]
    for begin, end in itertools.pairwise(bounds):
        chunk = text[begin:end]
        first_line = text.count("\n", 0, begin) + 1
        yield first_line + _leading_lines(chunk), chunk


class Unreadable(Exception):
    """A file that is not read at all; the message says why."""


def read_text(path: str) -> str:
    """A regular file's text, without blocking on FIFOs or devices and within the size cap."""
    return _read(path, checked=True)


def read_regular(path: str) -> str:
    """``read_text`` for a file the tree's listing showed as a regular file: no stat (a
    file replaced since by a folder is an error; by a pipe, empty)."""
    return _read(path, checked=False)


_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
_FIRST_READ = 1 << 16  # without a stat: most files in one read


def _read(path: str, *, checked: bool) -> str:
    """Open (never blocking), ``fstat`` if ``checked`` (refusing what is not a regular file
    or is over the cap), read to the end within the cap; every failure is ``Unreadable``."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as e:
        raise Unreadable(f"cannot read file: {e.strerror}") from e
    try:
        size = None
        if checked:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise Unreadable("not a regular file (a device, pipe or socket?); remove it "
                                 "from the tree")
            if info.st_size > MAX_FILE_BYTES:
                raise Unreadable(f"file is larger than {MAX_FILE_BYTES} bytes; not a manifest?")
            size = info.st_size
        raw = _read_to_end(fd, size)
    except OSError as e:
        raise Unreadable(f"cannot read file: {e.strerror}") from e
    finally:
        os.close(fd)
    return decode(raw)


def _read_to_end(fd: int, size: int | None) -> bytes:
    """One read when the size is known (exactly it: all of it) or the file is small; a short
    read, a file that grew, or a full first buffer: read on to the end, within the cap."""
    asked = _FIRST_READ if size is None else size + 1
    chunks = [os.read(fd, asked)]
    if len(chunks[0]) == asked or (size is not None and len(chunks[0]) < size):
        while chunks[-1] and sum(map(len, chunks)) <= MAX_FILE_BYTES:
            chunks.append(os.read(fd, 1 << 20))
    return b"".join(chunks) if len(chunks) > 1 else chunks[0]


def decode(raw: bytes) -> str:
    """A file's bytes as text, within the size cap."""
    if len(raw) > MAX_FILE_BYTES:
        raise Unreadable(f"file is larger than {MAX_FILE_BYTES} bytes; not a manifest?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Unreadable("not UTF-8 text") from e


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")  # the YAML path then names it, with its line
    return out


_JSON = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def json_documents(text: str) -> list[tuple[int, str, Any]] | None:
    """A JSON file's objects (kubectl reads a stream of them), or None to read it as YAML
    (which also names what is wrong: a duplicate key, too deep a nesting...)."""
    if may_be_too_deep(text):
        return None
    out: list[tuple[int, str, Any]] = []
    index = len(text) - len(text.lstrip())
    try:
        while index < len(text):
            data, end = _JSON.raw_decode(text, index)
            out.append((text.count("\n", 0, index) + 1, text[index:end], data))
            index = len(text) - len(text[end:].lstrip())
    except (ValueError, RecursionError):
        return None
    return out


def _yaml_problem(error: Exception, shown: str, line: int, chunk: str) -> Problem:
    """The finding for a document PyYAML refused (the exact reader is loaded by then); any
    other error is raised again."""
    from generator import yaml11

    if isinstance(error, yaml11.MarkedYAMLError):
        mark = error.problem_mark
        where = line - _leading_lines(chunk) + mark.line if mark else line
        return object_problem(shown, where, "", "", f"invalid YAML: {error.problem}",
                              rule="yaml")
    if isinstance(error, yaml11.YAMLError):
        return object_problem(shown, line, "", "", "invalid YAML: "
                              + " ".join(str(error).split())[:300], rule="yaml")
    raise error


def remember(parsed: dict[str | int, Any], body: str, data: Any) -> None:
    """Keep a parse for the next file with this body, from the second time it is seen:
    a body seen once (most) keeps only its hash, and its data can go with its document."""
    seen = hash(body)
    if seen in parsed:
        parsed[body] = data
    else:
        parsed[seen] = None


def _parse(shown: str, rel: str, text: str, parsed: dict[str | int, Any]
           ) -> tuple[list[Document], list[Problem]]:
    documents: list[Document] = []
    findings: list[Problem] = []
    objects = json_documents(text) if rel.endswith(".json") else None
    for line, chunk, data in objects or ():
        documents.extend(expand_lists(Document(shown, rel, line, chunk, data)))
    for line, chunk in split_documents(text) if objects is None else ():
        try:
            header = fastyaml.header_end(chunk)
            body = chunk[header:]  # the same, whatever the comments say
            data = parsed[body] if body in parsed else fastyaml.load(chunk, header)
        except TooDeep as e:
            findings.append(object_problem(shown, line - _leading_lines(chunk) + e.line, "", "",
                                           str(e), rule="size"))
            continue
        except TooLarge as e:
            findings.append(object_problem(shown, line, "", "", str(e), rule="size"))
            continue
        except Exception as e:  # only YAML errors become findings: the others are raised again
            findings.append(_yaml_problem(e, shown, line, chunk))
            continue
        remember(parsed, body, data)
        if data is not None:
            documents.extend(expand_lists(Document(shown, rel, line, chunk, data)))
    return documents, findings


OUTSIDE = ("a symbolic link to outside the tree: not read (check reads the tree alone); "
           "replace it with the file")


# files read one batch at a time, then parsed: measured 14% faster than reading each file
# before parsing it (the system calls run hot), and a batch keeps little text alive
_BATCH = 128


def each_file(root: str, shown_root: str, rels: Iterable[str],
              known: Mapping[str, bytes] | None = None, outside: Set[str] = frozenset(),
              irregular: Set[str] | None = None
              ) -> Iterator[tuple[list[Document], list[Problem]]]:
    """File by file, its documents and the findings of a file that does not parse: a caller
    that is done with one file's documents before the next keeps few of them alive.
    ``known``: files whose bytes are known already (proven equal to a fresh render);
    ``outside``: links that lead out of the tree, never read; ``irregular``: files the
    tree's listing did not show as regular files (None: not known, every file is looked
    at: ``read_text``)."""
    known = known or {}
    # documents identical but for a leading comment (common in fleets: the header names the
    # cluster) are parsed once
    parsed: dict[str | int, Any] = {}
    root, shown_root = os.path.join(root, ""), os.path.join(shown_root, "")
    listed = iter(rels)
    while batch := list(itertools.islice(listed, _BATCH)):
        texts = [_text(root, rel, known, outside, irregular) for rel in batch]
        for rel, text in zip(batch, texts, strict=True):
            shown = shown_root + rel
            if isinstance(text, Unreadable):
                yield [], [object_problem(shown, 1, "", "", str(text), rule="io")]
            else:
                yield _parse(shown, rel, text, parsed)


def _text(root: str, rel: str, known: Mapping[str, bytes], outside: Set[str],
          irregular: Set[str] | None) -> str | Unreadable:
    """A file's text, or why it is not read."""
    if rel in outside:
        return Unreadable(OUTSIDE)
    try:
        if rel in known:
            return decode(known[rel])
        if irregular is None or rel in irregular:
            return read_text(root + rel)
        return read_regular(root + rel)
    except Unreadable as e:
        return e
