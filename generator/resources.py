"""The data that ships with the package, read only through ``importlib.resources``.

It lives in the package ``generator._data``: ``templates/`` (Jinja2) and ``schemas/``
(JSON Schemas; where each one comes from is in ``schemas/provenance.json``). In a wheel the
two folders are inside the package; in a source checkout or an editable install
``generator/_data/templates`` and ``generator/_data/schemas`` are symlinks to the
repository's top-level folders, which stay the one source. Either way the same call finds
them, and nothing here knows which case it is in.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from generator.errors import EnvironmentFailure

DATA_PACKAGE = "generator._data"


def data(relative: str) -> Traversable:
    """A shipped file or folder, such as ``schemas/fleet.schema.json``."""
    found = files(DATA_PACKAGE).joinpath(*relative.split("/"))
    if not (found.is_file() or found.is_dir()):
        raise EnvironmentFailure(f"k10fleet data {relative!r} is missing from this "
                                 "installation; reinstall k10fleet")
    return found


@cache
def data_dir(name: str) -> Path:
    """A shipped folder (``templates`` or ``schemas``) as a file system path, for tools
    that need one (Jinja2's loader, kubeconform). k10fleet installs as files, never zipped."""
    found = data(name)
    if not isinstance(found, Path) or not found.is_dir():
        raise EnvironmentFailure(f"k10fleet data folder {name!r} is not a folder on disk "
                                 "(a zipped install?); install k10fleet with pip")
    return found


def read_text(relative: str) -> str:
    return data(relative).read_text(encoding="utf-8")


@cache
def load_schema(relative: str) -> dict[str, Any]:
    """Parse a JSON Schema shipped under ``schemas/`` once per process."""
    schema: dict[str, Any] = json.loads(read_text(f"schemas/{relative}"))
    return schema
