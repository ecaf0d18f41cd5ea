"""A new user's first hour: paths relative to the fleet, and the pull-request summary."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator import pipeline
from generator.fleet.validate import load_fleet
from tests.conftest import REPO, example_fleet, run_cli

WriteFleet = Callable[..., Path]


def test_render_from_another_directory_writes_beside_the_fleet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "fleet.yaml").write_text(yaml.safe_dump(example_fleet(), sort_keys=False))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    first = run_cli("render", repo / "fleet.yaml")
    assert first.exit_code == 0, first.output
    assert f"into {repo / 'output'}:" in first.output
    assert (repo / "output" / ".k10fleet-manifest.json").is_file()
    assert (repo / ".output.lock").exists() and (repo / ".output.k10fleet-cache.json").exists()
    assert list(elsewhere.iterdir()) == []
    again = run_cli("render", "../repo/fleet.yaml")  # a relative fleet path, unchanged tree
    assert again.exit_code == 0 and f"into {repo / 'output'}:" in again.output
    assert "0 written" in again.output
    check = run_cli("render", repo / "fleet.yaml", "--check")
    assert check.exit_code == 0 and f"{repo / 'output'} is up to date" in check.output
    diff = run_cli("diff", repo / "fleet.yaml")
    assert diff.exit_code == 0 and f"{repo / 'output'} is up to date" in diff.output


def test_gitops_path_decides_the_default_tree(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = example_fleet()
    data["spec"]["gitops"]["path"] = "deploy/tree"
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.chdir("/")
    result = run_cli("render", tmp_path / "fleet.yaml")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "deploy" / "tree" / "argocd" / "edge-1.yaml").is_file()
    assert not (tmp_path / "output").exists()
    explicit = tmp_path / "mine"
    assert run_cli("render", tmp_path / "fleet.yaml", "-o", explicit).exit_code == 0
    assert (explicit / ".k10fleet-manifest.json").is_file()


@pytest.mark.parametrize(("text", "hint"), [
    ("spec:\n  gitops:\n    engine: none\n    path: deploy/out/  # here\n  tokens: {}\n",
     "deploy/out"),
    ("spec:\n  gitops:\n    engine: argocd\n    repoURL: https://git.example.com/x-gitops.git\n",
     "output"),
    ("spec:\n  tokens: {}\n", "output"),
    ("spec:\n  gitops: {path: x}\n", None),
    ("spec:\n  gitops:\n    path: 'x'\n", None),
    ("spec:\n  gitops: &g\n    path: x\n", None),
    ("spec:\n  gitops:\n    <<: *base\n", None),
    ("kind: |\n  gitops:\n    path: x\n", None),
])
def test_the_unparsed_path_hint_is_exact_or_unsure(text: str, hint: str | None) -> None:
    assert pipeline._gitops_path_hint(text) == hint


def test_hint_agrees_with_the_loader_on_the_example() -> None:
    fleet, _ = load_fleet(str(REPO / "fleet.yaml"))
    assert pipeline.guessed_output_dir(str(REPO / "fleet.yaml")) == \
        pipeline.fleet_output_dir(str(REPO / "fleet.yaml"), fleet)


def _change(data: dict[str, Any]) -> None:
    secondaries = data["spec"]["secondaries"]
    secondaries[:] = [s for s in secondaries if s["name"] != "edge-2"]
    secondaries.append({"name": "edge-9", "labels": {"env": "prod"}})
    secondaries[0].setdefault("kasten", {})["version"] = "7.5.3"
    data["spec"]["primary"].setdefault("values", {})["logLevel"] = "debug"


def test_markdown_summary_of_a_fleet_change(write_fleet: WriteFleet, tmp_path: Path) -> None:
    data = example_fleet()
    fleet = write_fleet(data)
    assert run_cli("render", fleet).exit_code == 0
    same = run_cli("diff", fleet, "--format", "markdown")
    assert same.exit_code == 0 and "No change" in same.output
    _change(data)
    write_fleet(data)
    result = run_cli("diff", fleet, "--format", "markdown")
    assert result.exit_code == 0, result.output  # a report: the text diff is the gate
    assert run_cli("diff", fleet).exit_code == 1
    text = result.output
    sections = [line for line in text.splitlines() if line.startswith("### ")]
    assert sections == ["### Clusters joining", "### Clusters leaving", "### K10 versions",
                        "### Helm values changed",
                        "### Secrets that need `k10fleet inject`"]
    joining = text.split("### Clusters joining")[1].split("###")[0]
    assert "`edge-9`" in joining and "edge-1" not in joining
    assert ("kubectl delete clusters.dist.kio.kasten.io edge-2 -n kasten-io-mc "
            "--context primary-1") in text
    assert "| `edge-1` | 7.5.2 | 7.5.3 |" in text
    assert "+logLevel: debug" in text and "<code>primary-1</code>" in text
    assert "`clusters/edge-9/mc-join.sops.yaml`" in text
    assert "| `clusters/edge-2/mc-join-config.yaml` | removed |" in text
    assert "| `argocd/edge-9.yaml` | added |" in text
    assert str(tmp_path / "output") in text
    # the tree itself is untouched: diff writes nothing
    assert not (tmp_path / "output" / "clusters" / "edge-9").exists()


def test_markdown_summary_against_a_base_tree_and_token_changes(
        write_fleet: WriteFleet, tmp_path: Path) -> None:
    """A PR job renders the base branch's fleet into a folder and compares the PR with it."""
    data = example_fleet()
    fleet = write_fleet(data)
    base = tmp_path / "base-output"
    assert run_cli("render", fleet, "-o", base).exit_code == 0
    data["spec"]["tokens"] = {"mode": "external-secrets",
                              "store": "vault://secret/k10fleet/demo"}
    for profile in data["spec"].get("profiles", []):
        profile.get("credentials", {}).pop("store", None)
        profile["credentials"]["store"] = "vault://secret/k10fleet/profiles/s3"
    write_fleet(data)
    result = run_cli("diff", fleet, "-o", base, "--format", "markdown")
    assert result.exit_code == 0, result.output
    tokens = result.output.split("### Tokens and stores")[1].split("###")[0]
    assert "`clusters/primary-1/join-token-push-secret.yaml` (added)" in tokens
    assert "`clusters/edge-1/mc-join-external-secret.yaml` (added)" in tokens
    assert "store `vault://secret/k10fleet/demo`" in tokens
    assert "need `k10fleet inject`" not in result.output  # ESO fetches at sync time
    assert os.path.isdir(base / "clusters")


