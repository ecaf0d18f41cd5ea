"""Issue 9: cluster labels, access grants, global Policies/Profiles and Distributions."""

from __future__ import annotations

import copy
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from generator.fleet.selectors import SelectorError, parse
from generator.labels import apply_document, parse_cluster_list, plan
from generator.resources import load_schema
from tests.conftest import REPO, example_fleet, run_cli
from tests.golden.variants import GOLDEN, names
from tests.unit.test_engines import by_kind, objects, render_variant

LABELS = {"env": "prod", "region": "eu-west", "tier": "1"}


@pytest.mark.parametrize(("selector", "matches"), [
    ("", True),  # empty selects everything, as in Kubernetes
    ("env=prod", True), ("env==prod", True), ("env=lab", False),
    ("env!=lab", True), ("team!=x", True),  # != matches objects without the key
    ("env in (prod,staging)", True), ("env in ( lab , staging )", False),
    ("env notin (lab)", True), ("team notin (a)", True),
    ("region", True), ("team", False), ("!team", True), ("!env", False),
    ("tier>0", True), ("tier<1", False),
    ("env=prod,region=eu-west", True), ("env=prod, region=us", False),
    ("example.com/x-y_z.1=a", False),
])
def test_selectors_follow_kubernetes(selector: str, matches: bool) -> None:
    assert parse(selector).matches(LABELS) is matches


@pytest.mark.parametrize(("selector", "reason"), [
    ("env in prod", "expected '('"), ("env in (a", "expected ',' or ')'"),
    ("=prod", "expected a label key"), ("env=prod,", "must be followed"),
    ("env prod", "expected an operator"), ("-env=x", "is not a label key"),
    ("env=pr od", "separated by ','"), ("env=" + "x" * 64, "is not a label value"),
    ("tier>one", "must be an integer"), ("a/b/c=1", "is not a label key"),
])
def test_bad_selectors_are_explained(selector: str, reason: str) -> None:
    with pytest.raises(SelectorError, match=re.escape(reason)):
        parse(selector)


def render_fleet(data: dict[str, Any], tmp_path: Path, name: str = "out") -> Path:
    fleet = tmp_path / f"{name}.fleet.yaml"
    fleet.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / name
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 0, result.output
    return out


def test_example_renders_the_worked_example(tmp_path: Path) -> None:
    """Admins on every cluster, config viewers on labs, one backup policy for env=prod."""
    out = render_fleet(example_fleet(), tmp_path)
    primary = out / "clusters/primary-1"
    bindings = {b["metadata"]["name"]: b for b in by_kind(primary, "K10ClusterRoleBinding")}
    assert bindings["fleet-admins"]["spec"] == {
        "clusters": [{"selector": ""}], "k10ClusterRole": "k10-multi-cluster-admin",
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                      "name": "k10-admins"}]}
    assert bindings["lab-config-viewers"]["spec"]["clusters"] == [{"selector": "env=lab"}]
    assert bindings["lab-config-viewers"]["spec"]["k10ClusterRole"] == \
        "k10-multi-cluster-config-view"
    (distribution,) = by_kind(primary, "Distribution")
    assert distribution["metadata"]["namespace"] == "kasten-io-mc"
    assert distribution["spec"] == {"clusters": [{"selector": "env=prod"}], "sources": [
        {"ref": {"apiVersion": "config.kio.kasten.io/v1alpha1", "kind": "Policy",
                 "name": "prod-daily-backup", "namespace": "kasten-io-mc"}},
        {"ref": {"apiVersion": "config.kio.kasten.io/v1alpha1", "kind": "Profile",
                 "name": "s3-backups", "namespace": "kasten-io-mc"}}]}
    (policy,) = by_kind(primary, "Policy")
    assert policy["spec"] == example_fleet()["spec"]["policies"][0]["spec"]  # as written
    (profile,) = by_kind(primary, "Profile")
    assert profile["spec"]["locationSpec"]["credential"]["secret"]["name"] == \
        "s3-backups-credentials"
    # sops mode: no Secret until inject, and never one in plaintext
    assert not [s for s in by_kind(primary, "Secret") if s.get("data")]
    # nothing of this lands on secondaries, and Cluster objects are never templated
    assert not by_kind(out, "Cluster")
    for kind in ("Policy", "Profile", "Distribution", "K10ClusterRoleBinding"):
        assert all(o["metadata"]["namespace"] == "kasten-io-mc" for o in by_kind(out, kind))
        assert len(by_kind(out, kind)) == len(by_kind(primary, kind))


def _schema_for(obj: dict[str, Any]) -> dict[str, Any] | None:
    group, _, version = obj["apiVersion"].rpartition("/")
    if not group.endswith("kio.kasten.io"):
        return None
    return load_schema(f"kasten/{group}/{obj['kind'].lower()}_{version}.json")


