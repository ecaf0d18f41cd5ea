"""What the primary hands out: K10ClusterRoleBindings, global Policies and Profiles (with
their credential Secrets) and Distributions, all in kasten-io-mc."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from generator.engines.registry import engine_of
from generator.fleet.model import (
    CONFIG_API,
    MC_NAMESPACE,
    Fleet,
    GlobalResource,
    vault_mount_and_path,
    with_credential_secret,
)
from generator.render.eso import credential_external_secret_spec
from generator.render.layout import RenderedTree
from generator.render.templates import object_meta, render_template

DIST_API = "dist.kio.kasten.io/v1alpha1"
AUTH_API = "auth.kio.kasten.io/v1alpha1"
SOURCES_DIGEST = "k10fleet.io/sources-digest"


def credential_file(profile: GlobalResource, suffix: str = ".yaml") -> str:
    """``credentials-<Secret name><suffix>``: Secret names are unique in kasten-io-mc and no
    other file starts with ``credentials-``, so these never collide."""
    assert profile.credentials is not None
    return f"credentials-{profile.credentials.secret_name}{suffix}"


def credentialed_profiles(fleet: Fleet) -> list[GlobalResource]:
    return [p for p in fleet.profiles if p.credentials is not None]


def profile_spec(profile: GlobalResource) -> dict[str, Any]:
    """The spec as written, with credential.secret pointing at the Secret k10fleet writes."""
    if profile.credentials is None:
        return dict(profile.spec)
    return with_credential_secret(profile.spec, profile.credentials.secret_name)


def _spec_of(fleet: Fleet, kind: str, name: str) -> Mapping[str, Any]:
    resources = fleet.policies if kind == "Policy" else fleet.profiles
    resource = next(r for r in resources if r.name == name)
    return profile_spec(resource) if kind == "Profile" else resource.spec


def sources_digest(fleet: Fleet, resources: tuple[tuple[str, str], ...],
                   fingerprints: Mapping[str, str]) -> str:
    """Changes whenever a distributed resource changes, its credentials included (through
    the fingerprint ``inject`` recorded when it encrypted them). K10 re-sends global
    resources only when their Distribution changes, so the Distribution carries this digest."""
    def credentials_of(kind: str, name: str) -> str:
        profile = next((p for p in fleet.profiles if p.name == name), None)
        if kind != "Profile" or profile is None or profile.credentials is None:
            return ""
        return fingerprints.get(credential_file(profile, ".sops.yaml"), "")

    canonical = json.dumps([[kind, name, _spec_of(fleet, kind, name), credentials_of(kind, name)]
                            for kind, name in resources], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _metadata(fleet: Fleet, name: str, labels: Mapping[str, str],
              annotations: Mapping[str, str]) -> dict[str, Any]:
    meta = object_meta(fleet.name, name, MC_NAMESPACE, annotations)
    meta["labels"] = dict(sorted({**labels, **meta["labels"]}.items()))
    if "annotations" in meta:
        meta["annotations"] = dict(sorted(meta["annotations"].items()))
    return meta


Files = list[tuple[str, str]]  # (file name in the primary's folder, text)


def render_central(fleet: Fleet, tree: RenderedTree, base: str, ctx: dict[str, Any],
                   fingerprints: Mapping[str, str]) -> list[str]:
    """Add the primary's central objects under ``base``; return the files for kustomize.
    ``fingerprints`` maps the primary's injected files to what inject recorded for them."""
    files = [*_grants(fleet, ctx), *_policies_and_profiles(fleet, ctx),
             *_credentials(fleet, ctx), *_distributions(fleet, ctx, fingerprints)]
    for file, text in files:
        tree.add(f"{base}/{file}", text)
    return [file for file, _ in files]


def _grants(fleet: Fleet, ctx: dict[str, Any]) -> Files:
    k10_objects = engine_of(fleet).k10_object_annotations
    return [(f"k10clusterrolebinding-{grant.name}.yaml", render_template(
        "primary/global-resource.yaml.j2", **ctx, api_version=AUTH_API,
        kind="K10ClusterRoleBinding",
        comment=[f"Grants {grant.role} on the selected clusters (the dashboard's "
                 "Grant Permissions, declared)."],
        metadata=_metadata(fleet, grant.name, {}, k10_objects(wave=1)),
        spec={"clusters": [c.as_k10() for c in grant.clusters],
              "k10ClusterRole": grant.role,
              "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind,
                            "name": name} for kind, name in grant.subjects]}))
        for grant in fleet.access]


