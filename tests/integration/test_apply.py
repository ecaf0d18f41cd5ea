"""Every object of every rendered variant is accepted by a real kube-apiserver: server-side
apply with strict field validation, in the order the engine applies it, on two API servers (the
primary, and one taking the secondaries' objects) shared by this module's tests. Only the
namespaces the engine itself creates are created; every other namespace must come from the
tree before its objects (checked on each plan, so a namespace an earlier test left on the
shared servers hides nothing)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import OpenBao, render_data, run_cli, tree_bytes
from tests.golden.variants import GOLDEN, names, variant
from tests.integration.conftest import StartClusters
from tests.integration.engines import Step, manifest, missing_namespaces, plan
from tests.integration.kube import Clusters

ROLES = ("primary", "secondary")


@pytest.fixture(scope="module")
def servers(kube_clusters: StartClusters) -> Iterator[Clusters]:
    clusters = kube_clusters(*ROLES, crds=True)
    yield clusters
    clusters.stop()  # early; the session's finalizer stops whatever is left


def apply_plan(clusters: Clusters, steps: list[Step]) -> list[tuple[str, dict[str, Any]]]:
    """Apply every step; return (role, object) for each object applied."""
    assert missing_namespaces(steps) == []
    applied = []
    for step in steps:
        clusters.apply(step.role, step.objects)
        applied += [(step.role, doc) for doc in step.objects]
    return applied


def assert_all_stored(clusters: Clusters, applied: list[tuple[str, dict[str, Any]]]) -> None:
    """Each applied object reads back, with its labels, from the server it went to."""
    for role, doc in applied:
        meta = doc["metadata"]
        stored = clusters[role].read(doc["apiVersion"], doc["kind"], meta["name"],
                                     meta.get("namespace"))
        assert stored is not None, f"{doc['kind']} {meta['name']} missing on {role}"
        wanted = meta.get("labels") or {}
        assert wanted.items() <= (stored["metadata"].get("labels") or {}).items()


def render(tmp_path: Path, data: dict[str, Any], name: str = "fleet") -> Path:
    return render_data(data, tmp_path, name)


@pytest.mark.parametrize("name", names())
def test_variant_and_its_golden_tree_apply(name: str, tmp_path: Path,
                                           servers: Clusters) -> None:
    """engines argocd/flux/none x token modes sops/external-secrets/vault-plugin/plain: a fresh
    render, byte-identical to the golden tree, applied object by object."""
    engine, mode = name.split("-", 1)
    tree = render(tmp_path, variant(engine, mode), name)
    assert tree_bytes(tree) == tree_bytes(GOLDEN / name), "golden tree drifted: regenerate"
    clusters = servers
    applied = apply_plan(clusters, plan(GOLDEN / name))
    kinds = {doc["kind"] for _, doc in applied}
    assert {"Secret", "Namespace", "K10ClusterRoleBinding", "Distribution"} <= kinds
    if engine == "argocd":
        assert "Application" in kinds
    if engine == "flux":
        assert {"HelmRelease", "Kustomization", "GitRepository", "HelmRepository"} <= kinds
    if mode == "external-secrets":
        assert {"ExternalSecret", "PushSecret"} <= kinds
    assert_all_stored(clusters, applied)
    token_secret = clusters.get("primary", "secret", "join-token-secret", "kasten-io-mc")
    assert token_secret is not None and token_secret["type"] == "dist.kio.kasten.io/join-token"


@pytest.mark.parametrize(("engine", "version"),
                         [("argocd", "6.5.0"), ("flux", "6.5.7"), ("none", "6.5.3")])
def test_bootstrap_fleet_applies(engine: str, version: str, tmp_path: Path,
                                 servers: Clusters) -> None:
    """K10 6.5.0-6.5.7 primaries are promoted by a Bootstrap object instead of Helm values."""
    data = variant(engine, "sops")
    data["spec"]["kasten"]["version"] = version
    data["spec"]["kasten"]["chart"]["version"] = version
    for secondary in data["spec"]["secondaries"]:  # all on the primary's side of 6.5.14
        secondary.get("kasten", {}).pop("version", None)
    tree = render(tmp_path, data)
    assert (tree / "clusters" / "primary-1" / "bootstrap.yaml").exists()
    clusters = servers
    apply_plan(clusters, plan(tree))
    bootstrap = clusters.get("primary", "bootstrap.dist.kio.kasten.io", "bootstrap-primary",
                             "kasten-io-mc")
    assert bootstrap is not None
    assert "primary-1" in yaml.safe_dump(bootstrap["spec"])
    config = clusters["secondary"].read("v1", "ConfigMap", "mc-join-config", "kasten-io")
    rendered = yaml.safe_load((tree / "clusters/lab-1/mc-join-config.yaml").read_text())
    assert config is not None and config["data"] == rendered["data"]  # the last secondary
    edge_1 = (tree / "clusters/edge-1/mc-join-config.yaml").read_text()
    assert "cluster-name" in edge_1 and "cluster-ingress" not in edge_1  # 6.5.0-6.5.13 keys


def test_injected_flux_tree_applies_decrypted(tmp_path: Path, servers: Clusters,
                                              vault_env: OpenBao, age_key: str) -> None:
    """A Flux tree after `inject`: each Secret decrypted by sops first, as kustomize-controller
    does; the secondary then holds the token from the store."""
    import hvac  # the test writes the store, as `token import` would

    token = "eyJrMTAiOiJqb2luIn0." + base64.urlsafe_b64encode(b"x" * 24).decode()
    data = variant("flux", "sops")
    data["spec"]["tokens"]["store"] = f"vault://secret/k10fleet/{tmp_path.name}"
    profile_path = f"k10fleet/{tmp_path.name}-s3"
    data["spec"]["profiles"][0]["credentials"]["store"] = f"vault://secret/{profile_path}"
    client = hvac.Client(url=vault_env.address, token=vault_env.token)
    client.secrets.kv.v2.create_or_update_secret(path=f"k10fleet/{tmp_path.name}",
                                                 secret={"token": token}, mount_point="secret")
    client.secrets.kv.v2.create_or_update_secret(
        path=profile_path, secret={"aws_access_key_id": "AKIAEXAMPLE",
                                   "aws_secret_access_key": "example/secret"},
        mount_point="secret")
    tree = render(tmp_path, data)
    injected = run_cli("inject", tmp_path / "fleet.fleet.yaml", "-o", tree, "--age", age_key)
    assert injected.exit_code == 0, injected.output
    encrypted = sorted(p.name for p in tree.rglob("*.sops.yaml"))
    assert "mc-join.sops.yaml" in encrypted
    assert manifest(tree)["engine"] == "flux"
    clusters = servers
    apply_plan(clusters, plan(tree))
    secret = clusters.get("secondary", "secret", "mc-join", "kasten-io")
    assert secret is not None
    assert base64.b64decode(secret["data"]["token"]).decode() == token
    credentials = clusters.get("primary", "secret", "s3-backups-credentials", "kasten-io-mc")
    assert credentials is not None
    assert base64.b64decode(credentials["data"]["aws_access_key_id"]) == b"AKIAEXAMPLE"



def test_a_forgotten_namespace_is_caught(tmp_path: Path) -> None:
    """The namespace check on the plan fails when the tree does not declare kasten-io-mc."""
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(GOLDEN / "none-sops", tree)
    listing = tree / "clusters/primary-1/kustomization.yaml"
    listing.write_text(listing.read_text().replace("- kasten-io-mc-namespace.yaml\n", ""))
    missing = missing_namespaces(plan(tree))
    assert "clusters/primary-1: Secret kasten-io-mc/join-token-secret" in missing
