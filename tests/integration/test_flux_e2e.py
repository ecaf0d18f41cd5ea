"""Real Flux controllers reconcile a rendered, injected tree onto live API servers.

The test plays K10's part only where K10 itself writes: it fills the join-token Secret on the
primary (K10 does when it sees that Secret type). Everything else is real: kube-apiserver + etcd
per cluster, source-, kustomize- and helm-controller, a smart-HTTP git server, a chart
repository serving a stand-in k10 chart, OpenBao as the token store, sops + age."""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import OpenBao, run_cli
from tests.integration.conftest import StartClusters
from tests.integration.flux import NAMESPACE, PENDING_VERSION, FluxStack, git, wait_for
from tests.integration.kube import Clusters

MC = "kasten-io-mc"
K10 = "kasten-io"


@dataclass
class FleetRepo:
    """A work clone of the git server's fleet repo, with fleet.yaml and output/."""

    path: Path
    stack: FluxStack
    store: str

    @property
    def fleet(self) -> Path:
        return self.path / "fleet.yaml"

    def write(self, secondaries: list[dict[str, Any]]) -> None:
        data = e2e_fleet(self.stack, self.store, secondaries)
        self.fleet.write_text(yaml.safe_dump(data, sort_keys=False))

    def render(self) -> None:
        result = run_cli("render", self.fleet, "-o", self.path / "output")
        assert result.exit_code == 0, result.output

    def inject(self, age: str) -> None:
        result = run_cli("inject", self.fleet, "-o", self.path / "output", "--age", age)
        assert result.exit_code == 0, result.output

    def push(self, message: str) -> str:
        git("add", "-A", cwd=self.path)
        git("commit", "-qm", message, cwd=self.path)
        git("push", "-q", "origin", "main", cwd=self.path)
        sha = git("rev-parse", "HEAD", cwd=self.path).strip()
        self.stack.reconcile("GitRepository", "k10fleet")
        return sha


def secondary(name: str) -> dict[str, Any]:
    return {"name": name, "ingressURL": f"https://{name}.example.com/k10",
            "destination": {"kubeConfigSecret": {"name": f"{name}-kubeconfig"}}}


def pending_secondary(name: str) -> dict[str, Any]:
    """A secondary whose release never becomes ready: the stand-in chart at PENDING_VERSION
    has a Deployment, and nothing runs pods here. It lives on the hub (no kubeConfigSecret),
    in a namespace of its own."""
    return {"name": name, "kasten": {"version": PENDING_VERSION, "namespace": "k10-pending"}}


def e2e_fleet(stack: FluxStack, store: str, secondaries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "k10fleet/v1alpha1", "kind": "Fleet", "metadata": {"name": "e2e"},
            "spec": {
                "kasten": {"version": "7.5.2", "namespace": K10, "releaseName": "k10",
                           "chart": {"repository": stack.chart_url, "name": "k10",
                                     "version": "7.5.2"}},
                "primary": {"name": "hub", "ingressURL": "https://hub.example.com/k10"},
                "secondaries": secondaries,
                "tokens": {"mode": "sops", "joinTokenSecret": "join-token-secret",
                           "store": store},
                "gitops": {"engine": "flux", "repoURL": stack.git_url, "revision": "main",
                           "path": "output", "interval": "1m", "sopsSecret": "sops-age"}}}


def k10_fills_join_token(clusters: Clusters, token: str) -> None:
    """What K10 does on the primary: write the token into the join-token Secret."""
    clusters["hub"].request(
        f"/api/v1/namespaces/{MC}/secrets/join-token-secret", method="PATCH",
        body={"data": {"token": base64.b64encode(token.encode()).decode()}},
        content_type="application/merge-patch+json")


def import_token(repo: FleetRepo, clusters: Clusters, tmp_path: Path) -> None:
    """`token import --from` with what kubectl reads from the live primary."""
    saved = tmp_path / "join-token.json"
    saved.write_text(clusters.kubectl("hub", "get", "secret", "join-token-secret", "-n", MC,
                                      "-o", "json").stdout)
    result = run_cli("token", "import", repo.fleet, "--from", saved)
    saved.unlink()
    assert result.exit_code == 0, result.output


def bootstrap(stack: FluxStack, tree: Path) -> None:
    """The GitRepository from the rendered flux/sources.yaml and a root Kustomization on
    ./output/flux (README: Bootstrap)."""
    sources = [d for d in yaml.safe_load_all((tree / "flux" / "sources.yaml").read_text()) if d]
    repository = next(d for d in sources if d["kind"] == "GitRepository")
    root = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "k10fleet", "namespace": NAMESPACE},
            "spec": {"interval": "1m", "path": "./output/flux", "prune": True,
                     "sourceRef": {"kind": "GitRepository", "name": repository["metadata"]["name"]},
                     "timeout": "1m", "retryInterval": "1m"}}
    stack.clusters.apply(stack.home, [repository, root])


