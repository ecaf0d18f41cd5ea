"""Argo CD and Flux output for every engine x token mode: golden, schema-valid, buildable."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.check.run import CheckOptions, run_check
from tests.conftest import KUBECTL, REPO, SHARED, run_cli, tree_bytes
from tests.golden.variants import GOLDEN, names, variant
from tests.unit.test_check import kubeconform_binary

CRDS = str(SHARED / "crd-schemas")


def render_variant(name: str, tmp_path: Path) -> Path:
    engine, mode = name.split("-", 1)
    tmp_path.mkdir(parents=True, exist_ok=True)
    fleet = tmp_path / f"{name}.fleet.yaml"
    fleet.write_text(yaml.safe_dump(variant(engine, mode), sort_keys=False))
    out = tmp_path / name
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 0, result.output
    return out


def objects(root: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(root.rglob("*.yaml")):
        if path.name not in ("k10-values.yaml",):
            found += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return found


def by_kind(root: Path, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects(root) if o.get("kind") == kind]


@pytest.mark.parametrize("name", names())
def test_golden_tree(name: str, tmp_path: Path) -> None:
    """Regenerate with `python -m tests.golden.variants` and review the diff."""
    assert tree_bytes(render_variant(name, tmp_path)) == tree_bytes(GOLDEN / name)


@pytest.mark.parametrize("name", names())
def test_every_object_is_schema_valid_and_every_directory_builds(name: str,
                                                                  tmp_path: Path) -> None:
    out = render_variant(name, tmp_path)
    report = run_check(CheckOptions(root=str(out), schema_locations=[CRDS], strict=True,
                                    kubeconform=kubeconform_binary(), kustomize=True))
    assert [f.as_text() for f in report.findings] == []
    built = 0
    for kustomization in sorted(out.rglob("kustomization.yaml")):
        result = subprocess.run([KUBECTL, "kustomize", str(kustomization.parent)],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, (kustomization, result.stderr)
        built += 1
    assert built >= 4


def test_argocd_applications(tmp_path: Path) -> None:
    out = render_variant("argocd-sops", tmp_path)
    apps = {a["metadata"]["name"]: a for a in by_kind(out, "Application")}
    assert sorted(apps) == ["k10-edge-1", "k10-edge-2", "k10-lab-1", "k10-primary-1"]
    primary = apps["k10-primary-1"]["spec"]
    assert primary["destination"] == {"server": "https://kubernetes.default.svc",
                                      "namespace": "kasten-io"}
    chart, values, manifests = primary["sources"]
    assert (chart["chart"], chart["targetRevision"]) == ("k10", "7.5.2")
    assert chart["helm"]["valueFiles"] == ["$values/output/clusters/primary-1/k10-values.yaml"]
    assert values == {"ref": "values", "repoURL": "https://github.com/acme/fleet-gitops.git",
                      "targetRevision": "main"}
    assert manifests["path"] == "output/clusters/primary-1"
    assert primary["ignoreDifferences"] == [{
        "group": "", "jsonPointers": ["/data"], "kind": "Secret", "name": "join-token-secret",
        "namespace": "kasten-io-mc"}]
    assert "RespectIgnoreDifferences=true" in primary["syncPolicy"]["syncOptions"]
    assert "ignoreDifferences" not in apps["k10-edge-1"]["spec"]
    assert apps["k10-edge-1"]["spec"]["destination"]["name"] == "edge-1"
    lab = apps["k10-lab-1"]["spec"]["sources"][0]
    assert lab["targetRevision"] == "7.0.12"  # per-cluster version follows into the chart


def test_argocd_sync_waves_and_namespace_protection(tmp_path: Path) -> None:
    out = render_variant("argocd-external-secrets", tmp_path)
    for obj in objects(out / "clusters"):
        if obj.get("kind") in ("Kustomization", None):
            continue
        # the K10 release is wave 0; Distributions come after what they distribute
        wave = "2" if obj["kind"] == "Distribution" else "1"
        assert obj["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == wave, obj
        if obj["apiVersion"].split("/")[0].endswith(".kio.kasten.io"):
            # K10 registers its CRDs when it starts: Argo CD must not dry-run them first
            assert obj["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == \
                "SkipDryRunOnMissingResource=true", obj
    (namespace,) = by_kind(out, "Namespace")
    assert namespace["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == \
        "Prune=false,Delete=false"


def test_flux_objects(tmp_path: Path) -> None:
    out = render_variant("flux-sops", tmp_path)
    kustomizations = {k["metadata"]["name"]: k for k in by_kind(out / "flux", "Kustomization")
                      if k["apiVersion"].startswith("kustomize.toolkit.fluxcd.io/")}
    mc = kustomizations["k10-mc-edge-2"]["spec"]
    assert mc["dependsOn"] == [{"name": "k10-release-edge-2"}]
    assert mc["path"] == "./output/clusters/edge-2"
    assert mc["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}
    assert mc["kubeConfig"] == {"secretRef": {"key": "value", "name": "edge-2-kubeconfig"}}
    # the primary decrypts the global profile's SOPS-encrypted credentials
    assert kustomizations["k10-mc-primary-1"]["spec"]["decryption"] == mc["decryption"]
    assert kustomizations["k10-release-edge-2"]["spec"]["wait"] is True
    releases = {r["metadata"]["name"]: r for r in by_kind(out, "HelmRelease")}
    release = releases["k10-edge-2"]["spec"]
    (values_from,) = release["valuesFrom"]
    configmaps = {c["metadata"]["name"]: c for c in by_kind(out / "flux", "ConfigMap")}
    values = configmaps[values_from["name"]]["data"]["values.yaml"]
    assert values == (out / "clusters/edge-2/k10-values.yaml").read_text()
    assert release["kubeConfig"] == {"secretRef": {"key": "value", "name": "edge-2-kubeconfig"}}
    (secret,) = [s for s in by_kind(out, "Secret") if s["metadata"]["name"] == "join-token-secret"]
    assert secret["metadata"]["annotations"] == {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}
    (namespace,) = by_kind(out, "Namespace")
    assert namespace["metadata"]["annotations"] == {"kustomize.toolkit.fluxcd.io/prune": "disabled"}


def test_flux_values_configmap_name_follows_content(tmp_path: Path) -> None:
    first = render_variant("flux-plain", tmp_path / "a")
    data = variant("flux", "plain")
    data["spec"]["secondaries"][1]["values"] = {"logLevel": "debug"}
    (tmp_path / "b").mkdir()
    fleet = tmp_path / "b" / "flux-plain.fleet.yaml"  # same file name: same generated comments
    fleet.write_text(yaml.safe_dump(data))
    second = tmp_path / "b" / "out"
    assert run_cli("render", fleet, "-o", second).exit_code == 0

    def name_of(root: Path, cluster: str) -> str:
        release = by_kind(root / f"flux/releases/{cluster}", "HelmRelease")[0]
        return str(release["spec"]["valuesFrom"][0]["name"])

    assert name_of(first, "edge-2") != name_of(second, "edge-2")
    assert name_of(first, "edge-1") == name_of(second, "edge-1")


def test_external_secrets_objects(tmp_path: Path) -> None:
    out = render_variant("none-external-secrets", tmp_path)
    (push,) = by_kind(out, "PushSecret")
    assert push["metadata"]["namespace"] == "kasten-io-mc"
    assert push["spec"]["selector"] == {"secret": {"name": "join-token-secret"}}
    assert push["spec"]["data"] == [{"conversionStrategy": "None", "match": {
        "secretKey": "token", "remoteRef": {"remoteKey": "k10fleet/demo", "property": "token"}}}]
    assert push["spec"]["secretStoreRefs"] == [{"kind": "ClusterSecretStore",
                                                "name": "vault-backend"}]
    externals = [e for e in by_kind(out, "ExternalSecret") if e["metadata"]["name"] == "mc-join"]
    assert len(externals) == 2  # lab-1 joins with k10multicluster
    spec = externals[0]["spec"]
    assert spec["target"]["name"] == "mc-join"
    assert [d["remoteRef"]["key"] for d in spec["data"]] == ["k10fleet/demo"]
    assert [d["remoteRef"]["property"] for d in spec["data"]] == ["token"]


def eso_defaults_left_out(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields ESO's CRD schema defaults (so the API server would add them and Argo CD would
    show a perpetual diff) that ``value`` leaves out, or sets to something else."""
    found: list[str] = []
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += eso_defaults_left_out(item, schema["items"], f"{path}[{i}]")
    if not isinstance(value, dict):
        return found
    for key, sub in schema.get("properties", {}).items():
        here = f"{path}.{key}"
        if key not in value:
            found += [f"{here} (default {sub['default']!r})"] if "default" in sub else []
        elif "default" in sub and not isinstance(sub["default"], dict) \
                and re.sub(r"\[\d+\]", "", here) not in CONFIGURED \
                and value[key] != sub["default"]:
            found.append(f"{here}: {value[key]!r}, not the default {sub['default']!r}")
        else:
            found += eso_defaults_left_out(value[key], sub, here)
    return found


