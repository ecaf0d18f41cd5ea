"""Problems are data: collected, then reported together as text or JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

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


@dataclass(frozen=True, order=True)
class Problem:
    """One finding with a location a person (and an editor) can jump to."""

    file: str
    line: int
    column: int
    path: str
    message: str
    level: str = "error"
    rule: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", cut(self.message))
        object.__setattr__(self, "path", cut(self.path, run=MAX_PATH_RUN))

    def as_text(self) -> str:
        location = f"{self.file}:{self.line}:{self.column}"
        where = f"{self.path}: " if self.path else ""
        return f"{location}: {self.level}: {where}{self.message}"


def has_errors(problems: Iterable[Problem]) -> bool:
    return any(p.level == "error" for p in problems)


def problems_as_json(problems: Sequence[Problem], **extra: object) -> str:
    errors = sum(1 for p in problems if p.level == "error")
    doc = {
        **extra,
        "valid": errors == 0,
        "errors": errors,
        "warnings": len(problems) - errors,
        "problems": [asdict(p) for p in problems],
    }
    return json.dumps(doc, indent=2, sort_keys=False)
