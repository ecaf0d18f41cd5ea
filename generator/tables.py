"""Text tables of cluster data, safe to print on a terminal or in a CI log.

Cluster data (a join status message, a label key read from a Cluster object) is untrusted: an
escape code in it could repaint the terminal, a newline could forge a table row. ``clean``
shows every control, format or line-separator character as a visible escape, and cuts long
values.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

_UNSAFE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def _visible(char: str) -> str:
    if unicodedata.category(char) not in _UNSAFE:
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


def clean(text: str, limit: int = 200) -> str:
    """``text`` as one printable line of at most ``limit`` characters (then ``...``)."""
    cut = text[:limit * 2]  # never walk a multi-MB value just to shorten it
    safe = "".join(_visible(c) for c in cut)
    return safe if len(safe) <= limit and len(cut) == len(text) else safe[:limit - 3] + "..."


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell (the last column is not padded); cells cleaned."""
    lines = [list(header)] + [[clean(cell, 300) for cell in row] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)),
                                line[-1]]).rstrip() for line in lines)
