"""How deep and how large a YAML document may be: the bounds every reader here keeps.

A leaf module (no YAML library): the fast reader (``fastyaml``) and the exact one
(``yaml11``) both use it.
"""

from __future__ import annotations

import re
from typing import Any

# quoted strings and comments, set aside before looking at the plain parts of a text; none
# crosses a line break (a carriage return or YAML 1.1's NEL, LS and PS included): past one,
# a comment has ended, and a quote may have been an apostrophe in a plain scalar
SET_ASIDE = re.compile('"(?:[^"\\\\\n\r\x85\u2028\u2029]|\\\\[^\n\r\x85\u2028\u2029])*"'
                       "|'(?:[^'\n\r\x85\u2028\u2029]|'')*'"
                       "|(?:^|[ \t])#[^\n\r\x85\u2028\u2029]*", re.M)


class TooLarge(Exception):
    """A document whose aliases expand beyond the budget (an alias bomb)."""


class TooDeep(TooLarge):
    """A document nested deeper than ``MAX_DEPTH`` (both parsers are quadratic in flow depth)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line  # 0-based, inside the parsed text


MAX_ALIAS_EXPANSION = 100_000
MAX_DEPTH = 100  # no Kubernetes object or fleet comes near; libyaml and ryaml are O(depth²)
_BRACKET = re.compile(r"[\[\]{}]")
_DEEP_BLOCK = re.compile(rf"^[ \t?-]{{{2 * MAX_DEPTH},}}", re.M)


def may_be_too_deep(text: str, *, block: bool = True) -> bool:
    """Linear and cheap: False proves the text nests at most ``MAX_DEPTH`` levels (in flow
    style only, with ``block=False``: enough before ryaml, whose recursion limit bounds the
    rest)."""
    if block and _DEEP_BLOCK.search(text):
        return True
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    return _flow_too_deep(text)


def _flow_too_deep(text: str) -> bool:
    """Flow nesting, counted on the lines that hold a bracket, each with its quoted strings
    and comments set aside (none crosses a line break, so this is the count over the whole
    text with them set aside, at the cost of the bracket lines alone)."""
    depth = position = 0
    while (hit := _BRACKET.search(text, position)) is not None:
        line_start = text.rfind("\n", 0, hit.start()) + 1
        line_end = text.find("\n", hit.start())
        line_end = len(text) if line_end < 0 else line_end
        for match in _BRACKET.finditer(SET_ASIDE.sub(" ", text[line_start:line_end])):
            depth = depth + 1 if match.group() in "[{" else max(0, depth - 1)
            if depth > MAX_DEPTH:
                return True
        position = line_end
    return False


def expanded_size(data: Any, budget: int) -> int:
    """Nodes a consumer will walk, aliases expanded; stops counting past ``budget``."""
    seen = 0
    stack = [data]
    while stack:
        item = stack.pop()
        seen += 1
        if seen > budget:
            return seen
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return seen
