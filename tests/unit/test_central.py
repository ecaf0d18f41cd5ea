"""Issue 9: cluster labels, access grants, global Policies/Profiles and Distributions."""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.check.schemas import SchemaStore
from generator.errors import InternalError
from generator.fleet.selectors import SelectorError, parse
from generator.labels import kubectl_calls, parse_cluster_list, plan
from generator.resources import data_dir
from tests.conftest import KUBECTL, REPO, example_fleet, render_data, run_cli
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
    # as Kubernetes' labels.Parse: an empty slot in a value list is the empty value
    ("team in ()", False), ("env in (,prod)", True), ("env in (prod,)", True),
    ("tier>+0", True), ("tier>-1", True),
])
def test_selectors_follow_kubernetes(selector: str, matches: bool) -> None:
    assert parse(selector).matches(LABELS) is matches


def test_numeric_comparisons_read_values_as_go_does() -> None:
    assert parse("n>5").matches({"n": "10"})
    assert not parse("n>5").matches({"n": "1_0"})  # Python's int() would say 10
    assert not parse("n>5").matches({"n": "99999999999999999999"})  # beyond int64
    assert parse("n in ()").matches({"n": ""})


@pytest.mark.parametrize(("selector", "reason"), [
    ("env in prod", "expected '('"), ("env in (a", "expected a value, ',' or ')'"),
    ("env in (a b)", "found 'b'"), ("x>99999999999999999999", "64-bit integer"),
    ("x>1_0", "64-bit integer"), ("env\u00a0=prod", "is not a label key"),
    ("=prod", "expected a label key"), ("env=prod,", "must be followed"),
    ("env prod", "expected an operator"), ("-env=x", "is not a label key"),
    ("env=pr od", "separated by ','"), ("env=" + "x" * 64, "is not a label value"),
    ("tier>one", "64-bit integer"), ("a/b/c=1", "is not a label key"),
])
def test_bad_selectors_are_explained(selector: str, reason: str) -> None:
    with pytest.raises(SelectorError, match=re.escape(reason)):
        parse(selector)


render_fleet = render_data  # (data, tmp_path, name="out") -> the rendered tree


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


KASTEN_SCHEMAS = data_dir("schemas") / "kasten"


@pytest.mark.parametrize("name", names())
def test_every_generated_kasten_object_matches_k10fleets_own_kasten_schemas(name: str) -> None:
    """Kasten publishes no schema for its CRDs: schemas/kasten is k10fleet's own, written
    from Kasten's documentation. So this holds the renderer and those schemas to each other
    (through the lookup ``check`` uses, with no user schema given, so the built-in ones
    answer; a user's --schema-location or --crd would win, see test_check_schemas.py); it
    does not prove K10 accepts the objects. A typo in a spec must be refused."""
    store = SchemaStore("1.32.0", [])
    checked = 0
    for obj in objects(GOLDEN / name / "clusters"):
        if not obj["apiVersion"].split("/")[0].endswith("kio.kasten.io"):
            continue
        found = store.lookup(obj["apiVersion"], obj["kind"])
        assert found is not None
        validator, source = found
        assert Path(source).is_relative_to(KASTEN_SCHEMAS), source
        assert list(validator.errors(obj)) == []
        typo = copy.deepcopy(obj)
        key = sorted(typo["spec"])[0]
        typo["spec"][key + "x"] = typo["spec"].pop(key)
        assert list(validator.errors(typo)), (obj["kind"], key)
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


@pytest.mark.parametrize("mode", ["sops", "external-secrets", "vault-plugin", "plain"])
def test_file_names_never_collide(mode: str, tmp_path: Path) -> None:
    """Names chosen to collide with generated files: every object keeps a file of its own."""
    data = example_fleet()
    data["spec"]["tokens"]["mode"] = mode
    profile = data["spec"]["profiles"][0]
    twin = copy.deepcopy(profile)
    twin["metadata"]["name"] = "s3-backups-credentials"  # the first one's Secret name
    twin["credentials"]["secretName"] = "generator"  # next to secret-generator.yaml
    data["spec"]["profiles"].append(twin)
    data["spec"]["distributions"][0]["resources"].append(
        {"kind": "Profile", "name": "s3-backups-credentials"})
    data["spec"]["policies"].append({"metadata": {"name": "s3-backups"},
                                     "spec": {"actions": [{"action": "backup"}]}})
    data["spec"]["distributions"][0]["resources"].append({"kind": "Policy", "name": "s3-backups"})
    out = render_fleet(data, tmp_path)
    primary = out / "clusters/primary-1"
    resources = yaml.safe_load((primary / "kustomization.yaml").read_text())["resources"]
    assert len(resources) == len(set(resources))
    built = subprocess.run([KUBECTL, "kustomize", str(primary)], capture_output=True, text=True,
                           check=False)
    assert built.returncode == 0, built.stderr
    names = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(built.stdout)]
    assert len(names) == len(set(names))
    assert {("Profile", "s3-backups"), ("Profile", "s3-backups-credentials"),
            ("Policy", "s3-backups")} <= set(names)


