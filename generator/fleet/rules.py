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
    DEFAULT_RELEASE,
    FIRST_INGRESS_IN_TOKEN,
    FIRST_SUPPORTED,
    FIRST_TOOL_SUPPORTED,
    K10MULTICLUSTER_DEPRECATED,
    MC_NAMESPACE,
    K10Version,
    is_vault_uri,
)
from generator.problems import JsonPath, Problem

Rule = Callable[[LoadedDocument], Iterator[Problem]]

K10MULTICLUSTER_DOCS = "https://docs.kasten.io/latest/multicluster/tutorials/k10multicluster_tool.html"


def _get(data: Any, *path: str | int) -> Any:
    for part in path:
        if isinstance(part, str):
            if not isinstance(data, dict):
                return None
            data = data.get(part)
        elif isinstance(data, list) and part < len(data):
            data = data[part]
        else:
            return None
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


UPGRADE_DOCS = "https://docs.kasten.io/latest/multicluster/upgrading"
UPGRADE_ORDER = ("upgrade the primary first, then each secondary (clusters already joined "
                 "keep working during the upgrade); new joins across the line are rejected "
                 f"({UPGRADE_DOCS})")


def _too_old(doc: LoadedDocument, where: JsonPath, version: K10Version) -> Problem:
    return doc.problem(where, f"K10 {version} is older than {FIRST_TOOL_SUPPORTED}; k10fleet "
                       "sets up 6.0.x-6.4.x with the k10multicluster tool "
                       f"({K10MULTICLUSTER_DOCS}) and {FIRST_SUPPORTED} or newer "
                       "declaratively: upgrade", rule="version")


def versions(doc: LoadedDocument) -> Iterator[Problem]:
    """Every K10 version in play must be 6.0.0 or newer; mixing across 6.5.14 is flagged."""
    reported: set[JsonPath] = set()
    parsed: list[tuple[JsonPath, K10Version]] = []
    fleet_default = ("spec", "kasten", "version")
    raw_default = _get(doc.data, *fleet_default)
    default = K10Version.parse(raw_default) if isinstance(raw_default, str) else None
    if default is not None and default < FIRST_TOOL_SUPPORTED:  # wrong even where overridden
        reported.add(fleet_default)
        yield _too_old(doc, fleet_default, default)
    for path, _cluster in clusters(doc):
        where, raw = effective_version(doc, path)
        version = K10Version.parse(raw) if isinstance(raw, str) else None
        if version is None:
            continue  # the schema reports the format
        parsed.append((path, version))
        if version < FIRST_TOOL_SUPPORTED and where not in reported:
            reported.add(where)
            yield _too_old(doc, where, version)
    sides = {v >= FIRST_INGRESS_IN_TOKEN for _, v in parsed}
    if len(sides) == 2:
        where, _ = effective_version(doc, parsed[0][0])
        yield doc.problem(where, f"clusters run K10 versions on both sides of "
                          f"{FIRST_INGRESS_IN_TOKEN}, where join tokens changed format: "
                          f"{UPGRADE_ORDER}", level="warning", rule="version")


def _version_of(doc: LoadedDocument, path: JsonPath) -> K10Version | None:
    _, raw = effective_version(doc, path)
    return K10Version.parse(raw) if isinstance(raw, str) else None


KASTEN_CHART_REPOSITORIES = ("https://charts.kasten.io",)


def _chart_version(doc: LoadedDocument, path: JsonPath) -> tuple[JsonPath, Any] | None:
    """Where an explicit chart version for this cluster comes from (None: it follows K10)."""
    if _get(doc.data, *path, "kasten", "chart", "version") is not None:
        where: JsonPath = (*path, "kasten", "chart", "version")
        return where, _get(doc.data, *where)
    if _get(doc.data, *path, "kasten", "version") is not None:
        return None  # a cluster that overrides K10's version follows it
    fleet = ("spec", "kasten", "chart", "version")
    return (fleet, _get(doc.data, *fleet)) if _get(doc.data, *fleet) is not None else None


def _chart_repository(doc: LoadedDocument, path: JsonPath) -> Any:
    own = _get(doc.data, *path, "kasten", "chart", "repository")
    fleet = _get(doc.data, "spec", "kasten", "chart", "repository")
    return own if own is not None else (fleet if fleet is not None else "https://charts.kasten.io/")


def chart_versions(doc: LoadedDocument) -> Iterator[Problem]:
    """On Kasten's chart repository the k10 chart version is the K10 version: a pinned chart
    version that differs would install another K10 than the one the join config is for."""
    reported: set[JsonPath] = set()
    for path, _cluster in clusters(doc):
        found = _chart_version(doc, path)
        version = _version_of(doc, path)
        if found is None or version is None or found[0] in reported:
            continue
        where, chart = found
        if not isinstance(chart, str) or K10Version.parse(chart) == version:
            continue
        reported.add(where)
        repository = str(_chart_repository(doc, path))
        name = _get(doc.data, *path, "name")
        if repository.rstrip("/") in KASTEN_CHART_REPOSITORIES:
            yield doc.problem(where, f"chart version {chart} differs from K10 version {version} "
                              f"of {name}: on Kasten's chart repository the k10 chart version is "
                              "the K10 version, so Helm would install K10 "
                              f"{chart} while k10fleet renders the join configuration for "
                              f"{version}; remove chart.version or make it {version}",
                              rule="chart-version")
        else:
            yield doc.problem(where, f"chart version {chart} is not K10 version {version} of "
                              f"{name}; make sure chart {chart} of {repository} installs K10 "
                              f"{version} (mirrors may number charts differently)",
                              level="warning", rule="chart-version")


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


