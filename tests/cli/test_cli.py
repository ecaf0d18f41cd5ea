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

from tests.conftest import KUBECTL, REPO, counting_renders, example_fleet, run_cli, tree_bytes

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
    data["spec"]["kasten"]["version"] = "6.4.0"
    path = write_fleet(data)
    line = 1 + next(i for i, text in enumerate(path.read_text().splitlines())
                    if "version: 6.4.0" in text)
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
    assert ("kubectl delete cluster edge-one -n kasten-io-mc --context primary-1"
            in result.output)
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


def test_golden_output_matches_example(tmp_path: Path) -> None:
    """output/ is exactly what fleet.yaml renders to (regenerate: k10fleet render fleet.yaml).
    Rendered into a scratch folder (fresh, and over a copy of output/): nothing is written
    into the repository, and a render that did not happen cannot pass."""
    repo_before = sorted(p.name for p in REPO.iterdir())
    shutil.copytree(REPO / "output", tmp_path / "copy")
    with counting_renders() as renders:
        fresh = run_cli("render", REPO / "fleet.yaml", "-o", tmp_path / "fresh")
        check = run_cli("render", REPO / "fleet.yaml", "-o", tmp_path / "copy", "--check")
    assert fresh.exit_code == 0, fresh.output
    assert renders == ["demo", "demo"]
    assert tree_bytes(tmp_path / "fresh") == tree_bytes(REPO / "output"), (
        "output/ drifted from fleet.yaml: run `k10fleet render fleet.yaml` and review the diff")
    assert check.exit_code == 0, check.output
    assert sorted(p.name for p in REPO.iterdir()) == repo_before


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
    assert kinds == {"edge-1": ["ConfigMap"], "edge-2": ["ConfigMap"], "lab-1": [],
                     "primary-1": ["Distribution", "K10ClusterRoleBinding",
                                   "K10ClusterRoleBinding", "Namespace", "Policy", "Profile",
                                   "Secret"]}


def _run_installed(venv: Path, *args: str, cwd: Path,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "k10fleet"), *args], capture_output=True,
                          text=True, cwd=cwd, check=False, env=env)


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
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the wheel, not the repo
    location = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import generator.resources as r; "
         "print(r.data_dir('templates')); print(r.data_dir('schemas'))"],
        capture_output=True, text=True, cwd=work, check=True, env=env).stdout.split()
    assert all(p.startswith(str(venv)) and p.endswith(("_data/templates", "_data/schemas"))
               and not os.path.islink(p) for p in location), location
    rendered = _run_installed(venv, "render", cwd=work, env=env)
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


def _second_render_fleet(data: dict[str, Any]) -> dict[str, Any]:
    """A fleet whose render has something to say: a warning, pending injects."""
    data["spec"]["secondaries"][0]["kasten"] = {"version": "6.5.10"}
    return data


@pytest.mark.parametrize("form", ["json", "text"])
def test_a_second_render_reports_what_the_first_did(write_fleet: WriteFleet, tmp_path: Path,
                                                    form: str) -> None:
    fleet = write_fleet(_second_render_fleet(example_fleet()))
    out = tmp_path / "out"
    with counting_renders() as renders:
        first = run_cli("render", "--format", form, fleet, "-o", out)
        second = run_cli("render", "--format", form, fleet, "-o", out)
        check_one = run_cli("render", "--check", "--format", form, fleet, "-o", out)
        check_two = run_cli("render", "--check", "--format", form, fleet, "-o", out)
    assert renders == ["demo"] * 4
    assert first.exit_code == second.exit_code == check_one.exit_code == 0, first.output
    assert check_one.output == check_two.output
    if form == "text":
        assert second.output == first.output.replace("23 written, 0 unchanged",
                                                     "0 written, 23 unchanged")
        assert "warning: $.spec.secondaries[0].ingressURL" in second.output
        assert "run `k10fleet inject" in second.output
        return
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert two["warnings"] == one["warnings"] != []
    assert two["awaiting_inject"] == one["awaiting_inject"] != []
    assert (two["written"], two["removed"], two["unchanged"]) == ([], [], len(one["written"]))
    assert json.loads(check_one.stdout)["warnings"] == one["warnings"]


