"""Semantic rules of fleet.yaml beyond the schema, one small function each.

Each rule reads the raw (schema-checked or not) data defensively and yields
problems located through the loaded document, so a single run reports all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from generator.fleet.loader import LoadedDocument
from generator.fleet.model import (
    FIRST_INGRESS_IN_TOKEN,
    FIRST_SUPPORTED,
    MC_NAMESPACE,
    K10Version,
    is_vault_uri,
)
from generator.problems import JsonPath, Problem

Rule = Callable[[LoadedDocument], Iterator[Problem]]

K10MULTICLUSTER_DOCS = "https://docs.kasten.io/latest/multicluster/tutorials/k10multicluster_tool.html"


def _get(data: Any, *path: str | int) -> Any:
    for part in path:
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                return None
        elif not isinstance(data, dict):
            return None
        data = data[part] if isinstance(part, int) else data.get(part)
    return data


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def clusters(doc: LoadedDocument) -> Iterator[tuple[JsonPath, dict[str, Any]]]:
    """(path, raw mapping) of the primary, then each secondary."""
    primary = _get(doc.data, "spec", "primary")
    if isinstance(primary, dict):
        yield ("spec", "primary"), primary
    secondaries = _get(doc.data, "spec", "secondaries")
    if isinstance(secondaries, list):
        for index, secondary in enumerate(secondaries):
            if isinstance(secondary, dict):
                yield ("spec", "secondaries", index), secondary


def unique_names(doc: LoadedDocument) -> Iterator[Problem]:
    """Directory names and dashboard names (cluster-name) must each be unique."""
    seen_dirs: dict[str, JsonPath] = {}
    seen_dashboard: dict[str, JsonPath] = {}
    for path, cluster in clusters(doc):
        name = _str(cluster.get("name"))
        if name is None:
            continue
        if name in seen_dirs:
            line, _ = doc.locate((*seen_dirs[name], "name"))
            yield doc.problem((*path, "name"), f"cluster name {name!r} is already used at line "
                              f"{line}; cluster names must be unique", rule="unique-names")
        else:
            seen_dirs[name] = path
        alias_given = isinstance(cluster.get("clusterName"), str)
        dashboard = _str(cluster.get("clusterName")) or name
        where = (*path, "clusterName") if alias_given else (*path, "name")
        first = seen_dashboard.setdefault(dashboard, where)
        # Two clusters with the same name and no aliases were reported just above.
        if first != where and (alias_given or first[-1] == "clusterName"):
            line, _ = doc.locate(first)
            yield doc.problem(where, f"cluster-name {dashboard!r} is already used at line {line}; "
                              "names shown in the Multi-Cluster dashboard must be unique",
                              rule="unique-names")


def _url_problems(doc: LoadedDocument, path: JsonPath, url: str, insecure: bool,
                  insecure_field: str) -> Iterator[Problem]:
    if any(c.isspace() for c in url):
        yield doc.problem(path, "URL must not contain whitespace", rule="url")
        return
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError as e:
        yield doc.problem(path, f"must be an absolute http(s) URL like https://host/k10; "
                          f"{url!r} is malformed ({e})", rule="url")
        return
    if parts.scheme not in ("http", "https") or not parts.hostname:
        yield doc.problem(path, f"must be an absolute http(s) URL like https://host/k10; found "
                          f"{url!r}", rule="url")
        return
    if parts.path in ("", "/"):
        yield doc.problem(path, f"URL {url!r} has no path; K10's dashboard lives under the release "
                          "path, e.g. https://host/k10", rule="url")
    if parts.query or parts.fragment:
        yield doc.problem(path, "URL must not carry a query or fragment", rule="url")
    if parts.scheme == "http" and not insecure:
        yield doc.problem(path, f"http:// URL needs {insecure_field}: true (K10 requires HTTPS "
                          "otherwise)", rule="url")


def urls(doc: LoadedDocument) -> Iterator[Problem]:
    """Ingress URLs are absolute with a path; http:// only when insecureIngress allows it."""
    primary = _get(doc.data, "spec", "primary") or {}
    primary_insecure = _get(primary, "insecureIngress") is True
    for path, cluster in clusters(doc):
        url = _str(cluster.get("ingressURL"))
        if url:
            owner = "spec.primary" if path[-1] == "primary" else "this secondary"
            yield from _url_problems(doc, (*path, "ingressURL"), url,
                                     cluster.get("insecureIngress") is True,
                                     f"{owner}.insecureIngress")
        override = _str(cluster.get("primaryIngressURL"))
        if override:
            yield from _url_problems(doc, (*path, "primaryIngressURL"), override,
                                     primary_insecure, "spec.primary.insecureIngress")