def test_dotted_values_key_warns(write_fleet: WriteFleet) -> None:
    data = example_fleet()
    data["spec"]["primary"]["values"] = {"multicluster.primary.name": "hq",
                                         "global": {"podAnnotations": {"a.io/b": "x"}}}
    result = run_cli("validate", write_fleet(data))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if ": warning: " in line]
    assert len(warnings) == 1, result.output  # nested dotted keys (annotations) are fine
    assert "'multicluster.primary.name' has dots" in warnings[0]
    assert "multicluster: {primary: {name: ...}}" in warnings[0]


def _summary_script(recipe: str) -> str:
    """The shell of the recipe's summary step (GitHub) or job (GitLab), without the post."""
    data = yaml.safe_load((REPO / "examples/ci" / recipe).read_text())
    if "jobs" in data:
        steps = data["jobs"]["validate"]["steps"]
        script: str = next(s["run"] for s in steps if s.get("name") == "Summarise the fleet change")
        return script.replace("${{ github.base_ref }}", "main")
    return "\n".join(line for line in data["fleet-summary"]["script"] if "curl" not in line)


@pytest.mark.parametrize("recipe", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_recipes_summarise_a_pull_request(recipe: str, tmp_path: Path) -> None:
    """The recipes' summary step on a real Git repository: main holds the fleet and its
    tree, the pull request adds a secondary; the step must describe exactly that."""
    import shlex
    import subprocess
    import sys

    def git(*args: str, cwd: Path) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                       cwd=cwd, check=True, capture_output=True)

    origin = tmp_path / "origin"
    origin.mkdir()
    git("init", "-q", "-b", "main", cwd=origin)
    data = example_fleet()
    (origin / "fleet.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert run_cli("render", origin / "fleet.yaml").exit_code == 0
    git("add", "-A", cwd=origin)
    git("commit", "-qm", "fleet", cwd=origin)
    work = tmp_path / "work"
    git("clone", "-q", str(origin), str(work), cwd=tmp_path)
    git("checkout", "-qb", "pr", cwd=work)
    data["spec"]["secondaries"].append({"name": "edge-7", "labels": {"env": "prod"}})
    (work / "fleet.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert run_cli("render", work / "fleet.yaml").exit_code == 0
    git("add", "-A", cwd=work)
    git("commit", "-qm", "add edge-7", cwd=work)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "k10fleet"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m generator \"$@\"\n")
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO),
           "RUNNER_TEMP": str(tmp_path / "runner"), "GITHUB_STEP_SUMMARY": str(tmp_path / "s.md"),
           "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}
    (tmp_path / "runner").mkdir()
    script = _summary_script(recipe).replace("/tmp/base", str(tmp_path / "gl-base"))
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, (done.stdout, done.stderr)
    summary = (work / "k10fleet-summary.md").read_text()
    joining = summary.split("### Clusters joining")[1].split("###")[0]
    assert "`edge-7`" in joining and "edge-1" not in joining
    assert "| `argocd/edge-7.yaml` | added |" in summary
    assert "Clusters leaving" not in summary
    if recipe == "github-actions.yml":
        assert (tmp_path / "s.md").read_text() == summary