def test_a_repeated_check_reports_the_disconnect_commands(write_fleet: WriteFleet,
                                                          tmp_path: Path) -> None:
    data = example_fleet()
    fleet = write_fleet(data)
    out = tmp_path / "out"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    data["spec"]["secondaries"].pop(0)
    write_fleet(data)
    first = run_cli("render", "--check", "--format", "json", fleet, "-o", out)
    second = run_cli("render", "--check", "--format", "json", fleet, "-o", out)
    assert first.exit_code == second.exit_code == 1
    assert json.loads(second.stdout)["disconnect"] == json.loads(first.stdout)["disconnect"]
    assert "kubectl delete cluster" in json.loads(first.stdout)["disconnect"][0]


def _opened_tree_files(monkeypatch: pytest.MonkeyPatch, out: Path) -> list[str]:
    """Record which files under ``out`` the writer opens to compare their bytes."""
    import builtins

    import generator.output as output

    opened: list[str] = []

    def recording_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).startswith(str(out)) and not str(path).endswith(".k10fleet-manifest.json"):
            opened.append(os.path.relpath(path, out))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(output, "open", recording_open, raising=False)
    return opened


def test_the_stat_cache_only_skips_rereading_verified_files(
        write_fleet: WriteFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from generator import statcache

    fleet = write_fleet(example_fleet())
    out = tmp_path / "out"
    cache = tmp_path / ".out.k10fleet-cache.json"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    assert cache.exists()  # beside the tree, not in it
    assert not any("cache" in p.name for p in out.rglob("*"))
    opened = _opened_tree_files(monkeypatch, out)
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    assert len(opened) == 23, opened  # just written: read back once (racy until verified)
    time.sleep(statcache.MARGIN_NS / 1e9 + 0.1)
    assert run_cli("render", fleet, "-o", out).exit_code == 0  # verifies, records
    opened.clear()
    with counting_renders() as renders:
        again = run_cli("render", "--format", "json", fleet, "-o", out)
    assert renders == ["demo"] and json.loads(again.stdout)["unchanged"] == 23
    assert opened == []  # every signature proved its file unchanged: nothing re-read
    values = out / "clusters/edge-1/k10-values.yaml"
    original = values.read_bytes()
    stamp = values.stat()
    values.write_bytes(original.replace(b"enabled", b"Enabled"))  # same size, same mtime
    os.utime(values, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    repaired = run_cli("render", "--format", "json", fleet, "-o", out)
    assert json.loads(repaired.stdout)["written"] == ["clusters/edge-1/k10-values.yaml"]
    assert values.read_bytes() == original
    cached = cache.read_bytes()
    assert run_cli("render", "--check", fleet, "-o", out).exit_code == 0
    assert cache.read_bytes() == cached  # a check never writes the cache


def test_a_check_racing_a_render_leaves_no_lying_cache(
        write_fleet: WriteFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``render --check A`` finds the tree clean, then ``render B`` replaces it before the
    check ends: a later ``render --check A`` must still see B's tree."""
    import time

    import generator.pipeline as pipeline
    from generator import statcache

    data = example_fleet()
    fleet_a = write_fleet(data, "a.yaml")
    data["spec"]["secondaries"][0]["clusterName"] = "edge-one"
    fleet_b = write_fleet(data, "b.yaml")
    out = tmp_path / "out"
    assert run_cli("render", fleet_a, "-o", out).exit_code == 0
    time.sleep(statcache.MARGIN_NS / 1e9 + 0.1)
    assert run_cli("render", fleet_a, "-o", out).exit_code == 0  # cache trusts A's tree
    real_diff = pipeline.diff_tree

    def diff_then_render_b(*args: Any, **kwargs: Any) -> Any:
        drift = real_diff(*args, **kwargs)
        monkeypatch.setattr(pipeline, "diff_tree", real_diff)
        assert run_cli("render", fleet_b, "-o", out).exit_code == 0
        return drift

    monkeypatch.setattr(pipeline, "diff_tree", diff_then_render_b)
    raced = run_cli("render", "--check", fleet_a, "-o", out)
    assert raced.exit_code == 0, raced.output  # A's tree was clean when it looked
    time.sleep(statcache.MARGIN_NS / 1e9 + 0.1)
    assert run_cli("render", fleet_b, "-o", out).exit_code == 0  # cache trusts B's tree
    later = run_cli("render", "--check", "--format", "json", fleet_a, "-o", out)
    assert later.exit_code == 1, later.output
    assert "clusters/edge-1/mc-join-config.yaml" in json.loads(later.stdout)["differing"]