def effective_version(doc: LoadedDocument, cluster_path: JsonPath) -> tuple[JsonPath, Any]:
    """Where the cluster's K10 version comes from, and its raw value."""
    own = _get(doc.data, *cluster_path, "kasten", "version")
    if own is not None:
        return (*cluster_path, "kasten", "version"), own
    return ("spec", "kasten", "version"), _get(doc.data, "spec", "kasten", "version")


def versions(doc: LoadedDocument) -> Iterator[Problem]:
    """Every K10 version in play must be 6.5.0 or newer; mixing across 6.5.14 is flagged."""
    reported: set[JsonPath] = set()
    parsed: list[tuple[JsonPath, K10Version]] = []
    fleet_default = ("spec", "kasten", "version")
    raw_default = _get(doc.data, *fleet_default)
    default = K10Version.parse(raw_default) if isinstance(raw_default, str) else None
    if default is not None and default < FIRST_SUPPORTED:  # wrong even where overridden
        reported.add(fleet_default)
        yield doc.problem(fleet_default, f"K10 {default} is older than {FIRST_SUPPORTED}, the "
                          "first release with declarative Multi-Cluster setup; use the "
                          f"k10multicluster tool instead ({K10MULTICLUSTER_DOCS}) or upgrade",
                          rule="version")
    for path, _cluster in clusters(doc):
        where, raw = effective_version(doc, path)
        version = K10Version.parse(raw) if isinstance(raw, str) else None
        if version is None:
            continue  # the schema reports the format
        parsed.append((path, version))
        if version < FIRST_SUPPORTED and where not in reported:
            reported.add(where)
            yield doc.problem(where, f"K10 {version} is older than {FIRST_SUPPORTED}, the first "
                              "release with declarative Multi-Cluster setup; use the "
                              f"k10multicluster tool instead ({K10MULTICLUSTER_DOCS}) or upgrade",
                              rule="version")
    sides = {v >= FIRST_INGRESS_IN_TOKEN for _, v in parsed}
    if len(sides) == 2:
        where, _ = effective_version(doc, parsed[0][0])
        yield doc.problem(where, f"clusters run K10 versions on both sides of "
                          f"{FIRST_INGRESS_IN_TOKEN}; join tokens changed format there, so "
                          "upgrade them together", level="warning", rule="version")