# set from the fleet (tokens.externalSecrets), on purpose
CONFIGURED = {".refreshInterval", ".secretStoreRefs.kind", ".secretStoreRef.kind"}


def test_eso_objects_write_out_every_default_of_the_eso_crds(tmp_path: Path) -> None:
    """The independent source is ESO's own CRD schema (in ../shared/crd-schemas)."""
    out = render_variant("argocd-external-secrets", tmp_path)
    checked = 0
    for kind, schema_file in (("PushSecret", "pushsecret_v1alpha1.json"),
                              ("ExternalSecret", "externalsecret_v1.json")):
        schema = json.loads((SHARED / "crd-schemas/external-secrets.io" / schema_file)
                            .read_text())
        for obj in by_kind(out, kind):
            assert eso_defaults_left_out(obj["spec"], schema["properties"]["spec"]) == [], obj
            checked += 1
    assert checked == 4  # the PushSecret, two mc-joins, one profile's credentials
    assert eso_defaults_left_out({"target": {}}, {"properties": {"target": {"properties": {
        "creationPolicy": {"default": "Owner"}}}}}) == [".target.creationPolicy (default 'Owner')"]


def test_vault_plugin_placeholders(tmp_path: Path) -> None:
    out = render_variant("argocd-vault-plugin", tmp_path)
    secrets = [s for s in by_kind(out, "Secret") if s["metadata"]["name"] == "mc-join"]
    assert len(secrets) == 2
    assert secrets[0]["stringData"] == {"token": "<path:secret/data/k10fleet/demo#token>"}


def test_cmp_manifests_parse_and_run_k10fleet() -> None:
    plugin = yaml.safe_load((REPO / "deploy/argocd-cmp/plugin.yaml").read_text())
    assert plugin["kind"] == "ConfigManagementPlugin"
    assert plugin["metadata"]["name"] == "k10fleet"
    assert plugin["spec"]["discover"]["fileName"] == "fleet.yaml"
    assert plugin["spec"]["init"]["command"] == ["k10fleet", "validate", "fleet.yaml"]
    script = plugin["spec"]["generate"]["command"][-1]
    assert script.startswith("k10fleet render fleet.yaml -o ")
    assert "$ARGOCD_ENV_CLUSTER" in script
    patch = yaml.safe_load((REPO / "deploy/argocd-cmp/repo-server-patch.yaml").read_text())
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/var/run/argocd/argocd-cmp-server"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/home/argocd/cmp-server/config/plugin.yaml" in mounts
