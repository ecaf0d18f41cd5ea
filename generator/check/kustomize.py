"""``check --kustomize``: ``kubectl kustomize`` every directory that has a kustomization."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from typing import Any

import yaml

from generator import kubectl
from generator.check.documents import KSOPS, Document, Unreadable, is_kustomization, read_text
from generator.check.rules import cut
from generator.problems import Problem


def _special_file(directory: str) -> str:
    """The first entry under directory that is neither a folder, a file nor a link."""
    for current, dirs, files in os.walk(directory):
        for name in sorted(dirs + files):
            mode = os.lstat(os.path.join(current, name)).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                return os.path.relpath(os.path.join(current, name), directory)
    return ""


def kustomize_builds(root: str, documents: list[Document]) -> list[Problem]:
    """``kubectl kustomize`` every directory with a kustomization, KSOPS generators set aside."""
    binary = kubectl.find_kubectl()
    findings = []
    for doc in documents:
        if not is_kustomization(doc) or not isinstance(doc.data, dict):
            continue
        directory = os.path.join(root, os.path.dirname(doc.rel))
        special = _special_file(directory)
        if special:
            findings.append(doc.finding(f"kubectl kustomize not run: {cut(special)!r} is not "
                                        "a regular file (a device, pipe or socket?)",
                                        rule="kustomize-build"))
            continue
        status, stderr = _kustomize(binary, directory, doc)
        if status != 0:  # kubectl names why
            findings.append(doc.finding("kubectl kustomize fails: "
                                        f"{kubectl.failure_reason(stderr, status)}",
                                        rule="kustomize-build"))
    return findings


def _kustomize(binary: str, directory: str, doc: Document) -> tuple[int, bytes]:
    """(exit status, stderr) of ``kubectl kustomize`` on a copy, KSOPS generators set aside."""
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
    return status, stderr


def _is_ksops(path: str) -> bool:
    try:
        data = yaml.safe_load(read_text(path))
    except (Unreadable, yaml.YAMLError):
        return False
    return isinstance(data, dict) and (data.get("apiVersion"), data.get("kind")) == KSOPS