def test_store_values_that_are_not_text_are_refused(tmp_path: Path) -> None:
    store = tmp_path / "creds.yaml"
    store.write_text(yaml.safe_dump({"token": "t", "project-id": "p",
                                     "service-account.json": {"private_key": "PRIVATE"}}))
    store.chmod(0o600)
    data = example_fleet()
    data["spec"]["tokens"]["store"] = f"file://{store}"
    data["spec"]["profiles"][0]["spec"]["locationSpec"]["credential"]["secretType"] = \
        "GcpServiceAccountKey"
    data["spec"]["profiles"][0]["spec"]["locationSpec"]["objectStore"]["objectStoreType"] = "GCS"
    data["spec"]["profiles"][0]["credentials"]["store"] = f"file://{store}"
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "output"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    result = run_cli("inject", fleet, "-o", out, "--age",
                     "age1j0lxljzucmsthunrf0zh2q89euu7m2lk2g7lcyg68ru2cy27dddqx2xxkw")
    assert result.exit_code == 3, result.output
    assert "'service-account.json' holds dict, not text" in result.output
    assert "PRIVATE" not in result.output


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


def live(name: str, labels: dict[str, str], owned: tuple[str, ...] | None = None
         ) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name, "namespace": "kasten-io-mc", "resourceVersion": "7",
        "labels": {"dist.kio.kasten.io/cluster-type": "secondary", **labels},
        "finalizers": ["dist.kio.kasten.io/cluster-info"]}
    if owned is not None:
        meta["annotations"] = {"k10fleet.io/managed-labels": ",".join(owned)}
    return {"apiVersion": "dist.kio.kasten.io/v1alpha1", "kind": "Cluster", "metadata": meta,
            "spec": {"primary": False}, "status": {"id": "x"}}


def test_label_plan_sets_ours_removes_only_ours_and_adopts_equal_values() -> None:
    from generator.fleet.validate import load_fleet

    fleet, _ = load_fleet(str(REPO / "fleet.yaml"))
    current = parse_cluster_list(live_list(
        live("primary-1", {"env": "prod"}, ("env",)),
        # edge-1 joined as edge-one (its clusterName); k10fleet once set "team" on it
        live("edge-one", {"env": "staging", "team": "x", "owner": "someone"}, ("env", "team")),
        live("edge-2", {"env": "prod", "region": "us-east"}),  # right values, set by hand
        live("unknown", {})), "live.json")
    changes = {c.cluster: c for c in plan(fleet, current)}
    assert changes["primary-1"].state == "in-sync"
    edge = changes["edge-1"]
    assert (edge.object_name, edge.state) == ("edge-one", "drift")
    assert edge.set == {"env": "prod", "region": "eu-west"}
    assert edge.remove == ["team"]  # "owner" belongs to someone else and stays
    # nothing to relabel on edge-2, but k10fleet records the keys so it can drop them later
    assert (changes["edge-2"].state, changes["edge-2"].set, changes["edge-2"].annotate) == \
        ("drift", {}, True)
    assert changes["lab-1"].state == "not-joined"
    assert kubectl_calls(list(changes.values())) == [
        ["label", "--overwrite", "-n", "kasten-io-mc", "clusters.dist.kio.kasten.io",
         "edge-one", "env=prod", "region=eu-west", "team-"],
        ["annotate", "--overwrite", "-n", "kasten-io-mc", "clusters.dist.kio.kasten.io",
         "edge-2", "edge-one", "k10fleet.io/managed-labels=env,region"],
    ]


