"""Locate the data that ships with the package: templates/ and schemas/.

In a wheel they live in ``generator/_data``; in a source checkout (editable
install or tests) they are the repository's top-level folders.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    """Return the directory ``templates`` or ``schemas``, wherever this install keeps it."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"k10fleet data folder {name!r} is missing from this installation")


@cache
def load_schema(relative: str) -> dict[str, Any]:
    """Parse a JSON Schema shipped under ``schemas/`` once per process."""
    with open(data_dir("schemas") / relative, encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema
