"""``k10fleet ci`` gives exactly the verdicts of ``validate``, ``render --check`` and
``check`` run one after the other: same output, in the same order, and the worst exit code.
Each scenario runs the three real commands and ``ci`` on identical copies of one repository
(fresh copies: no unchanged-inputs cache, as on a fresh clone)."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import junitparser
import pytest
import yaml

from generator.check import documents, gate
from tests.conftest import example_fleet, run_cli
from tests.unit.test_check import CRDS, kubeconform_binary
from tests.unit.test_parallel import log_pids


def repository(tmp_path: Path, change: Callable[[Path], None]) -> Path:
    """A fleet repository (fleet.yaml, output/) with one change applied."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "fleet.yaml").write_text(yaml.safe_dump(example_fleet(), sort_keys=False))
    assert run_cli("render", repo / "fleet.yaml", "-o", repo / "output").exit_code == 0
    for cache in repo.glob(".*cache*"):
        cache.unlink()
    change(repo)
    return repo


def fresh_copy(repo: Path, name: str) -> Path:
    copy = repo.parent / name
    shutil.copytree(repo, copy, symlinks=True)
    return copy


def separate(repo: Path, *check_args: str) -> tuple[int, str, str]:
    """The three commands as a CI job runs them; the worst exit code (3 before 1)."""
    fleet, out = repo / "fleet.yaml", repo / "output"
    results = [run_cli("validate", fleet), run_cli("render", fleet, "-o", out, "--check"),
               run_cli("check", out, *check_args)]
    codes = [r.exit_code for r in results]
    worst = 3 if 3 in codes else max(codes)
    return worst, "".join(r.stdout for r in results), "".join(r.stderr for r in results)


def together(repo: Path, *check_args: str) -> tuple[int, str, str]:
    result = run_cli("ci", repo / "fleet.yaml", "-o", repo / "output", *check_args)
    return result.exit_code, result.stdout, result.stderr


def drop(path: str) -> Callable[[Path], None]:
    return lambda repo: (repo / "output" / path).unlink()


def append(path: str, text: str) -> Callable[[Path], None]:
    def change(repo: Path) -> None:
        with open(repo / "output" / path, "a", encoding="utf-8") as handle:
            handle.write(text)
    return change


