"""Render a validated fleet into the GitOps tree, as bytes keyed by relative path."""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from generator.engines.registry import engine_of
from generator.errors import InternalError
from generator.fleet.model import (
    FIRST_HELM_PRIMARY,
    FIRST_INGRESS_IN_TOKEN,
    MC_NAMESPACE,
    Cluster,
    Fleet,
)
from generator.forking import in_forked_child, parallel_jobs
from generator.merge import deep_merge
from generator.render.eso import external_secret_spec, needs_endpoint, push_secret_spec
from generator.render.global_resources import render_central
from generator.render.layout import (
    EXTERNAL_SECRET_FILE,
    JOIN_TOKEN_FILE,
    KSOPS_GENERATOR_FILE,
    MC_JOIN_FILE,
    PUSH_SECRET_FILE,
    SCRIPT_PATH,
    SECRET_STORE_FILE,
    RenderedFile,
    RenderedTree,
    cluster_dir,
)
from generator.render.templates import render_template


def source_label(fleet_path: str) -> str:
    """The fleet's file name as it may appear in generated comments (no path, no oddities)."""
    return re.sub(r"[^A-Za-z0-9_.+@-]", "_", PurePosixPath(fleet_path.replace("\\", "/")).name)


def generated_values(cluster: Cluster) -> dict[str, Any]:
    """The ``multicluster`` block k10fleet owns for this cluster (none on 6.0.x-6.4.x, which
    the k10multicluster tool sets up)."""
    if cluster.tool_only:
        return {}
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
    merged: dict[str, Any] = _sorted(deep_merge(cluster.values, generated_values(cluster)))
    return merged


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
        annotations=engine_of(fleet).annotations("namespace")))
    if primary.kasten.version < FIRST_HELM_PRIMARY and not primary.tool_only:
        resources.append("bootstrap.yaml")
        tree.add(f"{base}/bootstrap.yaml", render_template(
            "primary/bootstrap.yaml.j2", **ctx, cluster=primary, namespace=MC_NAMESPACE,
            annotations=engine_of(fleet).annotations("bootstrap"), spec=bootstrap_spec(primary)))
    if not primary.tool_only:  # 6.0.x-6.4.x: the tool joins secondaries, no join token
        secret_file = JOIN_TOKEN_FILE  # fixed: a Secret name must never collide with our files
        resources.append(secret_file)
        tree.add(f"{base}/{secret_file}", render_template(
            "primary/join-token-secret.yaml.j2", **ctx, name=fleet.tokens.join_token_secret,
            namespace=MC_NAMESPACE, annotations=engine_of(fleet).annotations("join-token")))
    if fleet.tokens.mode == "external-secrets" and not primary.tool_only:
        _secret_store(fleet, tree, ctx, base, MC_NAMESPACE, resources)
        resources.append(PUSH_SECRET_FILE)
        tree.add(f"{base}/{PUSH_SECRET_FILE}", render_template(
            "primary/push-secret.yaml.j2", **ctx, namespace=MC_NAMESPACE,
            annotations=engine_of(fleet).annotations("push-secret"), spec=push_secret_spec(fleet)))
    resources.extend(render_central(fleet, tree, base, ctx, fingerprints))
    generators = _injected(fleet, base, tree, ctx, injected, resources,
                           "profile-credentials-generator")
    _render_common(fleet, primary, tree, ctx, resources, generators)


