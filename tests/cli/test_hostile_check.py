"""Hostile input against ``check`` (issue 22, check side): no Secret value in any output,
every Secret-shaped object guarded, no hang, no internal error. Each runs the real command
(a process with a timeout where a hang is the failure) and the real kubeconform."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.check import run as check_run
from generator.check.documents import each_file
from generator.check.run import CheckOptions, run_check
from generator.errors import EnvironmentFailure
from tests.conftest import KUBECTL, REPO, run_cli
from tests.unit.test_check import CRDS, kubeconform_binary

ENV = {**os.environ, "PYTHONPATH": str(REPO),
       "PATH": f"{REPO / '.tools/bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
FORMATS = ("text", "json", "junit")


def k10fleet(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator", *map(str, args)],
                          capture_output=True, text=True, env=ENV, check=False, timeout=timeout)


def plant(tree: Path, name: str, documents: list[Any] | str) -> Path:
    """A file in the edge-1 folder, listed in its kustomization."""
    edge = tree / "clusters/edge-1"
    path = edge / name
    path.write_text(documents if isinstance(documents, str)
                    else yaml.safe_dump_all(documents, sort_keys=False))
    kustomization = yaml.safe_load((edge / "kustomization.yaml").read_text())
    kustomization["resources"].append(name)
    (edge / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return path


def secret(name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, **fields}


def check_all_formats(tree: Path, *extra: str) -> list[subprocess.CompletedProcess[str]]:
    return [k10fleet("check", tree, "--kubeconform", kubeconform_binary(), "--schema-location",
                     CRDS, "--format", fmt, *extra) for fmt in FORMATS]


# 22.1: no value of a Secret's data or stringData in any output -------------------------

SECRET_VALUE_CASES = {
    "data value not base64": secret("s1", data={"token": "hunter2-not-base64!"}),
    "data value a number": secret("s2", data={"token": 424242424242}),
    "stringData value a list": secret("s3", stringData={"token": ["hunter2-in-a-list"]}),
    "data a string": secret("s4", data="hunter2-instead-of-a-map"),
    "stringData a list": secret("s5", stringData=["hunter2-as-list"]),
    "data value a mapping": secret("s6", data={"token": {"inner": "hunter2-nested"}}),
    "value in a SecretList": {"apiVersion": "v1", "kind": "SecretList", "items": [
        {"metadata": {"name": "s7"}, "data": {"token": "hunter2-in-secretlist!"}}]},
    "value in a List item": {"apiVersion": "v1", "kind": "List", "items": [
        secret("s8", data={"token": "hunter2-in-list!"})]},
    "Secret without apiVersion": {"kind": "Secret", "metadata": {"name": "s9"},
                                  "data": {"token": "hunter2-no-apiversion!"}},
    "value with an extra top-level field": {**secret("s10", data={"k": "hunter2-top!"}),
                                            "unexpected": True},
}


@pytest.mark.parametrize("case", sorted(SECRET_VALUE_CASES))
def test_secret_values_never_printed(tree: Path, case: str) -> None:
    document = SECRET_VALUE_CASES[case]
    plant(tree, "leak.yaml", [document])
    values = [v for v in json.dumps(document).split('"') if v.startswith("hunter2")] or \
        ["424242424242"]
    for done in check_all_formats(tree):
        assert done.returncode == 1, done.stdout + done.stderr
        output = done.stdout + done.stderr
        assert "leak.yaml" in output
        for value in values:
            assert value not in output, (case, output)


def test_kubeconform_pattern_message_about_a_secret_hides_the_value(tree: Path,
                                                                    tmp_path: Path) -> None:
    """kubeconform quotes the value in a pattern failure; check prints it without."""
    schemas = tmp_path / "schemas/example.com"
    schemas.mkdir(parents=True)
    (schemas / "secret_v1.json").write_text(json.dumps({
        "type": "object", "properties": {"data": {"type": "object", "additionalProperties": {
            "type": "string", "pattern": "^ENC"}}}}))
    plant(tree, "crd-secret.yaml", [{"apiVersion": "example.com/v1", "kind": "Secret",
                                     "metadata": {"name": "x"},
                                     "data": {"token": "hunter2-pattern"},
                                     "metadata2": "hunter2-pattern"}])
    for fmt in FORMATS:
        done = k10fleet("check", tree, "--kubeconform", kubeconform_binary(),
                        "--schema-location", CRDS, "--schema-location", tmp_path / "schemas",
                        "--format", fmt)
        assert done.returncode == 1
        assert "crd-secret.yaml" in done.stdout
        assert "hunter2-pattern" not in done.stdout + done.stderr


# 22.5: the plaintext guard sees every Secret-shaped object -------------------------------

@pytest.mark.parametrize("document", [
    {"kind": "Secret", "metadata": {"name": "a"}, "stringData": {"token": "plain"}},
    {"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "List",
                                                     "items": [secret("b", stringData={
                                                         "token": "plain"})]}]},
    {"kind": "List", "items": [secret("c", stringData={"token": "plain"})]},
    {"apiVersion": "v1", "kind": "SecretList", "items": [
        {"metadata": {"name": "d"}, "stringData": {"token": "plain"}}]},
    {"apiVersion": "v2", "kind": "Secret", "metadata": {"name": "e"},
     "stringData": {"token": "plain"}},
], ids=["no apiVersion", "nested List", "List without apiVersion", "SecretList",
        "other apiVersion"])
def test_plaintext_guard_sees_every_secret(tree: Path, document: dict[str, Any]) -> None:
    plant(tree, "hidden-token.yaml", [document])
    report = run_check(CheckOptions(root=str(tree), schema_locations=[CRDS], kubeconform="off"))
    plaintext = [f for f in report.findings if "holds a plaintext value" in f.message]
    assert len(plaintext) == 1 and plaintext[0].level == "error"
    assert plaintext[0].file.endswith("hidden-token.yaml")


# 22.8: no hang -------------------------------------------------------------------------

def test_deep_flow_nesting_is_refused_fast(tree: Path) -> None:
    depth = 120_000  # 240 KB, once 40 s
    plant(tree, "deep.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\ndata: "
          + "[" * depth + "]" * depth + "\n")
    started = time.monotonic()
    done = k10fleet("check", tree, "--kubeconform", "off", timeout=20)
    assert time.monotonic() - started < 20
    assert done.returncode == 1
    assert "deep.yaml:4: nested deeper than 100 levels" in done.stdout


def test_deep_flow_fleet_is_refused_fast(tmp_path: Path) -> None:
    depth = 150_000  # 300 KB, once 57 s
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("apiVersion: k10fleet/v1alpha1\nkind: Fleet\nmetadata: {name: x}\nspec: "
                     + "{a: " * depth + "1" + "}" * depth + "\n")
    done = k10fleet("validate", fleet, timeout=20)
    assert done.returncode == 1
    assert "fleet.yaml:4:" in done.stdout + done.stderr and "nesting deeper" in done.stdout


@pytest.mark.parametrize("where", ["outside the tree", "hidden folder"])
def test_fifo_listed_by_a_kustomization(tree: Path, tmp_path: Path, where: str) -> None:
    edge = tree / "clusters/edge-1"
    if where == "hidden folder":
        (edge / ".parts").mkdir()
        fifo, entry = edge / ".parts/pipe.yaml", ".parts/pipe.yaml"
    else:
        fifo, entry = tmp_path / "pipe.yaml", "../../../pipe.yaml"
    os.mkfifo(fifo)
    kustomization = yaml.safe_load((edge / "kustomization.yaml").read_text())
    kustomization["resources"].append(entry)
    (edge / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    done = k10fleet("check", tree, "--kubeconform", "off", timeout=30)
    assert done.returncode == 1
    assert f"resources lists '{entry}', which is not a regular file" in done.stdout


def test_character_device_listed_by_a_kustomization(tree: Path) -> None:
    edge = tree / "clusters/edge-1"
    kustomization = yaml.safe_load((edge / "kustomization.yaml").read_text())
    kustomization["resources"].append("/dev/zero.yaml")
    os.symlink("/dev/zero", edge / "zero.yml")
    kustomization["resources"].append("zero.yml")
    (edge / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    done = k10fleet("check", tree, "--kubeconform", "off", timeout=30)
    assert done.returncode == 1
    assert "zero.yml:1: not a regular file" in done.stdout


def test_dead_check_helper_is_an_environment_failure(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The forked helper is killed (as the OOM killer would): exit 3 naming it, no hang."""
    tree = tmp_path / "big"
    for i in range(check_run.PARALLEL_FROM + 10):
        folder = tree / f"c{i:04d}"
        folder.mkdir(parents=True)
        (folder / "cm.yaml").write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}}))
    parent = os.getpid()
    real = each_file

    def killed_in_helper(*args: Any) -> Any:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args)

    monkeypatch.setattr("generator.check.run.each_file", killed_in_helper)
    monkeypatch.setenv("K10FLEET_JOBS", "2")
    monkeypatch.setattr(check_run, "parallel_jobs", lambda: 2)
    with pytest.raises(EnvironmentFailure, match="check helper process failed"):
        run_check(CheckOptions(root=str(tree), kubeconform="off"))
    result = run_cli("check", tree, "--kubeconform", "off")
    assert result.exit_code == 3 and "check helper process failed" in result.output


