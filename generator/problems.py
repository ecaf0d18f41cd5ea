"""Problems are data: collected, then reported together as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

JsonPath = tuple[str | int, ...]


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