def test_documented_eso_store_is_a_valid_cluster_secret_store() -> None:
    """docs/secrets.md's ClusterSecretStore matches ESO's published schema and the names
    k10fleet's rendered objects reference."""
    import json

    import jsonschema

    from tests.conftest import SHARED

    text = (REPO / "docs" / "secrets.md").read_text()
    block = text.split("## The External Secrets store")[1].split("```yaml\n")[1].split("```")[0]
    store = yaml.safe_load(block)
    schema = json.loads((SHARED / "crd-schemas/external-secrets.io/"
                         "clustersecretstore_v1.json").read_text())
    jsonschema.validate(store, schema)
    assert store["metadata"]["name"] == "k10fleet" and store["kind"] == "ClusterSecretStore"
    pushed = (REPO / "tests/golden/trees/argocd-external-secrets/clusters/primary-1/"
              "join-token-push-secret.yaml").read_text()
    assert "kind: ClusterSecretStore" in pushed and "name: k10fleet" in pushed


def _readme_blocks(section: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    body = text.split(f"## {section}")[1].split("\n## ")[0]
    return [block.split("```")[0] for block in body.split("```bash\n")[1:]]


def test_readme_walk_offline_part_runs_as_written(tmp_path: Path) -> None:
    """The README's first walk block (no clusters needed) runs verbatim in a fresh HOME."""
    import shlex
    import subprocess
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "k10fleet"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m generator \"$@\"\n")
    shim.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO),
           "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    first = _readme_blocks("Five minutes")[0]
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", first], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, (done.stdout, done.stderr)
    fleet = home / "fleets/demo"
    assert yaml.safe_load((fleet / "fleet.yaml").read_text())["metadata"]["name"] == "demo"
    assert (fleet / "output/clusters/edge-1/mc-join-config.yaml").is_file()
    assert f"into {fleet / 'output'}:" in done.stdout


def test_readme_test_command_is_the_ci_command() -> None:
    ci = (REPO / ".ci/run").read_text().strip().splitlines()[-1]
    assert ci in _readme_blocks("The two commands")[1].splitlines()


@pytest.mark.parametrize("kind", ["SecretStore", "ClusterSecretStore"])
def test_opt_in_eso_store_is_rendered_and_valid(kind: str, tmp_path: Path) -> None:
    """tokens.externalSecrets.vault renders the store every ESO object names, valid against
    ESO's published CRD schema, where those objects live (primary and token-joined secondaries)."""
    import json

    import jsonschema

    from tests.conftest import SHARED

    case = REPO / "tests/cases/valid/external-secrets-store-rendered/fleet.yaml"
    data = yaml.safe_load(case.read_text())
    data["spec"]["tokens"]["externalSecrets"]["storeKind"] = kind
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(data, sort_keys=False))
    assert run_cli("render", fleet).exit_code == 0
    schema = json.loads((SHARED / "crd-schemas/external-secrets.io" /
                         f"{kind.lower()}_v1.json").read_text())
    expected_namespaces = {"primary-1": "kasten-io-mc", "edge-1": "kasten-io", "edge-2": "k10"}
    for cluster, namespace in expected_namespaces.items():
        folder = tmp_path / "output/clusters" / cluster
        store = yaml.safe_load((folder / "secret-store.yaml").read_text())
        jsonschema.validate(store, schema)
        assert store["kind"] == kind and store["metadata"]["name"] == "k10fleet-vault"
        assert store["metadata"].get("namespace") == (namespace if kind == "SecretStore"
                                                      else None)
        assert store["spec"]["provider"]["vault"]["path"] == "kv"  # mount of tokens.store
        assert "secret-store.yaml" in (folder / "kustomization.yaml").read_text()
        users = [yaml.safe_load(p.read_text()) for p in folder.glob("*.yaml")
                 if p.name in ("join-token-push-secret.yaml", "mc-join-external-secret.yaml")]
        assert users, cluster
        for user in users:
            refs = user["spec"].get("secretStoreRefs") or [user["spec"]["secretStoreRef"]]
            assert refs == [{"kind": kind, "name": "k10fleet-vault"}]
            assert user["metadata"]["namespace"] == namespace
    checked = run_cli("check", tmp_path / "output", "--kubeconform", "off")
    assert checked.exit_code == 0 and "0 errors, 0 warnings" in checked.output, checked.output
    store_file = tmp_path / "output/clusters/edge-1/secret-store.yaml"
    store_file.write_text(store_file.read_text().replace("      server:", "      servr:"))
    refused = run_cli("check", tmp_path / "output", "--kubeconform", "off")
    assert refused.exit_code == 1 and "servr" in refused.output, refused.output


def test_eso_store_needs_external_secrets_mode(write_fleet: WriteFleet) -> None:
    data = example_fleet()
    data["spec"]["tokens"]["externalSecrets"] = {
        "vault": {"server": "https://vault.example.com:8200",
                  "auth": {"kubernetes": {"role": "k10fleet"}}}}
    result = run_cli("validate", write_fleet(data))
    assert result.exit_code == 1
    assert "$.spec.tokens.externalSecrets.vault: renders an External Secrets store, which " \
        "tokens.mode sops never uses" in result.output
    without = example_fleet()
    assert not list(Path(REPO / "output").rglob("secret-store.yaml"))  # opt-in only
    assert "vault" not in without["spec"]["tokens"].get("externalSecrets", {})
