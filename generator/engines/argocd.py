"""Argo CD: one multi-source Application per cluster.

Source 1 is the K10 chart with ``valueFiles: [$values/<path>/clusters/<c>/k10-values.yaml]``,
source 2 the fleet repo as the ``$values`` ref, source 3 the cluster's manifests folder.
Inside the Application, sync waves put the K10 release (wave 0) before the Multi-Cluster
objects (wave 1). The primary's join-token Secret is protected with ``ignoreDifferences``
on ``/data`` plus ``RespectIgnoreDifferences=true``, so Argo CD never reverts the token K10
writes.
"""

from __future__ import annotations

from typing import Any

from generator.engines.base import Files, ObjectRole
from generator.fleet.model import MC_NAMESPACE, Cluster, Fleet
from generator.render.templates import render_template

FOLDER = "argocd"


def app_name(cluster: Cluster) -> str:
    return f"k10-{cluster.name}"


def chart_source(cluster: Cluster, values_file: str) -> dict[str, Any]:
    chart = cluster.kasten.chart
    oci = chart.repository.startswith("oci://")
    return {
        "chart": chart.name,
        "helm": {"releaseName": cluster.kasten.release_name, "valueFiles": [values_file]},
        "repoURL": chart.repository.removeprefix("oci://") if oci else chart.repository,
        "targetRevision": chart.version,
    }


def destination(cluster: Cluster) -> dict[str, str]:
    target = cluster.destination
    where = {"server": target.server} if target.server else {"name": target.name or cluster.name}
    return {**where, "namespace": cluster.kasten.namespace}


def application_spec(fleet: Fleet, cluster: Cluster) -> dict[str, Any]:
    gitops = fleet.gitops
    base = f"{gitops.path}/clusters/{cluster.name}" if gitops.path != "." else \
        f"clusters/{cluster.name}"
    spec: dict[str, Any] = {
        "destination": destination(cluster),
        "project": gitops.project,
        "sources": [
            chart_source(cluster, f"$values/{base}/k10-values.yaml"),
            {"ref": "values", "repoURL": gitops.repo_url, "targetRevision": gitops.revision},
            {"path": base, "repoURL": gitops.repo_url, "targetRevision": gitops.revision},
        ],
        "syncPolicy": {
            "automated": {"prune": True, "selfHeal": True},
            "syncOptions": ["CreateNamespace=true", "RespectIgnoreDifferences=true"],
        },
    }
    if cluster.is_primary:
        spec["ignoreDifferences"] = [{
            "group": "", "jsonPointers": ["/data"], "kind": "Secret",
            "name": fleet.tokens.join_token_secret, "namespace": MC_NAMESPACE,
        }]
    return spec


MC_SYNC_WAVE = "1"  # the K10 release (wave 0) first, Multi-Cluster objects after it


class ArgoCD:
    name = "argocd"
    needs_sops_generator = True  # Argo CD would apply an encrypted Secret as-is

    def annotations(self, role: ObjectRole) -> dict[str, str]:
        annotations = {"argocd.argoproj.io/sync-wave": MC_SYNC_WAVE}
        if role == "namespace":  # K10 also owns kasten-io-mc: never prune or delete it
            annotations["argocd.argoproj.io/sync-options"] = "Prune=false,Delete=false"
        return annotations

    def k10_object_annotations(self, wave: int) -> dict[str, str]:
        """K10 registers its CRDs when it starts, after Argo CD's dry run of a first sync."""
        return {"argocd.argoproj.io/sync-wave": str(wave),
                "argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true"}

    def cluster_files(self, fleet: Fleet, cluster: Cluster, values: bytes,
                      ctx: dict[str, Any]) -> Files:
        """The cluster's Application."""
        return [(f"{FOLDER}/{cluster.name}.yaml", render_template(
            "argocd/application.yaml.j2", **ctx, cluster=cluster, name=app_name(cluster),
            namespace=fleet.gitops.namespace, spec=application_spec(fleet, cluster)))]

    def global_files(self, fleet: Fleet, ctx: dict[str, Any]) -> Files:
        names = sorted(f"{cluster.name}.yaml" for cluster in fleet.clusters)
        return [(f"{FOLDER}/kustomization.yaml", render_template(
            "kustomization.yaml.j2", **ctx, resources=names, generators=[]))]
