"""The command line through Click's runner: exit codes, formats and messages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import KUBECTL, REPO, example_fleet, run_cli, tree_bytes

WriteFleet = Callable[..., Path]


def test_version_and_help() -> None:
    assert run_cli("--version").output.startswith("k10fleet, version ")
    for command in ("validate", "render"):
        result = run_cli(command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output


def test_validate_example_is_clean() -> None:
    result = run_cli("validate", str(REPO / "fleet.yaml"))
    assert result.exit_code == 0, result.output
    assert "valid fleet demo (4 clusters)" in result.output


def test_all_problems_reported_in_one_run(write_fleet: WriteFleet) -> None:
    data = example_fleet()
    data["spec"]["primary"]["ingresURL"] = data["spec"]["primary"].pop("ingressURL")
    data["spec"]["secondaries"][1]["name"] = "edge-1"
    data["spec"]["kasten"]["values"]["multicluster"] = {"primary": {"name": "x"}}
    path = write_fleet(data)
    result = run_cli("validate", path)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert any("$.spec.primary.ingresURL: unknown field 'ingresURL'; did you mean 'ingressURL'?"
               in line for line in lines)
    assert any("$.spec.primary: missing required field 'ingressURL'" in line for line in lines)
    assert any("cluster name 'edge-1' is already used" in line for line in lines)
    assert any("sets 'multicluster.primary.name', which k10fleet generates" in line
               for line in lines)
    assert all(line.startswith(f"{path}:") and ": error: $." in line for line in lines)


def test_json_format(write_fleet: WriteFleet) -> None:
    data = example_fleet()
    data["spec"]["kasten"]["version"] = "5.5.0"
    path = write_fleet(data)
    line = 1 + next(i for i, text in enumerate(path.read_text().splitlines())
                    if "version: 5.5.0" in text)
    result = run_cli("validate", "--format", "json", path)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    (problem,) = [p for p in report["problems"] if p["level"] == "error"]
    assert problem["path"] == "$.spec.kasten.version"
    assert "k10multicluster" in problem["message"]
    assert problem["line"] == line and problem["column"] == 14


def test_missing_fleet_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("validate", tmp_path / "nope.yaml")
    assert result.exit_code == 1
    assert result.output.strip() == f"{tmp_path / 'nope.yaml'}:1:1: error: file not found"


def test_usage_error_exits_2() -> None:
    assert run_cli("render", "--format", "xml").exit_code == 2
    assert run_cli("nonsense").exit_code == 2


def test_render_then_check_then_drift(write_fleet: WriteFleet, tmp_path: Path) -> None:
    fleet = write_fleet(example_fleet())
    out = tmp_path / "out"
    first = run_cli("render", fleet, "-o", out)
    assert first.exit_code == 0, first.output
    committed = [p for p in (REPO / "output").rglob("*")
                 if p.is_file() and p.name != ".k10fleet-manifest.json"]
    assert len(committed) > 20
    assert f"{len(committed)} written" in first.output
    assert run_cli("render", fleet, "-o", out).output.count("0 written") == 1
    assert run_cli("render", fleet, "-o", out, "--check").exit_code == 0
    (out / "clusters/edge-2/mc-join-config.yaml").write_text("tampered\n")
    (out / "clusters/edge-1/kustomization.yaml").unlink()
    check = run_cli("render", fleet, "-o", out, "--check")
    assert check.exit_code == 1
    assert f"differs: {out}/clusters/edge-2/mc-join-config.yaml" in check.output
    assert f"missing: {out}/clusters/edge-1/kustomization.yaml" in check.output
    as_json = run_cli("render", fleet, "-o", out, "--check", "--format", "json")
    report = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and report["clean"] is False
    assert report["missing"] == ["clusters/edge-1/kustomization.yaml"]


def test_check_writes_nothing(write_fleet: WriteFleet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("render", write_fleet(example_fleet()), "-o", out, "--check")
    assert result.exit_code == 1
    assert not out.exists()
    assert "missing: " in result.output


def test_invalid_fleet_leaves_tree_untouched(write_fleet: WriteFleet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    fleet = write_fleet(example_fleet())
    run_cli("render", fleet, "-o", out)
    before = tree_bytes(out)
    broken = example_fleet()
    broken["spec"]["primary"]["name"] = "Primary_1"
    result = run_cli("render", write_fleet(broken), "-o", out)
    assert result.exit_code == 1
    assert "$.spec.primary.name: must be a valid cluster name" in result.output
    assert "Traceback" not in result.output
    assert tree_bytes(out) == before


def test_removed_secondary_is_pruned_with_disconnect_instructions(
        write_fleet: WriteFleet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    data = example_fleet()
    run_cli("render", write_fleet(data), "-o", out)
    (out / "clusters/edge-1/my-notes.md").write_text("keep me")
    data["spec"]["secondaries"] = [s for s in data["spec"]["secondaries"] if s["name"] != "edge-1"]
    result = run_cli("render", write_fleet(data), "-o", out)
    assert result.exit_code == 0
    assert ("kubectl delete clusters.dist.kio.kasten.io edge-one -n kasten-io-mc "
            "--context primary-1" in result.output)
    assert "disconnects nothing" in result.output
    assert sorted(p.name for p in (out / "clusters/edge-1").iterdir()) == ["my-notes.md"]
    again = run_cli("render", write_fleet(data), "-o", out)
    assert "kubectl delete" not in again.output


def test_output_dir_must_be_its_own_folder(write_fleet: WriteFleet, tmp_path: Path) -> None:
    fleet = write_fleet(example_fleet())
    result = run_cli("render", fleet, "-o", tmp_path)
    assert result.exit_code == 2
    assert "contains the fleet file" in result.output


def test_warnings_do_not_fail(write_fleet: WriteFleet, tmp_path: Path) -> None:
    data = example_fleet()
    data["spec"]["secondaries"][0]["kasten"] = {"version": "6.5.10"}
    fleet = write_fleet(data)
    result = run_cli("validate", fleet)
    assert result.exit_code == 0
    assert "warning: $.spec.secondaries[0].ingressURL: K10 6.5.10 has no cluster-ingress" \
        in result.output


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "generator", "validate",
                             str(REPO / "fleet.yaml")], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr


def test_golden_output_matches_example() -> None:
    """output/ is exactly what fleet.yaml renders to (regenerate: k10fleet render fleet.yaml)."""
    result = run_cli("render", REPO / "fleet.yaml", "-o", REPO / "output", "--check")
    assert result.exit_code == 0, (
        f"{result.output}\noutput/ drifted from fleet.yaml: run `k10fleet render fleet.yaml` "
        "and review the diff")


def test_kustomize_builds_every_rendered_cluster(write_fleet: WriteFleet,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_cli("render", write_fleet(example_fleet()), "-o", out)
    kinds: dict[str, list[str]] = {}
    for cluster in sorted((out / "clusters").iterdir()):
        built = subprocess.run([KUBECTL, "kustomize", str(cluster)], capture_output=True,
                               text=True, check=False)
        assert built.returncode == 0, built.stderr
        kinds[cluster.name] = sorted(d["kind"] for d in yaml.safe_load_all(built.stdout) if d)
    assert kinds == {"edge-1": ["ConfigMap"], "edge-2": ["ConfigMap"], "lab-1": ["ConfigMap"],
                     "primary-1": ["ClusterRole", "Distribution", "K10ClusterRoleBinding",
                                   "K10ClusterRoleBinding", "Namespace", "Policy", "Profile",
                                   "RoleBinding", "RoleBinding", "Secret"]}


def _run_installed(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "k10fleet"), *args], capture_output=True,
                          text=True, cwd=cwd, check=False)


def test_wheel_installs_and_runs_from_any_directory(tmp_path: Path) -> None:
    """A non-editable install carries templates/ and schemas/ inside the package."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(REPO)], check=True, capture_output=True)
    (wheel,) = wheels.glob("k10_fleet-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index",
                    "--force-reinstall", str(wheel)], check=True, capture_output=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(REPO / "fleet.yaml", work / "fleet.yaml")
    location = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import generator.resources as r; "
         "print(r.data_dir('templates')); print(r.data_dir('schemas'))"],
        capture_output=True, text=True, cwd=work, check=True).stdout.split()
    assert all(str(venv) in p and "_data" in p for p in location), location
    rendered = _run_installed(venv, "render", cwd=work)
    assert rendered.returncode == 0, rendered.stderr
    assert tree_bytes(work / "output") == tree_bytes(REPO / "output")




