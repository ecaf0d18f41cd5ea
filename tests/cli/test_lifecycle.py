"""A fleet after its first join (issue 17): each test renders, changes the fleet, renders
again and checks what k10fleet reports. Real sops with age keys; the file store plays the
secret store; nothing plays K10."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.render.tree import K10MULTICLUSTER_FLAGS
from tests.conftest import SHARED, example_fleet, run_cli, tree_bytes

WriteFleet = Callable[..., Path]
TOKEN = "eyJrMTAiOiJqb2luIn0.lifecycle-test-token-0123456789abcdefghij"


def small_fleet(store: Path) -> dict[str, Any]:
    """Primary and two secondaries, sops mode with a file store."""
    return {"apiVersion": "k10fleet/v1alpha1", "kind": "Fleet", "metadata": {"name": "demo"},
            "spec": {"kasten": {"version": "7.5.2"},
                     "primary": {"name": "primary-1", "kubeContext": "primary-1",
                                 "ingressURL": "https://primary.example.com/k10"},
                     "secondaries": [{"name": "edge-1", "kubeContext": "edge-1"},
                                     {"name": "edge-2", "clusterName": "edge-two"}],
                     "tokens": {"mode": "sops", "store": f"file://{store}"}}}


@pytest.fixture
def repo(tmp_path: Path, age_key: str) -> Path:
    """A fleet repo: .sops.yaml for the age key, a 0600 token store with an endpoint."""
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {age_key}\n")
    store = tmp_path / "store.yaml"
    store.write_text(f"token: {TOKEN}\nendpoint: https://primary.example.com/k10\n")
    store.chmod(0o600)
    return tmp_path


def _json(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _render_json(fleet: Path, out: Path, *extra: str) -> dict[str, Any]:
    result = run_cli("render", fleet, "-o", out, "--format", "json", *extra)
    assert result.exit_code in (0, 1), result.output
    return _json(result)


def test_stale_injected_secret_after_a_version_change(repo: Path, write_fleet: WriteFleet,
                                                      age_key: str) -> None:
    data = small_fleet(repo / "store.yaml")
    fleet, out = write_fleet(data), repo / "output"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    assert run_cli("inject", fleet, "-o", out).exit_code == 0
    assert run_cli("render", fleet, "-o", out, "--check").exit_code == 0
    injected = (out / "clusters/edge-1/mc-join.sops.yaml").read_bytes()
    # edge-1 moves to 6.5.10: its mc-join needs the endpoint too
    data["spec"]["secondaries"][0]["kasten"] = {"version": "6.5.10"}
    write_fleet(data)
    second = run_cli("render", fleet, "-o", out)
    assert second.exit_code == 0, second.output
    assert "1 written" in second.output or "2 written" in second.output  # it did re-render
    assert "stale injected Secret" in second.output
    assert "clusters/edge-1/mc-join.sops.yaml" in second.output
    assert "token,endpoint" in second.output and "run `k10fleet inject" in second.output
    assert (out / "clusters/edge-1/mc-join.sops.yaml").read_bytes() == injected  # not touched
    check = run_cli("render", fleet, "-o", out, "--check")
    assert check.exit_code == 1
    assert "stale: " in check.output and "clusters/edge-1/mc-join.sops.yaml" in check.output
    assert "clusters/edge-2" not in check.output.split("stale: ", 1)[1].split("\n")[0]
    fleet_check = run_cli("check", out, "--fleet", fleet, "--kubeconform", "off")
    assert fleet_check.exit_code == 1
    assert "edge-1/mc-join.sops.yaml" in fleet_check.output and "stale" in fleet_check.output
    assert TOKEN not in check.output + second.output + fleet_check.output
    assert run_cli("inject", fleet, "-o", out).exit_code == 0
    assert run_cli("render", fleet, "-o", out, "--check").exit_code == 0
    assert run_cli("check", out, "--fleet", fleet, "--kubeconform", "off").exit_code == 0


def test_stale_after_recipients_cluster_name_or_store_change(
        repo: Path, write_fleet: WriteFleet, age_key: str) -> None:
    import pyrage  # type: ignore[import-untyped]

    data = small_fleet(repo / "store.yaml")
    fleet, out = write_fleet(data), repo / "output"
    run_cli("render", fleet, "-o", out)
    assert run_cli("inject", fleet, "-o", out).exit_code == 0
    other = pyrage.x25519.Identity.generate().to_public()
    (repo / ".sops.yaml").write_text(f"creation_rules:\n  - age: {age_key},{other}\n")
    report = _render_json(fleet, out, "--check")
    assert sorted(s["path"] for s in report["stale"]) == [
        "clusters/edge-1/mc-join.sops.yaml", "clusters/edge-2/mc-join.sops.yaml"]
    assert "recipients" in report["stale"][0]["reasons"][0]
    assert run_cli("inject", fleet, "-o", out).exit_code == 0
    assert _render_json(fleet, out, "--check")["stale"] == []
    (repo / "store2.yaml").write_text((repo / "store.yaml").read_text())
    (repo / "store2.yaml").chmod(0o600)
    data["spec"]["tokens"]["store"] = f"file://{repo / 'store2.yaml'}"
    write_fleet(data)
    reasons = [r for s in _render_json(fleet, out, "--check")["stale"] for r in s["reasons"]]
    assert reasons and all("store changed" in r for r in reasons)


def test_new_secondary_across_6_5_14_is_refused(repo: Path, write_fleet: WriteFleet) -> None:
    data = small_fleet(repo / "store.yaml")
    fleet, out = write_fleet(data), repo / "output"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    before = tree_bytes(out)
    data["spec"]["secondaries"].append({"name": "edge-3", "kasten": {"version": "6.5.10"}})
    write_fleet(data)
    line = 1 + next(i for i, text in enumerate(fleet.read_text().splitlines())
                    if "6.5.10" in text)
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 1
    assert f"{fleet}:{line}:" in result.output
    assert "$.spec.secondaries[2].kasten.version" in result.output
    assert "primary first" in result.output and "multicluster/upgrading" in result.output
    assert tree_bytes(out) == before  # nothing written
    assert run_cli("render", fleet, "-o", out, "--check").exit_code == 1
    # an already-rendered secondary that moves across the line keeps the warning
    data["spec"]["secondaries"].pop()
    data["spec"]["secondaries"][0]["kasten"] = {"version": "6.5.10"}
    write_fleet(data)
    moved = run_cli("render", fleet, "-o", out)
    assert moved.exit_code == 0, moved.output
    assert "warning:" in moved.output and "both sides of 6.5.14" in moved.output
    # a new secondary on the primary's side is fine
    data["spec"]["secondaries"].append({"name": "edge-4"})
    write_fleet(data)
    assert run_cli("render", fleet, "-o", out).exit_code == 0


def test_rename_is_not_a_departure(repo: Path, write_fleet: WriteFleet) -> None:
    data = small_fleet(repo / "store.yaml")
    fleet, out = write_fleet(data), repo / "output"
    run_cli("render", fleet, "-o", out)
    data["spec"]["secondaries"][1]["clusterName"] = "edge-2b"
    write_fleet(data)
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 0, result.output
    assert "left the fleet" not in result.output
    assert "renamed from edge-two to edge-2b" in result.output
    assert "K10 has no rename" in result.output
    assert ("kubectl delete clusters.dist.kio.kasten.io edge-two -n kasten-io-mc "
            "--context primary-1") in result.output
    assert "fresh token" in result.output and "tokens.joinTokenSecret" in result.output
    config = yaml.safe_load((out / "clusters/edge-2/mc-join-config.yaml").read_text())
    assert config["data"]["cluster-name"] == "edge-2b"
    report = _render_json(fleet, out, "--check")
    assert report["clean"] is True and report["lifecycle"] == []


def test_token_rotation_sequence(repo: Path, write_fleet: WriteFleet) -> None:
    data = small_fleet(repo / "store.yaml")
    fleet, out = write_fleet(data), repo / "output"
    run_cli("render", fleet, "-o", out)
    assert run_cli("inject", fleet, "-o", out).exit_code == 0
    data["spec"]["tokens"]["joinTokenSecret"] = "join-token-2027"
    write_fleet(data)
    report = _render_json(fleet, out)
    (rotation,) = [n for n in report["lifecycle"] if n["kind"] == "rotation"]
    steps = "\n".join(rotation["steps"])
    assert "join-token-secret" in rotation["title"] and "join-token-2027" in rotation["title"]
    assert steps.index("sync") < steps.index("token import") < steps.index("k10fleet inject")
    assert ("kubectl --context primary-1 get secret join-token-2027 -n kasten-io-mc -o json | "
            f"k10fleet token import {fleet}") in steps
    secret = yaml.safe_load((out / "clusters/primary-1/join-token-secret.yaml").read_text())
    assert secret["metadata"]["name"] == "join-token-2027"
    assert "join-token-secret\n" not in (out / "clusters/primary-1/join-token-secret.yaml"
                                          ).read_text()
    assert "data" not in secret
    reasons = [r for s in report["stale"] for r in s["reasons"]]
    assert len(report["stale"]) == 2 and all("rotated token" in r for r in reasons)
    # a new token in the store, inject, and the tree is consistent again
    (repo / "store.yaml").write_text(f"token: {TOKEN}-new\nendpoint: https://p/k10\n")
    assert run_cli("inject", fleet, "-o", out).exit_code == 0
    again = _render_json(fleet, out, "--check")
    assert again["clean"] is True and again["stale"] == [] and again["lifecycle"] == []


def test_rotation_found_in_a_tree_from_before_the_recorded_name(
        repo: Path, write_fleet: WriteFleet) -> None:
    data = small_fleet(repo / "store.yaml")
    fleet, out = write_fleet(data), repo / "output"
    run_cli("render", fleet, "-o", out)
    manifest = out / ".k10fleet-manifest.json"
    recorded = json.loads(manifest.read_text())
    del recorded["joinTokenSecret"]  # as an older k10fleet wrote it
    manifest.write_text(json.dumps(recorded))
    data["spec"]["tokens"]["joinTokenSecret"] = "join-token-2027"
    write_fleet(data)
    kinds = [n["kind"] for n in _render_json(fleet, out)["lifecycle"]]
    assert kinds == ["rotation"]


def test_departure_and_primary_change_steps(repo: Path, write_fleet: WriteFleet) -> None:
    data = small_fleet(repo / "store.yaml")
    fleet, out = write_fleet(data), repo / "output"
    run_cli("render", fleet, "-o", out)
    data["spec"]["secondaries"] = data["spec"]["secondaries"][1:]
    write_fleet(data)
    report = _render_json(fleet, out)
    (departure,) = report["lifecycle"]
    assert departure["kind"] == "departure"
    steps = "\n".join(departure["steps"])
    assert report["disconnect"] == [
        "kubectl delete clusters.dist.kio.kasten.io edge-1 -n kasten-io-mc --context primary-1"]
    assert "kubectl delete secret mc-cluster-info -n kasten-io --context edge-1" in steps
    assert ("kubectl delete serviceaccounts -n kasten-io -l "
            "k10.kasten.io/k10-multi-cluster-sa=primary-1 --context edge-1") in steps
    assert "dist.kio.kasten.io/cluster-info" in steps
    notes = " ".join(departure["notes"])
    assert "stay on it" in notes and "mc-join-status" in notes and "fresh join token" in notes
    text = run_cli("render", fleet, "-o", out)
    assert "kubectl delete" not in text.output  # reported once, when it happened
    data["spec"]["primary"]["name"] = "primary-2"
    write_fleet(data)
    report = _render_json(fleet, out)
    (change,) = [n for n in report["lifecycle"] if n["kind"] == "primary-change"]
    steps = "\n".join(change["steps"])
    assert "kubectl delete clusters.dist.kio.kasten.io primary-1 -n kasten-io-mc" in steps
    assert "dist.kio.kasten.io/cluster-type=secondary" in steps
    assert "multicluster.primary.create=false" in steps


def _primary_objects(out: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted((out / "clusters/primary-1").glob("*.yaml")):
        found += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return found


def test_dashboard_access_layer(write_fleet: WriteFleet, tmp_path: Path) -> None:
    data = example_fleet()
    out = tmp_path / "out"
    assert run_cli("render", write_fleet(data), "-o", out).exit_code == 0
    objects = _primary_objects(out)
    (role,) = [o for o in objects if o.get("kind") == "ClusterRole"]
    assert role["metadata"]["name"] == "k10-mc-user"
    assert {"dist.kio.kasten.io", "auth.kio.kasten.io"} <= set(role["rules"][0]["apiGroups"])
    bindings = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "RoleBinding"}
    admins = bindings["k10fleet-dashboard-fleet-admins"]
    assert admins["metadata"]["namespace"] == "kasten-io-mc"
    assert admins["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                 "kind": "ClusterRole", "name": "k10-mc-user"}
    assert admins["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                   "name": "k10-admins"}]
    checked = run_cli("check", out, "--kubeconform", "off")
    assert checked.exit_code == 0, checked.output
    data["spec"]["access"][0]["dashboardAccess"] = "admin"
    data["spec"]["access"][1]["dashboardAccess"] = "none"
    run_cli("render", write_fleet(data), "-o", out)
    objects = _primary_objects(out)
    assert not [o for o in objects if o.get("kind") == "ClusterRole"]
    (binding,) = [o for o in objects if o.get("kind") == "RoleBinding"]
    assert binding["roleRef"]["name"] == "k10-mc-admin"  # <release>-mc-admin, K10's own


def test_chart_version_must_follow_k10_on_kastens_repository(write_fleet: WriteFleet,
                                                             tmp_path: Path) -> None:
    data = example_fleet()
    data["spec"]["kasten"]["chart"]["version"] = "7.5.2"
    data["spec"]["kasten"]["version"] = "6.5.14"
    result = run_cli("validate", write_fleet(data))
    assert result.exit_code == 1
    assert "$.spec.kasten.chart.version" in result.output
    assert "7.5.2" in result.output and "6.5.14" in result.output
    data["spec"]["kasten"]["chart"]["repository"] = "oci://registry.example.com/charts"
    mirrored = run_cli("validate", write_fleet(data))
    assert mirrored.exit_code == 0
    assert "warning: $.spec.kasten.chart.version" in mirrored.output
    init = tmp_path / "init" / "fleet.yaml"
    assert run_cli("init", init, "--name", "demo", "--primary", "p-1", "--ingress",
                   "https://p.example.com/k10", "--secondary", "e-1", "--engine", "none"
                   ).exit_code == 0
    chart = yaml.safe_load(init.read_text())["spec"]["kasten"]["chart"]
    assert "version" not in chart


def test_k10multicluster_deprecated_and_flags_documented(write_fleet: WriteFleet,
                                                         tmp_path: Path) -> None:
    data = example_fleet()
    lab = data["spec"]["secondaries"][2]
    lab.update({"joinWith": "k10multicluster", "ingressSkipTLSVerify": True})
    fleet, out = write_fleet(data), tmp_path / "out"
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 0, result.output
    assert "deprecated from K10 7.0" in result.output and "cluster-ingress" in result.output
    script = (out / "bootstrap/k10multicluster.sh").read_text()
    for line in script.splitlines():
        if line.startswith("k10multicluster "):
            command = line.split()[1]
            flags = {word.split("=")[0] for word in line.split() if word.startswith("--")}
            assert flags <= set(K10MULTICLUSTER_FLAGS[command]), flags
    assert "--secondary-cluster-ingress-tls-insecure" in script
    lab.pop("joinWith")
    token_joined = run_cli("validate", write_fleet(data))
    assert "ingressSkipTLSVerify is passed to the k10multicluster tool only" in \
        token_joined.output


def test_six_zero_fleet_takes_the_k10multicluster_path(write_fleet: WriteFleet,
                                                       tmp_path: Path) -> None:
    data = example_fleet()
    data["spec"]["kasten"]["version"] = "6.0.12"
    for cluster in data["spec"]["secondaries"]:
        cluster.pop("kasten", None)
        cluster["kubeContext"] = cluster["name"]
    data["spec"]["secondaries"][1]["kubeContext"] = "edge 2's context"  # quoting
    fleet, out = write_fleet(data), tmp_path / "out"
    validated = run_cli("validate", fleet)
    assert validated.exit_code == 0, validated.output
    assert "primary-1: primary on K10 6.0.12: k10multicluster setup-primary" in \
        validated.output
    assert "edge-1: secondary on K10 6.0.12: k10multicluster bootstrap" in validated.output
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 0, result.output
    script = out / "bootstrap/k10multicluster.sh"
    assert os.access(script, os.X_OK)
    lines = [line for line in script.read_text().splitlines()
             if line.startswith("k10multicluster ")]
    assert lines[0] == ("k10multicluster setup-primary --context primary-1 --name primary-1 "
                        "--k10-namespace kasten-io --k10-release-name k10 --ingress "
                        "https://primary.example.com/k10 --labels env=prod")
    assert [line.split()[1] for line in lines] == ["setup-primary"] + ["bootstrap"] * 3
    assert "--secondary-context 'edge 2'\"'\"'s context'" in lines[2]
    assert "--secondary-name edge-one" in lines[1]
    subprocess.run(["bash", "-n", str(script)], check=True)
    for cluster in ("primary-1", "edge-1", "edge-2", "lab-1"):
        values = yaml.safe_load((out / f"clusters/{cluster}/k10-values.yaml").read_text())
        assert "multicluster" not in values
        assert not (out / f"clusters/{cluster}/mc-join-config.yaml").exists()
    assert not (out / "clusters/primary-1/join-token-secret.yaml").exists()
    assert run_cli("render", fleet, "-o", out, "--check").exit_code == 0
    data["spec"]["secondaries"][0]["joinWith"] = "token"
    refused = run_cli("validate", write_fleet(data))
    assert refused.exit_code == 1 and "joinWith: token is not possible" in refused.output


def test_argocd_applications_retry_with_backoff(write_fleet: WriteFleet,
                                                tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_cli("render", write_fleet(example_fleet()), "-o", out)
    apps = sorted((out / "argocd").glob("*.yaml"))
    retries = [yaml.safe_load(p.read_text())["spec"]["syncPolicy"]["retry"]
               for p in apps if p.name != "kustomization.yaml"]
    assert len(retries) == 4
    for retry in retries:
        assert retry["limit"] > 1 and retry["backoff"]["factor"] >= 2
        assert retry["backoff"]["duration"] and retry["backoff"]["maxDuration"]
    checked = run_cli("check", out, "--schema-location", SHARED / "crd-schemas", "--strict",
                      "--kubeconform", "off")
    assert "argocd/" not in checked.output.split("checked")[0], checked.output


def test_ingress_url_should_end_with_the_release_name(write_fleet: WriteFleet) -> None:
    data = example_fleet()
    data["spec"]["secondaries"][0]["ingressURL"] = "https://edge-1.example.com/kasten"
    result = run_cli("validate", write_fleet(data))
    assert result.exit_code == 0
    assert "$.spec.secondaries[0].ingressURL" in result.output
    assert "'kasten', not the release name 'k10'" in result.output
    clean = run_cli("validate", write_fleet(example_fleet()))
    assert "release name" not in clean.output
