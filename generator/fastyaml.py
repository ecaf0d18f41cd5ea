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

import yaml

_fast_parser: Any
try:
    import ryaml as _fast_parser
except ImportError:  # pragma: no cover - the fast path is optional
    _fast_parser = None

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

_SET_ASIDE = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\n]|\'\')*\'|(?:^|[ \t])#[^\n]*', re.M)
_END = r"(?=:?(?:\s|$)|[\]},])"
# plain decimals, and dotted versions (7.5.2: a string to every reader)
_PURE_NUMBER = r"(?:-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?|[0-9]{1,9}(?:\.[0-9]{1,9}){2,})"


class TooLarge(Exception):
    """A document whose aliases expand beyond the budget (an alias bomb)."""


class TooDeep(TooLarge):
    """A document nested deeper than ``MAX_DEPTH`` (both parsers are quadratic in flow depth)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line  # 0-based, inside the parsed text


class _KubeLoader(_Loader):  # type: ignore[valid-type,misc]
    """PyYAML with the one YAML 1.1 habit it lacks but Go's YAML (kubectl) has: y/n are
    booleans."""


    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        """Duplicate keys are an error, as in Go's YAML (kubectl, kubeconform)."""
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: PyYAML reports it below
                    continue
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {str(key)[:80]!r} (first at line "
                        f"{first.start_mark.line + 1})", key_node.start_mark)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _or_text(construct: Any) -> Any:
    """A constructor that keeps a scalar it cannot convert as text, as Go's YAML does (kubectl
    and kubeconform read ``0b_``, ``2024-13-45`` or a 5,000-digit number as strings)."""
    def constructor(loader: _KubeLoader, node: yaml.ScalarNode) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, OverflowError):
            return loader.construct_scalar(node)
    return constructor


for _tag, _construct in (("int", _Loader.construct_yaml_int),
                         ("float", _Loader.construct_yaml_float),
                         ("timestamp", _Loader.construct_yaml_timestamp)):
    _KubeLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _or_text(_construct))

_KubeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"),
                                  list("yYnN"))
_KubeLoader.add_constructor(
    "tag:yaml.org,2002:bool",
    lambda loader, node: loader.construct_scalar(node).lower() in ("y", "yes", "true", "on"))

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
    depth = 0
    for match in _BRACKET.finditer(_SET_ASIDE.sub(" ", text)):
        depth = depth + 1 if match.group() in "[{" else max(0, depth - 1)
        if depth > MAX_DEPTH:
            return True
    return False


def check_depth(text: str, *, suspect: bool = False) -> None:
    """Raise ``TooDeep`` (located) if the document nests deeper than ``MAX_DEPTH``; reads
    events only up to that depth, so hostile nesting costs O(MAX_DEPTH²), not O(depth²)."""
    if not suspect and not may_be_too_deep(text):
        return
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line, column = (event.start_mark.line, event.start_mark.column) \
                    if event.start_mark else (0, 0)
                raise TooDeep(line, f"nested deeper than {MAX_DEPTH} levels (column "
                              f"{column + 1}); not a Kubernetes object")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _expanded_size(data: Any, budget: int) -> int:
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


_HEADER = re.compile(r"(?:#[^\n]*\n)+")
# tags, anchors, aliases, directives, merge keys, and the line breaks only YAML 1.1 knows
_SPECIAL = re.compile(r"[!&*%<\x85\u2028\u2029\ufeff]")
# a plain token the two read differently: a YAML 1.1 boolean, a number-like token that is
# not a plain decimal (dates, octal, 1e3, 1_000, 10:30, .5, _1...), YAML 1.1's value key '='
_RISKY_TOKEN = re.compile(rf"[\s\[{{,:](?=[yYnNoO=+._0-9-])(?:(?i:y|n|yes|no|on|off){_END}"
                          rf"|(?!{_PURE_NUMBER}{_END})[-+]?[._0-9]|={_END})")
# block nesting the fast path declines (about a level per character of indentation)
_DEEP_FOR_FAST = re.compile(rf"^[ \t?-]{{{MAX_DEPTH},}}", re.M)
_DECLINED = object()


def _has_special(text: str) -> bool:
    if not text.isascii() and _SPECIAL.search(text):
        return True
    return "!" in text or "&" in text or "*" in text or "%" in text or "<" in text


def _has_risky_token(text: str) -> bool:
    return _RISKY_TOKEN.search(text) is not None


def _plain_parts_safe(text: str, body: str) -> bool:
    """Neither special characters nor risky tokens outside quoted strings and comments: a
    cheap look at the body first, and only on a hit a second look at the whole text with
    quotes and comments set aside."""
    if not _has_special(body) and not _has_risky_token(body):
        return True
    plain = "\n" + _SET_ASIDE.sub(" ", text)
    return not _has_special(plain) and not _has_risky_token(plain)


def _one_document(text: str) -> bool:
    """No marker after the first line (a stream must reach PyYAML, which splits it)."""
    return "\n---" not in text and "\n..." not in text and not text.startswith("...")


def _fast(text: str) -> Any:
    """The fast parser's reading of one document, or ``_DECLINED`` unless it provably means
    what PyYAML's does (and nests at most about ``MAX_DEPTH`` levels)."""
    header = _HEADER.match(text)  # the leading comment block (generated files' header)
    body = text[header.end() - 1:] if header else "\n" + text  # what is left to parse
    if _fast_parser is None or not _one_document(text) or _DEEP_FOR_FAST.search(text) \
            or may_be_too_deep(text, block=False) or not _plain_parts_safe(text, body):
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
    if _DOCUMENT_MARKER.search(text):
        return None
    data = _fast(text)
    return None if data is _DECLINED else data


_DOCUMENT_MARKER = re.compile(r"^(?:---|\.\.\.)(?:\s|$)", re.MULTILINE)


def load(text: str) -> Any:
    """One YAML document, with PyYAML's (YAML 1.1) meaning; raises PyYAML's errors, and
    ``TooDeep`` or ``TooLarge`` for nesting or alias bombs."""
    data = _fast(text)
    if data is not _DECLINED:
        return data
    check_depth(text)
    data = yaml.load(text, Loader=_KubeLoader)
    if "*" in text and _expanded_size(data, MAX_ALIAS_EXPANSION) > MAX_ALIAS_EXPANSION:
        raise TooLarge(f"aliases expand to more than {MAX_ALIAS_EXPANSION} nodes; is this an "
                       "alias bomb?")
    return data
