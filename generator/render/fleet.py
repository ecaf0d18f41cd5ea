"""Render a validated fleet into the GitOps tree, as bytes keyed by relative path."""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from generator.fleet.model import (
    FIRST_HELM_PRIMARY,
    FIRST_INGRESS_IN_TOKEN,
    MC_NAMESPACE,
    Cluster,
    Fleet,
)
from generator.merge import deep_merge
from generator.render.templates import render_template
from generator.tools import in_forked_child, parallel_jobs


def engine_module(fleet: Fleet) -> Any:
    """The GitOps engine's module (render_cluster, render_global), or None for engine none."""
    if fleet.gitops.engine == "argocd":
        from generator.engines import argocd

        return argocd
    if fleet.gitops.engine == "flux":
        from generator.engines import flux

        return flux
    return None

SCRIPT_PATH = "bootstrap/k10multicluster.sh"
JOIN_TOKEN_TYPE = "dist.kio.kasten.io/join-token"
JOIN_TOKEN_FILE = "join-token-secret.yaml"
KSOPS_GENERATOR_FILE = "secret-generator.yaml"
MC_JOIN_SOPS_FILE = "mc-join.sops.yaml"
MC_JOIN_FILE = "mc-join.yaml"
PUSH_SECRET_FILE = "join-token-push-secret.yaml"
EXTERNAL_SECRET_FILE = "mc-join-external-secret.yaml"
SECRET_STORE_FILE = "secret-store.yaml"


@dataclass(frozen=True)
class RenderedFile:
    content: bytes
    mode: int = 0o644


@dataclass
class RenderedTree:
    """What ``render`` produces: files plus what the writer records about clusters."""

    files: dict[str, RenderedFile] = field(default_factory=dict)
    clusters: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, path: str, text: str, mode: int = 0o644) -> None:
        if path in self.files:  # two objects in one file name: never silently drop one
            raise RuntimeError(f"k10fleet would write {path} twice")
        self.files[path] = RenderedFile(text.encode("utf-8"), mode)


def cluster_dir(name: str) -> str:
    return f"clusters/{name}"


def source_label(fleet_path: str) -> str:
    """The fleet's file name as it may appear in generated comments (no path, no oddities)."""
    return re.sub(r"[^A-Za-z0-9_.+@-]", "_", PurePosixPath(fleet_path.replace("\\", "/")).name)


def generated_values(fleet: Fleet, cluster: Cluster) -> dict[str, Any]:
    """The ``multicluster`` block k10fleet owns for this cluster."""
    if cluster.is_primary and cluster.kasten.version >= FIRST_HELM_PRIMARY:
        return {"multicluster": {"enabled": True, "primary": {
            "create": True, "name": cluster.name, "ingressURL": cluster.ingress_url}}}
    return {"multicluster": {"enabled": True}}


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def values_for(fleet: Fleet, cluster: Cluster) -> dict[str, Any]:
    """fleet values < cluster values < generated keys, keys sorted for stable diffs."""
    merged: dict[str, Any] = _sorted(deep_merge(cluster.values, generated_values(fleet, cluster)))
    return merged


MC_SYNC_WAVE = "1"  # Argo CD: the K10 release (wave 0) first, Multi-Cluster objects after it


def engine_annotations(fleet: Fleet, kind: str) -> dict[str, str]:
    """Ordering, and what keeps the engine from pruning or overwriting objects K10 also owns."""
    engine = fleet.gitops.engine
    annotations: dict[str, str] = {}
    if engine == "argocd":
        annotations["argocd.argoproj.io/sync-wave"] = MC_SYNC_WAVE
        if kind == "namespace":
            annotations["argocd.argoproj.io/sync-options"] = "Prune=false,Delete=false"
    elif engine == "flux":
        if kind == "namespace":
            annotations["kustomize.toolkit.fluxcd.io/prune"] = "disabled"
        if kind == "join-token":
            annotations["kustomize.toolkit.fluxcd.io/ssa"] = "IfNotPresent"
    return annotations


