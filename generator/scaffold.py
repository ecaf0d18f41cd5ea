"""``k10fleet init``: a commented, valid fleet.yaml from a few answers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from generator.errors import EnvironmentFailure, InvalidInput, UsageFailure
from generator.files import atomic_write
from generator.fleet.loader import load_yaml_bytes
from generator.fleet.validate import validate_document
from generator.render.templates import render_template

SCHEMA_URL = "./schemas/fleet.schema.json"


@dataclass
class Answers:
    name: str
    primary: str
    ingress: str
    secondaries: list[str] = field(default_factory=list)
    version: str = "7.5.2"
    engine: str = "argocd"
    token_mode: str = "sops"
    store: str = ""
    repo_url: str = ""

    def __post_init__(self) -> None:
        self.store = self.store or f"vault://secret/k10fleet/{self.name}"


def scaffold_text(answers: Answers, schema_url: str = SCHEMA_URL) -> str:
    """The fleet file; validated before anyone sees it."""
    text = render_template("init/fleet.yaml.j2", schema_url=schema_url, **vars(answers))
    result = validate_document(load_yaml_bytes(text.encode(), "fleet.yaml"))
    errors = [p for p in result.problems if p.level == "error"]
    if errors:
        raise InvalidInput(errors)
    return text


def write_fleet(path: str, text: str, *, force: bool) -> None:
    """Create ``path``; an existing file is replaced only with ``force``."""
    if os.path.exists(path) and not force:
        raise UsageFailure(f"{path} exists; use --force to overwrite it")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        atomic_write(path, text.encode(), 0o644)
    except (FileExistsError, NotADirectoryError):
        raise UsageFailure(f"cannot create {path}: a file stands where a folder of its path "
                           "must be; choose another path") from None
    except OSError as e:
        raise EnvironmentFailure(f"cannot create {path}: {e.strerror}") from None
