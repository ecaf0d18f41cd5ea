"""The emitter must round-trip every string exactly, for PyYAML and for Go's YAML (kubectl)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.render.yamlout import dump, scalar
from tests.conftest import KUBECTL

HOSTILE = [
    "a:b", "a: b", "key: value # not a comment", "#x", "x #y", "'single'", '"double"',
    "multi\nline\n", "{{ .Values.x }}", "{{x}}", "*star", "&anchor", "!bang", "%percent",
    "@at", "`tick", "|", ">", "- dash", "? q", "yes", "no", "on", "off", "Yes", "NO", "On",
    "y", "n", "Y", "N", "true", "False", "null", "Null", "~", "", " lead", "trail ", "1e3",
    "1.5", "0x1F", "0o17", "012", "1_000", "12:30", "2024-01-01", ".inf", "-.inf", ".nan",
    "<<", "=", "a\tb", "tab\t", "\x85nel", "line\u2028sep", "bom\ufeff", "ctrl\x00\x07\x1b",
    "é ü 😀", "https://primary.example.com/k10", "C:\\path", "back\\slash", "a::b", "a:",
]


def test_plain_only_when_unambiguous() -> None:
    assert scalar("edge-1") == "edge-1"
    assert scalar("https://h.example.com/k10") == "https://h.example.com/k10"
    for text in ("yes", "on", "1e3", "0x1F", "12:30", "*a", "a: b", ""):
        assert scalar(text).startswith('"'), text


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_string_round_trips_in_pyyaml(text: str) -> None:
    assert yaml.safe_load(dump({"k": text, text or "empty": [text]})) == {
        "k": text, text or "empty": [text]}


def test_non_strings_round_trip() -> None:
    data: dict[str, Any] = {"i": -3, "f": 1.5, "big": 1e20, "tiny": 1e-7, "t": True, "n": None,
            "e": {}, "l": [], "nested": [[1, [2]], {"a": [{"b": 1}]}]}
    assert yaml.safe_load(dump(data)) == data


def test_hostile_strings_survive_go_yaml(tmp_path: Path) -> None:
    """kubectl (Go YAML) reads back every ConfigMap value exactly."""
    # Go's emitter prints NEL and U+2028 unescaped (they fold when read back) and
    # PyYAML reads a plain `<<` or `=` in its output as merge or value keys: these cannot be
    # compared through kustomize's output; the PyYAML test above covers them.
    lossy_in_go_output = {"\x85nel", "line\u2028sep", "<<", "="}
    values = {f"k{i}": text for i, text in enumerate(HOSTILE) if text not in lossy_in_go_output}
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                "data": values}
    (tmp_path / "cm.yaml").write_text(dump(manifest), encoding="utf-8")
    (tmp_path / "kustomization.yaml").write_text(dump({"resources": ["cm.yaml"]}))
    built = subprocess.run([KUBECTL, "kustomize", str(tmp_path)],
                           capture_output=True, text=True, check=True)
    assert yaml.safe_load(built.stdout)["data"] == values