@pytest.mark.parametrize("name", names())
def test_every_generated_kasten_object_matches_its_schema(name: str) -> None:
    checked = 0
    for obj in objects(GOLDEN / name / "clusters"):
        schema = _schema_for(obj)
        if schema is not None:
            jsonschema.Draft202012Validator(schema).validate(obj)
            checked += 1
    assert checked >= 5  # 2 grants, a Policy, a Profile, a Distribution


def test_distribution_digest_follows_what_it_sends(tmp_path: Path) -> None:
    def digest(out: Path) -> str:
        (distribution,) = by_kind(out / "clusters/primary-1", "Distribution")
        value: str = distribution["metadata"]["annotations"]["k10fleet.io/sources-digest"]
        return value

    data = example_fleet()
    first = digest(render_fleet(data, tmp_path, "a"))
    assert digest(render_fleet(copy.deepcopy(data), tmp_path, "b")) == first
    changed = copy.deepcopy(data)
    changed["spec"]["policies"][0]["spec"]["retention"]["daily"] = 14
    assert digest(render_fleet(changed, tmp_path, "c")) != first
    unrelated = copy.deepcopy(data)
    unrelated["spec"]["access"][0]["subjects"][0]["name"] = "other-admins"
    assert digest(render_fleet(unrelated, tmp_path, "d")) == first


def test_credential_secrets_per_token_mode(tmp_path: Path) -> None:
    plugin = render_variant("argocd-vault-plugin", tmp_path)
    (secret,) = [s for s in by_kind(plugin / "clusters/primary-1", "Secret") if "stringData" in s]
    assert secret["type"] == "secrets.kanister.io/aws"
    assert secret["stringData"] == {
        "aws_access_key_id": "<path:secret/data/k10fleet/profiles/s3-backups#aws_access_key_id>",
        "aws_secret_access_key":
            "<path:secret/data/k10fleet/profiles/s3-backups#aws_secret_access_key>"}
    eso = render_variant("flux-external-secrets", tmp_path)
    (external,) = [e for e in by_kind(eso / "clusters/primary-1", "ExternalSecret")]
    assert external["spec"]["target"]["name"] == "s3-backups-credentials"
    assert external["spec"]["target"]["template"]["type"] == "secrets.kanister.io/aws"
    assert [d["remoteRef"]["property"] for d in external["spec"]["data"]] == [
        "aws_access_key_id", "aws_secret_access_key"]
    assert {d["remoteRef"]["key"] for d in external["spec"]["data"]} == \
        {"k10fleet/profiles/s3-backups"}


def test_flux_primary_decrypts_only_when_it_holds_credentials(tmp_path: Path) -> None:
    data = example_fleet()
    data["spec"]["gitops"]["engine"] = "flux"
    with_profiles = render_fleet(data, tmp_path, "with")
    for key in ("profiles", "distributions", "policies"):
        del data["spec"][key]
    without = render_fleet(data, tmp_path, "without")

    def primary_spec(out: Path) -> dict[str, Any]:
        (kustomization,) = [k for k in by_kind(out / "flux", "Kustomization")
                            if k.get("metadata", {}).get("name") == "k10-mc-primary-1"]
        spec: dict[str, Any] = kustomization["spec"]
        return spec

    assert primary_spec(with_profiles)["decryption"]["provider"] == "sops"
    assert "decryption" not in primary_spec(without)


def test_plain_mode_writes_profile_credentials_outside_git(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "creds.yaml"
    store.write_text(yaml.safe_dump({"token": "join-" + os.urandom(8).hex(),
                                     "aws_access_key_id": "AKIAEXAMPLE",
                                     "aws_secret_access_key": "very-secret-key",
                                     "role": "arn:aws:iam::1:role/k10"}))
    store.chmod(0o600)
    data = example_fleet()
    data["spec"]["tokens"] = {"mode": "plain", "store": f"file://{store}"}
    data["spec"]["profiles"][0]["credentials"]["store"] = f"file://{store}"
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(data, sort_keys=False))
    plain = tmp_path.parent / f"{tmp_path.name}-plain"
    result = run_cli("inject", fleet, "--plain-dir", plain)
    assert result.exit_code == 0, result.output
    assert "very-secret-key" not in result.output
    written = plain / "primary-1.yaml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    (secret,) = [d for d in yaml.safe_load_all(written.read_text()) if d]
    assert secret["metadata"]["namespace"] == "kasten-io-mc"
    assert secret["type"] == "secrets.kanister.io/aws"
    assert set(secret["data"]) == {"aws_access_key_id", "aws_secret_access_key", "role"}


def test_missing_credential_key_is_a_store_error_that_writes_nothing(
        tmp_path: Path) -> None:
    store = tmp_path / "creds.yaml"
    store.write_text(yaml.safe_dump({"token": "t", "aws_access_key_id": "AKIAEXAMPLE"}))
    store.chmod(0o600)
    data = example_fleet()
    data["spec"]["tokens"]["store"] = f"file://{store}"
    data["spec"]["profiles"][0]["credentials"]["store"] = f"file://{store}"
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "output"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    before = sorted((p, p.read_bytes()) for p in out.rglob("*") if p.is_file())
    result = run_cli("inject", fleet, "-o", out, "--age",
                     "age1j0lxljzucmsthunrf0zh2q89euu7m2lk2g7lcyg68ru2cy27dddqx2xxkw")
    assert result.exit_code == 3, result.output
    assert "aws_secret_access_key" in result.output and "AKIAEXAMPLE" not in result.output
    assert sorted((p, p.read_bytes()) for p in out.rglob("*") if p.is_file()) == before


