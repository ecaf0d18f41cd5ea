"""Flux: per cluster a HelmRelease (values from a content-hashed ConfigMap) and a
Kustomization for the cluster's manifests that depends on the release.

Layout under ``flux/``: ``sources.yaml`` (the fleet's GitRepository and one HelmRepository
or OCIRepository per chart source), ``<cluster>.yaml`` (two Flux Kustomizations: the
release, then the Multi-Cluster objects with ``dependsOn``), and ``releases/<cluster>/``
(the HelmRelease and its values ConfigMap). Remote clusters are reached through
``kubeConfig.secretRef``; in sops mode, secondaries (and a primary holding profile
credentials) get ``decryption.provider: sops``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from generator.engines.base import Files, ObjectRole
from generator.fleet.model import Cluster, Fleet
from generator.render.templates import render_template

FOLDER = "flux"
GIT_SOURCE = "k10fleet"
# A Kustomization with ``wait: true`` holds a kustomize-controller worker while it waits; without
# a timeout that is the whole interval, and a few pending releases starve every other
# Kustomization (docs/flux.md: sizing --concurrent). Waits are short and retried instead.
KUSTOMIZATION_TIMEOUT = "1m"
KUSTOMIZATION_RETRY = "1m"
HELM_TIMEOUT = "5m"  # Helm's install/upgrade wait for K10, made explicit


def _repo_path(fleet: Fleet, *parts: str) -> str:
    base = "" if fleet.gitops.path == "." else f"{fleet.gitops.path}/"
    return "./" + base + "/".join(parts)


def chart_source_name(cluster: Cluster) -> tuple[str, str]:
    """(kind, name) of the source object serving this cluster's chart."""
    chart = cluster.kasten.chart
    slug = re.sub(r"[^a-z0-9]+", "-", chart.repository.lower().split("://", 1)[-1]).strip("-")
    digest = hashlib.sha256(chart.repository.encode()).hexdigest()[:8]
    if chart.repository.startswith("oci://"):
        version = re.sub(r"[^a-z0-9]+", "-", chart.version.lower()).strip("-")
        return "OCIRepository", f"{chart.name}-{version}-{digest}"[:63].strip("-")
    return "HelmRepository", f"{slug[:40]}-{digest}".strip("-")


def values_configmap_name(cluster: Cluster, values: bytes) -> str:
    """Content-hashed, so an edit creates a new ConfigMap and Flux rolls the release."""
    return f"k10-values-{cluster.name}-{hashlib.sha256(values).hexdigest()[:10]}"


def kube_config(cluster: Cluster) -> dict[str, Any] | None:
    target = cluster.destination
    if not target.kubeconfig_secret:
        return None
    return {"secretRef": {"key": target.kubeconfig_key, "name": target.kubeconfig_secret}}


