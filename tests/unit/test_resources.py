"""Shipped data: found through importlib.resources in a checkout as in a wheel (the wheel is
tested in tests/cli/test_cli.py), and every shipped schema says where it comes from."""

from __future__ import annotations

import json
import os

from generator import resources
from generator.render.templates import environment
from tests.conftest import REPO
from tests.provenance import PROVENANCE, shipped


def test_data_is_the_package_path_and_the_repository_folders_are_its_source() -> None:
    for name in ("templates", "schemas"):
        path = resources.data_dir(name)
        assert path == REPO / "generator" / "_data" / name
        assert os.path.realpath(path) == str(REPO / name)  # one source: the root folder
    assert json.loads(resources.read_text("schemas/fleet.schema.json"))["title"]
    assert environment().get_template("kustomization.yaml.j2").filename is not None


def test_every_shipped_schema_names_its_provenance() -> None:
    doc = json.loads(PROVENANCE.read_text(encoding="utf-8"))
    files = doc["files"]
    assert sorted(files) == sorted(shipped())
    for rel, entry in files.items():
        assert entry["kind"] in ("authored", "derived"), rel
        assert entry["source"], rel
        if entry["kind"] == "derived":
            assert entry["how"], rel
        assert entry["sha256"] == shipped()[rel], (
            f"{rel} changed since its provenance was recorded: review it against "
            f"{entry['source']} and run `python -m tests.provenance`")