def _leaf_keys(value: Any, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaf_keys(child, (*prefix, str(key)))
    else:
        yield prefix


def _values_locations(doc: LoadedDocument) -> Iterator[JsonPath]:
    yield ("spec", "kasten", "values")
    for path, _cluster in clusters(doc):
        yield (*path, "values")


def owned_values(doc: LoadedDocument) -> Iterator[Problem]:
    """User values may not set keys the generator owns (multicluster.*)."""
    for path in _values_locations(doc):
        values = _get(doc.data, *path)
        if not isinstance(values, dict) or "multicluster" not in values:
            continue
        for leaf in _leaf_keys(values["multicluster"], ("multicluster",)):
            dotted = ".".join(leaf)
            yield doc.problem((*path, *leaf), f"sets {dotted!r}, which k10fleet generates from "
                              "spec.primary and spec.secondaries; remove it", key=True,
                              rule="owned-values")


def dotted_values(doc: LoadedDocument) -> Iterator[Problem]:
    """A top-level values key with dots (``multicluster.primary.name: hq``) is almost
    certainly meant as a path; Helm does not split keys, so it sets nothing the chart reads."""
    for path in _values_locations(doc):
        values = _get(doc.data, *path)
        if not isinstance(values, dict):
            continue
        for key in values:
            if isinstance(key, str) and "." in key.strip("."):
                nested = "".join(f"{part}: {{" for part in key.split(".")[:-1])
                closing = "}" * (key.count("."))
                yield doc.problem((*path, key), f"key {key!r} has dots, but Helm does not split "
                                  f"keys: this sets one top-level key of that name, which the "
                                  f"chart never reads; nest it instead ({nested}"
                                  f"{key.split('.')[-1]}: ...{closing})"
                                  + ("; multicluster.* is generated by k10fleet, so remove it"
                                     if key.startswith("multicluster.") else ""), key=True,
                                  level="warning", rule="values")


MAX_VALUES_KEY = 256


def plain_data(value: Any, path: JsonPath, doc: LoadedDocument,
               what: str = "Helm values") -> Iterator[Problem]:
    """Problems that keep ``value`` from being JSON (what Helm and Kubernetes read)."""
    if isinstance(value, dict):
        for key, child in value.items():
            if not isinstance(key, str):
                yield doc.problem((*path, str(key)), f"{what} keys must be strings; quote "
                                  f"the key {key!r}", key=True, rule="values")
            elif len(key) > MAX_VALUES_KEY:
                yield doc.problem((*path, key), f"{what} key longer than {MAX_VALUES_KEY} "
                                  "characters", key=True, rule="values")
            yield from plain_data(child, (*path, str(key)), doc, what)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from plain_data(child, (*path, index), doc, what)
    elif isinstance(value, float) and not math.isfinite(value):
        yield doc.problem(path, f"{what} cannot hold NaN or infinity (JSON has no such "
                          "numbers); quote it if you mean the text", rule="values")
    elif not (value is None or isinstance(value, str | int | float | bool)):
        yield doc.problem(path, f"unsupported value of type {type(value).__name__}",
                          rule="values")


def values_are_json(doc: LoadedDocument) -> Iterator[Problem]:
    """Helm values are JSON: string keys, plain scalars."""
    for path in _values_locations(doc):
        values = _get(doc.data, *path)
        if isinstance(values, dict):
            yield from plain_data(values, path, doc)


def fips(doc: LoadedDocument) -> Iterator[Problem]:
    """The chart refuses multicluster with FIPS mode, and every fleet cluster needs multicluster."""
    fleet_fips = _get(doc.data, "spec", "kasten", "values", "fips", "enabled")
    fleet_reported = False
    for path, cluster in clusters(doc):
        own = _get(cluster, "values", "fips", "enabled")
        effective = own if own is not None else fleet_fips
        if effective is not True:
            continue
        if own is not None:
            where: JsonPath = (*path, "values", "fips", "enabled")
        elif fleet_reported:
            continue
        else:
            where, fleet_reported = ("spec", "kasten", "values", "fips", "enabled"), True
        yield doc.problem(where, "fips.enabled: true cannot be combined with the Multi-Cluster "
                          "Manager (multicluster.enabled), which every fleet cluster needs",
                          rule="fips")


def namespaces(doc: LoadedDocument) -> Iterator[Problem]:
    """K10's own namespace cannot be the Multi-Cluster namespace."""
    paths = [("spec", "kasten", "namespace")] + [(*p, "kasten", "namespace")
                                                for p, _ in clusters(doc)]
    for path in paths:
        if _get(doc.data, *path) == MC_NAMESPACE:
            yield doc.problem(path, f"{MC_NAMESPACE} is reserved for the Multi-Cluster Manager; "
                              "install K10 in another namespace (usually kasten-io)",
                              rule="namespace")


def tokens(doc: LoadedDocument) -> Iterator[Problem]:
    """Token modes that render store references need a store of the right kind."""
    mode = _get(doc.data, "spec", "tokens", "mode") or "sops"
    store = _get(doc.data, "spec", "tokens", "store")
    if mode in ("vault-plugin", "external-secrets") and not isinstance(store, str):
        where: JsonPath = ("spec", "tokens") if _get(doc.data, "spec", "tokens") else ("spec",)
        yield doc.problem(where, f"tokens.mode {mode} needs tokens.store "
                          "(e.g. vault://secret/k10fleet/demo)", rule="tokens")
    if (mode in ("vault-plugin", "external-secrets") and isinstance(store, str)
            and not store.startswith("vault://")):
        yield doc.problem(("spec", "tokens", "store"), f"tokens.mode {mode} reads the token "
                          "from Vault/OpenBao at sync time; the store must be vault://MOUNT/PATH",
                          rule="tokens")
    if isinstance(store, str) and store.startswith("vault://") and not is_vault_uri(store):
        yield doc.problem(("spec", "tokens", "store"), "vault store must be "
                          "vault://MOUNT/PATH (KV v2), e.g. vault://secret/k10fleet/demo",
                          rule="tokens")


def eso_store(doc: LoadedDocument) -> Iterator[Problem]:
    """The opt-in ESO store serves external-secrets mode only."""
    mode = _get(doc.data, "spec", "tokens", "mode") or "sops"
    if _get(doc.data, "spec", "tokens", "externalSecrets", "vault") is not None \
            and mode != "external-secrets":
        yield doc.problem(("spec", "tokens", "externalSecrets", "vault"), "renders an External "
                          f"Secrets store, which tokens.mode {mode} never uses; set tokens.mode "
                          "external-secrets or remove it", rule="tokens")


def gitops(doc: LoadedDocument) -> Iterator[Problem]:
    """Argo CD and Flux need to know which repository to follow."""
    engine = _get(doc.data, "spec", "gitops", "engine")
    if engine in ("argocd", "flux") and not _get(doc.data, "spec", "gitops", "repoURL"):
        yield doc.problem(("spec", "gitops"), f"gitops.engine {engine} needs gitops.repoURL",
                          rule="gitops")


def destinations(doc: LoadedDocument) -> Iterator[Problem]:
    """An Argo CD destination is a server or a name, not both; Flux needs kubeconfigs to fan out."""
    engine = _get(doc.data, "spec", "gitops", "engine")
    local = []
    for path, cluster in clusters(doc):
        destination = cluster.get("destination")
        if not isinstance(destination, dict):
            destination = {}
        if "server" in destination and "name" in destination:
            yield doc.problem((*path, "destination"), "give destination.server or "
                              "destination.name, not both", rule="gitops")
        if not destination.get("kubeConfigSecret"):
            local.append(path)
    if engine == "flux" and len(local) > 1:
        yield doc.problem((*local[1], "name"), f"{len(local)} clusters have no "
                          "destination.kubeConfigSecret, so Flux would apply them all to the "
                          "cluster it runs in", level="warning", rule="gitops")


def k10multicluster_joins(doc: LoadedDocument) -> Iterator[Problem]:
    """Joining with the k10multicluster tool needs contexts and the secondary's ingress."""
    primary = _get(doc.data, "spec", "primary")
    primary_context = _get(primary, "kubeContext")
    for path, cluster in clusters(doc):
        if cluster.get("joinWith") != "k10multicluster":
            continue
        for needed in ("ingressURL", "kubeContext"):
            if not cluster.get(needed):
                yield doc.problem((*path, "joinWith"), f"joinWith: k10multicluster needs "
                                  f"{needed} on this secondary", rule="k10multicluster")
        if isinstance(primary, dict) and not primary_context:
            yield doc.problem((*path, "joinWith"), "joinWith: k10multicluster needs "
                              "spec.primary.kubeContext", rule="k10multicluster")


def cluster_ingress_version(doc: LoadedDocument) -> Iterator[Problem]:
    """cluster-ingress (click-through) exists from 6.5.14; earlier it would be ignored."""
    for path, cluster in clusters(doc):
        if path[-1] == "primary" or not cluster.get("ingressURL"):
            continue
        if cluster.get("joinWith") == "k10multicluster":
            continue
        _, raw = effective_version(doc, path)
        version = K10Version.parse(raw) if isinstance(raw, str) else None
        if version is not None and FIRST_SUPPORTED <= version < FIRST_INGRESS_IN_TOKEN:
            yield doc.problem((*path, "ingressURL"), f"K10 {version} has no cluster-ingress "
                              "(added in 6.5.14), so the primary cannot click through; upgrade "
                              "or use joinWith: k10multicluster", level="warning",
                              rule="version")


RULES: tuple[Rule, ...] = (
    unique_names, urls, versions, owned_values, dotted_values, values_are_json, fips, namespaces,
    tokens, eso_store, gitops, destinations, k10multicluster_joins, cluster_ingress_version,
)


def rule_problems(doc: LoadedDocument) -> list[Problem]:
    problems: list[Problem] = []
    for rule in RULES:
        problems.extend(rule(doc))
    return problems
