"""``k10fleet check`` on real rendered trees, with planted defects, beside the real kubeconform."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import junitparser
import pytest
import yaml

from generator.check.report import as_json, as_junit, as_text
from generator.check.run import CheckOptions, CheckReport, run_check
from generator.errors import EnvironmentFailure
from tests.conftest import K10_CHARTS, KUBECTL, REPO, SHARED, example_fleet, run_cli

CRDS = str(SHARED / "crd-schemas")


def kubeconform_binary() -> str:
    """The real kubeconform, installed by the README's test command into .tools/bin."""
    found = shutil.which("kubeconform") or str(REPO / ".tools/bin/kubeconform")
    assert os.access(found, os.X_OK), (
        "kubeconform is missing: run the README's test command, which installs it with "
        "`go install` into .tools/bin")
    return found


def check(tree: Path, *, kubeconform: str = "off", **options: object) -> CheckReport:
    opts = CheckOptions(root=str(tree), schema_locations=[CRDS], kubeconform=kubeconform)
    for key, value in options.items():
        setattr(opts, key, value)
    return run_check(opts)


def errors_of(report: CheckReport) -> list[str]:
    return [f.as_text() for f in report.findings if f.level == "error"]


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_clean_tree_passes_without_kubeconform(tree: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    report = check(tree)
    assert errors_of(report) == []
    # 13 cluster documents, 4 Applications, 1 kustomization, and on the primary 2 access
    # grants with their dashboard RoleBindings and ClusterRole, 1 Policy, 1 Profile and
    # 1 Distribution
    assert len(report.documents) == 26
    assert report.kubeconform_binary is None and report.notes == []  # --kubeconform off
    monkeypatch.setenv("PATH", "/nonexistent")
    auto = check(tree, kubeconform=None)  # type: ignore[arg-type]
    assert errors_of(auto) == []
    assert any("kubeconform not found" in n for n in auto.notes)


def test_clean_tree_passes_with_kubeconform(tree: Path) -> None:
    report = check(tree, kubeconform=kubeconform_binary())
    assert errors_of(report) == [] and report.warnings == 0
    assert report.kubeconform_binary == kubeconform_binary()


# Each planted defect: (file to break, how, what the finding must say).
DEFECTS: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "wrong-type": ("clusters/edge-1/mc-join-config.yaml",
                   lambda d: d["data"].update({"cluster-name": True}), "cluster-name"),
    "unknown-field": ("clusters/primary-1/kasten-io-mc-namespace.yaml",
                      lambda d: d.update({"spek": {}}), "spek"),
    "bad-data-key": ("clusters/edge-2/mc-join-config.yaml",
                     lambda d: d["data"].update({"x": ["list"]}), "x"),
    "wrong-metadata-type": ("clusters/edge-2/mc-join-config.yaml",
                            lambda d: d["metadata"].update({"labels": ["a"]}), "labels"),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_core_kind_defect_found_by_us_and_by_kubeconform(tree: Path, defect: str) -> None:
    """Agreement: our validator and the real kubeconform both flag every core-kind defect."""
    rel, change, expected = DEFECTS[defect]
    edit_yaml(tree / rel, change)
    ours = [f for f in check(tree).findings if f.level == "error"]
    assert ours and all(f.file == str(tree / rel) for f in ours), ours
    assert any(expected in f.message for f in ours), ours
    both = check(tree, kubeconform=kubeconform_binary()).findings
    sources = {f.source for f in both if f.file == str(tree / rel) and f.level == "error"}
    assert sources & {"kubeconform", "k10fleet+kubeconform"}, both


def test_non_base64_is_ours_alone_to_catch(tree: Path) -> None:
    """kubeconform does not assert format: byte; ours does (README says so)."""
    rel = "clusters/primary-1/join-token-secret.yaml"
    edit_yaml(tree / rel, lambda d: d.update({"data": {"token": "not base64!!"}}))
    findings = check(tree, kubeconform=kubeconform_binary()).findings
    base64_findings = [f for f in findings if "byte" in f.message]
    assert [f.source for f in base64_findings] == ["k10fleet"]


def test_plaintext_token_secret_is_refused(tree: Path) -> None:
    secret = tree / "clusters/edge-1/mc-join.yaml"
    secret.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "mc-join", "namespace": "kasten-io"},
        "stringData": {"token": "eyJhbGciOiJIUzI1NiJ9.secret-token"}}))
    errors = errors_of(check(tree))
    assert len(errors) == 1
    assert errors[0].startswith(f"{secret}:")
    assert "Secret/mc-join: stringData.token holds a plaintext value" in errors[0]
    assert "eyJhbGci" not in errors[0]