def _injected(fleet: Fleet, base: str, tree: RenderedTree, ctx: dict[str, Any],
              injected: Sequence[str], resources: list[str], generator_name: str) -> list[str]:
    """List files ``inject`` wrote: Argo CD gets encrypted ones through a KSOPS generator
    (it would apply an encrypted Secret as-is), Flux decrypts resources itself."""
    encrypted = [name for name in injected if name.endswith(".sops.yaml")]
    if encrypted and engine_of(fleet).needs_sops_generator:
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
            annotations=engine_of(fleet).annotations("mc-join-config"),
            modern=secondary.kasten.version >= FIRST_INGRESS_IN_TOKEN,
            data=join_config_data(fleet, secondary)))
        mode = fleet.tokens.mode
        if mode == "external-secrets":
            _secret_store(fleet, tree, ctx, base, secondary.kasten.namespace, resources)
            resources.append(EXTERNAL_SECRET_FILE)
            tree.add(f"{base}/{EXTERNAL_SECRET_FILE}", render_template(
                "secondary/external-secret.yaml.j2", **ctx, cluster=secondary,
                annotations=engine_of(fleet).annotations("external-secret"),
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
    values = render_template("k10-values.yaml.j2", **ctx, cluster=cluster,
                             values=values_for(fleet, cluster))
    tree.add(f"{base}/k10-values.yaml", values)
    tree.add(f"{base}/kustomization.yaml", render_template(
        "kustomization.yaml.j2", **ctx, resources=resources, generators=list(generators)))
    tree.clusters[cluster.name] = {
        "role": cluster.role,
        "clusterName": cluster.cluster_name,
        "namespace": cluster.kasten.namespace,
        **({"kubeContext": cluster.kube_context} if cluster.kube_context else {}),
    }
    for path, text in engine_of(fleet).cluster_files(fleet, cluster, values.encode(), ctx):
        tree.add(path, text)


def _bootstrap_side(role: str, cluster: Cluster, name: str) -> list[str]:
    """``k10multicluster bootstrap`` flags for one side (``primary`` or ``secondary``)."""
    args = [f"--{role}-context", cluster.kube_context or "", f"--{role}-name", name]
    if cluster.kubeconfig:
        args += [f"--{role}-kubeconfig", cluster.kubeconfig]
    return [*args, f"--{role}-k10-namespace", cluster.kasten.namespace,
            f"--{role}-k10-release-name", cluster.kasten.release_name]


# Flags of the k10multicluster tool (docs.kasten.io/multicluster/bootstrap_reference.html; the
# bootstrap flags as Kasten staff's public scripts pass them). Tests check every generated flag.
K10MULTICLUSTER_FLAGS = {
    "setup-primary": ("--context", "--kubeconfig", "--name", "--k10-namespace",
                      "--k10-release-name", "--labels", "--ingress", "--replace"),
    "bootstrap": ("--primary-context", "--primary-kubeconfig", "--primary-name",
                  "--primary-k10-namespace", "--primary-k10-release-name", "--secondary-context",
                  "--secondary-kubeconfig", "--secondary-name", "--secondary-k10-namespace",
                  "--secondary-k10-release-name", "--secondary-cluster-ingress",
                  "--secondary-cluster-ingress-tls-insecure", "--replace"),
}


def _quoted(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def k10multicluster_setup_primary(fleet: Fleet) -> str:
    """``k10multicluster setup-primary`` for a 6.0.x-6.4.x primary."""
    primary = fleet.primary
    args = ["k10multicluster", "setup-primary", "--context", primary.kube_context or ""]
    if primary.kubeconfig:
        args += ["--kubeconfig", primary.kubeconfig]
    args += ["--name", primary.name, "--k10-namespace", primary.kasten.namespace,
             "--k10-release-name", primary.kasten.release_name,
             "--ingress", primary.ingress_url or ""]
    if primary.labels:
        args += ["--labels", ",".join(f"{k}={v}" for k, v in primary.labels.items())]
    return _quoted(args)


def k10multicluster_command(fleet: Fleet, secondary: Cluster) -> str:
    """One exact ``k10multicluster bootstrap`` invocation for a secondary."""
    args = ["k10multicluster", "bootstrap",
            *_bootstrap_side("primary", fleet.primary, fleet.primary.name),
            *_bootstrap_side("secondary", secondary, secondary.cluster_name)]
    if secondary.ingress_url:
        args += ["--secondary-cluster-ingress", secondary.ingress_url]
        if secondary.ingress_skip_tls_verify:  # self-signed certificate: skip verification
            args.append("--secondary-cluster-ingress-tls-insecure")
    return _quoted(args)


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
                           annotations=engine_of(fleet).annotations("mc-join"))


def vault_plugin_placeholders(fleet: Fleet, secondary: Cluster) -> tuple[str, str | None]:
    """argocd-vault-plugin placeholders (KV v2: the path carries /data/)."""
    mount, path = fleet.tokens.vault_mount_and_path
    token = f"<path:{mount}/data/{path}#token>"
    return token, (f"<path:{mount}/data/{path}#endpoint>" if needs_endpoint(secondary) else None)


PARALLEL_FROM = 400  # secondaries; below this a forked helper costs more than it saves


def _render_secondaries(fleet: Fleet, secondaries: Sequence[Cluster], tree: RenderedTree,
                        ctx: dict[str, Any], injected: Mapping[str, Sequence[str]]) -> None:
    for secondary in secondaries:
        _render_secondary(fleet, secondary, tree, ctx, injected.get(secondary.name, ()))


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
    _render_secondaries(fleet, secondaries[:split], tree, ctx, injected)
    if collect is not None:
        try:
            files, clusters = collect()
        except OSError:  # the helper failed: render its half here
            _render_secondaries(fleet, secondaries[split:], tree, ctx, injected)
        else:
            for path, rendered in files.items():
                if path in tree.files:
                    raise InternalError(f"k10fleet would write {path} twice")
                tree.files[path] = rendered
            tree.clusters.update(clusters)
    for path, text in engine_of(fleet).global_files(fleet, ctx):
        tree.add(path, text)
    scripted = [s for s in fleet.secondaries if s.join_with == "k10multicluster"]
    if scripted or fleet.primary.tool_only:
        commands = [{"name": s.name, "line": k10multicluster_command(fleet, s)} for s in scripted]
        if fleet.primary.tool_only:
            commands.insert(0, {"name": f"{fleet.primary.name} (primary, first)",
                                "line": k10multicluster_setup_primary(fleet)})
        tree.add(SCRIPT_PATH, render_template("bootstrap/k10multicluster.sh.j2", **ctx,
                                              commands=commands), mode=0o755)
    return tree


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
        annotations=engine_of(fleet).annotations("push-secret"), spec=secret_store_spec(fleet)))