def _policies_and_profiles(fleet: Fleet, ctx: dict[str, Any]) -> Files:
    k10_objects = engine_of(fleet).k10_object_annotations
    files: Files = []
    for kind, resources in (("Policy", fleet.policies), ("Profile", fleet.profiles)):
        for resource in resources:
            comment = [f"Global {kind}: K10 uses it only where a Distribution sends it."]
            if resource.credentials is not None:
                comment.append(f"Its credentials (Secret {resource.credentials.secret_name}) "
                               f"come from {resource.credentials.store}, never from Git.")
            files.append((f"{kind.lower()}-{resource.name}.yaml", render_template(
                "primary/global-resource.yaml.j2", **ctx, api_version=CONFIG_API, kind=kind,
                comment=comment,
                metadata=_metadata(fleet, resource.name, resource.labels,
                                   {**resource.annotations, **k10_objects(wave=1)}),
                spec=profile_spec(resource) if kind == "Profile" else dict(resource.spec))))
    return files


def _credentials(fleet: Fleet, ctx: dict[str, Any]) -> Files:
    """The objects that bring profile credentials from the store at sync time (sops mode:
    none, inject writes the encrypted Secrets)."""
    mode = fleet.tokens.mode
    files: Files = []
    for profile in credentialed_profiles(fleet):
        if mode == "external-secrets":
            files.append((credential_file(profile), render_template(
                "primary/credential-external-secret.yaml.j2", **ctx, profile=profile.name,
                name=profile.credentials.secret_name if profile.credentials else "",
                namespace=MC_NAMESPACE, annotations=engine_of(fleet).annotations("credentials"),
                spec=credential_external_secret_spec(fleet, profile))))
        elif mode == "vault-plugin":
            files.append((credential_file(profile), credential_secret(
                fleet, profile, vault_plugin_values(profile), encode=False)))
    return files


def _distributions(fleet: Fleet, ctx: dict[str, Any], fingerprints: Mapping[str, str]) -> Files:
    k10_objects = engine_of(fleet).k10_object_annotations
    return [(f"distribution-{plan.name}.yaml", render_template(
        "primary/global-resource.yaml.j2", **ctx, api_version=DIST_API, kind="Distribution",
        comment=["Sends global resources to clusters. The digest annotation changes with",
                 "them, so K10 re-sends them (it does so only when the Distribution changes)."],
        metadata=_metadata(fleet, plan.name, {}, {
            **k10_objects(wave=2),
            SOURCES_DIGEST: sources_digest(fleet, plan.resources, fingerprints)}),
        spec={"clusters": [c.as_k10() for c in plan.clusters],
              "sources": [{"ref": {"apiVersion": CONFIG_API, "kind": kind, "name": name,
                                   "namespace": MC_NAMESPACE}}
                          for kind, name in plan.resources]}))
        for plan in fleet.distributions]


def credential_secret(fleet: Fleet, profile: GlobalResource, values: Mapping[str, str], *,
                      encode: bool = True) -> str:
    """A profile's credential Secret: base64 ``data`` (SOPS-ready, no comments) or
    ``stringData`` with argocd-vault-plugin placeholders (``encode=False``)."""
    assert profile.credentials is not None
    data = dict(sorted(values.items()))
    if encode:
        data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return render_template(
        "primary/credential-secret.yaml.j2", fleet=fleet, name=profile.credentials.secret_name,
        namespace=MC_NAMESPACE, annotations=engine_of(fleet).annotations("credentials"),
        secret_type=profile.credentials.format.secret_type,
        field_name="data" if encode else "stringData", data=data)


def vault_plugin_values(profile: GlobalResource) -> dict[str, str]:
    assert profile.credentials is not None
    mount, path = vault_mount_and_path(profile.credentials.store)
    return {key: f"<path:{mount}/data/{path}#{key}>"
            for key in profile.credentials.format.required}
