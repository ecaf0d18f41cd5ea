"""The schemas ``check`` uses for the engine kinds k10fleet writes, ``--crd``, and which
schema wins when several know a kind (docs/check-schemas.md).

Independent references: ../shared/crd-schemas (the upstream CRDs' schemas, reference data
read at test time, never shipped) and the Kubernetes ObjectMeta bundled with
kubernetes-validate. Our schemas are written from the documented APIs; these tests hold
them to the upstream field sets, and ``--crd`` to CRDs rebuilt from the upstream schemas.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.check.crds import load_crds, strict_schema
from generator.check.run import CheckOptions, CheckReport, run_check
from generator.check.schemas import SchemaStore, built_in_locations, kubernetes_schema_dir
from generator.resources import data_dir
from tests.conftest import REPO, SHARED, run_cli
from tests.golden.variants import GOLDEN, names, variant
from tests.unit.test_check import kubeconform_binary

UPSTREAM = SHARED / "crd-schemas"
ENGINES = data_dir("schemas") / "engines"
ENGINE_GROUPS = ("argoproj.io", "source.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io",
                 "kustomize.toolkit.fluxcd.io", "external-secrets.io")
KINDS = {"application": "Application", "applicationset": "ApplicationSet",
         "appproject": "AppProject", "gitrepository": "GitRepository",
         "helmrepository": "HelmRepository", "ocirepository": "OCIRepository",
         "helmrelease": "HelmRelease", "kustomization": "Kustomization",
         "externalsecret": "ExternalSecret", "pushsecret": "PushSecret",
         "clusterexternalsecret": "ClusterExternalSecret", "secretstore": "SecretStore",
         "clustersecretstore": "ClusterSecretStore"}
WRITTEN = {("argoproj.io/v1alpha1", "Application"),
           ("source.toolkit.fluxcd.io/v1", "GitRepository"),
           ("source.toolkit.fluxcd.io/v1", "HelmRepository"),
           ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
           ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
           ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
           ("external-secrets.io/v1", "ExternalSecret"),
           ("external-secrets.io/v1alpha1", "PushSecret")}


# --- helpers ---------------------------------------------------------------------------

def objects(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(root.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "apiVersion" in doc:
                yield path, doc


def engine_objects(root: Path) -> list[dict[str, Any]]:
    return [doc for _, doc in objects(root)
            if str(doc["apiVersion"]).split("/")[0] in ENGINE_GROUPS]


def unstrict(node: Any) -> Any:
    """An upstream strict schema back to the CRD's openAPIV3Schema: drop the
    ``additionalProperties: false`` that openapi2jsonschema added beside ``properties``."""
    if isinstance(node, list):
        return [unstrict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: ({k: unstrict(v) for k, v in value.items()} if key == "properties"
                 else unstrict(value)) for key, value in node.items()}
    if "properties" in out and out.get("additionalProperties") is False:
        del out["additionalProperties"]
    return out


def crd_document(group: str, kind: str, versions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    plural = kind.lower() + "s"
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "listKind": f"{kind}List"},
                     "versions": [{"name": name, "served": True, "storage": i == 0,
                                   "schema": {"openAPIV3Schema": schema}}
                                  for i, (name, schema) in enumerate(versions.items())]}}


def upstream_crds() -> list[dict[str, Any]]:
    """One CRD per upstream schema file, as an install manifest would carry it."""
    docs = []
    for path in sorted(UPSTREAM.glob("*/*.json")):
        kind, version = path.stem.split("_")
        docs.append(crd_document(path.parent.name, KINDS[kind],
                                 {version: unstrict(json.loads(path.read_text()))}))
    return docs


@pytest.fixture(scope="module")
def crd_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multi-document install manifest: the CRDs among documents that are not CRDs."""
    path = tmp_path_factory.mktemp("crds") / "install.yaml"
    noise = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}},
             {"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"name": "argocd-server", "namespace": "argocd"}}]
    docs = upstream_crds()
    path.write_text(yaml.safe_dump_all([noise[0], *docs[:5], noise[1], *docs[5:]]))
    return path


def check(root: Path, **options: Any) -> CheckReport:
    opts = CheckOptions(root=str(root), kubeconform="off")
    for key, value in options.items():
        setattr(opts, key, value)
    return run_check(opts)


def errors(store: SchemaStore, doc: dict[str, Any]) -> list[str]:
    found = store.lookup(doc["apiVersion"], doc["kind"])
    assert found is not None, (doc["apiVersion"], doc["kind"])
    return [f"{e.pointer}: {e.message}" for e in found[0].errors(doc)]


def source_of(store: SchemaStore, doc: dict[str, Any]) -> str:
    found = store.lookup(doc["apiVersion"], doc["kind"])
    assert found is not None
    return found[1]


@pytest.fixture(scope="module")
def oci_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flux with the chart from an OCI registry: the only tree with an OCIRepository."""
    base = tmp_path_factory.mktemp("oci")
    data = variant("flux", "external-secrets")
    data["spec"]["kasten"]["chart"]["repository"] = "oci://gcr.io/kasten-images/charts"
    fleet = base / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_cli("render", fleet, "-o", base / "out")
    assert result.exit_code == 0, result.output
    return base / "out"


def every_tree(oci_tree: Path) -> list[Path]:
    return [*(GOLDEN / name for name in names()), oci_tree]


# --- a fresh tree, the golden trees -----------------------------------------------------

def test_fresh_example_tree_checks_clean_with_no_warnings(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("render", REPO / "fleet.yaml", "-o", out).exit_code == 0
    result = run_cli("check", out, "--kubeconform", kubeconform_binary())
    assert result.exit_code == 0, result.output
    assert "0 errors, 0 warnings (kubeconform used)" in result.output, result.output
    report = check(out, kubeconform=kubeconform_binary())
    assert report.findings == [] and len(engine_objects(out)) == 4  # 4 Applications


@pytest.mark.parametrize("name", names())
def test_every_golden_tree_checks_clean_with_no_warnings(name: str) -> None:
    report = check(GOLDEN / name, kubeconform=kubeconform_binary())
    assert report.findings == [] and report.documents


def test_every_kind_k10fleet_writes_has_a_built_in_schema(oci_tree: Path) -> None:
    written = {(d["apiVersion"], d["kind"]) for tree in every_tree(oci_tree)
               for d in engine_objects(tree)}
    assert written == WRITTEN
    store = SchemaStore("1.32.0", [])
    for api_version, kind in sorted(written):
        found = store.lookup(api_version, kind)
        assert found is not None and found[1].startswith(str(ENGINES)), (kind, found)


def test_golden_engine_objects_pass_our_schemas_and_the_upstream_crds(
        oci_tree: Path, crd_manifest: Path) -> None:
    ours = SchemaStore("1.32.0", [])
    theirs = SchemaStore("1.32.0", [], [str(crd_manifest)])
    checked = 0
    for tree in every_tree(oci_tree):
        for doc in engine_objects(tree):
            assert errors(ours, doc) == [], (tree.name, doc["kind"])
            assert source_of(theirs, doc).startswith(f"--crd {crd_manifest}:")
            assert errors(theirs, doc) == [], (tree.name, doc["kind"])
            checked += 1
    assert checked >= 100


@pytest.mark.parametrize("name", ["argocd-external-secrets", "flux-sops", "oci"])
def test_check_with_crd_and_kubeconform_is_clean(name: str, oci_tree: Path,
                                                 crd_manifest: Path) -> None:
    tree = oci_tree if name == "oci" else GOLDEN / name
    report = check(tree, crds=[str(crd_manifest)], kubeconform=kubeconform_binary())
    assert report.findings == [] and report.kubeconform_binary


# --- strictness: every emitted field; never a documented one ----------------------------

def key_paths(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            if key not in ("labels", "annotations"):  # free-form maps: any key is right
                yield from key_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from key_paths(value, (*path, index))


def with_typo(doc: dict[str, Any], path: tuple[str | int, ...]) -> dict[str, Any]:
    bad = copy.deepcopy(doc)
    parent: Any = bad
    for part in path[:-1]:
        parent = parent[part]
    key = str(path[-1])
    parent[key + "x"] = parent.pop(key)
    return bad


def test_a_typo_in_any_emitted_field_is_rejected(oci_tree: Path) -> None:
    store = SchemaStore("1.32.0", [])
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for tree in every_tree(oci_tree):  # one of each kind and shape
        for doc in engine_objects(tree):
            shape = json.dumps(sorted(map(str, key_paths(doc))))
            seen.setdefault((doc["kind"], shape), doc)
    tried = 0
    for doc in seen.values():
        for path in key_paths(doc):
            if path in (("apiVersion",), ("kind",)):
                continue  # the lookup key itself
            assert errors(store, with_typo(doc, path)), (doc["kind"], path)
            tried += 1
    assert tried > 150


def closed_levels(ours: dict[str, Any], theirs: dict[str, Any], root: dict[str, Any],
                  path: str = "") -> Iterator[tuple[str, set[str], set[str]]]:
    """(path, our property names, upstream property names) at each level we close."""
    while "$ref" in ours:
        ours = root["$defs"][ours["$ref"].rsplit("/", 1)[-1]]
    if ours.get("type") == "array" and "items" in ours and "items" in theirs:
        yield from closed_levels(ours["items"], theirs["items"], root, path + "[]")
        return
    if ours.get("additionalProperties") is False:
        yield path, set(ours.get("properties", {})), set(theirs.get("properties", {}))
    for key, value in ours.get("properties", {}).items():
        if key in theirs.get("properties", {}) and key != "metadata":
            yield from closed_levels(value, theirs["properties"][key], root, f"{path}.{key}")


@pytest.mark.parametrize("relative", sorted(str(p.relative_to(ENGINES))
                                            for p in ENGINES.glob("*/*.json")))
def test_every_level_we_close_lists_every_upstream_field(relative: str) -> None:
    ours = json.loads((ENGINES / relative).read_text())
    theirs = json.loads((UPSTREAM / relative).read_text())
    levels = list(closed_levels(ours, theirs, ours))
    assert len(levels) >= 3
    for path, listed, upstream in levels:
        assert upstream, f"{path}: we close a level the upstream CRD leaves open"
        assert upstream <= listed, f"{path}: documented but not listed: {upstream - listed}"
    meta = json.loads((kubernetes_schema_dir("1.32.0") / "_definitions.json").read_text())
    object_meta = meta["$defs"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
    assert set(object_meta["properties"]) <= set(ours["$defs"]["ObjectMeta"]["properties"])
    assert ours["$comment"].startswith("Written by k10-fleet from ")
    assert "https://" in ours["$comment"]


def rich_objects() -> list[dict[str, Any]]:
    """Hand-written objects using documented fields k10fleet never writes."""
    meta = {"name": "x", "namespace": "ns", "finalizers": ["f"], "generateName": "x-",
            "ownerReferences": [], "uid": "1", "resourceVersion": "2", "generation": 3,
            "creationTimestamp": None, "labels": {"a": "b"}, "annotations": {"c": "d"}}
    source = {"repoURL": "https://git.example.com/r.git", "path": "p", "targetRevision": "main",
              "name": "main", "tagPrefix": "v",
              "helm": {"parameters": [{"name": "a", "value": "1", "forceString": True}],
                       "fileParameters": [{"name": "f", "path": "f.json"}],
                       "values": "a: 1", "valuesObject": {"a": {"b": 1}}, "version": "v3",
                       "passCredentials": False, "ignoreMissingValueFiles": True,
                       "skipCrds": True, "skipSchemaValidation": True, "skipTests": True,
                       "namespace": "n", "kubeVersion": "1.32", "apiVersions": ["v1"]},
              "kustomize": {"namePrefix": "p-", "images": ["a:1"]},
              "directory": {"recurse": True}, "plugin": {"name": "p"}}
    sync = {"automated": {"prune": True, "selfHeal": True, "allowEmpty": False,
                          "enabled": True},
            "syncOptions": ["Validate=false"],
            "retry": {"limit": 5, "refresh": True,
                      "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}},
            "managedNamespaceMetadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}}}
    application = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                   "metadata": meta, "operation": {"sync": {"revision": "HEAD"}},
                   "spec": {"project": "default", "source": source,
                            "destination": {"server": "https://kubernetes.default.svc",
                                            "namespace": "n"},
                            "syncPolicy": sync, "revisionHistoryLimit": 3,
                            "info": [{"name": "url", "value": "https://x"}],
                            "ignoreDifferences": [{"group": "apps", "kind": "Deployment",
                                                   "jqPathExpressions": [".a"],
                                                   "managedFieldsManagers": ["m"]}]}}
    ref = {"name": "s"}
    git = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
           "metadata": meta, "spec": {
               "url": "ssh://git@example.com/r.git", "interval": "5m", "timeout": "60s",
               "ref": {"tag": "v1", "semver": ">=1", "name": "refs/heads/main", "commit": "a"},
               "secretRef": ref, "proxySecretRef": ref, "provider": "generic",
               "verify": {"mode": "HEAD", "secretRef": ref}, "ignore": "/*",
               "suspend": False, "recurseSubmodules": True, "sparseCheckout": ["d"],
               "include": [{"repository": ref, "fromPath": "a", "toPath": "b"}]}}
    helm_repo = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
                 "metadata": meta, "spec": {
                     "url": "oci://r.example.com/c", "type": "oci", "interval": "1h",
                     "secretRef": ref, "certSecretRef": ref, "passCredentials": True,
                     "insecure": False, "timeout": "1m", "provider": "aws", "suspend": True,
                     "accessFrom": {"namespaceSelectors": [{"matchLabels": {"a": "b"}}]}}}
    oci = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
           "metadata": meta, "spec": {
               "url": "oci://r.example.com/c", "interval": "1h", "provider": "gcp",
               "ref": {"semver": "1.x", "semverFilter": ".*", "digest": "sha256:0"},
               "layerSelector": {"mediaType": "m", "operation": "extract"},
               "verify": {"provider": "cosign", "secretRef": ref,
                          "matchOIDCIdentity": [{"issuer": "i", "subject": "s"}]},
               "secretRef": ref, "serviceAccountName": "sa", "certSecretRef": ref,
               "proxySecretRef": ref, "insecure": True, "ignore": "x", "suspend": False}}
    release = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
               "metadata": meta, "spec": {
                   "interval": "10m", "chart": {"metadata": {"labels": {"a": "b"}}, "spec": {
                       "chart": "k10", "version": "7.x", "interval": "1h",
                       "reconcileStrategy": "Revision", "valuesFiles": ["v.yaml"],
                       "sourceRef": {"kind": "HelmRepository", "name": "r",
                                     "namespace": "flux-system"}}},
                   "dependsOn": [{"name": "d", "namespace": "n"}], "timeout": "5m",
                   "maxHistory": 5, "serviceAccountName": "sa", "persistentClient": True,
                   "install": {"crds": "CreateReplace", "remediation": {"retries": 3},
                               "disableWait": True, "replace": False, "timeout": "5m"},
                   "upgrade": {"remediation": {"retries": 3}}, "test": {"enable": True},
                   "rollback": {"cleanupOnFail": True}, "uninstall": {"keepHistory": True},
                   "driftDetection": {"mode": "enabled"}, "suspend": False,
                   "postRenderers": [{"kustomize": {"patches": []}}],
                   "values": {"a": [1, 2]},
                   "valuesFrom": [{"kind": "Secret", "name": "s", "valuesKey": "v",
                                   "targetPath": "a.b", "optional": True}],
                   "kubeConfig": {"secretRef": {"name": "kc", "key": "value"}},
                   "commonMetadata": {"labels": {"a": "b"}}}}
    kustomization = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                     "metadata": meta, "spec": {
                         "interval": "10m", "retryInterval": "1m", "timeout": "5m",
                         "prune": True, "wait": False, "force": True,
                         "sourceRef": {"kind": "OCIRepository", "name": "r"},
                         "path": "./x", "targetNamespace": "t", "namePrefix": "p-",
                         "dependsOn": [{"name": "d"}], "suspend": False,
                         "postBuild": {"substitute": {"a": "b"}},
                         "patches": [{"patch": "x", "target": {"kind": "Deployment"}}],
                         "images": [{"name": "a", "newTag": "1"}], "components": ["c"],
                         "healthChecks": [{"kind": "Deployment", "name": "d"}],
                         "decryption": {"provider": "sops", "secretRef": ref},
                         "serviceAccountName": "sa", "commonMetadata": {"labels": {"a": "b"}},
                         "deletionPolicy": "Orphan"}}
    external = {"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "metadata": meta, "spec": {
                    "refreshInterval": "1h", "refreshPolicy": "Periodic",
                    "secretStoreRef": {"kind": "SecretStore", "name": "s"},
                    "data": [{"secretKey": "k", "remoteRef": {"key": "k", "version": "2"}}],
                    "dataFrom": [{"extract": {"key": "k"}}],
                    "target": {"name": "t", "immutable": True, "creationPolicy": "Merge",
                               "template": {"type": "Opaque", "data": {"a": "{{ .k }}"},
                                            "metadata": {"labels": {"a": "b"}},
                                            "templateFrom": []}}}}
    push = {"apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": meta, "spec": {
                "refreshInterval": "1h", "updatePolicy": "IfNotExists",
                "deletionPolicy": "Delete",
                "secretStoreRefs": [{"labelSelector": {"matchLabels": {"a": "b"}}}],
                "selector": {"secret": {"selector": {"matchLabels": {"a": "b"}}}},
                "template": {"type": "Opaque"},
                "data": [{"match": {"remoteRef": {"remoteKey": "r"}},
                          "metadata": {"apiVersion": "kubernetes.external-secrets.io/v1alpha1"},
                          "conversionStrategy": "ReverseUnicode"}]}}
    return [application, git, helm_repo, oci, release, kustomization, external, push]


def test_documented_fields_k10fleet_never_writes_are_accepted(crd_manifest: Path) -> None:
    ours = SchemaStore("1.32.0", [])
    theirs = SchemaStore("1.32.0", [], [str(crd_manifest)])
    for doc in rich_objects():
        assert errors(theirs, doc) == [], doc["kind"]  # the fields are real (upstream CRD)
        assert errors(ours, doc) == [], doc["kind"]


# --- --crd ---------------------------------------------------------------------------

def test_strict_conversion_of_openapi_v3() -> None:
    schema = strict_schema({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "legacy": {"format": "int-or-string", "type": "string"},
            "note": {"type": "string", "nullable": True, "enum": ["a"]},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                     "properties": {"known": {"type": "string"}}},
            "enum": {"type": "string"}}}}})  # a property named like a keyword
    spec = schema["properties"]["spec"]
    assert schema["additionalProperties"] is False and spec["additionalProperties"] is False
    assert set(schema["properties"]) == {"spec", "apiVersion", "kind", "metadata"}
    assert spec["properties"]["port"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert "type" not in spec["properties"]["legacy"]
    assert spec["properties"]["note"]["type"] == ["string", "null"]
    assert spec["properties"]["note"]["enum"] == ["a", None]
    assert "additionalProperties" not in spec["properties"]["free"]
    assert spec["properties"]["enum"] == {"type": "string"}


def test_crd_versions_served_skipped_and_first_definition_wins(tmp_path: Path) -> None:
    widget = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "size": {"type": "integer"}}}}}
    other = {"type": "object", "properties": {"spec": {"type": "object"}}}
    crd = crd_document("example.com", "Widget", {"v1": widget, "v2": widget})
    crd["spec"]["versions"][1]["served"] = False
    folder = tmp_path / "crds"
    (folder / "a").mkdir(parents=True)
    (folder / "a/widget.yaml").write_text(yaml.safe_dump(crd))
    (folder / "b.yml").write_text(yaml.safe_dump(crd_document("example.com", "Widget",
                                                              {"v1": other})))
    (folder / "notes.txt").write_text("not read")
    found = load_crds([str(folder)])
    assert set(found) == {("example.com/v1", "Widget")}
    assert found[("example.com/v1", "Widget")].file.endswith("a/widget.yaml")
    store = SchemaStore("1.32.0", [], [str(folder)])
    good = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"size": 3}}
    assert errors(store, good) == []
    assert errors(store, {**good, "spec": {"size": 3, "colour": "red"}})
    assert errors(store, {**good, "sepc": {}})  # the root is closed too
    assert store.lookup("example.com/v2", "Widget") is None
    legacy = crd_document("example.com", "Gadget", {"v1beta1": widget})  # apiextensions v1beta1
    legacy["apiVersion"] = "apiextensions.k8s.io/v1beta1"
    legacy["spec"]["validation"] = legacy["spec"]["versions"][0].pop("schema")
    (folder / "c.json").write_text(json.dumps(legacy))
    gadget = {**good, "apiVersion": "example.com/v1beta1", "kind": "Gadget"}
    store = SchemaStore("1.32.0", [], [str(folder)])
    assert errors(store, gadget) == [] and errors(store, {**gadget, "spec": {"size": "3"}})


BAD_CRD = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: obejct
"""


def test_crd_problems_are_located(tmp_path: Path) -> None:
    tree = GOLDEN / "none-plain"
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CRD)
    result = run_cli("check", tree, "--kubeconform", "off", "--crd", bad)
    assert result.exit_code == 1
    assert f"{bad}:22:19: error: $.spec.versions[0].schema.openAPIV3Schema.properties.spec" \
           ".type: type 'obejct' is not one of" in result.output, result.output
    assert "Traceback" not in result.output
    bad.write_text(BAD_CRD.replace("  scope: Namespaced", "  scope: [Namespaced"))
    result = run_cli("check", tree, "--kubeconform", "off", "--crd", bad)
    assert result.exit_code == 1 and f"{bad}:13:" in result.output and "invalid YAML" in \
        result.output, result.output
    empty = tmp_path / "none.yaml"
    empty.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    result = run_cli("check", tree, "--kubeconform", "off", "--crd", empty)
    assert result.exit_code == 1 and f"{empty}:1:1: error: " in result.output
    assert "holds no CustomResourceDefinition" in result.output
    result = run_cli("check", tree, "--crd", tmp_path / "missing.yaml")
    assert result.exit_code == 2


