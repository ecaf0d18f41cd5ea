"""Orchestrates ``check``: our validator, the real kubeconform beside it, merged findings."""

from __future__ import annotations

import gc
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from generator.check import DEFAULT_KUBERNETES_VERSION, kubeconform
from generator.check.documents import (
    KSOPS,
    KUSTOMIZATION_FILES,
    MANIFEST_FILE,
    Document,
    Unreadable,
    each_file,
    is_kustomization,
    is_list,
    leaves_tree,
    read_text,
    tree_entries,
)
from generator.check.rules import (
    VALUES_FILE,
    ChartValues,
    cut,
    encrypted_resource_findings,
    is_sops_encrypted,
    kustomization_findings,
    redact,
    schema_view,
    secret_findings,
    secret_leaves,
    values_findings,
    without_quoted,
)
from generator.check.schemas import (
    SchemaStore,
    kubernetes_schema_dir,
    write_standalone_cache,
)
from generator.errors import EnvironmentFailure, UsageFailure
from generator.forking import SharedQueue, in_forked_child, parallel_jobs
from generator.problems import Problem, object_problem

if TYPE_CHECKING:
    import subprocess

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DATA_KEY = re.compile(r"[-._a-zA-Z0-9]+\Z")
_LABEL_NAMED_KINDS = {"Namespace", "Service"}
_SUBDOMAIN_KINDS = {"Secret", "ConfigMap", "ServiceAccount", "Deployment", "StatefulSet",
                    "DaemonSet", "Job", "CronJob", "Pod", "PersistentVolumeClaim"}


@dataclass
class CheckOptions:
    """Every option of ``check``, parsed."""

    root: str
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    schema_locations: list[str] = field(default_factory=list)
    crds: list[str] = field(default_factory=list)  # --crd files/folders
    strict: bool = False
    k10_chart: str | None = None
    kubeconform: str | None = None  # None/"auto", "required", "off" or a path
    kustomize: bool = False
    fleet: str | None = None


@dataclass
class CheckReport:
    findings: list[Problem]
    documents: list[Document]
    files: int
    kubeconform_binary: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.level == "error")

    @property
    def warnings(self) -> int:
        return len(self.findings) - self.errors


_REFUSED = "; the API server refuses it (a warning: kubeconform does not check names)"


def _name_findings(doc: Document) -> list[Problem]:
    """Names and data keys the API server would refuse: warnings, so that the verdict stays
    kubeconform's, which checks neither."""
    meta = doc.data.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        return []
    name = meta["name"]
    rule = (_LABEL if doc.kind in _LABEL_NAMED_KINDS else
            _SUBDOMAIN if doc.kind in _SUBDOMAIN_KINDS else None)
    findings = []
    if rule is not None and (len(name) > 253 or not rule.match(name)):
        findings.append(doc.finding(f"metadata.name {cut(name)!r} is not a valid {doc.kind} name "
                                    f"(lower-case letters, digits, '-' and '.'){_REFUSED}",
                                    path=("metadata", "name"), pointer="/metadata/name",
                                    level="warning", rule="object-name"))
    elif rule is None and (name in (".", "..") or "/" in name or "%" in name or not name):
        findings.append(doc.finding(f"metadata.name {cut(name)!r} is not a valid object name"
                                    f"{_REFUSED}", path=("metadata", "name"),
                                    pointer="/metadata/name", level="warning",
                                    rule="object-name"))
    if doc.kind in ("Secret", "ConfigMap"):
        for data_field in ("data", "stringData", "binaryData"):
            values = doc.data.get(data_field)
            if isinstance(values, dict):
                for key in values:
                    if not _DATA_KEY.match(str(key)):
                        findings.append(doc.finding(
                            f"{data_field} key {cut(str(key))!r} is invalid (letters, digits, "
                            f"'-', '_' and '.'){_REFUSED}", path=(data_field, str(key)),
                            level="warning", rule="object-name"))
    return findings


def _tree_engine(root: str) -> str:
    """argocd, flux or unknown: from the tree's manifest (only its engine is read; render
    validates the rest), else from its folders."""
    path = os.path.join(root, MANIFEST_FILE)
    try:
        doc = json.loads(read_text(path)) if not os.path.islink(path) else None
    except (Unreadable, ValueError, RecursionError):
        doc = None
    engine = doc.get("engine") if isinstance(doc, dict) else None
    if isinstance(engine, str):
        return engine
    for candidate in ("argocd", "flux"):
        if os.path.isdir(os.path.join(root, candidate)):
            return candidate
    return "unknown"


