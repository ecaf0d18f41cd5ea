"""Orchestrates ``check``: our validator, the real kubeconform beside it, merged findings."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from generator import kubectl
from generator.check import DEFAULT_KUBERNETES_VERSION, kubeconform
from generator.check.documents import Document, read_documents
from generator.check.findings import Finding
from generator.check.rules import (
    KUSTOMIZATION_FILES,
    VALUES_FILE,
    ChartValues,
    is_sops_encrypted,
    kustomization_findings,
    schema_view,
    secret_findings,
    values_findings,
)
from generator.check.schemas import (
    SchemaStore,
    kubernetes_schema_dir,
    write_standalone_cache,
)
from generator.errors import InvalidInput, UsageFailure
from generator.output import read_manifest

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DATA_KEY = re.compile(r"[-._a-zA-Z0-9]+\Z")
_LABEL_NAMED_KINDS = {"Namespace", "Service"}
_SUBDOMAIN_KINDS = {"Secret", "ConfigMap", "ServiceAccount", "Deployment", "StatefulSet",
                    "DaemonSet", "Job", "CronJob", "Pod", "PersistentVolumeClaim"}
KSOPS = ("viaduct.ai/v1", "ksops")


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
    findings: list[Finding]
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


def _is_kustomization(doc: Document) -> bool:
    return os.path.basename(doc.rel) in KUSTOMIZATION_FILES or (
        doc.kind == "Kustomization" and doc.api_version.startswith("kustomize.config.k8s.io/"))


def _name_findings(doc: Document) -> list[Finding]:
    meta = doc.data.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        return []
    name = meta["name"]
    rule = (_LABEL if doc.kind in _LABEL_NAMED_KINDS else
            _SUBDOMAIN if doc.kind in _SUBDOMAIN_KINDS else None)
    findings = []
    if rule is not None and (len(name) > 253 or not rule.match(name)):
        findings.append(doc.finding(f"metadata.name {name!r} is not a valid {doc.kind} name "
                                    "(lower-case letters, digits, '-' and '.')",
                                    path=("metadata", "name"), pointer="/metadata/name"))
    elif rule is None and (name in (".", "..") or "/" in name or "%" in name or not name):
        findings.append(doc.finding(f"metadata.name {name!r} is not a valid object name",
                                    path=("metadata", "name"), pointer="/metadata/name"))
    if doc.kind in ("Secret", "ConfigMap"):
        for data_field in ("data", "stringData", "binaryData"):
            values = doc.data.get(data_field)
            if isinstance(values, dict):
                for key in values:
                    if not _DATA_KEY.match(str(key)):
                        findings.append(doc.finding(
                            f"{data_field} key {str(key)!r} is invalid (letters, digits, "
                            "'-', '_' and '.')", path=(data_field, str(key))))
    return findings


def _tree_engine(root: str) -> str:
    """argocd, flux or unknown: from the tree's manifest, else from its folders."""
    try:
        engine = read_manifest(root).meta.get("engine")
    except InvalidInput:
        engine = None
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
                                 options.crds)
        self.chart = ChartValues.load(options.k10_chart) if options.k10_chart else None

    def document(self, doc: Document, engine: str, encrypted: set[str],
                 parsed: set[str]) -> list[Finding]:
        name = os.path.basename(doc.rel)
        if name == VALUES_FILE:
            return list(values_findings(doc, self.chart))
        if _is_kustomization(doc):
            return list(kustomization_findings(doc, self.options.root, engine, encrypted,
                                               parsed))
        if not isinstance(doc.data, dict) or not doc.api_version or not doc.kind:
            return [doc.finding("not a Kubernetes object (no apiVersion/kind)",
                                level="warning")]
        if (doc.api_version, doc.kind) == KSOPS:
            return []  # a KSOPS generator spec, read by kustomize, never applied
        found = self.store.lookup(doc.api_version, doc.kind)
        findings: list[Finding] = []
        if found is None:
            findings.append(doc.finding(
                f"no schema for {doc.api_version} {doc.kind}; give its folder with "
                "--schema-location", level="error" if self.options.strict else "warning",
                pointer="#missing-schema"))
        else:
            validator, _source = found
            for error in validator.errors(schema_view(doc)):
                where = ".".join(map(str, error.path))
                findings.append(doc.finding(f"{where + ': ' if where else ''}{error.message}",
                                            path=error.path, pointer=error.pointer))
        findings.extend(_name_findings(doc))
        if doc.kind == "Secret" and doc.api_version == "v1":
            findings.extend(secret_findings(doc))
        return findings


def _kubeconform_files(root: str, documents: list[Document]) -> list[str]:
    skipped = {d.rel for d in documents if is_sops_encrypted(d) or _is_kustomization(d)
               or os.path.basename(d.rel) == VALUES_FILE or (d.api_version, d.kind) == KSOPS}
    manifests = sorted({d.rel for d in documents} - skipped)
    return [os.path.join(root, rel) for rel in manifests]