def test_plaintext_opt_out_annotation(tree: Path) -> None:
    secret = tree / "clusters/edge-1/demo.yaml"
    secret.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "demo", "annotations": {"k10fleet.io/allow-plaintext": "true"}},
        "stringData": {"greeting": "hello"}}))
    assert errors_of(check(tree)) == []


SOPS_SECRET = {
    "apiVersion": "v1", "kind": "Secret",
    "metadata": {"name": "mc-join", "namespace": "kasten-io"},
    "data": {"token": "ENC[AES256_GCM,data:Zm9vYmFy,iv:aXZpdml2aXZpdml2aXY=,tag:dGFn,type:str]"},
    "sops": {"age": [{"recipient": "age1xyz", "enc": "-----BEGIN AGE ENCRYPTED FILE-----"}],
             "lastmodified": "2026-11-25T00:00:00Z", "mac": "ENC[AES256_GCM,data:x,iv:y,tag:z,"
             "type:str]", "encrypted_regex": "^(data|stringData)$", "version": "3.11.0"},
}


def test_sops_and_vault_plugin_secrets_are_accepted(tree: Path) -> None:
    (tree / "clusters/edge-1/mc-join.sops.yaml").write_text(yaml.safe_dump(SOPS_SECRET))
    (tree / "clusters/edge-2/mc-join.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mc-join"},
        "stringData": {"token": "<path:secret/data/k10fleet/demo#token>"}}))
    assert errors_of(check(tree, kubeconform=kubeconform_binary())) == []


def test_sops_secret_structure_is_still_validated(tree: Path) -> None:
    broken = json.loads(json.dumps(SOPS_SECRET))
    broken["metadata"]["labelz"] = {}
    broken["data"]["extra"] = "plain"
    (tree / "clusters/edge-1/mc-join.sops.yaml").write_text(yaml.safe_dump(broken))
    errors = errors_of(check(tree))
    assert any("labelz" in e for e in errors)
    assert any("data.extra is not encrypted although the Secret has a sops block" in e
               for e in errors)


def test_encrypted_secret_listed_as_resource_for_argocd(tree: Path) -> None:
    (tree / "clusters/edge-1/mc-join.sops.yaml").write_text(yaml.safe_dump(SOPS_SECRET))
    edit_yaml(tree / "clusters/edge-1/kustomization.yaml",
              lambda d: d["resources"].append("mc-join.sops.yaml"))
    errors = errors_of(check(tree))
    assert any("SOPS-encrypted Secret: Argo CD would apply it still encrypted" in e
               and "clusters/edge-1/kustomization.yaml" in e for e in errors)


def test_kustomization_naming_a_missing_file(tree: Path) -> None:
    edit_yaml(tree / "clusters/edge-2/kustomization.yaml",
              lambda d: d["resources"].append("gone.yaml"))
    errors = errors_of(check(tree))
    assert errors == [e for e in errors if "clusters/edge-2/kustomization.yaml:" in e]
    assert "resources lists 'gone.yaml', which does not exist" in errors[0]


def test_broken_yaml_names_file_and_line(tree: Path) -> None:
    path = tree / "clusters/edge-2/mc-join-config.yaml"
    lines = path.read_text().count("\n")
    path.write_text(path.read_text() + "  bad: [unclosed\n")
    errors = errors_of(check(tree))
    assert errors == [f"{path}:{lines + 2}: invalid YAML: did not find expected ',' or ']'"]