def primary_ingress_for(fleet: Fleet, secondary: Cluster) -> str | None:
    return secondary.primary_ingress_url or fleet.primary.ingress_url


def join_config_data(fleet: Fleet, secondary: Cluster) -> dict[str, str]:
    """mc-join-config keys for this secondary's K10 version."""
    data: dict[str, str] = {"cluster-name": secondary.cluster_name}
    modern = secondary.kasten.version >= FIRST_INGRESS_IN_TOKEN
    if modern and secondary.ingress_url:
        data["cluster-ingress"] = secondary.ingress_url
    if secondary.primary_ingress_url:
        data["primary-ingress" if modern else "primary-endpoint"] = secondary.primary_ingress_url
    primary_url = primary_ingress_for(fleet, secondary) or ""
    if urlsplit(primary_url).scheme == "http":
        data["allow-insecure-primary-ingress"] = "true"
    return dict(sorted(data.items()))


def bootstrap_spec(cluster: Cluster) -> dict[str, Any]:
    return {"clusters": {cluster.name: {
        "name": cluster.name,
        "primary": True,
        "k10": {
            "namespace": cluster.kasten.namespace,
            "releaseName": cluster.kasten.release_name,
            "ingress": {"url": cluster.ingress_url},
        },
    }}}


def _render_primary(fleet: Fleet, tree: RenderedTree, ctx: dict[str, Any],
                    injected: Sequence[str], fingerprints: Mapping[str, str]) -> None:
    primary = fleet.primary
    base = cluster_dir(primary.name)
    resources = ["kasten-io-mc-namespace.yaml"]
    tree.add(f"{base}/kasten-io-mc-namespace.yaml", render_template(
        "primary/namespace.yaml.j2", **ctx, namespace=MC_NAMESPACE,
        annotations=engine_annotations(fleet, "namespace")))
    if primary.kasten.version < FIRST_HELM_PRIMARY:
        resources.append("bootstrap.yaml")
        tree.add(f"{base}/bootstrap.yaml", render_template(
            "primary/bootstrap.yaml.j2", **ctx, cluster=primary, namespace=MC_NAMESPACE,
            annotations=engine_annotations(fleet, "bootstrap"), spec=bootstrap_spec(primary)))
    secret_file = JOIN_TOKEN_FILE  # fixed: a Secret name must never collide with our files
    resources.append(secret_file)
    tree.add(f"{base}/{secret_file}", render_template(
        "primary/join-token-secret.yaml.j2", **ctx, name=fleet.tokens.join_token_secret,
        namespace=MC_NAMESPACE, annotations=engine_annotations(fleet, "join-token")))
    if fleet.tokens.mode == "external-secrets":
        _secret_store(fleet, tree, ctx, base, MC_NAMESPACE, resources)
        resources.append(PUSH_SECRET_FILE)
        tree.add(f"{base}/{PUSH_SECRET_FILE}", render_template(
            "primary/push-secret.yaml.j2", **ctx, namespace=MC_NAMESPACE,
            annotations=engine_annotations(fleet, "push-secret"), spec=push_secret_spec(fleet)))
    from generator.render.central import render_central

    resources.extend(render_central(fleet, tree, base, ctx, fingerprints))
    generators = _injected(fleet, base, tree, ctx, injected, resources,
                           "profile-credentials-generator")
    _render_common(fleet, primary, tree, ctx, resources, generators)


def _injected(fleet: Fleet, base: str, tree: RenderedTree, ctx: dict[str, Any],
              injected: Sequence[str], resources: list[str], generator_name: str) -> list[str]:
    """List files ``inject`` wrote: Argo CD gets encrypted ones through a KSOPS generator
    (it would apply an encrypted Secret as-is), Flux decrypts resources itself."""
    encrypted = [name for name in injected if name.endswith(".sops.yaml")]
    if encrypted and fleet.gitops.engine == "argocd":
        tree.add(f"{base}/{KSOPS_GENERATOR_FILE}", render_template(
            "secondary/ksops-generator.yaml.j2", **ctx, generator_name=generator_name,
            files=[f"./{name}" for name in encrypted]))
        resources.extend(name for name in injected if name not in encrypted)
        return [KSOPS_GENERATOR_FILE]
    resources.extend(injected)
    return []


