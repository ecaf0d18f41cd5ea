"""``check`` gives kubeconform's verdict on every document of tests/cases/check/, and each
expected verdict is confirmed by running the real ``kubeconform -strict`` on the same file.

valid/ holds documents both accept, invalid/ documents both reject. One file is accepted by
k10fleet alone, on purpose: ``k10-values.yaml`` is Helm values, known by its name, and
carries no kind (kubeconform, which does not know the name, rejects it; check never hands it
to kubeconform).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from generator.check import DEFAULT_KUBERNETES_VERSION, kubeconform
from generator.check.run import CheckOptions, run_check
from generator.check.schemas import SchemaStore, write_standalone_cache
from tests.conftest import REPO
from tests.unit.test_check import CRDS, kubeconform_binary

CORPUS = REPO / "tests/cases/check"
CASES = sorted((folder.name, path.name) for folder in CORPUS.iterdir() if folder.is_dir()
               for path in folder.iterdir())
KNOWN_BY_NAME = {"k10-values.yaml"}  # accepted by k10fleet by name; kubeconform rejects it
MISSING_SCHEMA_ONLY = {"nested-list.yaml"}  # kubeconform: no schema for the inner List


def _locations() -> list[str]:
    """The schema folders check hands kubeconform."""
    store = SchemaStore(DEFAULT_KUBERNETES_VERSION, [CRDS])
    return store.kubeconform_locations(kubeconform.cache_root())


def kubeconform_accepts(path: Path) -> tuple[bool, str]:
    """The real kubeconform -strict on one file, with the schemas check gives it."""
    standalone = os.path.dirname(write_standalone_cache(DEFAULT_KUBERNETES_VERSION,
                                                        kubeconform.cache_root()))
    args = kubeconform.command(kubeconform_binary(), [str(path)], DEFAULT_KUBERNETES_VERSION,
                               standalone, _locations())
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0, done.stdout


def k10fleet_accepts(tree: Path, *, strict: bool) -> tuple[bool, list[str]]:
    report = run_check(CheckOptions(root=str(tree), schema_locations=[CRDS],
                                    kubeconform="off", strict=strict))
    return report.errors == 0, [f.as_text() for f in report.findings]


def test_corpus_is_big_enough() -> None:
    valid = [n for f, n in CASES if f == "valid"]
    invalid = [n for f, n in CASES if f == "invalid"]
    assert len(valid) >= 15 and len(invalid) >= 40
    assert any(n.endswith(".json") for n in valid) and any(n.endswith(".json") for n in invalid)


@pytest.mark.parametrize(("folder", "name"), CASES)
def test_verdict_matches_real_kubeconform(tmp_path: Path, folder: str, name: str) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(CORPUS / folder / name, tree / name)
    expected = folder == "valid"
    theirs, their_report = kubeconform_accepts(tree / name)
    assert theirs == (expected and name not in KNOWN_BY_NAME), their_report
    ours, findings = k10fleet_accepts(tree, strict=True)
    assert ours == expected, findings
    default, findings = k10fleet_accepts(tree, strict=False)
    assert default == (expected or name in MISSING_SCHEMA_ONLY), findings
    if not expected:
        assert all(":" in f.split(": ", 1)[0] for f in findings)  # every finding has file:line