class _Checker:
    def __init__(self, options: CheckOptions) -> None:
        self.options = options
        self.store = SchemaStore(options.kubernetes_version, options.schema_locations,
                                 options.crds, kubeconform.cache_root())
        self.chart = ChartValues.load(options.k10_chart) if options.k10_chart else None

    def document(self, doc: Document) -> list[Problem]:
        """Findings of one object (kustomizations are checked later, with the whole tree)."""
        if os.path.basename(doc.rel) == VALUES_FILE and not doc.at:
            return list(values_findings(doc, self.chart))
        findings = list(secret_findings(doc))
        problem = identity_problem(doc.data)
        if problem:
            return [doc.finding(problem, pointer=IDENTITY), *findings]
        if (doc.api_version, doc.kind) == KSOPS:
            return []  # a KSOPS generator spec, read by kustomize, never applied
        if is_list(doc.data) and not isinstance(doc.data.get("items"), list):
            return [doc.finding("a List needs items: a list of objects", path=("items",)),
                    *findings]
        found = self.store.lookup(doc.api_version, doc.kind)
        if found is None:
            findings.append(doc.finding(
                f"no schema for {cut(doc.api_version)} {cut(doc.kind)}; give its folder with "
                "--schema-location", level="error" if self.options.strict else "warning",
                pointer="#missing-schema"))
        else:
            leaves = secret_leaves(doc.data)
            for error in found[0].errors(schema_view(doc)):
                where = ".".join(map(str, error.path))
                message = error.message
                if leaves or doc.kind == "Secret":
                    message = redact(message, error.path, leaves, error.rule)
                findings.append(doc.finding(f"{where + ': ' if where else ''}{message}",
                                            path=error.path, pointer=error.pointer))
        findings.extend(_name_findings(doc))
        return findings


IDENTITY = "#identity"
_NO_KIND = (f"every Kubernetes object needs both (only {VALUES_FILE} and kustomization.yaml, "
            "known by name, carry none)")


def _a(value: Any) -> str:
    """What a value is, without showing it."""
    for kind, name in ((bool, "a boolean"), (int, "a number"), (float, "a number"),
                       (str, "a string"), (list, "a list"), (dict, "a mapping")):
        if isinstance(value, kind):
            return name
    return "null"


def identity_problem(data: Any) -> str:
    """Why kubectl and kubeconform would not take this as an object ('' if they would)."""
    if not isinstance(data, dict):
        return (f"not a Kubernetes object: the document is {_a(data)}, not a mapping with "
                f"apiVersion and kind; {_NO_KIND}")
    problems = []
    for key in ("apiVersion", "kind"):
        value = data.get(key)
        if value is None or value == "":
            problems.append(f"no {key}")
        elif not isinstance(value, str):
            problems.append(f"{key} is {_a(value)}, not a string")
    return f"not a Kubernetes object: {', '.join(problems)}; {_NO_KIND}" if problems else ""


def _kubeconform_files(root: str, rels: list[str], irregular: Set[str]) -> list[str]:
    """Regular files for kubeconform, chosen by name so that it can start before we read
    them; what it says about encrypted Secrets and KSOPS specs is set aside in ``_merge``."""
    return [os.path.join(root, rel) for rel in rels if rel not in irregular
            and os.path.basename(rel) not in (VALUES_FILE, *KUSTOMIZATION_FILES)]


_PARSE_FAILURE = re.compile(r"error while parsing|error unmarshal|error converting YAML|"
                            r"missing '(?:kind|apiVersion)' key")
_FILE_LEVEL = ("invalid YAML", "nested deeper", "aliases expand", "not a regular file",
               "not UTF-8", "file is larger", "cannot read file")


def _shown_message(result: kubeconform.Result, doc: Document | None) -> str:
    """kubeconform's message; about a Secret, without anything quoted (where its values
    would be) and, under data or stringData, named as such."""
    secretish = result.kind == "Secret" or result.kind.lower().endswith("list") or (
        doc is not None and (doc.kind == "Secret" or doc.kind.lower().endswith("list")))
    under_data = bool(re.search(r"/(?:data|stringData)(?:/|$)", result.pointer))
    if not secretish and not under_data:
        return result.message
    message = without_quoted(result.message)
    return f"value not shown; {message}" if under_data else message


