"""Shared fixtures: repository paths, the reference data in ../shared, and a fleet writer."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from generator.cli import main

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    """The team's reference data (../shared); K10FLEET_SHARED overrides the location."""
    candidates = [os.environ.get("K10FLEET_SHARED", ""), REPO.parent / "shared", "/work/shared"]
    for candidate in candidates:
        if candidate and Path(candidate, "k10-chart").is_dir():
            return Path(candidate)
    return REPO.parent / "shared"  # tests that need it fail with a clear FileNotFoundError


SHARED = _shared_dir()
K10_CHARTS = SHARED / "k10-chart"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def example_fleet() -> dict[str, Any]:
    """The repository's example fleet as data, for tests to vary."""
    data: dict[str, Any] = yaml.safe_load((REPO / "fleet.yaml").read_text())
    return data


@pytest.fixture
def write_fleet(tmp_path: Path) -> Callable[..., Path]:
    """Write a fleet (data or text) to tmp_path/fleet.yaml and return its path."""

    def write(content: dict[str, Any] | str, name: str = "fleet.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}
