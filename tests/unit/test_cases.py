"""Data-driven cases: every folder under tests/cases is one fleet.

tests/cases/invalid/<name>/fleet.yaml + expect.yaml: the validator must reject the
fleet and report every expected problem at the expected place.
tests/cases/valid/<name>/fleet.yaml: the fleet validates, renders, re-renders to
nothing new, passes ``render --check`` and every cluster directory builds with
``kubectl kustomize``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

import generator.cli
from tests.conftest import counting_renders

CASES = Path(__file__).parents[1].joinpath("cases")
INVALID = sorted(p for p in CASES.joinpath("invalid").iterdir() if p.is_dir())
VALID = sorted(p for p in CASES.joinpath("valid").iterdir() if p.is_dir())
KUBECTL = "/usr/bin/kubectl"


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(generator.cli.main, list(args), catch_exceptions=False)


def _expected(case: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(case.joinpath("expect.yaml").read_text(encoding="utf-8"))
    problems: list[dict[str, Any]] = data["problems"]
    assert problems, f"{case.name}: expect.yaml lists no problems"
    return problems


def _matches(line: str, fleet: str, problem: dict[str, Any]) -> bool:
    prefix = f"{fleet}:{problem['at']}: error: "
    if problem.get("path"):
        prefix += f"{problem['path']}: "
    return line.startswith(prefix) and problem["message"] in line[len(prefix):]


def test_enough_cases() -> None:
    assert len(INVALID) >= 25, [p.name for p in INVALID]
    assert len(VALID) >= 8, [p.name for p in VALID]


@pytest.mark.parametrize("case", INVALID, ids=[p.name for p in INVALID])
def test_invalid_text(case: Path) -> None:
    fleet = str(case / "fleet.yaml")
    result = _invoke("validate", fleet)
    output = result.output
    assert "Traceback" not in output, output
    assert "internal error" not in output, output
    assert result.exit_code == 1, output
    lines = output.splitlines()
    missing = [p for p in _expected(case) if not any(_matches(line, fleet, p) for line in lines)]
    assert not missing, f"expected problems not reported: {missing}\nactual output:\n{output}"


@pytest.mark.parametrize("case", INVALID, ids=[p.name for p in INVALID])
def test_invalid_json(case: Path) -> None:
    fleet = str(case / "fleet.yaml")
    result = _invoke("validate", "--format", "json", fleet)
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 1, result.output
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError as e:
        pytest.fail(f"--format json did not print JSON ({e}):\n{result.output}")
    assert report["valid"] is False
    assert report["errors"] >= 1
    reported = {(p["line"], p["column"], p["path"]) for p in report["problems"]
                if p["level"] == "error"}
    for problem in _expected(case):
        line, column = (int(n) for n in problem["at"].split(":"))
        found = {(ln, col) for ln, col, _ in reported}
        assert (line, column) in found, f"no error at {problem['at']}: {report['problems']}"
        if "path" in problem:
            assert (line, column, problem["path"]) in reported, report["problems"]


@pytest.mark.parametrize("case", INVALID, ids=[p.name for p in INVALID])
def test_invalid_does_not_render(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _invoke("render", str(case / "fleet.yaml"), "-o", str(out))
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 1, result.output
    assert not out.exists(), sorted(str(p) for p in out.rglob("*"))


@pytest.mark.parametrize("case", VALID, ids=[p.name for p in VALID])
def test_valid_renders(case: Path, tmp_path: Path) -> None:
    fleet = str(case / "fleet.yaml")
    result = _invoke("validate", fleet)
    assert result.exit_code == 0, result.output

    out = tmp_path / "out"
    result = _invoke("render", fleet, "-o", str(out))
    assert result.exit_code == 0, result.output
    produced = sorted(p for p in out.rglob("*") if p.is_file())
    assert produced, "render wrote nothing"
    for path in produced:
        if path.suffix in (".yaml", ".yml"):
            with path.open(encoding="utf-8") as handle:
                list(yaml.safe_load_all(handle))

    before = {p: p.read_bytes() for p in produced}
    with counting_renders() as renders:  # a real second render that finds nothing to write
        again = _invoke("render", "--format", "json", fleet, "-o", str(out))
        check = _invoke("render", "--check", "--format", "json", fleet, "-o", str(out))
    assert again.exit_code == 0, again.output
    assert check.exit_code == 0, check.output
    assert len(renders) == 2, renders
    report = json.loads(again.stdout)
    assert (report["written"], report["removed"]) == ([], []), report
    assert report["unchanged"] == len(produced) - 1  # every file but the manifest
    assert json.loads(check.stdout)["clean"] is True
    assert {p: p.read_bytes() for p in produced} == before

    cluster_dirs = sorted(p for p in (out / "clusters").iterdir() if p.is_dir())
    assert cluster_dirs, "no clusters/* directories rendered"
    for directory in cluster_dirs:
        built = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True,
                               text=True, check=False)
        assert built.returncode == 0, f"{directory.name}: {built.stderr}"
