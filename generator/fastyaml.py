"""Parse YAML with PyYAML's meaning at a Rust parser's speed, where they provably agree.

Kubernetes tools read YAML with YAML 1.1 habits (``yes`` is true), as PyYAML does; the Rust
parsers resolve scalars the YAML 1.2 way and are 5 to 10 times faster. A document takes a
fast path only if, once quoted strings and comments are set aside, it has none of the
constructs where the readings differ: 1.1 booleans, number-like tokens other than plain
decimals (or a number as a key, which Python would merge with a boolean key), tags,
anchors, aliases, merge keys, directives and Unicode line breaks. Anything else, and any
fast-path failure, goes to PyYAML. Two fast parsers:

- ``yaml_rs`` (saphyr, 30 us a rendered Argo CD Application) for *plain syntax*: printable
  ASCII without tabs, carriage returns or backslashes, and no flow collection, block
  scalar, complex key or empty key outside quoted strings and comments. Its YAML 1.2
  syntax accepts more than libyaml does (control characters, tabs, empty keys), all of it
  outside that subset;
- ``ryaml`` (serde_yaml on a Rust port of libyaml: PyYAML's own syntax, 60 us) for the rest.

Differential tests in tests/unit/test_fastyaml.py hold both to PyYAML's result.
"""

from __future__ import annotations

import re
from typing import Any

from generator.yamllimits import MAX_DEPTH, may_be_too_deep, plain_lines, quotes_paired

_fast_parser: Any
try:
    import ryaml as _fast_parser
except ImportError:  # pragma: no cover - the fast path is optional
    _fast_parser = None

_END = r"(?=:?(?:\s|$)|[\]},])"
_NUMBER_END = r"(?=\s|$|[\]},])"  # a number followed by ':' is a key: declined (see above)
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
                          rf"|(?!{_PURE_NUMBER}{_NUMBER_END})[-+]?[._0-9]|={_END})")
# block nesting the fast path declines (about a level per character of indentation): a line
# that starts so, found from its newline (a literal first: four times the speed of ^ in
# multi-line mode), or the text's first line
_DEEP_LINE = re.compile(rf"\n[ \t?-]{{{MAX_DEPTH}}}")
_DEEP_FIRST_LINE = re.compile(rf"[ \t?-]{{{MAX_DEPTH}}}")
_DECLINED = object()

_subset_loads: Any
try:
    from yaml_rs import DuplicateKeyPolicy as _Duplicates
    from yaml_rs._yaml_rs import _loads as _subset_loads  # the wrapper only passes arguments
except ImportError:  # pragma: no cover - optional, like the fast parser
    _subset_loads = None

# printable ASCII and the line feed: what plain syntax may hold (bytes.translate deletes
# them; anything left is a control character, a tab or a carriage return)
_PLAIN_BYTES = bytes(range(0x20, 0x7F)) + b"\n"
# a flow collection, a block scalar, a complex key (syntax libyaml and saphyr part ways on)
_FLOW_OR_BLOCK = re.compile(r"[?\[{|>]")
# an empty key: a line (or a sequence entry) that starts with ':'
_EMPTY_KEY = re.compile(r"\n[ -]*:")


def _plain_syntax(body: str) -> bool:
    """Whether saphyr reads this body (from a line break) as libyaml does: the subset of
    YAML that ``yaml_rs`` may parse (see the module's docstring)."""
    if not body.isascii() or "\\" in body or body.encode().translate(None, _PLAIN_BYTES):
        return False
    if _EMPTY_KEY.search(body):
        return False
    return not (("?" in body or "[" in body or "{" in body or "|" in body or ">" in body)
                and _real_hit(_FLOW_OR_BLOCK, body, 0))


def _may_have_special(text: str) -> bool:
    if not text.isascii() and _SPECIAL.search(text):
        return True
    return "!" in text or "&" in text or "*" in text or "%" in text or "<" in text


def _real_hit(pattern: re.Pattern[str], text: str, offset: int) -> bool:
    """Whether ``pattern`` matches outside quoted strings and comments: each raw hit is
    looked at again on its own line, so that a text full of quoted look-alikes costs a look
    per such line, not a pass over the whole text. With a raw hit, quotes that cannot be
    set aside line by line (a string on several lines, a quote in a plain scalar) count as
    a hit: the text might hide one."""
    lines = plain_lines(pattern, text, offset)
    first = next(lines, None)
    if first is None:
        return False
    if not quotes_paired(text):
        return True
    return bool(pattern.search(f"\n{first}\n")) or any(pattern.search(f"\n{line}\n")
                                                        for line in lines)