def test_owned_values_checked_without_chart(tree: Path) -> None:
    edit_yaml(tree / "clusters/primary-1/k10-values.yaml",
              lambda d: d["multicluster"]["primary"].update({"create": "yes"}))
    errors = errors_of(check(tree))
    assert any("k10-values.yaml" in e and "multicluster.primary.create" in e for e in errors)


def test_primary_without_name_fails_like_the_chart(tree: Path) -> None:
    edit_yaml(tree / "clusters/primary-1/k10-values.yaml",
              lambda d: d["multicluster"]["primary"].update({"name": ""}))
    errors = errors_of(check(tree))
    assert any("needs a non-empty multicluster.primary.name" in e for e in errors)


@pytest.mark.parametrize("chart", ["6.5.801", "7.5.1001", "9.0.701"])
def test_values_validated_against_real_chart(tree: Path, chart: str) -> None:
    assert errors_of(check(tree, k10_chart=str(K10_CHARTS / chart))) == []
    edit_yaml(tree / "clusters/edge-2/k10-values.yaml",
              lambda d: d.update({"auth": {"tokenAuth": {"enabled": "sure"}}}))
    errors = errors_of(check(tree, k10_chart=str(K10_CHARTS / chart / "values.schema.json")))
    assert len(errors) == 1 and "clusters/edge-2/k10-values.yaml" in errors[0]
    assert "K10 chart schema" in errors[0]


def test_crds_from_schema_location_and_missing_schemas(tree: Path) -> None:
    app: dict[str, Any] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": "k10", "namespace": "argocd"},
           "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc"},
                    "source": {"repoURL": "https://charts.kasten.io/", "chart": "k10",
                               "targetRevision": "7.5.2"}}}
    (tree / "argocd/app.yaml").write_text(yaml.safe_dump(app))
    assert errors_of(check(tree, kubeconform=kubeconform_binary())) == []
    app["spec"]["destination"]["server"] = 42
    (tree / "argocd/app.yaml").write_text(yaml.safe_dump(app))
    assert any("argocd/app.yaml" in e and "server" in e for e in errors_of(check(tree)))
    (tree / "argocd/other.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}))
    lenient = [f for f in check(tree).findings if "Widget" in f.kind]
    assert [f.level for f in lenient] == ["warning"]
    strict = [f for f in check(tree, strict=True).findings if "Widget" in f.kind]
    assert [f.level for f in strict] == ["error"]


def test_kasten_bootstrap_schema(tree: Path, write_fleet: Callable[..., Path]) -> None:
    data = example_fleet()
    data["spec"]["kasten"]["version"] = "6.5.5"
    data["spec"]["kasten"]["chart"]["version"] = "6.5.5"
    data["spec"]["secondaries"][2]["kasten"] = {"version": "6.5.5"}
    out = tree.parent / "old"
    assert run_cli("render", write_fleet(data, "old.yaml"), "-o", out).exit_code == 0
    assert errors_of(check(out, kubeconform=kubeconform_binary())) == []
    edit_yaml(out / "clusters/primary-1/bootstrap.yaml",
              lambda d: d["spec"]["clusters"]["primary-1"].update({"primary": "yes"}))
    findings = check(out, kubeconform=kubeconform_binary()).findings
    assert {f.source for f in findings if f.kind == "Bootstrap" and f.level == "error"} & {
        "k10fleet+kubeconform"}


def test_fleet_option_reports_drift(tree: Path, write_fleet: Callable[..., Path]) -> None:
    fleet = write_fleet(example_fleet())
    assert errors_of(check(tree, fleet=str(fleet))) == []
    (tree / "clusters/edge-2/mc-join-config.yaml").unlink()
    errors = errors_of(check(tree, fleet=str(fleet)))
    assert any("mc-join-config.yaml:1: missing: not what" in e for e in errors)


def test_kustomize_option_builds_each_directory(tree: Path) -> None:
    assert errors_of(check(tree, kustomize=True)) == []
    (tree / "clusters/edge-1/patch.yaml").write_text("not: [a, kustomization\n")
    edit_yaml(tree / "clusters/edge-1/kustomization.yaml",
              lambda d: d.update({"patches": [{"path": "patch.yaml"}]}))
    errors = errors_of(check(tree, kustomize=True))
    assert any("kubectl kustomize fails" in e for e in errors)


def test_old_kubeconform_status_spelling(tree: Path, tmp_path: Path) -> None:
    """Older kubeconform releases print INVALID/ERROR; a stand-in prints only that spelling."""
    target = tree / "clusters/primary-1/kasten-io-mc-namespace.yaml"
    report = {"resources": [{"filename": str(target), "kind": "Namespace",
                             "name": "kasten-io-mc", "version": "v1", "status": "INVALID",
                             "msg": "", "validationErrors": [{"path": "/spec/x",
                                                              "msg": "old-style failure"}]}],
              "summary": {"valid": 0, "invalid": 1, "errors": 0, "skipped": 0}}
    stand_in = tmp_path / "kubeconform"
    stand_in.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(report)}\nEOF\n")
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    findings = check(tree, kubeconform=str(stand_in)).findings
    assert [f.as_text() for f in findings if f.source == "kubeconform"] == [
        f"{target}:4: Namespace/kasten-io-mc: old-style failure [kubeconform]"]


