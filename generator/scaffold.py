"""``k10fleet init``: a commented, valid fleet.yaml from a few answers."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from generator.errors import EnvironmentFailure, UsageFailure
from generator.files import atomic_write
from generator.fleet.loader import load_yaml_bytes
from generator.fleet.validate import validate_document
from generator.render.templates import render_template
from generator.resources import data_dir

SCHEMA_FILE = "fleet.schema.json"
SCHEMA_URL = f"./{SCHEMA_FILE}"
COMMENT_MARK = "\t"  # the template separates a line's value from its comment with a tab
MIN_COMMENT_COLUMN = 40
# Where the tree, its lock and its render cache sit, beside fleet.yaml (gitops.path: output).
GITIGNORE_ENTRIES = (".output.lock", ".output.k10fleet-cache.json", ".output.k10fleet-stage-*/")


@dataclass
class Answers:
    name: str
    primary: str
    ingress: str
    secondaries: list[str] = field(default_factory=list)
    version: str = "7.5.2"
    engine: str = "none"
    token_mode: str = "sops"
    store: str = ""
    repo_url: str = ""

    def __post_init__(self) -> None:
        self.store = self.store or f"vault://secret/k10fleet/{self.name}"


class BadAnswers(UsageFailure):
    """Answers the fleet rules refuse, each as (Answers field, its value, message)."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name} {value!r}: {message}"
                                   for name, value, message in problems))


def default_name(fleet_path: str) -> str:
    """The fleet file's directory name as a DNS-1123 label (``My_Fleet`` -> ``my-fleet``)."""
    folder = os.path.basename(os.path.dirname(os.path.abspath(fleet_path)))
    label = re.sub(r"[^a-z0-9]+", "-", folder.lower())[:63].strip("-")
    return label or "fleet"


def align_comments(text: str) -> str:
    """Put every trailing comment (after the template's tab) in one column."""
    lines = text.split("\n")
    widths = [len(line.split(COMMENT_MARK, 1)[0]) for line in lines if COMMENT_MARK in line]
    column = max([MIN_COMMENT_COLUMN - 2, *widths]) + 2
    return "\n".join(f"{line.split(COMMENT_MARK, 1)[0].ljust(column)}"
                     f"{line.split(COMMENT_MARK, 1)[1]}" if COMMENT_MARK in line else line
                     for line in lines)


def _answer_of(path: str, answers: Answers) -> tuple[str, str]:
    """Which answer a problem at JSON path ``path`` of the scaffold comes from."""
    match = re.match(r"\$\.spec\.secondaries\[(\d+)\]", path)
    if match and int(match.group(1)) < len(answers.secondaries):
        return "secondaries", answers.secondaries[int(match.group(1))]
    for prefix, name in (("$.metadata", "name"), ("$.spec.primary.name", "primary"),
                         ("$.spec.primary", "ingress"), ("$.spec.kasten", "version"),
                         ("$.spec.tokens.mode", "token_mode"), ("$.spec.tokens", "store"),
                         ("$.spec.gitops.engine", "engine"), ("$.spec.gitops", "repo_url")):
        if path.startswith(prefix):
            return name, str(getattr(answers, name))
    return "", ""


def scaffold_text(answers: Answers, schema_url: str = SCHEMA_URL) -> str:
    """The fleet file; validated before anyone sees it, its problems named by answer."""
    text = align_comments(render_template("init/fleet.yaml.j2", schema_url=schema_url,
                                          **vars(answers)))
    result = validate_document(load_yaml_bytes(text.encode(), "fleet.yaml"))
    problems = []
    for problem in result.problems:
        if problem.level == "error":
            name, value = _answer_of(problem.path, answers)
            problems.append((name, value, problem.message))
    if problems:
        raise BadAnswers(sorted(set(problems)))
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


def write_schema(fleet_path: str) -> str:
    """The installed fleet schema beside the fleet file, for the $schema comment; it is
    k10fleet's own copy, so it is refreshed (and left alone when already the same)."""
    target = os.path.join(os.path.dirname(os.path.abspath(fleet_path)), SCHEMA_FILE)
    content = (data_dir("schemas") / SCHEMA_FILE).read_bytes()
    try:
        with open(target, "rb") as handle:
            if handle.read() == content:
                return target
    except FileNotFoundError:
        pass
    atomic_write(target, content, 0o644)
    return target


def update_gitignore(fleet_path: str) -> tuple[str, list[str]]:
    """Add the tree's lock, render cache and staging folders to .gitignore beside the fleet
    file; returns the file and the entries it added (existing lines are kept)."""
    target = os.path.join(os.path.dirname(os.path.abspath(fleet_path)), ".gitignore")
    try:
        with open(target, encoding="utf-8") as handle:
            current = handle.read()
    except FileNotFoundError:
        current = ""
    present = {line.strip() for line in current.splitlines()}
    added = [entry for entry in GITIGNORE_ENTRIES if entry not in present]
    if added:
        head = current if not current or current.endswith("\n") else current + "\n"
        block = "# k10fleet: the output tree's lock, render cache and staging folders\n"
        atomic_write(target, (head + block + "\n".join(added) + "\n").encode(), 0o644)
    return target, added
