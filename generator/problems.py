"""Problems are data: collected, then reported together as text or JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

JsonPath = tuple[str | int, ...]

MAX_RUN = 200  # characters of one unbroken value (or path) shown in a message
MAX_MESSAGE = 1500
_LONG_RUN = re.compile(rf"\S{{{MAX_RUN + 1},}}")


def cut(text: str, *, values: bool = True) -> str:
    """The one place that keeps messages short: a value echoed in a message (a 1 MB name,
    a pasted file) is cut to its start, and an overlong message to its start and end.
    ``values=False`` keeps unbroken runs (a JSON path of long keys) and cuts only the whole."""
    if len(text) <= MAX_RUN:
        return text
    if values:
        text = _LONG_RUN.sub(lambda m: f"{m.group()[:MAX_RUN - 40]}...({len(m.group())} "
                             "characters)", text)
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
        object.__setattr__(self, "path", cut(self.path, values=False))

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