def _plain_parts_safe(body: str) -> bool:
    """Neither special characters nor risky tokens outside quoted strings and comments."""
    if _may_have_special(body) and _real_hit(_SPECIAL, body, 0):
        return False
    if _SUPERSET_SCAN.clears(body):
        return True
    return not _real_hit(_RISKY_TOKEN, body, 1)


# Python's regular expressions look at each character of a long document for ~20 ns while
# looking for a risky token: the slowest step of the proof. RE2 (a DFA, ~3 ns a byte) looks
# first for a *superset* of what ``_RISKY_TOKEN`` finds, written without lookarounds (which
# RE2 lacks): every sign, dot or underscore start, every number but 0 and 1-9999 without a
# leading zero (``factor: 2``, ``limit: 10``: the numbers of a rendered manifest), and the
# risky words. No match of it proves the text has no risky token (a test holds it to that);
# a match sends the text to the exact scan. ``\s`` is spelled out: RE2's omits \v and
# \x1c-\x1f, which Python's includes.
_WS = r"\t\n\x0b\x0c\r\x1c-\x1f "
_WORD_END = rf"(?::?(?:[{_WS}]|$)|[\]}},])"
RISKY_SUPERSET = (rf"[{_WS}\[{{,:](?:(?i:y|n|yes|no|on|off){_WORD_END}|={_WORD_END}"
                  rf"|[-+][._0-9]|[._]|0[0-9]|[0-9](?:[0-9]{{0,3}}[^0-9{_WS}\]}},]|[0-9]{{4}}))")


class _SupersetScan:
    """The RE2 scan, from the 200th document a process looks at (importing RE2 costs 4 ms:
    more than a small tree's scans)."""

    _FROM = 200

    def __init__(self) -> None:
        self._seen = 0
        self._search: Any = None

    def clears(self, body: str) -> bool:
        """True proves ``_RISKY_TOKEN`` finds nothing in ``body`` (False proves nothing)."""
        if self._search is None:
            self._seen += 1
            if self._seen < self._FROM:
                return False
            self._search = _compiled_superset()
        return body.isascii() and self._search(body.encode()) is None


def _compiled_superset() -> Any:
    import re2  # type: ignore[import-untyped]  # see _SupersetScan

    options = re2.Options()
    options.max_mem = 8 << 20
    options.log_errors = False
    return re2.compile(RISKY_SUPERSET.encode(), options).search


_SUPERSET_SCAN = _SupersetScan()


def _one_document(text: str) -> bool:
    """No marker after the first line (a stream must reach PyYAML, which splits it)."""
    return "\n---" not in text and "\n..." not in text and not text.startswith("...")


def header_end(text: str) -> int:
    """Where the leading block of whole-line comments (generated files' header) ends."""
    header = _HEADER.match(text)
    return header.end() if header else 0


def _fast(text: str, end: int | None = None) -> Any:
    """The fast parsers' reading of one document, or ``_DECLINED`` unless it provably means
    what PyYAML's does (and nests at most about ``MAX_DEPTH`` levels). ``end``: where the
    leading comment block (generated files' header, left out) ends, if known."""
    end = header_end(text) if end is None else end
    body = text[end - 1:] if end else "\n" + text
    if _fast_parser is None or not _one_document(text) or _DEEP_LINE.search(text) \
            or _DEEP_FIRST_LINE.match(text) or not _plain_parts_safe(body) \
            or may_be_too_deep(text, block=False):
        return _DECLINED
    try:
        if _subset_loads is not None and _plain_syntax(body):
            return _subset_loads(body, parse_datetime=False, alias_limits=None,
                                 duplicate_key_policy=_Duplicates.Error)
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


def load(text: str, header: int | None = None) -> Any:
    """One YAML document, with PyYAML's (YAML 1.1) meaning; raises PyYAML's errors, and
    ``TooDeep`` or ``TooLarge`` for nesting or alias bombs. ``header``: ``header_end(text)``,
    if the caller has it."""
    data = _fast(text, header)
    if data is not _DECLINED:
        return data
    from generator import yaml11  # PyYAML is imported only when a document needs it

    return yaml11.load(text)