def sources(fleet: Fleet) -> list[dict[str, Any]]:
    gitops = fleet.gitops
    meta = {"namespace": gitops.namespace}
    objects: dict[str, dict[str, Any]] = {}
    objects["GitRepository/" + GIT_SOURCE] = {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": GIT_SOURCE, **meta},
        "spec": {"interval": gitops.interval, "ref": {"branch": gitops.revision},
                 "url": gitops.repo_url}}
    for cluster in fleet.clusters:
        kind, name = chart_source_name(cluster)
        chart = cluster.kasten.chart
        if kind == "HelmRepository":
            spec: dict[str, Any] = {"interval": gitops.interval, "url": chart.repository}
        else:
            spec = {"interval": gitops.interval, "layerSelector": {
                "mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                "operation": "copy"}, "ref": {"tag": chart.version},
                "url": f"{chart.repository.rstrip('/')}/{chart.name}"}
        api = "source.toolkit.fluxcd.io/v1"
        objects[f"{kind}/{name}"] = {"apiVersion": api, "kind": kind,
                                     "metadata": {"name": name, **meta}, "spec": spec}
    return [objects[key] for key in sorted(objects)]


def helm_release_spec(fleet: Fleet, cluster: Cluster, values_name: str) -> dict[str, Any]:
    kind, source = chart_source_name(cluster)
    chart = cluster.kasten.chart
    spec: dict[str, Any] = {
        "install": {"createNamespace": True},
        "interval": fleet.gitops.interval,
        "releaseName": cluster.kasten.release_name,
        "storageNamespace": cluster.kasten.namespace,
        "targetNamespace": cluster.kasten.namespace,
        "timeout": HELM_TIMEOUT,
        "valuesFrom": [{"kind": "ConfigMap", "name": values_name, "valuesKey": "values.yaml"}],
    }
    if kind == "HelmRepository":
        spec["chart"] = {"spec": {"chart": chart.name, "sourceRef": {
            "kind": kind, "name": source}, "version": chart.version}}
    else:
        spec["chartRef"] = {"kind": kind, "name": source}
    config = kube_config(cluster)
    if config:
        spec["kubeConfig"] = config
    return spec


def kustomizations(fleet: Fleet, cluster: Cluster) -> list[dict[str, Any]]:
    gitops = fleet.gitops
    meta = {"namespace": gitops.namespace}
    source = {"kind": "GitRepository", "name": GIT_SOURCE}
    release = f"k10-release-{cluster.name}"
    manifests: dict[str, Any] = {
        "dependsOn": [{"name": release}],
        "interval": gitops.interval,
        "path": _repo_path(fleet, "clusters", cluster.name),
        "prune": True,
        "retryInterval": KUSTOMIZATION_RETRY,
        "sourceRef": source,
        "timeout": KUSTOMIZATION_TIMEOUT,
    }
    holds_secrets = (any(p.credentials for p in fleet.profiles) if cluster.is_primary
                     else True)  # mc-join, or profile credentials on the primary
    if fleet.tokens.mode == "sops" and holds_secrets:
        manifests["decryption"] = {"provider": "sops", "secretRef": {"name": gitops.sops_secret}}
    config = kube_config(cluster)
    if config:
        manifests["kubeConfig"] = config
    return [
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
         "metadata": {"name": release, **meta},
         "spec": {"interval": gitops.interval,
                  "path": _repo_path(fleet, FOLDER, "releases", cluster.name),
                  "prune": True, "retryInterval": KUSTOMIZATION_RETRY, "sourceRef": source,
                  "timeout": KUSTOMIZATION_TIMEOUT, "wait": True}},
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
         "metadata": {"name": f"k10-mc-{cluster.name}", **meta}, "spec": manifests},
    ]


class Flux:
    name = "flux"
    needs_sops_generator = False  # kustomize-controller decrypts SOPS files itself

    def annotations(self, role: ObjectRole) -> dict[str, str]:
        if role == "namespace":  # K10 also owns kasten-io-mc: never prune it
            return {"kustomize.toolkit.fluxcd.io/prune": "disabled"}
        if role == "join-token":  # K10 fills the token: create once, never overwrite
            return {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}
        return {}

    def k10_object_annotations(self, wave: int) -> dict[str, str]:
        return {}  # Flux applies them after the release through dependsOn

    def cluster_files(self, fleet: Fleet, cluster: Cluster, values: bytes,
                      ctx: dict[str, Any]) -> Files:
        """The cluster's HelmRelease, values ConfigMap (named after the content of
        ``values``, so an edit rolls the release) and Kustomizations."""
        values_name = values_configmap_name(cluster, values)
        base = f"{FOLDER}/releases/{cluster.name}"
        namespace = fleet.gitops.namespace
        release = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                   "metadata": {"name": f"k10-{cluster.name}", "namespace": namespace},
                   "spec": helm_release_spec(fleet, cluster, values_name)}
        configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": values_name, "namespace": namespace},
                     "data": {"values.yaml": values.decode()}}
        return [
            (f"{base}/helmrelease.yaml", render_template(
                "flux/objects.yaml.j2", **ctx, objects=[release])),
            (f"{base}/values-configmap.yaml", render_template(
                "flux/objects.yaml.j2", **ctx, objects=[configmap])),
            (f"{base}/kustomization.yaml", render_template(
                "kustomization.yaml.j2", **ctx,
                resources=["helmrelease.yaml", "values-configmap.yaml"], generators=[])),
            (f"{FOLDER}/{cluster.name}.yaml", render_template(
                "flux/objects.yaml.j2", **ctx, objects=kustomizations(fleet, cluster))),
        ]

    def global_files(self, fleet: Fleet, ctx: dict[str, Any]) -> Files:
        listed = ["sources.yaml", *(f"{cluster.name}.yaml" for cluster in fleet.clusters)]
        return [
            (f"{FOLDER}/sources.yaml", render_template(
                "flux/objects.yaml.j2", **ctx, objects=sources(fleet))),
            (f"{FOLDER}/kustomization.yaml", render_template(
                "kustomization.yaml.j2", **ctx, resources=listed, generators=[])),
        ]
