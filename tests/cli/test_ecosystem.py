"""pre-commit hooks, CI recipes, init, diff and schema: how users meet k10fleet."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from generator.cli import main
from generator.tools import find_tool
from tests.conftest import REPO, example_fleet, run_cli

WriteFleet = Callable[..., Path]
WHEELS = REPO / ".tools/wheels"


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


def test_pre_commit_hooks_reject_a_bad_fleet(tmp_path: Path) -> None:
    """Runs the real pre-commit on our .pre-commit-hooks.yaml, offline (local wheel folder)."""
    pre_commit = find_tool("pre-commit")
    assert pre_commit, "pre-commit is missing: run the README's test command"
    assert any(WHEELS.glob("k10_fleet-*.whl")), "run the README's test command (.tools/wheels)"
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["k10fleet-validate", "k10fleet-render-check",
                                        "k10fleet-check"]
    # try-repo reads committed files; a scratch clone of our working tree makes that true
    hook_repo = tmp_path / "hook-repo"
    shutil.copytree(REPO, hook_repo, ignore=shutil.ignore_patterns(
        ".git", ".tools", "__pycache__", "*.egg-info", ".pytest_cache", ".mypy_cache"))
    git("init", "-q", cwd=hook_repo)
    git("add", "-A", cwd=hook_repo)
    git("commit", "-qm", "hooks", cwd=hook_repo)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=hook_repo, capture_output=True,
                         text=True, check=True).stdout.strip()
    fleet_repo = tmp_path / "fleets"
    fleet_repo.mkdir()
    git("init", "-q", cwd=fleet_repo)
    (fleet_repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{
        "repo": str(hook_repo), "rev": rev,
        "hooks": [{"id": h["id"]} for h in hooks]}]}))
    bad = example_fleet()
    bad["spec"]["primary"]["ingresURL"] = bad["spec"]["primary"].pop("ingressURL")
    (fleet_repo / "fleet.yaml").write_text(yaml.safe_dump(bad))
    git("add", "-A", cwd=fleet_repo)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELS),
           "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    def run_hooks() -> subprocess.CompletedProcess[str]:
        return subprocess.run([pre_commit, "run", "--all-files"], cwd=fleet_repo, env=env,
                              capture_output=True, text=True, timeout=600, check=False)

    rejected = run_hooks()
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    assert "k10fleet validate" in rejected.stdout and "Failed" in rejected.stdout
    assert "unknown field 'ingresURL'; did you mean 'ingressURL'?" in rejected.stdout
    shutil.copy(REPO / "fleet.yaml", fleet_repo / "fleet.yaml")
    shutil.copytree(REPO / "output", fleet_repo / "output")
    git("add", "-A", cwd=fleet_repo)
    accepted = run_hooks()
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    for name in ("k10fleet validate", "k10fleet render --check", "k10fleet check"):
        assert any(line.startswith(name + ".") and line.endswith("Passed")
                   for line in accepted.stdout.splitlines()), accepted.stdout


def _k10fleet_commands(recipe: Path) -> list[str]:
    """The k10fleet lines of a CI recipe, in order."""
    data = yaml.safe_load(recipe.read_text())
    lines: list[str] = []
    if "jobs" in data:  # GitHub Actions
        for job in data["jobs"].values():
            for step in job["steps"]:
                lines += str(step.get("run", "")).splitlines()
    else:  # GitLab CI
        for job in data.values():
            if isinstance(job, dict):
                lines += job.get("script", [])
    return [line.strip() for line in lines if line.strip().startswith("k10fleet ")]


@pytest.mark.parametrize("recipe", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_recipe_commands_pass_on_the_example(recipe: str, tmp_path: Path) -> None:
    commands = [c for c in _k10fleet_commands(REPO / "examples/ci" / recipe)
                if not c.startswith("k10fleet diff")]  # the PR summary: test_newcomer.py
    assert [c.split()[1] for c in commands] == ["ci"]  # validate + render --check + check
    assert "--junit k10fleet-check.xml" in commands[0]
    shutil.copy(REPO / "fleet.yaml", tmp_path / "fleet.yaml")
    shutil.copytree(REPO / "output", tmp_path / "output")
    python = shlex.quote(sys.executable)
    for command in commands:
        runnable = f"{python} -m generator {command.removeprefix('k10fleet ')}"
        done = subprocess.run(["bash", "-c", runnable], cwd=tmp_path, capture_output=True,
                              text=True, check=False,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    report = (tmp_path / "k10fleet-check.xml").read_text()
    assert report.startswith('<?xml version="1.0"') and "<testsuite " in report


def test_schema_command_prints_the_fleet_schema() -> None:
    result = run_cli("schema")
    schema = json.loads(result.output)
    assert schema["$id"].endswith("fleet.schema.json")
    assert schema == json.loads((REPO / "schemas/fleet.schema.json").read_text())
    first_line = (REPO / "fleet.yaml").read_text().splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=./schemas/fleet.schema.json"


def test_init_from_flags_validates_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "repo" / "fleet.yaml"
    args = ["init", str(target), "--name", "prod", "--primary", "mc", "--ingress",
            "http://mc.example.com/k10", "--secondary", "edge-1", "--secondary", "edge-2",
            "--engine", "flux", "--repo-url", "https://git.example.com/fleet.git"]
    created = run_cli(*args)
    assert created.exit_code == 0, created.output
    text = target.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert "insecureIngress: true" in text and "# sops | external-secrets" in text
    assert run_cli("validate", target).exit_code == 0
    target.write_text("mine\n")
    refused = run_cli(*args)
    assert refused.exit_code == 2 and "use --force" in refused.output
    assert target.read_text() == "mine\n"
    assert run_cli(*args, "--force").exit_code == 0
    missing = run_cli("init", str(tmp_path / "other.yaml"), "--name", "x")
    assert missing.exit_code == 2 and "--primary" in missing.output
    no_repo = run_cli("init", str(tmp_path / "third.yaml"), "--primary", "mc", "--ingress",
                      "https://mc.example.com/k10", "--engine", "argocd")
    assert no_repo.exit_code == 2 and "--repo-url" in no_repo.output


def test_init_asks_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import generator.cli as cli

    monkeypatch.setattr(cli, "_interactive", lambda: True)
    answers = "\n".join(["lab", "hub", "https://hub.example.com/k10", "a, b", "argocd",
                         "https://git.example.com/lab.git"]) + "\n"
    result = CliRunner().invoke(main, ["init", str(tmp_path / "fleet.yaml")], input=answers)
    assert result.exit_code == 0, result.output
    data = yaml.safe_load((tmp_path / "fleet.yaml").read_text())
    assert [s["name"] for s in data["spec"]["secondaries"]] == ["a", "b"]
    assert data["spec"]["gitops"]["repoURL"] == "https://git.example.com/lab.git"
    assert data["spec"]["gitops"]["engine"] == "argocd" and data["metadata"]["name"] == "lab"


def test_init_with_only_the_cluster_flags(tmp_path: Path) -> None:
    """The first command a new user types: name from the folder, engine none, schema beside
    the file, .gitignore entries for the lock and the render cache, aligned comments."""
    folder = tmp_path / "My_Fleet.Repo"
    folder.mkdir()
    (folder / ".gitignore").write_text("*.pyc")
    result = run_cli("init", folder / "fleet.yaml", "--primary", "hq", "--ingress",
                     "https://hq.example.com/k10", "--secondary", "edge-1", "--secondary",
                     "edge-2")
    assert result.exit_code == 0, result.output
    text = (folder / "fleet.yaml").read_text()
    data = yaml.safe_load(text)
    assert data["metadata"]["name"] == "my-fleet-repo"
    assert data["spec"]["gitops"] == {"engine": "none", "revision": "main", "path": "output"}
    schema_url = text.splitlines()[0].removeprefix("# yaml-language-server: $schema=")
    assert json.loads((folder / schema_url).read_text()) == \
        json.loads((REPO / "schemas/fleet.schema.json").read_text())
    ignored = (folder / ".gitignore").read_text().splitlines()
    assert ignored[0] == "*.pyc" and {".output.lock", ".output.k10fleet-cache.json"} <= set(ignored)
    columns = {line.index(" # ") for line in text.splitlines()
               if " # " in line and not line.startswith("#")}
    assert len(columns) == 1, columns
    assert run_cli("validate", folder / "fleet.yaml").exit_code == 0
    again = run_cli("init", folder / "fleet.yaml", "--primary", "hq", "--ingress",
                    "https://hq.example.com/k10", "--force")
    assert again.exit_code == 0
    assert (folder / ".gitignore").read_text().splitlines() == ignored  # added once


@pytest.mark.parametrize(("flags", "named"), [
    (["--ingress", "hq.example.com"], "--ingress 'hq.example.com'"),
    (["--secondary", "Edge_1"], "--secondary 'Edge_1'"),
    (["--secondary", "hq"], "--secondary 'hq'"),
    (["--name", "Bad Name"], "--name 'Bad Name'"),
    (["--k10-version", "5.5.0"], "--k10-version '5.5.0'"),
    (["--engine", "flux", "--repo-url", "edge-2"], "--repo-url 'edge-2'"),
])
def test_init_names_the_flag_of_a_bad_value(tmp_path: Path, flags: list[str],
                                            named: str) -> None:
    base = {"--primary": "hq", "--ingress": "https://hq.example.com/k10"}
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        base[flag] = value
    args = [item for pair in base.items() for item in pair]
    result = run_cli("init", tmp_path / "fleet.yaml", *args)
    assert result.exit_code == 2, result.output
    assert f"invalid value for {named}" in result.output
    assert "fleet.yaml:" not in result.output  # never a location in a file that was not written
    assert not (tmp_path / "fleet.yaml").exists()


def test_diff_shows_what_render_would_change(write_fleet: WriteFleet, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = example_fleet()
    fleet = write_fleet(data)
    out = tmp_path / "out"
    run_cli("render", fleet, "-o", out)
    clean = run_cli("diff", fleet, "-o", out)
    assert clean.exit_code == 0 and "up to date" in clean.output
    data["spec"]["secondaries"][1]["clusterName"] = "edge-two"
    write_fleet(data)
    changed = run_cli("diff", fleet, "-o", out)
    assert changed.exit_code == 1
    assert "--- a/clusters/edge-2/mc-join-config.yaml" in changed.output
    assert "-  cluster-name: edge-2\n+  cluster-name: edge-two" in changed.output
    assert "\x1b[" not in changed.output  # not a terminal: no colour
    coloured = run_cli("diff", fleet, "-o", out, "--color")
    assert "\x1b[32m+  cluster-name: edge-two" in coloured.output
    monkeypatch.setenv("NO_COLOR", "1")
    as_json = json.loads(run_cli("diff", fleet, "-o", out, "--format", "json").output)
    assert {c["path"]: c["status"] for c in as_json}["clusters/edge-2/mc-join-config.yaml"] == \
        "differs"


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F"), ("zsh", "compdef"),
    ("fish", "complete --no-files --command k10fleet")])
def test_shell_completion_scripts(shell: str, marker: str) -> None:
    done = subprocess.run([sys.executable, "-m", "generator"], capture_output=True, text=True,
                          check=False, env={**os.environ, "PYTHONPATH": str(REPO),
                                            "_K10FLEET_COMPLETE": f"{shell}_source"})
    assert done.returncode == 0 and marker in done.stdout and "k10fleet" in done.stdout