def test_kubeconform_required_but_missing(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EnvironmentFailure, match="kubeconform is required"):
        check(tree, kubeconform="required")


def test_reports_parse(tree: Path) -> None:
    edit_yaml(tree / "clusters/edge-1/mc-join-config.yaml",
              lambda d: d["data"].update({"cluster-name": 5}))
    report = check(tree)
    doc = json.loads(as_json(report))
    assert doc["valid"] is False and doc["errors"] == 1
    assert doc["findings"][0]["file"].endswith("clusters/edge-1/mc-join-config.yaml")
    junit_path = tree.parent / "report.xml"
    junit_path.write_text(as_junit(report))
    xml = junitparser.JUnitXml.fromfile(str(junit_path))
    cases = [case for suite in xml for case in suite]
    assert len(cases) == 26  # one per document
    failed = [c for c in cases if not c.is_passed]
    assert [c.name for c in failed] == ["ConfigMap/mc-join-config"]
    assert as_text(report).endswith("1 error, 0 warnings (kubeconform not used)")


def test_cli_exit_codes_and_formats(tree: Path) -> None:
    clean = run_cli("check", tree, "--kubeconform", "off", "--schema-location", CRDS)
    assert clean.exit_code == 0, clean.output
    edit_yaml(tree / "clusters/edge-1/mc-join-config.yaml",
              lambda d: d["data"].update({"cluster-name": 5}))
    for fmt in ("text", "json", "junit"):
        result = run_cli("check", tree, "--format", fmt, "--kubeconform", "off")
        assert result.exit_code == 1
    missing = run_cli("check", tree, "--kubeconform", "/nope/kubeconform")
    assert missing.exit_code == 3 and "not found or not executable" in missing.output