def _render_secondary(fleet: Fleet, secondary: Cluster, tree: RenderedTree,
                      ctx: dict[str, Any], injected: Sequence[str]) -> None:
    base = cluster_dir(secondary.name)
    resources: list[str] = []
    if secondary.join_with == "token":
        resources.append("mc-join-config.yaml")
        tree.add(f"{base}/mc-join-config.yaml", render_template(
            "secondary/mc-join-config.yaml.j2", **ctx, cluster=secondary,
            annotations=engine_annotations(fleet, "mc-join-config"),
            modern=secondary.kasten.version >= FIRST_INGRESS_IN_TOKEN,
            data=join_config_data(fleet, secondary)))
        mode = fleet.tokens.mode
        if mode == "external-secrets":
            _secret_store(fleet, tree, ctx, base, secondary.kasten.namespace, resources)
            resources.append(EXTERNAL_SECRET_FILE)
            tree.add(f"{base}/{EXTERNAL_SECRET_FILE}", render_template(
                "secondary/external-secret.yaml.j2", **ctx, cluster=secondary,
                annotations=engine_annotations(fleet, "external-secret"),
                spec=external_secret_spec(fleet, secondary)))
        elif mode == "vault-plugin":
            resources.append(MC_JOIN_FILE)
            tree.add(f"{base}/{MC_JOIN_FILE}", mc_join_secret(
                fleet, secondary, *vault_plugin_placeholders(fleet, secondary), encode=False))
        generators = _injected(fleet, base, tree, ctx, injected, resources,
                               "mc-join-secret-generator")
        _render_common(fleet, secondary, tree, ctx, resources, generators)
        return
    _render_common(fleet, secondary, tree, ctx, resources)


def _render_common(fleet: Fleet, cluster: Cluster, tree: RenderedTree, ctx: dict[str, Any],
                   resources: list[str], generators: Sequence[str] = ()) -> None:
    base = cluster_dir(cluster.name)
    tree.add(f"{base}/k10-values.yaml", render_template(
        "k10-values.yaml.j2", **ctx, cluster=cluster, values=values_for(fleet, cluster)))
    tree.add(f"{base}/kustomization.yaml", render_template(
        "kustomization.yaml.j2", **ctx, resources=resources, generators=list(generators)))
    tree.clusters[cluster.name] = {
        "role": cluster.role,
        "clusterName": cluster.cluster_name,
        "namespace": cluster.kasten.namespace,
    }


def k10multicluster_command(fleet: Fleet, secondary: Cluster) -> str:
    """One exact ``k10multicluster bootstrap`` invocation for a secondary."""
    primary = fleet.primary
    args = ["k10multicluster", "bootstrap",
            "--primary-context", primary.kube_context or "",
            "--primary-name", primary.name]
    if primary.kubeconfig:
        args += ["--primary-kubeconfig", primary.kubeconfig]
    args += ["--primary-k10-namespace", primary.kasten.namespace,
             "--primary-k10-release-name", primary.kasten.release_name,
             "--secondary-context", secondary.kube_context or "",
             "--secondary-name", secondary.cluster_name]
    if secondary.kubeconfig:
        args += ["--secondary-kubeconfig", secondary.kubeconfig]
    args += ["--secondary-k10-namespace", secondary.kasten.namespace,
             "--secondary-k10-release-name", secondary.kasten.release_name,
             "--secondary-cluster-ingress", secondary.ingress_url or ""]
    if secondary.ingress_url and urlsplit(secondary.ingress_url).scheme == "http":
        args.append("--secondary-cluster-ingress-tls-insecure")
    return " ".join(shlex.quote(a) for a in args)