def secret_token(clusters: Clusters, cluster: str, namespace: str, name: str) -> str | None:
    secret = clusters[cluster].read("v1", "Secret", name, namespace)
    if secret is None or "token" not in (secret.get("data") or {}):
        return None
    return base64.b64decode(secret["data"]["token"]).decode()


def applied(stack: FluxStack, name: str, sha: str) -> bool:
    """Kustomization ``name`` is Ready at commit ``sha``."""
    obj = stack.read("Kustomization", name)
    ok, _ = stack.ready("Kustomization", name)
    return ok and obj is not None and obj["status"].get("lastAppliedRevision", "").endswith(sha)


def rendered_data(tree: Path, cluster: str, file: str) -> dict[str, str]:
    doc = yaml.safe_load((tree / "clusters" / cluster / file).read_text())
    data: dict[str, str] = doc["data"]
    return data


def start_fleet(tmp_path: Path, kube_clusters: StartClusters, concurrent: int,
                *names: str) -> tuple[FleetRepo, FluxStack, Clusters]:
    clusters = kube_clusters(*names)
    stack = FluxStack.start(tmp_path / "flux", clusters, "hub", kustomize_concurrent=concurrent)
    try:
        identity = Path(os.environ["SOPS_AGE_KEY_FILE"]).read_text().strip()
        clusters.apply("hub", [stack.sops_secret(identity),
                               *(stack.kubeconfig_secret(n) for n in names if n != "hub")])
        work = tmp_path / "work"
        git("clone", "-q", stack.git_url, str(work))
        git("config", "http.postBuffer", "104857600", cwd=work)
    except BaseException:
        stack.stop()
        clusters.stop()
        raise
    store = f"vault://secret/k10fleet/e2e-{tmp_path.name}"
    return FleetRepo(work, stack, store), stack, clusters


@pytest.fixture
def flux_fleet(tmp_path: Path, kube_clusters: StartClusters, vault_env: OpenBao,
               age_key: str) -> Iterator[tuple[FleetRepo, FluxStack, Clusters]]:
    """hub, edge-1, edge-2 and Flux (on hub) with kustomize-controller's default
    --concurrent=4."""
    repo, stack, clusters = start_fleet(tmp_path, kube_clusters, 4, "hub", "edge-1", "edge-2")
    try:
        yield repo, stack, clusters
    finally:
        stack.stop()
        clusters.stop()


@pytest.fixture
def one_worker_fleet(tmp_path: Path, kube_clusters: StartClusters, vault_env: OpenBao,
                     age_key: str) -> Iterator[tuple[FleetRepo, FluxStack, Clusters]]:
    """hub and edge-2, with a single kustomize-controller worker: one pending release is as
    many as there are workers (the starvation case of docs/flux.md)."""
    repo, stack, clusters = start_fleet(tmp_path, kube_clusters, 1, "hub", "edge-2")
    try:
        yield repo, stack, clusters
    finally:
        stack.stop()
        clusters.stop()