def _merge(ours: list[Problem], theirs: list[kubeconform.Result], documents: list[Document],
           root: str, strict: bool) -> list[Problem]:
    """kubeconform's findings beside ours; the same problem found by both is shown once."""
    by_object = {(os.path.join(root, d.rel), d.kind, d.name): d for d in documents}
    set_aside = {os.path.join(root, d.rel) for d in documents
                 if is_sops_encrypted(d) or (d.api_version, d.kind) == KSOPS}
    merged = list(ours)
    seen = {(f.file, f.kind, f.name, f.pointer): i for i, f in enumerate(merged)}
    unreadable = {f.file: i for i, f in enumerate(merged)
                  if f.pointer == IDENTITY or f.message.startswith(_FILE_LEVEL)}
    for result in theirs:
        if result.filename in set_aside:
            continue
        doc = by_object.get((result.filename, result.kind, result.name))
        if _PARSE_FAILURE.search(result.message) and result.filename in unreadable:
            _both(merged, unreadable[result.filename])
            continue
        message = _shown_message(result, doc)
        if doc is None:  # kubeconform read the file differently: still report it
            merged.append(object_problem(result.filename, 1, result.kind, result.name, message,
                                  "warning" if result.missing_schema and not strict
                                  else "error", "kubeconform", result.pointer))
            continue
        pointer = "#missing-schema" if result.missing_schema else result.pointer
        key = (doc.file, doc.kind, doc.name, pointer)
        if key in seen:
            _both(merged, seen[key])
            continue
        path = tuple(p for p in pointer.split("/") if p and not p.startswith("#"))
        level = "warning" if result.missing_schema and not strict else "error"
        merged.append(doc.finding(message, path=path, level=level, source="kubeconform",
                                  pointer=pointer))
        seen[key] = len(merged) - 1
    return merged


def _both(findings: list[Problem], index: int) -> None:
    """Mark a finding as found by kubeconform too."""
    f = findings[index]
    findings[index] = object_problem(f.file, f.line, f.kind, f.name, f.message, f.level,
                              "k10fleet+kubeconform", f.pointer)


PARALLEL_FROM = 600  # files; below this a forked helper costs more than it saves
_PART = 64  # files a process takes at a time


@dataclass
class _Share:
    """What checking some of the tree's files found: documents cut to their identity (cheap
    to send from a helper), kustomizations whole (they are checked with the whole tree)."""

    documents: list[Document]
    findings: list[Problem]
    kustomizations: list[Document]


@dataclass(frozen=True)
class _Tree:
    """The tree being checked, from its listing."""

    root: str
    rels: list[str]  # every file the check reads, in the listing's order
    outside: frozenset[str]  # links to files out of the tree: not read
    irregular: frozenset[str]  # not shown as regular files: read with every test
    known: Mapping[str, bytes]  # files read already (by ``render --check``)

    @classmethod
    def listed(cls, root: str, known: Mapping[str, bytes]) -> _Tree:
        entries = list(tree_entries(root))
        irregular = frozenset(rel for rel, regular in entries if not regular)
        return cls(root, [rel for rel, _ in entries], _links_out(root, irregular), irregular,
                   known)


def _check_share(checker: _Checker, tree: _Tree, rels: Iterable[str], every_file: set[str]
                 ) -> _Share:
    """Read and check these files of the tree (``every_file``: all the files the check
    reads, so that a kustomization listing one of them need not look at it again)."""
    share = _Share([], [], [])
    findings = share.findings
    normalized = os.path.normpath(tree.root)
    for documents, found in each_file(tree.root, tree.root, rels, tree.known, tree.outside,
                                      tree.irregular):
        findings += found
        for doc in documents:
            if is_kustomization(doc):
                findings += kustomization_findings(doc, normalized, every_file)
                share.kustomizations.append(doc)
                share.documents.append(doc)
            else:
                findings += checker.document(doc)
                share.documents.append(doc.identity())
    return share


def _links_out(root: str, irregular: frozenset[str]) -> frozenset[str]:
    """The entries that are links to a file out of the tree (among the few not regular
    files; a link to a device or a pipe is reported as that, unread, by ``read_text``)."""
    return frozenset(rel for rel in irregular
                     if os.path.islink(path := os.path.join(root, rel))
                     and os.path.isfile(path) and leaves_tree(root, path))


