"""How deep and how large a YAML document may be: the bounds every reader here keeps.

A leaf module (no YAML library): the fast reader (``fastyaml``) and the exact one
(``yaml11``) both use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# quoted strings and comments, set aside before looking at the plain parts of a line. A
# string is one only where a scalar may start (at the line's start, after '[', '{' or ',',
# or after ':', '?' or '-' and a blank) and end (before ':', ',', ']', '}', a comment or
# the line's end), and none crosses a line break (a carriage return or YAML 1.1's NEL, LS
# and PS included): a quote elsewhere is a character of a plain scalar, or part of a
# string on several lines, and ``quotes_paired`` says so
_NOT_BREAK = "\n\r\x85\u2028\u2029"
_SET_ASIDE = re.compile(
    rf"(?P<before>^[ \t]*|[\[{{,][ \t]*|[:?-][ \t]+)"
    rf"(?:\"(?:[^\"\\{_NOT_BREAK}]|\\[^{_NOT_BREAK}])*\"|'(?:[^'{_NOT_BREAK}]|'')*')"
    rf"(?=[ \t]*(?:[:,\]}}#]|$))|(?:^|(?<=[ \t]))#[^{_NOT_BREAK}]*")


def set_aside(line: str) -> str:
    """One line, its strings and comment replaced by a blank (what comes before a string
    is kept: a bracket, a comma, an indicator)."""
    return _SET_ASIDE.sub(r"\g<before> ", line)


def quotes_paired(text: str) -> bool:
    """Whether every quote of the text belongs to a string or a comment ``set_aside`` takes
    whole, on its own line: then setting them aside line by line leaves exactly the plain
    parts (no string spans lines, and no quote is a plain scalar's)."""
    if '"' not in text and "'" not in text:
        return True
    return not any(('"' in line or "'" in line)
                   and ('"' in (rest := set_aside(line)) or "'" in rest)
                   for line in text.split("\n"))


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


def plain_lines(pattern: re.Pattern[str], text: str, offset: int = 0) -> Iterator[str]:
    """Each line of ``text`` where ``pattern`` has a raw match, with its quoted strings and
    comments set aside. None of those crosses a line break, so these are the lines of the
    whole text set aside that can matter, at the cost of those lines alone; ``offset``: where
    in a match its first character of content is (a token's match starts at the delimiter
    before it, which may be the newline ending the line before)."""
    position = 0
    while (hit := pattern.search(text, position)) is not None:
        char = hit.start() + offset
        line_start = text.rfind("\n", 0, char) + 1
        line_end = text.find("\n", char)
        line_end = len(text) if line_end < 0 else line_end
        yield set_aside(text[line_start:line_end])
        position = line_end  # its newline may be where the next line's token starts


def _flow_too_deep(text: str) -> bool:
    """Flow nesting, counted on the lines that hold a bracket."""
    depth = 0
    for line in plain_lines(_BRACKET, text):
        for match in _BRACKET.finditer(line):
            depth = depth + 1 if match.group() in "[{" else max(0, depth - 1)
            if depth > MAX_DEPTH:
                return True
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