# 22.9: located messages or exit 3, never an internal error --------------------------------

@pytest.mark.parametrize("shape", ["flow", "block sequence", "json"])
def test_100k_deep_manifest(tree: Path, shape: str) -> None:
    depth = 100_000
    name, text = {
        "flow": ("deep.yaml", "a: " + "{b: " * depth + "1" + "}" * depth + "\n"),
        "block sequence": ("deep.yaml", "- " * depth + "x\n"),
        "json": ("deep.json", "[" * depth + "]" * depth),
    }[shape]
    plant(tree, name, text)
    done = k10fleet("check", tree, "--kubeconform", kubeconform_binary(), timeout=60)
    assert done.returncode == 1, done.stderr
    assert "internal error" not in done.stderr + done.stdout
    assert f"{name}:1: nested deeper than 100 levels" in done.stdout


def test_kustomize_with_a_fifo_in_the_folder(tree: Path) -> None:
    assert os.access(KUBECTL, os.X_OK)
    os.mkfifo(tree / "clusters/edge-1/pipe")
    done = k10fleet("check", tree, "--kubeconform", "off", "--kustomize", timeout=120)
    assert done.returncode == 1
    assert "internal error" not in done.stderr
    assert "kubectl kustomize not run: 'pipe' is not a regular file" in done.stdout


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret"])
def test_list_item_whose_metadata_is_a_string(tree: Path, kind: str) -> None:
    plant(tree, "list.yaml", [{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": kind, "metadata": "just-a-name"}]}])
    done = k10fleet("check", tree, "--kubeconform", kubeconform_binary())
    assert done.returncode == 1
    assert "internal error" not in done.stderr
    assert "list.yaml:6: " + kind in done.stdout  # the item's metadata line


# 19.3: counts read as English ------------------------------------------------------------

def test_one_error_is_singular(tree: Path) -> None:
    plant(tree, "bad.yaml", [{"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "x"}, "data": {"k": 5}}])
    done = k10fleet("check", tree, "--kubeconform", "off", "--schema-location", CRDS)
    assert done.returncode == 1
    assert done.stdout.rstrip().endswith("1 error, 0 warnings (kubeconform not used)")
    assert "1 errors" not in done.stdout


def test_fifo_in_the_tree_with_kubeconform(tree: Path) -> None:
    """kubeconform is never handed a FIFO (it would block reading it)."""
    os.mkfifo(tree / "clusters/edge-1/pipe.yaml")
    done = k10fleet("check", tree, "--kubeconform", kubeconform_binary(), "--schema-location",
                    CRDS, timeout=60)
    assert done.returncode == 1
    assert "pipe.yaml:1: not a regular file" in done.stdout
    assert "(kubeconform used)" in done.stdout



def test_a_link_out_of_the_tree_is_not_read(tmp_path: Path) -> None:
    """A file link leading out of the tree is refused, named, and neither read by check nor
    handed to kubeconform (its values would be printed); a link inside the tree is checked."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tmp_path / "outside.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: 424242\n")
    (tree / "link.yaml").symlink_to("../outside.yaml")
    (tree / "inside.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: 171717\n")
    (tree / "same.yaml").symlink_to("inside.yaml")
    result = run_cli("check", str(tree))
    assert result.exit_code == 1, result.output
    assert "424242" not in result.output
    assert f"{tree / 'link.yaml'}:1: a symbolic link to outside the tree" in result.output
    assert result.output.count("171717") == 2  # inside.yaml and the link to it: both checked
