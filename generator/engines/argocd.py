"""Argo CD: one multi-source Application per cluster.

Source 1 is the K10 chart with ``valueFiles: [$values/<path>/clusters/<c>/k10-values.yaml]``,
source 2 the fleet repo as the ``$values`` ref, source 3 the cluster's manifests folder.
Inside the Application, sync waves put the K10 release (wave 0) before the Multi-Cluster
objects (wave 1). The primary's join-token Secret is protected with ``ignoreDifferences``
on ``/data`` plus ``RespectIgnoreDifferences=true``, so Argo CD never reverts the token K10
writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from generator.fleet.model import MC_NAMESPACE, Cluster, Fleet
from generator.render.templates import render_template

if TYPE_CHECKING:
    from generator.render.fleet import RenderedTree

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
            # the wave-1 objects are K10 CRs, which exist only once K10 runs: retry
            "retry": {"backoff": {"duration": "30s", "factor": 2, "maxDuration": "5m0s"},
                      "limit": 10},
            "syncOptions": ["CreateNamespace=true", "RespectIgnoreDifferences=true"],
        },
    }
    if cluster.is_primary:
        spec["ignoreDifferences"] = [{
            "group": "", "jsonPointers": ["/data"], "kind": "Secret",
            "name": fleet.tokens.join_token_secret, "namespace": MC_NAMESPACE,
        }]
    return spec


def render_cluster(fleet: Fleet, cluster: Cluster, tree: RenderedTree,
                   ctx: dict[str, Any]) -> None:
    """The cluster's Application (after its own files, which it does not read)."""
    tree.add(f"{FOLDER}/{cluster.name}.yaml", render_template(
        "argocd/application.yaml.j2", **ctx, cluster=cluster, name=app_name(cluster),
        namespace=fleet.gitops.namespace, spec=application_spec(fleet, cluster)))


def render_global(fleet: Fleet, tree: RenderedTree, ctx: dict[str, Any]) -> None:
    names = sorted(f"{cluster.name}.yaml" for cluster in fleet.clusters)
    tree.add(f"{FOLDER}/kustomization.yaml", render_template(
        "kustomization.yaml.j2", **ctx, resources=names, generators=[]))
