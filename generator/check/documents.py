"""Read every YAML document of a tree, fast, remembering where each one starts."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from generator import fastyaml
from generator.check.findings import Finding
from generator.errors import InvalidInput
from generator.fleet.loader import LoadLimits, load_yaml_bytes

_DOC_START = re.compile(r"^---(?:[ \t]|$)", re.MULTILINE)
YAML_SUFFIXES = (".yaml", ".yml", ".json")
NOT_MANIFESTS = {".k10fleet-manifest.json", ".sops.yaml"}  # our bookkeeping, sops' config
MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass
class Document:
    """One YAML document: where it is, and its data."""

    file: str  # path as shown to the user
    rel: str  # path relative to the checked tree
    line: int  # first line of its content, 1-based
    text: str  # the document's own text, for locating fields on demand
    data: Any

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "")) if isinstance(self.data, dict) else ""

    @property
    def api_version(self) -> str:
        return str(self.data.get("apiVersion", "")) if isinstance(self.data, dict) else ""

    @property
    def name(self) -> str:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""

    def line_of(self, path: tuple[str | int, ...]) -> int:
        """Line of a field inside this document (falls back to the document's start)."""
        if not path:
            return self.line
        try:
            marked = load_yaml_bytes(self.text.encode(), self.file, LoadLimits())
        except InvalidInput:  # locating is best effort; the finding stands
            return self.line
        line, _ = marked.locate(tuple(str(p) if not isinstance(p, int) else p for p in path))
        return self.line + line - 1 - _leading_lines(self.text)

    def finding(self, message: str, *, path: tuple[str | int, ...] = (), level: str = "error",
                source: str = "k10fleet", pointer: str = "") -> Finding:
        return Finding(self.file, self.line_of(path), self.kind, self.name, message, level,
                       source, pointer)


def _leading_lines(text: str) -> int:
    """Lines before the first content line (comments, blanks, the ``---`` marker)."""
    count = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not _DOC_START.match(line):
            break
        count += 1
    return count


def tree_files(root: str) -> Iterator[str]:
    """YAML and JSON files under root in a stable order (hidden files too: kustomize reads
    them), skipping hidden folders such as .git and k10fleet's own bookkeeping."""
    prefix = len(os.path.join(root, ""))
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.endswith(YAML_SUFFIXES) and name not in NOT_MANIFESTS:
                yield os.path.join(current, name)[prefix:].replace(os.sep, "/")


def _list_items(doc: Document) -> list[Document]:
    """The objects of a ``kind: List`` (or ``*List``), checked like top-level documents."""
    items = doc.data.get("items") if isinstance(doc.data, dict) else None
    if not doc.kind.endswith("List") or not isinstance(items, list):
        return [doc]
    return [Document(doc.file, doc.rel, doc.line, doc.text, item) for item in items
            if isinstance(item, dict)]


def split_documents(text: str) -> Iterator[tuple[int, str]]:
    """(first line, text) of each document in a multi-document stream."""
    starts = [m.start() for m in _DOC_START.finditer(text)]
    bounds = ([0] if not starts or starts[0] != 0 else []) + starts + [len(text)]
    for begin, end in itertools.pairwise(bounds):
        chunk = text[begin:end]
        first_line = text.count("\n", 0, begin) + 1
        yield first_line + _leading_lines(chunk), chunk


def _read_files(root: str, shown_root: str, rels: list[str]
                ) -> tuple[list[Document], list[Finding]]:
    documents: list[Document] = []
    findings: list[Finding] = []
    parsed: dict[str, Any] = {}  # identical documents (common in fleets) are parsed once
    for rel in rels:
        shown = os.path.join(shown_root, rel)
        path = os.path.join(root, rel)
        try:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode):
                findings.append(Finding(shown, 1, "", "", "not a regular file (a device, pipe "
                                        "or socket?); remove it from the tree"))
                continue
            if info.st_size > MAX_FILE_BYTES:
                findings.append(Finding(shown, 1, "", "", f"file is larger than "
                                        f"{MAX_FILE_BYTES} bytes; not a manifest?"))
                continue
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except UnicodeDecodeError:
            findings.append(Finding(shown, 1, "", "", "not UTF-8 text"))
            continue
        except OSError as e:
            findings.append(Finding(shown, 1, "", "", f"cannot read file: {e.strerror}"))
            continue
        for line, chunk in split_documents(text):
            try:
                data = parsed[chunk] if chunk in parsed else fastyaml.load(chunk)
            except yaml.MarkedYAMLError as e:
                mark = e.problem_mark
                where = line - _leading_lines(chunk) + mark.line if mark else line
                findings.append(Finding(shown, where, "", "", f"invalid YAML: {e.problem}"))
                continue
            except yaml.YAMLError as e:
                findings.append(Finding(shown, line, "", "", "invalid YAML: "
                                        + " ".join(str(e).split())[:300]))
                continue
            except fastyaml.TooLarge as e:
                findings.append(Finding(shown, line, "", "", str(e)))
                continue
            parsed[chunk] = data
            if data is not None:
                documents.extend(_list_items(Document(shown, rel, line, chunk, data)))
    return documents, findings


PARALLEL_FROM = 600  # files; below this a second process costs more than it saves


def read_documents(root: str, shown_root: str, workers: int | None = None,
                   ) -> tuple[list[Document], list[Finding]]:
    """Every non-empty document under root, and findings for files that do not parse.

    Big trees are read by one forked process per core (parsing dominates ``check``).
    """
    rels = list(tree_files(root))
    workers = workers or min(os.cpu_count() or 1, 4)
    if workers < 2 or len(rels) < PARALLEL_FROM or "fork" not in mp.get_all_start_methods():
        return _read_files(root, shown_root, rels)
    shares = [rels[i::workers] for i in range(workers)]
    with mp.get_context("fork").Pool(workers) as pool:
        parts = pool.starmap(_read_files, [(root, shown_root, share) for share in shares])
    order = {rel: i for i, rel in enumerate(rels)}
    documents = sorted((d for docs, _ in parts for d in docs), key=lambda d: order[d.rel])
    findings = [f for _, found in parts for f in found]
    return documents, findings