def _check_files(checker: _Checker, tree: _Tree) -> _Share:
    """Both cores on big trees: half the files in a forked helper, half here."""
    rels = tree.rels
    every_file = set(rels)
    if len(rels) < PARALLEL_FROM or parallel_jobs() < 2:
        return _check_share(checker, tree, rels, every_file)
    size = max(_PART, -(-len(rels) // 8000))  # parts of the tree, taken by the free process
    queue = SharedQueue([rels[i:i + size] for i in range(0, len(rels), size)])
    try:
        theirs = in_forked_child(lambda: _check_share(
            checker, tree, itertools.chain.from_iterable(queue.taken()), every_file))
        try:
            ours = _check_share(checker, tree, itertools.chain.from_iterable(queue.taken()),
                                every_file)
        finally:
            try:
                their: _Share = theirs()
            except OSError as e:
                raise EnvironmentFailure(f"the check helper process failed ({e.strerror}); "
                                         "the tree was not checked") from None
    finally:
        queue.close()
    order = {rel: i for i, rel in enumerate(rels)}
    documents = sorted(ours.documents + their.documents, key=lambda d: order[d.rel])
    kustomizations = sorted(ours.kustomizations + their.kustomizations,
                            key=lambda d: order[d.rel])
    return _Share(documents, ours.findings + their.findings, kustomizations)


def _start_kubeconform(options: CheckOptions, store: SchemaStore, tree: _Tree,
                       notes: list[str]) -> tuple[str | None, subprocess.Popen[str] | None]:
    binary = kubeconform.locate(options.kubeconform)
    if not binary:
        if options.kubeconform != "off":
            notes.append("kubeconform not found: checked with k10fleet's validator only "
                         f"(install it for a second opinion: {kubeconform.INSTALL_HINT})")
        return None, None
    manifests = _kubeconform_files(options.root, tree.rels, tree.irregular)
    if not manifests:
        return binary, None
    version = kubernetes_schema_dir(options.kubernetes_version).name
    version = version.removeprefix("v").removesuffix("-local-strict")
    standalone = os.path.dirname(write_standalone_cache(options.kubernetes_version,
                                                        kubeconform.cache_root()))
    locations = store.kubeconform_locations(kubeconform.cache_root())
    return binary, kubeconform.start(kubeconform.command(binary, manifests, version, standalone,
                                                         locations))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a check builds its documents: they are all alive
    until the report, and the collector's passes over them cost more than a quarter of a
    10,000-cluster check (measured: parent 3.3-3.9 s of CPU with it, 2.65-2.9 s without).
    Turned back on only if it was on: the CLI, a short-lived process, leaves it off, which
    also spares the pass over everything the check made that would follow."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_check(options: CheckOptions, progress: Callable[[int, int], None] | None = None,
              known: Mapping[str, bytes] | None = None) -> CheckReport:
    """Check the tree at ``options.root``; findings are data, nothing is printed.
    ``known``: files (relative path -> bytes) already read and proven equal to what is on
    disk, by ``render --check`` in ``k10fleet ci``; they are not read again."""
    with _collector_paused():
        return _run_check(options, progress, known)


def _run_check(options: CheckOptions, progress: Callable[[int, int], None] | None,
               known: Mapping[str, bytes] | None) -> CheckReport:
    root = options.root
    if not os.path.isdir(root):
        raise UsageFailure(f"{root} is not a directory")
    checker = _Checker(options)
    tree = _Tree.listed(root, known or {})
    rels = tree.rels
    notes: list[str] = []
    binary, process = _start_kubeconform(options, checker.store, tree, notes)
    try:
        share = _check_files(checker, tree)
    except BaseException:
        if process is not None:
            process.kill()
            process.wait()
        raise
    if progress is not None:
        progress(len(rels), len(rels))
    documents, findings = share.documents, share.findings
    shown = os.path.join(root, "")
    files = len({d.rel for d in documents} | {f.file.removeprefix(shown) for f in findings})
    findings += _encrypted_resource_findings(root, share)
    if process is not None:
        findings = _merge(findings, kubeconform.collect(process), documents, root,
                          options.strict)
    if options.kustomize:
        from generator.check.kustomize import kustomize_builds  # kubectl: only when asked

        findings.extend(kustomize_builds(root, share.kustomizations))
    if options.fleet:
        findings.extend(_drift_findings(options.fleet, root))
    findings.sort(key=lambda f: (f.file, f.line, f.kind, f.name, f.message))
    return CheckReport(findings, documents, files, binary, notes)


def _encrypted_resource_findings(root: str, share: _Share) -> list[Problem]:
    encrypted = {d.rel for d in share.documents if is_sops_encrypted(d)}
    if not encrypted or _tree_engine(root) != "argocd":
        return []
    normalized = os.path.normpath(root)
    return [f for doc in share.kustomizations
            for f in encrypted_resource_findings(doc, normalized, encrypted)]


def _drift_findings(fleet: str, root: str) -> list[Problem]:
    from generator import pipeline

    outcome = pipeline.render(fleet, root, check=True)
    drift = outcome.drift
    assert drift is not None
    stale = [object_problem(os.path.join(root, s.path), 1, "Secret", "",
                            f"stale injected Secret: {'; '.join(s.reasons)}; run "
                            f"`k10fleet inject {fleet} -o {root}`", rule="stale-secret")
             for s in outcome.stale]  # made from inputs that changed: inject must run again
    return stale + [object_problem(os.path.join(root, rel), 1, "", "",
                                   f"{status}: not what {fleet} renders; run "
                                   f"`k10fleet render {fleet} -o {root}`", rule="drift")
                    for status, rel in drift.entries()]