def test_kasten_distribution_and_role_binding_schemas(tree: Path) -> None:
    primary = tree / "clusters/primary-1"
    distribution: dict[str, Any] = {
        "apiVersion": "dist.kio.kasten.io/v1alpha1", "kind": "Distribution",
        "metadata": {"name": "prod-backups", "namespace": "kasten-io-mc"},
        "spec": {"clusters": [{"selector": "env=prod"}, {"name": "edge-one"}],
                 "sources": [{"ref": {"apiVersion": "config.kio.kasten.io/v1alpha1",
                                      "kind": "Policy", "name": "daily",
                                      "namespace": "kasten-io-mc"}}]}}
    binding: dict[str, Any] = {
        "apiVersion": "auth.kio.kasten.io/v1alpha1", "kind": "K10ClusterRoleBinding",
        "metadata": {"name": "admins", "namespace": "kasten-io-mc"},
        "spec": {"k10ClusterRole": "k10-multi-cluster-admin", "clusters": [{"selector": ""}],
                 "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                               "name": "k10:admins"}]}}
    (primary / "distribution.yaml").write_text(yaml.safe_dump(distribution))
    (primary / "binding.yaml").write_text(yaml.safe_dump(binding))
    assert errors_of(check(tree, kubeconform=kubeconform_binary())) == []
    distribution["spec"]["clusters"][0] = {"name": "a", "selector": "b"}
    binding["spec"]["k10ClusterRole"] = "k10-multi-cluster-root"
    (primary / "distribution.yaml").write_text(yaml.safe_dump(distribution))
    (primary / "binding.yaml").write_text(yaml.safe_dump(binding))
    errors = errors_of(check(tree))
    assert any("distribution.yaml" in e and "Distribution/prod-backups" in e for e in errors)
    assert any("binding.yaml" in e and "K10ClusterRoleBinding/admins" in e for e in errors)


def test_kustomize_build_sets_ksops_generators_aside(tree: Path) -> None:
    edge = tree / "clusters/edge-1"
    (edge / "mc-join.sops.yaml").write_text(yaml.safe_dump(SOPS_SECRET))
    (edge / "secret-generator.yaml").write_text(yaml.safe_dump({
        "apiVersion": "viaduct.ai/v1", "kind": "ksops",
        "metadata": {"name": "mc-join", "annotations": {
            "config.kubernetes.io/function": "exec:\n  path: ksops\n"}},
        "files": ["./mc-join.sops.yaml"]}))
    edit_yaml(edge / "kustomization.yaml",
              lambda d: d.update({"generators": ["secret-generator.yaml"]}))
    plain = subprocess.run([KUBECTL, "kustomize", str(edge)], capture_output=True, text=True,
                           check=False)
    assert plain.returncode != 0 and "external plugins disabled" in plain.stderr
    assert errors_of(check(tree, kustomize=True)) == []


def test_plaintext_hidden_json_list_and_generator_secrets_are_caught(tree: Path) -> None:
    edge = tree / "clusters/edge-1"
    plain = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
             "stringData": {"token": "hunter2"}}
    (edge / ".hidden.yaml").write_text(yaml.safe_dump(plain))
    (edge / "s.json").write_text(json.dumps({**plain, "metadata": {"name": "j"}}))
    (edge / "list.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "List", "items": [{**plain, "metadata": {"name": "l"}}]}))
    edit_yaml(edge / "kustomization.yaml", lambda d: d.update({
        "resources": [*d["resources"], ".hidden.yaml", "s.json", "list.yaml"],
        "secretGenerator": [{"name": "gen", "literals": ["token=hunter2"]}]}))
    errors = errors_of(check(tree))
    assert sum("holds a plaintext value" in e for e in errors) == 3
    assert any("secretGenerator 'gen' builds a Secret from plaintext" in e for e in errors)
    assert not any("hunter2" in e for e in errors)


def test_go_yaml_booleans_and_odd_shapes_do_not_crash(tree: Path) -> None:
    edge = tree / "clusters/edge-2"
    (edge / "odd.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: n\n"
                                   "data:\n  1: 2\n")
    edit_yaml(edge / "kustomization.yaml", lambda d: d.update({"components": 5}))
    os.mkfifo(edge / "pipe.yaml")
    bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for index, name in enumerate("bcdefg"):
        bomb.append(f"{name}: &{name} [" + ",".join(["*" + "abcdefg"[index]] * 10) + "]")
    (edge / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    errors = errors_of(check(tree))
    text = "\n".join(errors)
    assert "pipe.yaml:1: not a regular file" in text
    assert "bomb.yaml:1: aliases expand to more than" in text
    assert "components must be a list" in text
    assert "odd.yaml" in text and "internal error" not in text


def test_kubeconform_findings_on_unmatched_objects_are_kept(tree: Path, tmp_path: Path) -> None:
    report = {"resources": [{"filename": str(tree / "clusters/x.yaml"), "kind": "ConfigMap",
                             "name": "", "status": "statusInvalid", "msg": "",
                             "validationErrors": [{"path": "/metadata/name",
                                                   "msg": "got boolean, want string"}]}]}
    stand_in = tmp_path / "kubeconform"
    stand_in.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(report)}\nEOF\n")
    stand_in.chmod(0o755)
    findings = check(tree, kubeconform=str(stand_in)).findings
    assert [f.as_text() for f in findings] == [
        f"{tree}/clusters/x.yaml:1: ConfigMap: got boolean, want string [kubeconform]"]


def _leading_lines_by_line(text: str) -> int:
    """The definition, one line at a time: blank, comment and ``---`` marker lines."""
    count = position = 0
    while position < len(text):
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        stripped = text[position:end].strip()
        marker = text.startswith("---", position) and text[position + 3:position + 4] in (
            "", " ", "\t", "\n")
        if stripped and not stripped.startswith("#") and not marker:
            break
        count += 1
        position = end + 1
    return count


def test_leading_lines_agree_with_their_definition() -> None:
    import random

    from generator.check.documents import _leading_lines

    rng = random.Random(5)
    parts = ["\n", " ", "\t", "#", "# c", "---", "--- x", "---x", "a: 1", "\r", "\x85", "  #x",
             "-- ", "----", " ---", "---\t"]
    for _ in range(20000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(0, 6)))
        assert _leading_lines(text) == _leading_lines_by_line(text), repr(text)


@pytest.mark.parametrize("name, content", [
    ("multi.yaml", "# c\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
                   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  x: '1'\n"),
    ("stream.json", '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}\n'
                    '{"apiVersion": "v1", "kind": "ConfigMap",\n "metadata": {"name": "b"},\n'
                    ' "data": {"x": "1"}}\n'),
])
def test_an_identity_locates_fields_like_its_document(tmp_path: Path, name: str,
                                                      content: str) -> None:
    """Documents cross from the check helper without their text; a finding about one of
    them still names the field's own line, read from the file again."""
    from generator.check.documents import each_file

    (tmp_path / name).write_text(content)
    [(documents, _)] = list(each_file(str(tmp_path), str(tmp_path), [name]))
    whole = documents[-1]
    expected = whole.line_of(("data", "x"))
    cut = whole.identity()
    assert cut.text == "" and cut.name == "b" and "data" not in cut.data
    assert cut.line_of(("data", "x")) == expected > cut.line


def test_names_the_api_server_refuses_are_warnings(tmp_path: Path) -> None:
    """kubeconform does not check names, so they do not change the verdict; the API server
    would refuse them, so check says so."""
    shutil.copy(REPO / "tests/cases/check/valid/name-the-api-server-refuses.yaml", tmp_path)
    report = run_check(CheckOptions(root=str(tmp_path), kubeconform="off", strict=True))
    assert report.errors == 0
    warned = {(f.rule, f.line, f.level) for f in report.findings}
    assert warned == {("object-name", 6, "warning"), ("object-name", 10, "warning")}
    assert all("API server refuses" in f.message for f in report.findings)


def test_a_check_pauses_the_collector_and_gives_it_back(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from generator.check import run as check_run

    seen: list[bool] = []
    real = check_run._check_files
    monkeypatch.setattr(check_run, "_check_files",
                        lambda *a: (seen.append(gc.isenabled()), real(*a))[1])
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    assert gc.isenabled()
    run_check(CheckOptions(root=str(tmp_path), kubeconform="off"))
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:  # a caller that runs without it (the k10fleet process) keeps it off
        run_check(CheckOptions(root=str(tmp_path), kubeconform="off"))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_k10fleet_process_runs_without_the_collector(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    import gc

    from generator import cli

    seen: list[bool] = []
    ended: list[int] = []

    class Ended(Exception):
        pass

    def end(code: int) -> None:
        ended.append(code)
        raise Ended

    monkeypatch.setattr(cli, "main", lambda **_: seen.append(gc.isenabled()))
    monkeypatch.setattr(cli.os, "_exit", end)
    try:
        with pytest.raises(Ended):
            cli.run()
    finally:
        gc.enable()
    assert seen == [False] and ended == [0]


@pytest.mark.parametrize(("args", "code"), [(["--version"], 0), (["check", "nowhere"], 2),
                                           (["no-such-command"], 2)])
def test_the_k10fleet_process_ends_with_its_exit_code_and_all_its_output(
        args: list[str], code: int, tmp_path: Path) -> None:
    """It ends without tearing its objects down, after flushing: the exit code and every
    byte of a long report still reach the caller."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "generator", *args], capture_output=True,
                          text=True, check=False)
    assert done.returncode == code, done.stderr
    assert ("k10fleet, version" in done.stdout) == (code == 0)
    tree = tmp_path / "t"
    tree.mkdir()
    for i in range(300):
        (tree / f"c{i}.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                         f"  name: c{i}\ndata: [1]\n")
    report = subprocess.run([sys.executable, "-m", "generator", "check", str(tree),
                             "--kubeconform", "off", "--format", "json"],
                            capture_output=True, text=True, check=False)
    assert report.returncode == 1
    assert len(json.loads(report.stdout)["findings"]) == 300


def test_documents_differing_only_in_their_header_are_parsed_once_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body is kept from its second sighting on: four files, two parses (and one for the
    file of its own)."""
    from generator import fastyaml
    from generator.check import documents

    body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n"
    names = ("a", "b", "c", "d")
    for name in names:
        (tmp_path / f"{name}.yaml").write_text(f"# generated for {name}\n# two lines\n{body}")
    (tmp_path / "e.yaml").write_text("kind: Other\n")
    parsed: list[str] = []
    real = fastyaml.load
    monkeypatch.setattr(documents.fastyaml, "load",
                        lambda t, header=None: (parsed.append(t), real(t, header))[1])
    rels = [f"{n}.yaml" for n in names] + ["e.yaml"]
    files = list(documents.each_file(str(tmp_path), str(tmp_path), rels))
    found = [doc for docs, _ in files for doc in docs]
    problems = [problem for _, found_here in files for problem in found_here]
    assert problems == [] and len(parsed) == 3  # a, b (then kept), e
    assert [(d.rel, d.line, d.data["data"]) for d in found[:4]] == [
        (f"{n}.yaml", 3, {"k": "v"}) for n in names]


def test_a_body_seen_once_keeps_only_its_hash() -> None:
    """So that the data of the many files unlike any other goes with their documents."""
    from generator.check.documents import remember

    cache: dict[str | int, object] = {}
    remember(cache, "k: v\n", {"k": "v"})
    assert "k: v\n" not in cache and list(cache.values()) == [None]
    remember(cache, "k: v\n", {"k": "v"})
    assert cache["k: v\n"] == {"k": "v"}


def test_a_file_listed_as_regular_is_read_whole_without_a_stat(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the first 64 KiB it reads on to the end; a folder in its place is an error, and
    a file over the cap is refused as read_text refuses it."""
    from generator.check import documents

    big = tmp_path / "big.yaml"
    big.write_text("data:\n" + "".join(f"  k{i}: {'v' * 90}\n" for i in range(2000)))
    assert big.stat().st_size > 3 * (1 << 16)
    expected = big.read_text()
    monkeypatch.setattr(documents.os, "fstat", lambda fd: pytest.fail("a stat"))
    assert documents.read_regular(str(big)) == expected
    monkeypatch.undo()
    with pytest.raises(documents.Unreadable, match="cannot read file"):
        documents.read_regular(str(tmp_path))
    monkeypatch.setattr(documents, "MAX_FILE_BYTES", 1 << 17)
    with pytest.raises(documents.Unreadable, match="larger than"):
        documents.read_regular(str(big))