def _tool_joined(doc: LoadedDocument, path: JsonPath, cluster: dict[str, Any],
                 primary_version: K10Version | None) -> str | None:
    """Why a secondary joins with the k10multicluster tool (None: it joins with a token)."""
    version = _version_of(doc, path)
    if any(v is not None and v < FIRST_TOOL_SUPPORTED for v in (version, primary_version)):
        return None  # versions() refuses it
    if version is not None and version < FIRST_SUPPORTED:
        return f"K10 {version} (6.0.x-6.4.x) has no declarative join"
    if primary_version is not None and primary_version < FIRST_SUPPORTED:
        return f"its primary runs K10 {primary_version}, set up with the tool"
    return "joinWith: k10multicluster" if cluster.get("joinWith") == "k10multicluster" else None


def k10multicluster_joins(doc: LoadedDocument) -> Iterator[Problem]:
    """Joining with the k10multicluster tool needs kubeconfig contexts (and, when chosen for
    dashboard access, the secondary's ingress); it is deprecated from K10 7.0."""
    primary = _get(doc.data, "spec", "primary")
    primary_context = _get(primary, "kubeContext")
    primary_version = _version_of(doc, ("spec", "primary"))
    for path, cluster in clusters(doc):
        if path[-1] == "primary":
            continue
        why = _tool_joined(doc, path, cluster, primary_version)
        if why is None:
            if cluster.get("ingressSkipTLSVerify") is True:
                yield doc.problem((*path, "ingressSkipTLSVerify"), "ingressSkipTLSVerify is "
                                  "passed to the k10multicluster tool only; this secondary joins "
                                  "with a token, so it has no effect", level="warning",
                                  rule="k10multicluster")
            continue
        where = (*path, "joinWith") if "joinWith" in cluster else (*path, "name")
        if cluster.get("joinWith") == "token" and why != "joinWith: k10multicluster":
            yield doc.problem(where, f"joinWith: token is not possible: {why}; remove it, "
                              "k10fleet joins this secondary with bootstrap/k10multicluster.sh",
                              rule="k10multicluster")
        chosen = why.startswith("joinWith")
        prefix = why if chosen else f"{why}: joining with the k10multicluster tool"
        for field_name in ("ingressURL", "kubeContext") if chosen else ("kubeContext",):
            if not cluster.get(field_name):
                yield doc.problem(where, f"{prefix} needs {field_name} on this secondary",
                                  rule="k10multicluster")
        if isinstance(primary, dict) and not primary_context:
            yield doc.problem(where, f"{prefix} needs spec.primary.kubeContext",
                              rule="k10multicluster")
        version = _version_of(doc, path)
        if why.startswith("joinWith") and version is not None \
                and version >= K10MULTICLUSTER_DEPRECATED:
            yield doc.problem(where, f"the k10multicluster tool is deprecated from K10 "
                              f"{K10MULTICLUSTER_DEPRECATED} (this secondary runs {version}); "
                              "from 6.5.14 ingressURL becomes cluster-ingress in mc-join-config, "
                              "which gives the primary's dashboard the same click-through: use "
                              "joinWith: token", level="warning", rule="k10multicluster")


def tool_primary(doc: LoadedDocument) -> Iterator[Problem]:
    """A 6.0.x-6.4.x primary is set up with ``k10multicluster setup-primary``."""
    primary = _get(doc.data, "spec", "primary")
    version = _version_of(doc, ("spec", "primary"))
    if not isinstance(primary, dict) or version is None or not \
            FIRST_TOOL_SUPPORTED <= version < FIRST_SUPPORTED:
        return
    if not primary.get("kubeContext"):
        yield doc.problem(("spec", "primary", "name"), f"K10 {version} (6.0.x-6.4.x) is set up "
                          "with k10multicluster setup-primary, which needs "
                          "spec.primary.kubeContext", rule="k10multicluster")


def ingress_paths(doc: LoadedDocument) -> Iterator[Problem]:
    """Kasten documents ingressURL as <url of cluster>/<helm release name>."""
    for path, cluster in clusters(doc):
        url = _str(cluster.get("ingressURL"))
        release = _get(doc.data, *path, "kasten", "releaseName") or \
            _get(doc.data, "spec", "kasten", "releaseName") or DEFAULT_RELEASE
        if not url or not isinstance(release, str):
            continue
        try:
            last = urlsplit(url).path.rstrip("/").rpartition("/")[2]
        except ValueError:
            continue  # urls() reports it
        if last and last != release:
            yield doc.problem((*path, "ingressURL"), f"Kasten documents ingressURL as "
                              f"<url of cluster>/<helm release name>; this path ends with "
                              f"{last!r}, not the release name {release!r} (fine only when the "
                              "K10 ingress serves another path, ingress.urlPath)",
                              level="warning", rule="url")


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
    unique_names, urls, versions, owned_values, dotted_values, values_are_json, fips,
    namespaces, tokens, eso_store, gitops, destinations, k10multicluster_joins,
    cluster_ingress_version, chart_versions, tool_primary, ingress_paths,
)


def rule_problems(doc: LoadedDocument) -> list[Problem]:
    problems: list[Problem] = []
    for rule in RULES:
        problems.extend(rule(doc))
    return problems
