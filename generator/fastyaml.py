"""Parse YAML with PyYAML's meaning at a Rust parser's speed, where the two provably agree.

Kubernetes tools read YAML with YAML 1.1 habits (``yes`` is true), as PyYAML does;
``ryaml`` (serde_yaml on a Rust port of libyaml: the same syntax as PyYAML's C loader)
resolves scalars the YAML 1.2 way and is 5x faster (42 against 206 us a document of a
rendered tree). A document takes the fast path only if, once quoted strings and comments
are set aside, it has none of the constructs where the two differ: 1.1 booleans,
number-like tokens other than plain decimals, tags, anchors, aliases, merge keys,
directives and Unicode line breaks. Anything else, and any fast-path failure, goes to
PyYAML. yaml_rs (saphyr, 14 us) was measured and refused: its YAML 1.2 syntax takes
documents libyaml rejects (tabs as indentation, empty keys), and it reads ``_1`` or
``+.2_`` as numbers. A differential test in tests/unit/test_fastyaml.py holds the two to
the same result.
"""

from __future__ import annotations

import re
from typing import Any

from generator.yamllimits import MAX_DEPTH, may_be_too_deep, plain_lines

_fast_parser: Any
try:
    import ryaml as _fast_parser
except ImportError:  # pragma: no cover - the fast path is optional
    _fast_parser = None

_END = r"(?=:?(?:\s|$)|[\]},])"
# plain decimals, and dotted versions (7.5.2: a string to every reader)
_PURE_NUMBER = r"(?:-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?|[0-9]{1,9}(?:\.[0-9]{1,9}){2,})"


# whole-line comments at the start (a carriage return or a YAML 1.1 line break ends a
# comment: what follows it is content)
_HEADER = re.compile("(?:#[^\n\r\x85\u2028\u2029]*\n)+")
# tags, anchors, aliases, directives, merge keys, and the line breaks only YAML 1.1 knows
_SPECIAL = re.compile(r"[!&*%<\x85\u2028\u2029\ufeff]")
# a plain token the two read differently: a YAML 1.1 boolean, a number-like token that is
# not a plain decimal (dates, octal, 1e3, 1_000, 10:30, .5, _1...), YAML 1.1's value key '='
_RISKY_TOKEN = re.compile(rf"[\s\[{{,:](?=[yYnNoO=+._0-9-])(?:(?i:y|n|yes|no|on|off){_END}"
                          rf"|(?!{_PURE_NUMBER}{_END})[-+]?[._0-9]|={_END})")
# block nesting the fast path declines (about a level per character of indentation): a line
# that starts so, found from its newline (a literal first: four times the speed of ^ in
# multi-line mode), or the text's first line
_DEEP_LINE = re.compile(rf"\n[ \t?-]{{{MAX_DEPTH}}}")
_DEEP_FIRST_LINE = re.compile(rf"[ \t?-]{{{MAX_DEPTH}}}")
_DECLINED = object()


def _may_have_special(text: str) -> bool:
    if not text.isascii() and _SPECIAL.search(text):
        return True
    return "!" in text or "&" in text or "*" in text or "%" in text or "<" in text


def _real_hit(pattern: re.Pattern[str], text: str, offset: int) -> bool:
    """Whether ``pattern`` matches outside quoted strings and comments: each raw hit is
    looked at again on its own line, so that a text full of quoted look-alikes costs a look
    per such line, not a pass over the whole text."""
    return any(pattern.search(f"\n{line}\n") for line in plain_lines(pattern, text, offset))


def _plain_parts_safe(body: str) -> bool:
    """Neither special characters nor risky tokens outside quoted strings and comments."""
    if _may_have_special(body) and _real_hit(_SPECIAL, body, 0):
        return False
    return not _real_hit(_RISKY_TOKEN, body, 1)


def _one_document(text: str) -> bool:
    """No marker after the first line (a stream must reach PyYAML, which splits it)."""
    return "\n---" not in text and "\n..." not in text and not text.startswith("...")


def header_end(text: str) -> int:
    """Where the leading block of whole-line comments (generated files' header) ends."""
    header = _HEADER.match(text)
    return header.end() if header else 0


def _fast(text: str) -> Any:
    """The fast parser's reading of one document, or ``_DECLINED`` unless it provably means
    what PyYAML's does (and nests at most about ``MAX_DEPTH`` levels)."""
    end = header_end(text)  # the leading comment block (generated files' header) left out
    body = text[end - 1:] if end else "\n" + text
    if _fast_parser is None or not _one_document(text) or _DEEP_LINE.search(text) \
            or _DEEP_FIRST_LINE.match(text) or not _plain_parts_safe(body) \
            or may_be_too_deep(text, block=False):
        return _DECLINED
    try:
        return _fast_parser.loads(body)
    except Exception:
        return _DECLINED


def fast_path_safe(text: str) -> bool:
    """Whether ``load`` reads this text with the fast parser."""
    return _fast(text) is not _DECLINED


def load_plain(text: str) -> Any:
    """The fast path alone, for callers with their own slow path (the fleet loader):
    returns None when the text is not provably safe or the fast parser declines it.
    Document markers are declined too: several documents must reach the slow path."""
    if _DOCUMENT_MARKER.search("\n" + text):
        return None
    data = _fast(text)
    return None if data is _DECLINED else data


# a marker line, found from its newline (the caller puts one before the text)
_DOCUMENT_MARKER = re.compile(r"\n(?:---|\.\.\.)(?:\s|$)")


def load(text: str) -> Any:
    """One YAML document, with PyYAML's (YAML 1.1) meaning; raises PyYAML's errors, and
    ``TooDeep`` or ``TooLarge`` for nesting or alias bombs."""
    data = _fast(text)
    if data is not _DECLINED:
        return data
    from generator import yaml11  # PyYAML is imported only when a document needs it

    return yaml11.load(text)