def test_refuses_to_take_over_a_foreign_directory(write_fleet: WriteFleet,
                                                  tmp_path: Path) -> None:
    foreign = tmp_path / "home"
    (foreign / ".ssh").mkdir(parents=True, mode=0o700)
    result = run_cli("render", write_fleet(example_fleet()), "-o", foreign)
    assert result.exit_code == 2
    assert "not empty and was not written by k10fleet" in result.output
    assert os.stat(foreign / ".ssh").st_mode & 0o777 == 0o700


def test_progress_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import click

    import generator.cli as cli

    shown: list[str] = []
    monkeypatch.setattr(click, "echo", lambda message="", **kw: shown.append(str(message)))
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    from click.testing import CliRunner

    fleet = tmp_path / "big.yaml"
    from benchmarks.make_fleet import make_fleet

    fleet.write_text(yaml.safe_dump(make_fleet(800)))
    CliRunner().invoke(cli.main, ["render", str(fleet), "-o", str(tmp_path / "out")])
    assert any(m.startswith("\rwriting: ") for m in shown)
    shown.clear()
    CliRunner().invoke(cli.main, ["--quiet", "render", str(fleet), "-o", str(tmp_path / "o2")])
    assert not any("writing:" in m for m in shown)
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: False)
    CliRunner().invoke(cli.main, ["render", str(fleet), "-o", str(tmp_path / "o3")])
    assert not any("writing:" in m for m in shown)


def test_unchanged_inputs_skip_rendering(write_fleet: WriteFleet, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import generator.pipeline as pipeline

    data = example_fleet()
    fleet = write_fleet(data)
    out = tmp_path / "out"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    assert (tmp_path / ".out.k10fleet-cache.json").exists()  # beside the tree, not in it

    def must_not_render(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("rendered although nothing changed")

    monkeypatch.setattr(pipeline, "render_fleet", must_not_render)
    again = run_cli("render", fleet, "-o", out)
    assert again.exit_code == 0 and "0 written" in again.output
    assert run_cli("render", fleet, "-o", out, "--check").exit_code == 0
    (out / "clusters/edge-1/k10-values.yaml").write_text("tampered\n")
    damaged = run_cli("render", fleet, "-o", out)  # a damaged tree takes the full path
    assert "rendered although nothing changed" in damaged.output
    monkeypatch.undo()
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    data["spec"]["secondaries"][1]["clusterName"] = "edge-two"
    write_fleet(data)
    monkeypatch.setattr(pipeline, "render_fleet", must_not_render)
    changed = run_cli("render", fleet, "-o", out)  # a changed fleet takes the full path
    assert "rendered although nothing changed" in changed.output
