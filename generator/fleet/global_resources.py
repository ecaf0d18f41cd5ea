"""Rules for what the primary hands out: cluster labels, access grants, global Policies and
Profiles, and their Distributions. Every reference must resolve and every selection must
select a fleet cluster, so nothing is sent to nobody."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from generator.fleet.loader import LoadedDocument
from generator.fleet.model import (
    CLUSTER_TYPE_LABEL,
    CONFIG_API,
    CREDENTIAL_FORMATS,
    DEFAULT_JOIN_TOKEN_SECRET,
    MC_NAMESPACE,
    credential_holder,
    is_vault_uri,
    vault_mount_and_path,
    with_credential_secret,
)
from generator.fleet.rules import Rule, _get, clusters, plain_data
from generator.fleet.schema import did_you_mean, object_problems
from generator.fleet.selectors import SelectorError, label_key_problem, parse
from generator.problems import JsonPath, Problem

# Prefixes K10 and Kubernetes own, and the label Argo CD tracks its resources by: a Cluster
# object carrying app.kubernetes.io/instance could be pruned by Argo CD, which disconnects it.
RESERVED_PREFIXES = ("kasten.io/", "k10fleet.io/", "kubernetes.io/", "k8s.io/")
RESERVED_KEYS = {"app.kubernetes.io/instance": "Argo CD tracks the objects it owns (and may "
                 "prune) by this label, and deleting a Cluster object disconnects the cluster"}


def _list(doc: LoadedDocument, *path: str) -> Iterator[tuple[JsonPath, dict[str, Any]]]:
    items = _get(doc.data, *path)
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, dict):
                yield (*path, index), item


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _reserved(key: str) -> str | None:
    prefix = key.rpartition("/")[0] + "/" if "/" in key else ""
    if key in RESERVED_KEYS:
        return RESERVED_KEYS[key]
    if prefix and any(prefix == p or prefix.endswith("." + p) for p in RESERVED_PREFIXES):
        return f"the prefix {prefix!r} belongs to K10 or Kubernetes"
    return None


def label_keys(doc: LoadedDocument) -> Iterator[Problem]:
    """Cluster label keys are valid Kubernetes keys that neither K10 nor Argo CD own."""
    for path, cluster in clusters(doc):
        labels = cluster.get("labels")
        if not isinstance(labels, dict):
            continue
        for key in labels:
            where = (*path, "labels", str(key))
            problem = label_key_problem(str(key)) if isinstance(key, str) else \
                f"label keys must be strings; quote {key!r}"
            if problem:
                yield doc.problem(where, problem, key=True, rule="labels")
                continue
            reserved = _reserved(str(key))
            if reserved:
                yield doc.problem(where, f"label {key!r} cannot be set by the fleet: {reserved}",
                                  key=True, rule="labels")


def fleet_clusters(doc: LoadedDocument) -> dict[str, dict[str, str]]:
    """Fleet name -> the labels K10's Cluster object will carry (fleet labels plus K10's)."""
    known: dict[str, dict[str, str]] = {}
    for path, cluster in clusters(doc):
        name = cluster.get("name")
        if not isinstance(name, str) or name in known:
            continue
        labels = cluster.get("labels")
        own = {str(k): v for k, v in labels.items() if isinstance(v, str)} \
            if isinstance(labels, dict) else {}
        own[CLUSTER_TYPE_LABEL] = "primary" if path[-1] == "primary" else "secondary"
        known[name] = own
    return known


def _selection(doc: LoadedDocument, path: JsonPath, what: str,
               known: dict[str, dict[str, str]]) -> Iterator[Problem]:
    """A ``clusters`` list: names exist, selectors parse, and together they select someone."""
    entries = _get(doc.data, *path)
    if not isinstance(entries, list):
        return
    selected: set[str] = set()
    idle: list[JsonPath] = []
    resolvable = True
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            resolvable = False
            continue
        if isinstance(entry.get("name"), str):
            name = entry["name"]
            if name in known:
                selected.add(name)
            else:
                resolvable = False
                yield doc.problem((*path, index, "name"), f"no cluster named {name!r} in the "
                                  f"fleet{did_you_mean(name, sorted(known))}", rule="references")
        elif isinstance(entry.get("selector"), str):
            try:
                selector = parse(entry["selector"])
            except SelectorError as e:
                resolvable = False
                yield doc.problem((*path, index, "selector"), f"invalid label selector: {e}",
                                  rule="selectors")
                continue
            matched = {n for n, labels in known.items() if selector.matches(labels)}
            if not matched:
                idle.append((*path, index, "selector"))
            selected |= matched
        else:
            resolvable = False
    if resolvable and entries and not selected:
        yield doc.problem(path, f"{what} targets no cluster of the fleet: give a cluster name, or "
                          "a selector that matches some cluster's labels (spec.primary.labels, "
                          "secondaries[].labels)", rule="references")
    elif selected:
        for where in idle:  # fine for clusters yet to come, but worth a look
            yield doc.problem(where, f"selector {_get(doc.data, *where)!r} matches no cluster "
                              "of the fleet yet", level="warning", rule="selectors")


def access_grants(doc: LoadedDocument) -> Iterator[Problem]:
    """Grants have unique names and name or select existing clusters."""
    known = fleet_clusters(doc)
    yield from _unique_names(doc, _list(doc, "spec", "access"), ("name",), "access grant")
    for path, grant in _list(doc, "spec", "access"):
        yield from _selection(doc, (*path, "clusters"), f"access grant {grant.get('name')!r}",
                              known)


def _unique_names(doc: LoadedDocument, items: Iterator[tuple[JsonPath, dict[str, Any]]],
                  name_path: tuple[str, ...], what: str) -> Iterator[Problem]:
    seen: dict[str, JsonPath] = {}
    for path, item in items:
        name = _get(item, *name_path)
        if not isinstance(name, str):
            continue
        if name in seen:
            line, _ = doc.locate(seen[name])
            yield doc.problem((*path, *name_path), f"{what} {name!r} is already defined at "
                              f"line {line}", rule="unique-names")
        else:
            seen[name] = (*path, *name_path)


def global_objects(doc: LoadedDocument) -> Iterator[Problem]:
    """Policies and Profiles are valid K10 objects (checked with schemas/kasten/...)."""
    for kind, key in (("Policy", "policies"), ("Profile", "profiles")):
        items = list(_list(doc, "spec", key))
        yield from _unique_names(doc, iter(items), ("metadata", "name"), kind)
        for path, item in items:
            not_json = list(plain_data(item, path, doc, kind))
            if not_json:
                yield from not_json
                continue  # the schema cannot judge what JSON cannot hold
            for field in ("labels", "annotations"):
                entries = _get(item, "metadata", field)
                for key in entries if isinstance(entries, dict) else {}:
                    problem = label_key_problem(str(key))
                    if problem:
                        yield doc.problem((*path, "metadata", field, str(key)),
                                          problem.replace("label key", f"{field[:-1]} key"),
                                          key=True, rule="labels")
            as_k10 = {"apiVersion": CONFIG_API, "kind": kind,
                      **{k: v for k, v in item.items() if k != "credentials"}}
            if isinstance(as_k10.get("metadata"), dict):
                as_k10["metadata"] = {**as_k10["metadata"], "namespace": MC_NAMESPACE}
            if kind == "Profile" and isinstance(item.get("credentials"), dict):
                as_k10["spec"] = with_generated_secret(item)
            yield from object_problems(doc, path, f"kasten/config.kio.kasten.io/"
                                       f"{kind.lower()}_v1alpha1.json", as_k10)


def with_generated_secret(profile: dict[str, Any]) -> Any:
    """The profile spec as rendered: credential.secret names the Secret k10fleet writes."""
    spec, name = profile.get("spec"), _get(profile, "metadata", "name")
    if not isinstance(spec, dict) or not isinstance(name, str):
        return spec
    credential = _get(spec, credential_holder(spec), "credential")
    if isinstance(credential, dict) and "secret" in credential:
        return spec  # hand-written: profile_credentials reports it
    secret_name = _get(profile, "credentials", "secretName") or f"{name}-credentials"
    return with_credential_secret(spec, str(secret_name))


def profile_credentials(doc: LoadedDocument) -> Iterator[Problem]:
    """Credentials come from a store in a format K10 knows; the Secret is never in the fleet."""
    mode = _get(doc.data, "spec", "tokens", "mode") or "sops"
    for path, profile in _list(doc, "spec", "profiles"):
        spec = profile.get("spec")
        if not isinstance(spec, dict):
            continue
        holder_key = credential_holder(spec)
        credential = _get(spec, holder_key, "credential")
        credential_path: JsonPath = (*path, "spec", holder_key, "credential")
        credentials = profile.get("credentials")
        if not isinstance(credentials, dict):
            if isinstance(credential, dict) and "secret" not in credential:
                yield doc.problem(credential_path, "give credentials.store on the profile "
                                  "(k10fleet then generates the Secret from the store) or "
                                  "credential.secret naming a Secret you create in kasten-io-mc",
                                  rule="credentials")
            continue
        secret_type = _get(credential, "secretType")
        if not isinstance(secret_type, str):
            yield doc.problem((*path, "credentials"), f"credentials need "
                              f"spec.{holder_key}.credential.secretType to know which keys the "
                              f"Secret holds ({', '.join(CREDENTIAL_FORMATS)})",
                              rule="credentials")
            continue
        if secret_type not in CREDENTIAL_FORMATS:
            yield doc.problem((*credential_path, "secretType"), f"k10fleet builds credential "
                              f"Secrets for {', '.join(CREDENTIAL_FORMATS)}; for {secret_type!r} "
                              "create the Secret yourself and name it in credential.secret"
                              f"{did_you_mean(secret_type, list(CREDENTIAL_FORMATS))}",
                              rule="credentials")
        if isinstance(credential, dict) and "secret" in credential:
            yield doc.problem((*credential_path, "secret"), "k10fleet generates credential.secret "
                              "from credentials.store; remove it", key=True, rule="credentials")
        store = credentials.get("store")
        if (mode in ("external-secrets", "vault-plugin") and isinstance(store, str)
                and not store.startswith("vault://")):
            yield doc.problem((*path, "credentials", "store"), f"tokens.mode {mode} fetches "
                              "secrets from Vault/OpenBao at sync time; the store must be "
                              "vault://MOUNT/PATH", rule="credentials")
        elif isinstance(store, str) and store.startswith("vault://"):
            mount = vault_mount_and_path(store)[0]
            token_store = _get(doc.data, "spec", "tokens", "store")
            token_mount = vault_mount_and_path(token_store)[0] \
                if isinstance(token_store, str) and token_store.startswith("vault://") else None
            if not is_vault_uri(store):
                yield doc.problem((*path, "credentials", "store"), "vault store must be "
                                  "vault://MOUNT/PATH (KV v2)", rule="credentials")
            elif mode == "external-secrets" and token_mount and mount != token_mount:
                yield doc.problem((*path, "credentials", "store"), f"the External Secrets "
                                  f"store serves one KV mount, {token_mount!r} (from "
                                  f"tokens.store); keep the credentials under "
                                  f"vault://{token_mount}/...", rule="credentials")


def secret_names(doc: LoadedDocument) -> Iterator[Problem]:
    """Secrets k10fleet writes into kasten-io-mc must not collide."""
    join = _get(doc.data, "spec", "tokens", "joinTokenSecret")
    if not isinstance(join, str):
        join = DEFAULT_JOIN_TOKEN_SECRET
    seen: dict[str, JsonPath] = {join: ("spec", "tokens", "joinTokenSecret")}
    for path, profile in _list(doc, "spec", "profiles"):
        credentials = profile.get("credentials")
        name = _get(profile, "metadata", "name")
        if not isinstance(credentials, dict) or not isinstance(name, str):
            continue
        secret = credentials.get("secretName", f"{name}-credentials")
        if not isinstance(secret, str):
            continue
        where: JsonPath = (*path, "credentials", "secretName") if "secretName" in credentials \
            else (*path, "metadata", "name")
        if secret in seen:
            line, _ = doc.locate(seen[secret])
            yield doc.problem(where, f"Secret {secret!r} in {MC_NAMESPACE} is already named at "
                              f"line {line}; set credentials.secretName", rule="unique-names")
        else:
            seen[secret] = where


def _profiles_used_by(policy: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    actions = _get(policy, "spec", "actions")
    for action in actions if isinstance(actions, list) else []:
        if not isinstance(action, dict):
            continue
        for key, parameters in action.items():
            if isinstance(key, str) and key.endswith("Parameters") \
                    and isinstance(parameters, dict):
                for ref in ("profile", "blockModeProfile"):
                    name = _get(parameters, ref, "name")
                    if isinstance(name, str):
                        names.add(name)
    return names


Defined = dict[str, dict[str, dict[str, Any]]]  # kind -> name -> the item as written


def _defined_resources(doc: LoadedDocument) -> Defined:
    defined: Defined = {"Policy": {}, "Profile": {}}
    for kind, key in (("Policy", "policies"), ("Profile", "profiles")):
        for _path, item in _list(doc, "spec", key):
            name = _get(item, "metadata", "name")
            if isinstance(name, str):
                defined[kind].setdefault(name, item)
    return defined


def distributions(doc: LoadedDocument) -> Iterator[Problem]:
    """Each distribution sends known resources to at least one fleet cluster."""
    known = fleet_clusters(doc)
    defined = _defined_resources(doc)
    items = list(_list(doc, "spec", "distributions"))
    yield from _unique_names(doc, iter(items), ("name",), "distribution")
    sent: set[tuple[str, str]] = set()
    for path, item in items:
        yield from _selection(doc, (*path, "clusters"), f"distribution {item.get('name')!r}",
                              known)
        yield from _sent_resources(doc, path, item, defined, sent)
    for path, item in items:
        yield from _profiles_left_behind(doc, path, item, defined)
    yield from _undistributed(doc, sent)


def _sent_resources(doc: LoadedDocument, path: JsonPath, item: dict[str, Any],
                    defined: Defined, sent: set[tuple[str, str]]) -> Iterator[Problem]:
    """Every resource a distribution sends is defined; ``sent`` collects them."""
    for index, resource in enumerate(_items(item.get("resources"))):
        if not isinstance(resource, dict):
            continue
        ref_kind, ref_name = resource.get("kind"), resource.get("name")
        if not isinstance(ref_kind, str) or ref_kind not in defined \
                or not isinstance(ref_name, str):
            continue
        sent.add((ref_kind, ref_name))
        if ref_name not in defined[ref_kind]:
            plural = "policies" if ref_kind == "Policy" else "profiles"
            yield doc.problem((*path, "resources", index, "name"), f"no {ref_kind} named "
                              f"{ref_name!r} in spec.{plural}"
                              f"{did_you_mean(ref_name, sorted(defined[ref_kind]))}",
                              rule="references")


def _profiles_left_behind(doc: LoadedDocument, path: JsonPath, item: dict[str, Any],
                          defined: Defined) -> Iterator[Problem]:
    """A distributed Policy's Profiles travel with it."""
    included = {(str(r.get("kind")), str(r.get("name")))
                for r in _items(item.get("resources")) if isinstance(r, dict)}
    for kind, name in sorted(included):
        if kind != "Policy" or name not in defined["Policy"]:
            continue
        for profile in sorted(_profiles_used_by(defined["Policy"][name])):
            if profile in defined["Profile"] and ("Profile", profile) not in included:
                yield doc.problem((*path, "resources"), f"Policy {name!r} uses Profile "
                                  f"{profile!r}, which this distribution does not send",
                                  level="warning", rule="references")


def _undistributed(doc: LoadedDocument, sent: set[tuple[str, str]]) -> Iterator[Problem]:
    for kind, key in (("Policy", "policies"), ("Profile", "profiles")):
        for path, item in _list(doc, "spec", key):
            name = _get(item, "metadata", "name")
            if isinstance(name, str) and (kind, name) not in sent:
                yield doc.problem((*path, "metadata", "name"), f"{kind} {name!r} is in no "
                                  "distribution: K10 neither validates nor uses a global "
                                  "resource until it is distributed", level="warning",
                                  rule="references")


CENTRAL_RULES: tuple[Rule, ...] = (
    label_keys, access_grants, global_objects, profile_credentials, secret_names, distributions,
)


def central_problems(doc: LoadedDocument) -> list[Problem]:
    spec = _get(doc.data, "spec")
    if not isinstance(spec, dict):
        return []  # the schema reports it
    if not any(k in spec for k in ("access", "policies", "profiles", "distributions")) and \
            not any("labels" in c for _, c in clusters(doc)):
        return []  # the common case at 10,000 clusters: nothing to walk
    problems: list[Problem] = []
    for rule in CENTRAL_RULES:
        problems.extend(rule(doc))
    return problems