def mc_join_secret(fleet: Fleet, secondary: Cluster, token: str, endpoint: str | None,
                   *, encode: bool = True) -> str:
    """The mc-join Secret for one secondary: base64 ``data`` (SOPS-ready, no comments), or
    ``stringData`` with argocd-vault-plugin placeholders (``encode=False``)."""
    values = {"token": token} if endpoint is None else {"token": token, "endpoint": endpoint}
    if encode:
        values = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return render_template("secondary/mc-join.yaml.j2", fleet=fleet, cluster=secondary,
                           field_name="data" if encode else "stringData",
                           data=dict(sorted(values.items())),
                           annotations=engine_annotations(fleet, "mc-join"))


def vault_plugin_placeholders(fleet: Fleet, secondary: Cluster) -> tuple[str, str | None]:
    """argocd-vault-plugin placeholders (KV v2: the path carries /data/)."""
    mount, path = fleet.tokens.vault_mount_and_path
    token = f"<path:{mount}/data/{path}#token>"
    return token, (f"<path:{mount}/data/{path}#endpoint>" if needs_endpoint(secondary) else None)


def push_secret_spec(fleet: Fleet) -> dict[str, Any]:
    """ESO PushSecret: the join-token Secret's ``token`` (K10 fills it) pushed to the store.
    Every field ESO would default is written, so Argo CD never shows a perpetual diff."""
    _, path = fleet.tokens.vault_mount_and_path
    tokens = fleet.tokens
    data = [{"conversionStrategy": "None",
             "match": {"secretKey": key, "remoteRef": {"remoteKey": path, "property": key}}}
            for key in ("token",)]
    return {
        "data": data,
        "deletionPolicy": "None",
        "refreshInterval": tokens.eso_refresh_interval,
        "secretStoreRefs": [{"kind": tokens.eso_store_kind, "name": tokens.eso_store_name}],
        "selector": {"secret": {"name": tokens.join_token_secret}},
        "updatePolicy": "Replace",
    }


def secret_store_spec(fleet: Fleet) -> dict[str, Any]:
    """ESO store for the KV v2 mount of ``tokens.store`` (``tokens.externalSecrets.vault``)."""
    vault = fleet.tokens.eso_vault or {}
    mount, _ = fleet.tokens.vault_mount_and_path
    provider: dict[str, Any] = {"server": vault.get("server"), "path": mount, "version": "v2"}
    provider.update({key: vault[key] for key in ("namespace", "caBundle") if key in vault})
    provider["auth"] = vault.get("auth")
    return {"provider": {"vault": provider}}


def _secret_store(fleet: Fleet, tree: RenderedTree, ctx: dict[str, Any], base: str,
                  namespace: str, resources: list[str]) -> None:
    """The opt-in ESO store, first in the cluster's resources (a SecretStore lives where
    the objects using it do; a ClusterSecretStore has no namespace)."""
    tokens = fleet.tokens
    if tokens.eso_vault is None:
        return
    resources.append(SECRET_STORE_FILE)
    tree.add(f"{base}/{SECRET_STORE_FILE}", render_template(
        "secret-store.yaml.j2", **ctx, kind=tokens.eso_store_kind, name=tokens.eso_store_name,
        namespace=namespace if tokens.eso_store_kind == "SecretStore" else None,
        annotations=engine_annotations(fleet, "secret-store"), spec=secret_store_spec(fleet)))


def external_secret_spec(fleet: Fleet, secondary: Cluster) -> dict[str, Any]:
    """ESO ExternalSecret that builds Secret mc-join from the store, defaults written out."""
    _, path = fleet.tokens.vault_mount_and_path
    tokens = fleet.tokens
    keys = ["token", *(["endpoint"] if needs_endpoint(secondary) else [])]
    return {
        "data": eso_remote_data(path, keys),
        "refreshInterval": tokens.eso_refresh_interval,
        "secretStoreRef": {"kind": tokens.eso_store_kind, "name": tokens.eso_store_name},
        "target": {"creationPolicy": "Owner", "deletionPolicy": "Retain", "name": "mc-join"},
    }