def edit_fleet(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(repo: Path) -> None:
        data = yaml.safe_load((repo / "fleet.yaml").read_text())
        change(data)
        (repo / "fleet.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return edit


def plant(name: str, document: dict[str, Any]) -> Callable[[Path], None]:
    def change(repo: Path) -> None:
        (repo / "output" / "clusters/edge-1" / name).write_text(yaml.safe_dump(document))
    return change


def both(*changes: Callable[[Path], None]) -> Callable[[Path], None]:
    def change(repo: Path) -> None:
        for one in changes:
            one(repo)
    return change


SCENARIOS: dict[str, Callable[[Path], None]] = {
    "clean": lambda repo: None,
    "file missing": drop("clusters/edge-1/mc-join-config.yaml"),
    "file differs, still valid": append("clusters/edge-1/k10-values.yaml", "extra: true\n"),
    "file differs and invalid": append("clusters/edge-1/mc-join-config.yaml", "bogus: 1\n"),
    "unlisted valid file in the tree": plant("extra.yaml", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra"}}),
    "plaintext secret planted": plant("token.yaml", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t"},
        "stringData": {"token": "hunter2"}}),
    "invalid fleet": edit_fleet(lambda d: d["spec"].update(primary=5)),
    "fleet renders differently": edit_fleet(
        lambda d: d["spec"]["secondaries"][0].update(clusterName="renamed.example.com")),
    "invalid fleet and bad tree": both(edit_fleet(lambda d: d.update(kind="Nope")),
                                       append("clusters/edge-1/mc-join-config.yaml", "x: 1\n")),
    "tree missing": lambda repo: shutil.rmtree(repo / "output"),
}


PASSING = {"clean", "unlisted valid file in the tree"}  # render lists only its own files


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("kubeconform", ["off", "real"])
def test_ci_verdicts_are_the_three_commands(tmp_path: Path, scenario: str,
                                            kubeconform: str) -> None:
    repo = repository(tmp_path, SCENARIOS[scenario])
    args = ("--schema-location", CRDS, "--kubeconform",
            kubeconform_binary() if kubeconform == "real" else "off")
    expected = separate(fresh_copy(repo, "a"), *args)
    got = together(fresh_copy(repo, "b"), *args)
    assert got == tuple(x.replace(str(tmp_path / "a"), str(tmp_path / "b"))
                        if isinstance(x, str) else x for x in expected)
    assert (expected[0] == 0) == (scenario in PASSING)


def test_on_one_core_ci_reads_no_file_twice_that_render_proved_equal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files render --check compared byte for byte reach check from memory; changed ones
    (and ones render does not write) are read from disk."""
    monkeypatch.setattr(gate, "parallel_jobs", lambda: 1)
    repo = repository(tmp_path, both(append("clusters/edge-1/k10-values.yaml", "extra: 1\n"),
                                     plant("extra.yaml", {"apiVersion": "v1",
                                                          "kind": "ConfigMap",
                                                          "metadata": {"name": "e"}})))
    read: list[str] = []

    def recorded(real: Callable[[str], str]) -> Callable[[str], str]:
        def recording(path: str) -> str:
            read.append(path)
            return real(path)
        return recording

    for reader in ("read_text", "read_regular"):  # any file, a file listed as regular
        monkeypatch.setattr(documents, reader, recorded(getattr(documents, reader)))
    code, out, _ = together(repo, "--kubeconform", "off", "--schema-location", CRDS)
    assert code == 1 and "differs: " in out
    assert sorted(Path(p).relative_to(repo / "output").as_posix() for p in read) == [
        "clusters/edge-1/extra.yaml", "clusters/edge-1/k10-values.yaml"]


def test_on_two_cores_check_reads_the_tree_beside_the_render(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """check runs in a forked helper while this process validates and renders: two
    processes, and the same output and exit code as the stages in turn."""
    repo = repository(tmp_path, append("clusters/edge-1/k10-values.yaml", "extra: 1\n"))
    monkeypatch.setattr(gate, "parallel_jobs", lambda: 1)
    one = together(repo, "--kubeconform", "off", "--schema-location", CRDS)
    log = tmp_path / "pids.log"
    log_pids(monkeypatch, gate, "run_check", log)
    monkeypatch.setattr(gate, "parallel_jobs", lambda: 2)
    two = together(repo, "--kubeconform", "off", "--schema-location", CRDS)
    assert log.read_text().split() != [str(os.getpid())]  # checked in the helper
    assert two == one and one[0] == 1


@pytest.mark.parametrize("cores", [1, 2])
@pytest.mark.parametrize("option", ["--kubernetes-version 1.0.0", "--crd {bad}"])
def test_a_check_stage_that_fails_outright_keeps_its_error(
        cores: int, option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error of check's own comes back from the helper as it is: its class, its message
    (an invalid --crd: located problems, exit 1; no schemas for that version: exit 3)."""
    repo = repository(tmp_path, lambda repo: None)
    bad = tmp_path / "bad-crd.yaml"
    bad.write_text("kind: CustomResourceDefinition\nspec: [\n")
    args = ["--kubeconform", "off", *option.format(bad=bad).split()]
    monkeypatch.setattr(gate, "parallel_jobs", lambda: cores)
    code, _, err = together(repo, *args)
    direct = run_cli("check", repo / "output", *args)
    assert code == direct.exit_code != 0 and direct.stderr.strip() in err


def test_a_dead_check_helper_is_an_environment_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = repository(tmp_path, lambda repo: None)
    parent = os.getpid()
    real = gate.run_check

    def killed_in_helper(*args: Any, **kwargs: Any) -> Any:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    monkeypatch.setattr(gate, "run_check", killed_in_helper)
    monkeypatch.setattr(gate, "parallel_jobs", lambda: 2)
    code, _, err = together(repo, "--kubeconform", "off")
    assert code == 3 and "check helper process failed" in err


def test_ci_writes_the_junit_report(tmp_path: Path) -> None:
    repo = repository(tmp_path, plant("bad.yaml", {"kind": "ConfigMap",
                                                   "metadata": {"name": "b"}}))
    report = tmp_path / "check.xml"
    code, out, _ = together(repo, "--kubeconform", "off", "--schema-location", CRDS,
                            "--junit", str(report))
    assert code == 1 and "no apiVersion" in out
    suites = junitparser.JUnitXml.fromfile(str(report))
    failures = [case for suite in suites for case in suite if not case.is_passed]
    assert [case.name for case in failures] == ["ConfigMap/b"]


def test_ci_json_free_text_matches_check_json_counts(tmp_path: Path) -> None:
    """The check stage of ci counts what ``check --format json`` counts."""
    repo = repository(tmp_path, lambda repo: None)
    checked = json.loads(run_cli("check", repo / "output", "--kubeconform", "off",
                                 "--schema-location", CRDS, "--format", "json").stdout)
    _, out, _ = together(repo, "--kubeconform", "off", "--schema-location", CRDS)
    assert f"checked {checked['documents']} documents in {checked['files']} files" in out