def _merge(ours: list[Finding], theirs: list[kubeconform.Result], documents: list[Document],
           root: str, strict: bool) -> list[Finding]:
    """kubeconform's findings beside ours; the same problem found by both is shown once."""
    by_object = {(os.path.join(root, d.rel), d.kind, d.name): d for d in documents}
    merged = list(ours)
    seen = {(f.file, f.kind, f.name, f.pointer): i for i, f in enumerate(merged)}
    for result in theirs:
        doc = by_object.get((result.filename, result.kind, result.name))
        if doc is None:  # kubeconform read the file differently: still report it
            shown = result.filename
            merged.append(Finding(shown, 1, result.kind, result.name, result.message,
                                  "warning" if result.missing_schema and not strict
                                  else "error", "kubeconform", result.pointer))
            continue
        pointer = "#missing-schema" if result.missing_schema else result.pointer
        key = (doc.file, doc.kind, doc.name, pointer)
        if key in seen:
            index = seen[key]
            previous = merged[index]
            merged[index] = Finding(previous.file, previous.line, previous.kind, previous.name,
                                    previous.message, previous.level,
                                    "k10fleet+kubeconform", previous.pointer)
            continue
        path = tuple(p for p in pointer.split("/") if p and not p.startswith("#"))
        level = "warning" if result.missing_schema and not strict else "error"
        merged.append(doc.finding(result.message, path=path, level=level, source="kubeconform",
                                  pointer=pointer))
        seen[key] = len(merged) - 1
    return merged


def _kustomize_builds(root: str, documents: list[Document]) -> list[Finding]:
    """``kubectl kustomize`` every directory with a kustomization, KSOPS generators set aside."""
    binary = kubectl.find_kubectl()
    findings = []
    for doc in documents:
        if not _is_kustomization(doc) or not isinstance(doc.data, dict):
            continue
        directory = os.path.join(root, os.path.dirname(doc.rel))
        with tempfile.TemporaryDirectory(prefix="k10fleet-kustomize-") as scratch:
            copy = os.path.join(scratch, "tree")
            shutil.copytree(directory, copy, symlinks=True)
            generators = [g for g in doc.data.get("generators") or []
                          if not _is_ksops(os.path.join(directory, str(g)))]
            data: dict[str, Any] = {**doc.data, "generators": generators}
            if not generators:
                data.pop("generators")
            with open(os.path.join(copy, os.path.basename(doc.rel)), "w",
                      encoding="utf-8") as handle:
                yaml.safe_dump(data, handle)
            status, _, stderr = kubectl.run_bounded([binary, "kustomize", copy],
                                                    what=f"kubectl kustomize {doc.rel}")
        if status != 0:
            findings.append(doc.finding("kubectl kustomize fails: "
                                        f"{kubectl.failure_reason(stderr, status)}"))
    return findings


def _is_ksops(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and (data.get("apiVersion"), data.get("kind")) == KSOPS


def run_check(options: CheckOptions,
              progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Check the tree at ``options.root``; findings are data, nothing is printed."""
    root = options.root
    if not os.path.isdir(root):
        raise UsageFailure(f"{root} is not a directory")
    checker = _Checker(options)
    documents, findings = read_documents(root, root)
    files = len({d.rel for d in documents}) + len({f.file for f in findings})
    binary = kubeconform.locate(options.kubeconform)
    process = None
    notes: list[str] = []
    manifests = _kubeconform_files(root, documents)
    if binary and manifests:
        version = kubernetes_schema_dir(options.kubernetes_version).name
        version = version.removeprefix("v").removesuffix("-local-strict")
        standalone = os.path.dirname(write_standalone_cache(options.kubernetes_version,
                                                            kubeconform.cache_root()))
        locations = checker.store.kubeconform_locations(kubeconform.cache_root())
        process = kubeconform.start(kubeconform.command(binary, manifests, version, standalone,
                                                        locations))
    elif not binary and options.kubeconform != "off":
        notes.append("kubeconform not found: checked with k10fleet's validator only (install "
                     f"it for a second opinion: {kubeconform.INSTALL_HINT})")
    engine = _tree_engine(root)
    encrypted = {d.rel for d in documents if is_sops_encrypted(d)}
    # files already read above need no second parse when a kustomization lists them
    parsed = {d.rel for d in documents} | {
        os.path.relpath(f.file, root).replace(os.sep, "/") for f in findings}
    for index, doc in enumerate(documents):
        if progress is not None and index % 500 == 0:
            progress(index, len(documents))
        findings.extend(checker.document(doc, engine, encrypted, parsed))
    if progress is not None:
        progress(len(documents), len(documents))
    if process is not None:
        findings = _merge(findings, kubeconform.collect(process), documents, root,
                          options.strict)
    if options.kustomize:
        findings.extend(_kustomize_builds(root, documents))
    if options.fleet:
        from generator import pipeline

        drift = pipeline.render(options.fleet, root, check=True).drift
        assert drift is not None
        for label, paths in (("missing", drift.missing), ("differs", drift.differing),
                             ("extra", drift.extra)):
            for rel in paths:
                findings.append(Finding(os.path.join(root, rel), 1, "", "",
                                        f"{label}: not what {options.fleet} renders; run "
                                        f"`k10fleet render {options.fleet} -o {root}`"))
    findings.sort(key=lambda f: (f.file, f.line, f.kind, f.name, f.message))
    return CheckReport(findings, documents, files, binary, notes)