def test_flux_reconciles_the_rendered_injected_tree(flux_fleet: tuple[FleetRepo, FluxStack,
                                                                      Clusters],
                                                    age_key: str, tmp_path: Path) -> None:
    repo, stack, clusters = flux_fleet
    tree = repo.path / "output"
    # 1. render, commit, bootstrap: the primary gets kasten-io-mc and the empty join-token Secret
    repo.write([secondary("edge-1")])
    repo.render()
    sha = repo.push("fleet: hub + edge-1")
    bootstrap(stack, tree)
    wait_for(lambda: applied(stack, "k10-mc-hub", sha), "k10-mc-hub at the first commit")
    token_secret = clusters["hub"].read("v1", "Secret", "join-token-secret", MC)
    assert token_secret is not None and token_secret["type"] == "dist.kio.kasten.io/join-token"
    namespace = clusters["hub"].read("v1", "Namespace", MC)
    assert namespace is not None
    assert namespace["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/prune"] == "disabled"
    wait_for(lambda: applied(stack, "k10-mc-edge-1", sha), "k10-mc-edge-1 at the first commit")
    chart = clusters["edge-1"].read("v1", "ConfigMap", "k10-chart-values", K10)
    assert chart is not None  # the HelmRelease installed the chart on edge-1 with its values
    values = yaml.safe_load(chart["data"]["values.yaml"])
    assert values["multicluster"]["enabled"] is True
    assert values == yaml.safe_load((tree / "clusters/edge-1/k10-values.yaml").read_text())

    # 2. K10 fills the token; token import + inject + commit: edge-1 gets mc-join decrypted
    first = "eyJrMTAiOiJqb2luIn0." + secrets.token_urlsafe(32)
    k10_fills_join_token(clusters, first)
    import_token(repo, clusters, tmp_path)
    repo.inject(age_key)
    assert first not in (tree / "clusters/edge-1/mc-join.sops.yaml").read_text()
    sha = repo.push("inject the join token")
    wait_for(lambda: secret_token(clusters, "edge-1", K10, "mc-join") == first,
             "mc-join with the store's token on edge-1")
    config = clusters["edge-1"].read("v1", "ConfigMap", "mc-join-config", K10)
    assert config is not None
    assert config["data"] == rendered_data(tree, "edge-1", "mc-join-config.yaml")
    assert secret_token(clusters, "hub", MC, "join-token-secret") == first  # ssa: IfNotPresent

    # 3. the fleet changes: edge-2 joins, K10 rotates the token
    second = "eyJrMTAiOiJqb2luIn0." + secrets.token_urlsafe(32)
    k10_fills_join_token(clusters, second)
    import_token(repo, clusters, tmp_path)
    repo.write([secondary("edge-1"), secondary("edge-2")])
    repo.render()
    repo.inject(age_key)
    sha = repo.push("edge-2 joins; rotated token")
    wait_for(lambda: secret_token(clusters, "edge-2", K10, "mc-join") == second,
             "mc-join with the rotated token on edge-2")
    wait_for(lambda: secret_token(clusters, "edge-1", K10, "mc-join") == second,
             "the rotated token on edge-1")
    assert applied(stack, "k10-mc-edge-2", sha)
    edge2_config = clusters["edge-2"].read("v1", "ConfigMap", "mc-join-config", K10)
    assert edge2_config is not None
    assert edge2_config["data"]["cluster-name"] == "edge-2"

    # 4. edge-2 leaves: its Kustomizations, release and objects are pruned; kasten-io-mc stays
    repo.write([secondary("edge-1")])
    repo.render()
    assert not (tree / "clusters" / "edge-2").exists()
    sha = repo.push("edge-2 leaves")
    wait_for(lambda: stack.read("Kustomization", "k10-mc-edge-2") is None,
             "k10-mc-edge-2 pruned")
    wait_for(lambda: clusters["edge-2"].read("v1", "Secret", "mc-join", K10) is None,
             "mc-join pruned from edge-2")
    assert clusters["edge-2"].read("v1", "ConfigMap", "mc-join-config", K10) is None
    wait_for(lambda: stack.read("HelmRelease", "k10-edge-2") is None, "HelmRelease pruned")
    wait_for(lambda: clusters["edge-2"].read("v1", "ConfigMap", "k10-chart-values", K10) is None,
             "the release uninstalled from edge-2")
    wait_for(lambda: applied(stack, "k10-mc-hub", sha), "k10-mc-hub at the last commit")
    assert clusters["hub"].read("v1", "Namespace", MC) is not None
    assert secret_token(clusters, "hub", MC, "join-token-secret") == second
    assert secret_token(clusters, "edge-1", K10, "mc-join") == second
    inventory = json.dumps(stack.read("Kustomization", "k10fleet"))
    assert "edge-2" not in inventory


def test_pending_release_does_not_block_another_clusters_kustomization(
        one_worker_fleet: tuple[FleetRepo, FluxStack, Clusters]) -> None:
    """edge-1's release never becomes ready (its chart has a Deployment, and nothing runs pods
    here). Its Kustomization waits with wait: true, holding the only worker, but only for its
    timeout: edge-2, added afterwards, is applied while edge-1 is still pending. Without the
    timeout the worker would be held for the whole interval (10m) on every attempt."""
    repo, stack, clusters = one_worker_fleet
    tree = repo.path / "output"
    repo.write([pending_secondary("edge-1")])
    repo.render()
    release = yaml.safe_load_all((tree / "flux" / "edge-1.yaml").read_text())
    assert next(iter(release))["spec"]["timeout"] == "1m"
    repo.push("hub + edge-1, whose release stays pending")
    bootstrap(stack, tree)
    wait_for(lambda: stack.read("HelmRelease", "k10-edge-1"), "the pending HelmRelease")
    repo.write([pending_secondary("edge-1"), secondary("edge-2")])
    repo.render()
    sha = repo.push("edge-2 joins")
    wait_for(lambda: applied(stack, "k10-mc-edge-2", sha), "edge-2 applied", timeout=300)
    assert clusters["edge-2"].read("v1", "ConfigMap", "mc-join-config", K10) is not None
    ready, why = stack.ready("Kustomization", "k10-release-edge-1")
    assert not ready, why  # still pending: it did not block edge-2
    assert stack.ready("HelmRelease", "k10-edge-1")[0] is False
