"""What ``check`` reports: one finding per problem, naming file, line, object and source."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Finding:
    file: str
    line: int
    kind: str
    name: str
    message: str
    level: str = "error"
    source: str = "k10fleet"
    pointer: str = ""  # JSON pointer inside the object, used to de-duplicate sources

    @property
    def object_ref(self) -> str:
        if self.kind and self.name:
            return f"{self.kind}/{self.name}"
        return self.kind

    def as_text(self) -> str:
        where = f"{self.object_ref}: " if self.object_ref else ""
        tag = "" if self.level == "error" else f"{self.level}: "
        source = "" if self.source == "k10fleet" else f" [{self.source}]"
        return f"{self.file}:{self.line}: {where}{tag}{self.message}{source}"
