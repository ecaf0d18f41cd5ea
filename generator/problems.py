"""Problems are data: collected, then reported together as text or JSON.

One type for everything k10fleet finds wrong: in a fleet file (``validate``, located by line,
column and JSON path) and in a rendered tree (``check``, located by line and the object's
kind and name). Every problem names its rule, from the one registry ``RULES`` (``RuleId``
is a Literal, so mypy rejects an unregistered id; tests/unit/test_imports.py scans the
source for ``rule="..."`` too).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

JsonPath = tuple[str | int, ...]

MAX_RUN = 200  # characters of one unbroken value (or path) shown in a message
MAX_MESSAGE = 1500
MAX_PATH_RUN = 400  # a JSON path of long keys (Helm allows 256-character keys)


def cut(text: str, *, run: int = MAX_RUN) -> str:
    """The one place that keeps messages short: a value echoed in a message (a 1 MB name,
    a pasted file) is cut to its start, and an overlong message to its start and end.
    Paths pass a larger ``run``: keys up to that length stay whole."""
    if len(text) <= run:
        return text
    text = re.sub(rf"\S{{{run + 1},}}", lambda m: f"{m.group()[:run - 40]}...("
                  f"{len(m.group())} characters)", text)
    if len(text) > MAX_MESSAGE:
        head, tail = MAX_MESSAGE * 2 // 3, MAX_MESSAGE // 4
        text = f"{text[:head]} ...({len(text) - head - tail} characters cut)... {text[-tail:]}"
    return text


def format_json_path(path: JsonPath) -> str:
    """Render ``('spec', 'secondaries', 0, 'name')`` as ``$.spec.secondaries[0].name``."""
    out = ["$"]
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part and all(c.isalnum() or c in "_-" for c in part):
            out.append(f".{part}")
        else:
            out.append("[" + json.dumps(part) + "]")
    return "".join(out)


RuleId = Literal[
    # fleet files (validate, render, inject, token import, labels input)
    "yaml", "encoding", "size", "io", "schema", "unique-names", "url", "version", "values",
    "owned-values", "fips", "namespace", "tokens", "gitops", "k10multicluster", "labels",
    "selectors", "references", "credentials", "manifest",
    # rendered trees (check)
    "objects", "object-name", "plaintext-secret", "k10-values", "kustomization",
    "kustomize-build", "drift",
    "crd", "status", "user-file", "stale-secret",
    "chart-version",
]

RULES: dict[RuleId, str] = {
    "yaml": "the file is one readable YAML document (no tabs, aliases within bounds)",
    "encoding": "the file is UTF-8",
    "size": "inputs stay within their size limits",
    "io": "the file can be read",
    "schema": "the fleet matches its JSON Schema (fields, types, enums)",
    "unique-names": "cluster names and dashboard cluster-names are unique",
    "url": "ingress URLs are absolute https (or allowed http) URLs with a path",
    "version": "K10 versions are supported and agree across the fleet",
    "values": "Helm values are JSON-compatible and keep k10fleet's keys to k10fleet",
    "owned-values": "values set no key k10fleet generates",
    "fips": "FIPS clusters are not combined with the Multi-Cluster Manager",
    "namespace": "kasten-io-mc is left to the Multi-Cluster Manager",
    "tokens": "join tokens: the mode has the store it needs, and the token input is sound",
    "gitops": "the GitOps engine has what it needs (repoURL, destinations)",
    "k10multicluster": "clusters joined by the k10multicluster tool have kube contexts",
    "labels": "label and annotation keys and values are valid and not reserved",
    "selectors": "label selectors parse and select a fleet cluster",
    "references": "policies, profiles and distributions refer to what exists",
    "credentials": "profile credentials come from a store, in a form K10 accepts",
    "manifest": "the output tree's k10fleet manifest is readable",
    "objects": "each rendered object is valid (schema, readable)",
    "object-name": "object names and data keys are ones the API server takes (warnings: "
                   "kubeconform, whose verdict check gives, does not check them)",
    "plaintext-secret": "no Secret in the tree holds an unencrypted value",
    "k10-values": "k10-values.yaml matches the K10 chart's values",
    "kustomization": "kustomizations list files that exist and are safe",
    "kustomize-build": "each cluster folder builds with kubectl kustomize",
    "drift": "the tree is what the fleet renders",
    "crd": "a --crd file holds readable CustomResourceDefinitions with usable schemas",
    "status": "join status read from the clusters (mc-join-status, Cluster objects) is sound",
    "user-file": "a file k10fleet did not write is never overwritten",
    "stale-secret": "an injected Secret was made from the inputs the fleet still has",
    "chart-version": "on Kasten's chart repository the k10 chart version is the K10 version",
}
assert set(RULES) == set(get_args(RuleId))


@dataclass(frozen=True, order=True)
class Problem:
    """One problem with a location a person (and an editor) can jump to: a fleet's file,
    line, column and JSON path, or a rendered file's line and object (``kind``/``name``);
    ``column`` 0 means the line is all that is known."""

    file: str
    line: int
    column: int
    path: str
    message: str
    level: str = "error"
    rule: RuleId = field(kw_only=True)
    kind: str = field(default="", kw_only=True)
    name: str = field(default="", kw_only=True)
    source: str = field(default="k10fleet", kw_only=True)  # or kubeconform, or both
    pointer: str = field(default="", kw_only=True)  # JSON pointer inside the object

    @property
    def object_ref(self) -> str:
        if self.kind and self.name:
            return f"{self.kind}/{self.name}"
        return self.kind

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", cut(self.message))
        object.__setattr__(self, "path", cut(self.path, run=MAX_PATH_RUN))

    def as_text(self) -> str:
        """``file:line:column: level: $.path: message`` for a fleet, ``file:line: Kind/name:
        [level: ]message [source]`` for an object in a tree."""
        if self.column:
            where = f"{self.path}: " if self.path else ""
            return f"{self.file}:{self.line}:{self.column}: {self.level}: {where}{self.message}"
        where = f"{self.object_ref}: " if self.object_ref else ""
        tag = "" if self.level == "error" else f"{self.level}: "
        source = "" if self.source == "k10fleet" else f" [{self.source}]"
        return f"{self.file}:{self.line}: {where}{tag}{self.message}{source}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def object_problem(file: str, line: int, kind: str, name: str, message: str,
                   level: str = "error", source: str = "k10fleet", pointer: str = "", *,
                   rule: RuleId = "objects") -> Problem:
    """A problem in an object of a rendered tree (``check``): located by line and object."""
    return Problem(file, line, 0, "", message, level, rule=rule, kind=kind, name=name,
                   source=source, pointer=pointer)


def has_errors(problems: Iterable[Problem]) -> bool:
    return any(p.level == "error" for p in problems)


def problems_as_text(problems: Iterable[Problem]) -> str:
    """The text reporter of validate and check alike: one line per problem."""
    return "\n".join(p.as_text() for p in problems)


def problems_as_json(problems: Sequence[Problem], **extra: object) -> str:
    errors = sum(1 for p in problems if p.level == "error")
    doc = {
        **extra,
        "valid": errors == 0,
        "errors": errors,
        "warnings": len(problems) - errors,
        "problems": [p.as_dict() for p in problems],
    }
    return json.dumps(doc, indent=2, sort_keys=False)