def eso_remote_data(path: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    """ExternalSecret ``data`` entries, one per key of a KV v2 path, defaults written out."""
    return [{"remoteRef": {"conversionStrategy": "Default", "decodingStrategy": "None",
                           "key": path, "metadataPolicy": "None", "nullBytePolicy": "Ignore",
                           "property": key},
             "secretKey": key} for key in keys]


def needs_endpoint(secondary: Cluster) -> bool:
    """Before 6.5.14 the token does not carry the primary's address: mc-join adds it."""
    return secondary.kasten.version < FIRST_INGRESS_IN_TOKEN


PARALLEL_FROM = 400  # secondaries; below this a forked helper costs more than it saves


def _render_secondaries(fleet: Fleet, secondaries: Sequence[Cluster], tree: RenderedTree,
                        ctx: dict[str, Any], injected: Mapping[str, Sequence[str]]) -> None:
    engine = engine_module(fleet)
    for secondary in secondaries:
        _render_secondary(fleet, secondary, tree, ctx, injected.get(secondary.name, ()))
        if engine is not None:
            engine.render_cluster(fleet, secondary, tree, ctx)


def _render_part(fleet: Fleet, secondaries: Sequence[Cluster], ctx: dict[str, Any],
                 injected: Mapping[str, Sequence[str]]) -> tuple[dict[str, RenderedFile],
                                                                 dict[str, dict[str, str]]]:
    part = RenderedTree()
    _render_secondaries(fleet, secondaries, part, ctx, injected)
    return part.files, part.clusters


def render_fleet(fleet: Fleet, injected: Mapping[str, Sequence[str]] | None = None,
                 fingerprints: Mapping[str, str] | None = None) -> RenderedTree:
    """All files of the tree. ``injected`` maps a cluster to files ``inject`` wrote there;
    ``fingerprints`` maps the primary's injected files to inject's content fingerprints.

    Large fleets render their second half of secondaries in a forked helper on the second
    core; the bytes are the same either way."""
    injected = injected or {}
    tree = RenderedTree()
    source = source_label(fleet.source)
    ctx: dict[str, Any] = {
        "fleet": fleet, "source": source,
        "header": f"# Generated by k10fleet from {source}. Do not edit: change the fleet and "
                  "run `k10fleet render`.",
    }
    secondaries = fleet.secondaries
    split = len(secondaries) // 2 if len(secondaries) >= PARALLEL_FROM and parallel_jobs() > 1 \
        else len(secondaries)
    collect = in_forked_child(lambda: _render_part(fleet, secondaries[split:], ctx, injected)) \
        if split < len(secondaries) else None
    _render_primary(fleet, tree, ctx, injected.get(fleet.primary.name, ()), fingerprints or {})
    engine = engine_module(fleet)
    if engine is not None:
        engine.render_cluster(fleet, fleet.primary, tree, ctx)
    _render_secondaries(fleet, secondaries[:split], tree, ctx, injected)
    if collect is not None:
        try:
            files, clusters = collect()
        except OSError:  # the helper failed: render its half here
            _render_secondaries(fleet, secondaries[split:], tree, ctx, injected)
        else:
            for path, rendered in files.items():
                if path in tree.files:
                    raise RuntimeError(f"k10fleet would write {path} twice")
                tree.files[path] = rendered
            tree.clusters.update(clusters)
    if engine is not None:
        engine.render_global(fleet, tree, ctx)
    scripted = [s for s in fleet.secondaries if s.join_with == "k10multicluster"]
    if scripted:
        commands = [{"name": s.name, "line": k10multicluster_command(fleet, s)} for s in scripted]
        tree.add(SCRIPT_PATH, render_template("bootstrap/k10multicluster.sh.j2", **ctx,
                                              commands=commands), mode=0o755)
    return tree