def test_same_change_for_many_clusters_is_one_kubectl_call(tmp_path: Path) -> None:
    from generator.fleet.validate import load_fleet

    data = example_fleet()
    secondaries = data["spec"]["secondaries"]
    secondaries[1]["labels"] = dict(secondaries[0]["labels"])  # edge-2 like edge-1
    data["spec"]["primary"]["labels"] = {"env": "lab"}  # the primary like lab-1
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    fleet, _ = load_fleet(str(path))
    current = parse_cluster_list(live_list(*[live(n, {}) for n in (
        "primary-1", "edge-one", "edge-2", "lab-1")]), "live.json")
    prefix = ["--overwrite", "-n", "kasten-io-mc", "clusters.dist.kio.kasten.io"]
    assert kubectl_calls(plan(fleet, current)) == [
        ["label", *prefix, "lab-1", "primary-1", "env=lab"],
        ["label", *prefix, "edge-2", "edge-one", "env=prod", "region=eu-west"],
        ["annotate", *prefix, "lab-1", "primary-1", "k10fleet.io/managed-labels=env"],
        ["annotate", *prefix, "edge-2", "edge-one", "k10fleet.io/managed-labels=env,region"],
    ]


def stand_in_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listing: str,
                     fail_on: str = "") -> Path:
    """A stand-in for kubectl on PATH: answers `get` with ``listing``, records every call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "listing.json").write_text(listing)
    record = tmp_path / "kubectl.log"
    script = bin_dir / "kubectl"
    script.write_text(f"""#!/bin/sh
echo "$@" >> {record}
case "$*" in
  *" get "*) cat {tmp_path / "listing.json"} ;;
  *"{fail_on or '@@never@@'}"*) echo 'Error from server (NotFound): clusters "x" not found' >&2
     exit 1 ;;
esac
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return record


def test_labels_command_shows_drift_and_applies_labels_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = live_list(live("primary-1", {"env": "prod"}, ("env",)), live("edge-one", {}),
                        live("edge-2", {}))
    source = tmp_path / "saved.json"
    source.write_text(listing)
    fleet = str(REPO / "fleet.yaml")
    shown = run_cli("labels", fleet, "--from", source)
    assert shown.exit_code == 1, shown.output
    assert "edge-1     drift       env=prod region=eu-west" in shown.output
    assert "lab-1      not-joined  env=lab" in shown.output
    as_json = json.loads(run_cli("labels", fleet, "--from", source, "--format", "json").stdout)
    assert [c["state"] for c in as_json] == ["in-sync", "drift", "drift", "not-joined"]
    assert run_cli("labels", fleet, "--from", source, "--apply").exit_code == 2  # stale input
    record = stand_in_kubectl(tmp_path, monkeypatch, listing)
    applied = run_cli("labels", fleet, "--apply")
    assert applied.exit_code == 0, applied.output
    calls = record.read_text().splitlines()
    assert calls[0].startswith("--context primary-1 get clusters.dist.kio.kasten.io "
                               "-n kasten-io-mc -o json")
    assert all(c.startswith("--context primary-1 ") for c in calls)
    verbs = [c.split()[2] for c in calls[1:]]
    assert set(verbs) == {"label", "annotate"}  # never apply, create, delete or patch spec
    assert any("edge-one env=prod region=eu-west" in c for c in calls)


def test_labels_apply_failure_is_an_environment_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = live_list(live("primary-1", {}), live("edge-one", {}), live("edge-2", {}))
    stand_in_kubectl(tmp_path, monkeypatch, listing, fail_on="label")
    result = run_cli("labels", str(REPO / "fleet.yaml"), "--apply")
    assert result.exit_code == 3
    assert "NotFound" in result.output


def test_labels_without_context_or_kubectl_is_an_environment_failure(
        tmp_path: Path) -> None:
    data = example_fleet()
    del data["spec"]["primary"]["kubeContext"]
    data["spec"]["secondaries"][2].pop("joinWith", None)  # it needs the primary's context too
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_cli("labels", fleet)
    assert result.exit_code == 3
    assert "kubeContext" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    bad = run_cli("labels", str(REPO / "fleet.yaml"), "--from", str(broken))
    assert bad.exit_code == 1 and "not the JSON or YAML" in bad.output


def test_small_helpers_say_what_they_refuse() -> None:
    from generator.fleet.schema import describe
    from generator.render.layout import RenderedTree
    from generator.secrets.base import StoreError, as_secret_text

    assert describe("x" * 500) == f"string {'x' * 77 + '...'!r}"  # no multi-KB error lines
    tree = RenderedTree()
    tree.add("a.yaml", "one\n")
    with pytest.raises(InternalError, match=re.escape("a.yaml twice")):
        tree.add("a.yaml", "two\n")
    assert as_secret_text("s", "port", 8443) == "8443"
    with pytest.raises(StoreError, match="'flag' holds a boolean"):
        as_secret_text("s", "flag", True)