# --- precedence ------------------------------------------------------------------------

def refusing_schema(api_version: str, kind: str, field: str) -> dict[str, Any]:
    """A user's schema that insists on ``spec.<field>``: whoever uses it reports that."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "required": ["spec"], "properties": {
                "apiVersion": {"const": api_version}, "kind": {"const": kind},
                "spec": {"type": "object", "required": [field]}}}


def user_location(tmp_path: Path, api_version: str, kind: str, field: str) -> Path:
    group, _, version = api_version.rpartition("/")
    folder = tmp_path / f"user-{field}"
    (folder / group).mkdir(parents=True)
    (folder / group / f"{kind.lower()}_{version}.json").write_text(
        json.dumps(refusing_schema(api_version, kind, field)))
    return folder


@pytest.mark.parametrize("api_version,kind,tree", [
    ("argoproj.io/v1alpha1", "Application", "argocd-plain"),
    ("config.kio.kasten.io/v1alpha1", "Policy", "none-plain")])
def test_a_users_schema_location_wins_over_the_built_in_schemas(
        tmp_path: Path, api_version: str, kind: str, tree: str) -> None:
    folder = user_location(tmp_path, api_version, kind, "fromUser")
    store = SchemaStore("1.32.0", [str(folder)])
    assert store.search_path() == [folder, *built_in_locations()]
    doc = next(d for _, d in objects(GOLDEN / tree) if d["kind"] == kind)
    assert source_of(store, doc) == str(folder / api_version.split("/")[0] /
                                         f"{kind.lower()}_v1alpha1.json")
    assert any("fromUser" in e for e in errors(store, doc))
    for binary in ("off", kubeconform_binary()):  # kubeconform searches in the same order
        report = check(GOLDEN / tree, schema_locations=[str(folder)], kubeconform=binary)
        assert report.errors >= 1 and all("fromUser" in f.message for f in report.findings
                                          if f.level == "error"), report.findings
        if binary != "off":
            assert any("kubeconform" in f.source for f in report.findings)


def test_crd_wins_over_schema_location(tmp_path: Path) -> None:
    folder = user_location(tmp_path, "argoproj.io/v1alpha1", "Application", "fromUser")
    crd = tmp_path / "app-crd.yaml"
    schema = {"type": "object", "properties": {"spec": {"type": "object",
                                                        "required": ["fromCrd"]}}}
    crd.write_text(yaml.safe_dump(crd_document("argoproj.io", "Application",
                                               {"v1alpha1": schema})))
    for binary in ("off", kubeconform_binary()):
        report = check(GOLDEN / "argocd-plain", schema_locations=[str(folder)],
                       crds=[str(crd)], kubeconform=binary)
        messages = [f.message for f in report.findings]
        assert messages and not any("fromUser" in m for m in messages), messages
        assert all("fromCrd" in m or "spec" in m for m in messages), messages


def test_check_without_crd_does_not_import_the_crd_reader(tmp_path: Path) -> None:
    code = ("import sys\nfrom generator.check.run import CheckOptions, run_check\n"
            f"report = run_check(CheckOptions(root={str(GOLDEN / 'argocd-plain')!r}, "
            "kubeconform='off'))\n"
            "assert report.findings == [], report.findings\n"
            "print('generator.check.crds' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_core_schemas_are_kept_standalone_between_runs(tmp_path: Path) -> None:
    """The first run writes a core kind's standalone schema to the cache (kubeconform's
    folder); the next reads it instead of the 1.3 MB of definitions; a spoilt copy is made
    again; every run gives the same verdict."""
    cache = tmp_path / "cache"
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
           "data": {"k": 1}}

    def verdict() -> list[str]:
        store = SchemaStore("1.32.0", [], cache_root=str(cache))
        found = store.lookup("v1", "ConfigMap")
        assert found is not None
        return [e.pointer for e in found[0].errors(bad)]

    first = verdict()
    copy_of = cache / "v1.32.0-standalone-strict" / "configmap-v1.json"
    assert first == ["/data/k"] and json.loads(copy_of.read_text())["$defs"]
    assert verdict() == first
    copy_of.write_text("{not json")
    assert verdict() == first and json.loads(copy_of.read_text())["$defs"]