# -- labels on K10's Cluster objects ---------------------------------------------------------

def live_list(*clusters: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(clusters)})


def live(name: str, labels: dict[str, str], owned: tuple[str, ...] = (), rv: str = "7"
         ) -> dict[str, Any]:
    managed = [{"manager": "k10-controller", "operation": "Update", "fieldsV1": {
        "f:metadata": {"f:labels": {"f:dist.kio.kasten.io/cluster-type": {}}}}}]
    if owned:
        managed.append({"manager": "k10fleet", "operation": "Apply", "fieldsV1": {
            "f:metadata": {"f:labels": {f"f:{k}": {} for k in owned}}}})
    return {"apiVersion": "dist.kio.kasten.io/v1alpha1", "kind": "Cluster", "metadata": {
        "name": name, "namespace": "kasten-io-mc", "resourceVersion": rv,
        "labels": {"dist.kio.kasten.io/cluster-type": "secondary", **labels},
        "managedFields": managed}, "spec": {"primary": False}, "status": {"id": "x"}}


def test_label_plan_sets_ours_and_removes_only_what_we_owned() -> None:
    from generator.fleet.validate import load_fleet

    fleet, _ = load_fleet(str(REPO / "fleet.yaml"))
    current = parse_cluster_list(live_list(
        live("primary-1", {"env": "prod"}, ("env",)),
        # edge-1 joined as edge-one (its clusterName); k10fleet once set "team" on it
        live("edge-one", {"env": "staging", "team": "x", "owner": "someone"}, ("env", "team")),
        live("edge-2", {"env": "prod", "region": "us-east"}, ()),
        live("unknown", {}, ())), "live.json")
    changes = {c.cluster: c for c in plan(fleet, current)}
    assert changes["primary-1"].state == "in-sync"
    edge = changes["edge-1"]
    assert (edge.object_name, edge.state) == ("edge-one", "drift")
    assert edge.set == {"env": "prod", "region": "eu-west"}
    assert edge.remove == ["team"]  # "owner" belongs to someone else and stays
    assert changes["edge-2"].state == "in-sync"  # same values, even if set by hand
    assert changes["lab-1"].state == "not-joined"
    document = yaml.safe_load(apply_document(list(changes.values())))
    assert document["items"] == [{
        "apiVersion": "dist.kio.kasten.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "edge-one", "namespace": "kasten-io-mc",
                     "labels": {"env": "prod", "region": "eu-west"}, "resourceVersion": "7"}}]


def test_labels_command_reports_drift_and_applies_with_server_side_apply(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "live.json"
    source.write_text(live_list(live("primary-1", {"env": "prod"}, ("env",)),
                                live("edge-one", {}, ()), live("edge-2", {}, ())))
    fleet = str(REPO / "fleet.yaml")
    shown = run_cli("labels", fleet, "--from", source)
    assert shown.exit_code == 1, shown.output
    assert "edge-1     drift       env=prod region=eu-west" in shown.output
    assert "lab-1      not-joined  env=lab" in shown.output
    as_json = json.loads(run_cli("labels", fleet, "--from", source, "--format", "json").stdout)
    assert [c["state"] for c in as_json] == ["in-sync", "drift", "drift", "not-joined"]
    # a stand-in for kubectl records what would reach the primary's API server
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "kubectl.log"
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f"#!/bin/sh\necho \"$@\" >> {record}\ncat >> {record}\n")
    kubectl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    applied = run_cli("labels", fleet, "--from", source, "--apply")
    assert applied.exit_code == 0, applied.output
    args, *body = record.read_text().splitlines()
    assert args == ("--context primary-1 apply --server-side --field-manager k10fleet "
                    "--force-conflicts -f -")
    items = yaml.safe_load("\n".join(body))["items"]
    assert [i["metadata"]["name"] for i in items] == ["edge-one", "edge-2"]
    assert all(set(i) == {"apiVersion", "kind", "metadata"} for i in items)  # labels only


def test_labels_without_context_or_kubectl_is_an_environment_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = example_fleet()
    del data["spec"]["primary"]["kubeContext"]
    del data["spec"]["secondaries"][2]["joinWith"]  # it needs the primary's context too
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_cli("labels", fleet)
    assert result.exit_code == 3
    assert "kubeContext" in result.output or "kubectl" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    bad = run_cli("labels", str(REPO / "fleet.yaml"), "--from", str(broken))
    assert bad.exit_code == 1 and "not the JSON or YAML" in bad.output
