"""Parse YAML with PyYAML's meaning at a Rust parser's speed, where the two provably agree.

Kubernetes tools read YAML with YAML 1.1 habits (``yes`` is true), as PyYAML does;
``ryaml`` (serde_yaml) follows YAML 1.2 and is about 5x faster. A document takes the fast
path only if, once quoted strings and comments are set aside, it contains none of the
constructs where the two differ: 1.1 booleans, number-like tokens other than plain
decimals, tags, anchors, aliases, merge keys, directives and Unicode line breaks.
Anything else, and any fast-path failure, goes to PyYAML. A differential test in
tests/unit/test_fastyaml.py holds the two to the same result.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_ryaml: Any
try:
    import ryaml as _ryaml
except ImportError:  # pragma: no cover - the fast path is optional
    _ryaml = None

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

_SET_ASIDE = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\n]|\'\')*\'|(?:^|[ \t])#[^\n]*', re.M)
_END = r"(?=:?(?:\s|$)|[\]},])"
# plain decimals, and dotted versions (7.5.2: a string to every reader)
_PURE_NUMBER = r"(?:-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?|[0-9]{1,9}(?:\.[0-9]{1,9}){2,})"
_RISKY = re.compile(
    rf"[\s\[{{,](?:(?i:y|n|yes|no|on|off){_END}"  # YAML 1.1 booleans
    rf"|(?!{_PURE_NUMBER}{_END})[-+.]?[0-9]"  # dates, octal, 1e3, 1_000, 10:30, big ints...
    rf"|={_END})"  # a lone '=' is YAML 1.1's value key (env=prod is only text)
    r"|[!&*%<\x85\u2028\u2029\ufeff]",  # tags, anchors, aliases, directives, merge keys
)


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


def fast_path_safe(text: str) -> bool:
    if _ryaml is None:
        return False
    # cheap first look at the raw text (after a leading comment block, such as the header of
    # generated files); only on a hit set quoted strings and comments aside
    header = _HEADER.match(text)
    body = text[header.end() - 1:] if header else "\n" + text
    return not _RISKY.search(body) or not _RISKY.search("\n" + _SET_ASIDE.sub(" ", text))


_DOCUMENT_MARKER = re.compile(r"^(?:---|\.\.\.)(?:\s|$)", re.MULTILINE)


def load_plain(text: str) -> Any:
    """The fast path alone, for callers with their own slow path (the fleet loader):
    returns None when the text is not provably safe or the fast parser declines it.
    Document markers are declined too: several documents must reach the slow path."""
    if not fast_path_safe(text) or _DOCUMENT_MARKER.search(text) \
            or may_be_too_deep(text, block=False):
        return None  # the caller's own loader bounds depth itself
    try:
        return _ryaml.loads(text)
    except Exception:
        return None


def load(text: str) -> Any:
    """One YAML document, with PyYAML's (YAML 1.1) meaning; raises PyYAML's errors, and
    ``TooDeep`` or ``TooLarge`` for nesting or alias bombs."""
    deep = may_be_too_deep(text, block=False)
    if not deep and fast_path_safe(text):
        try:
            return _ryaml.loads(text)  # at most 128 levels deep, or it fails
        except Exception:
            pass
    check_depth(text, suspect=deep)
    data = yaml.load(text, Loader=_KubeLoader)
    if "*" in text and _expanded_size(data, MAX_ALIAS_EXPANSION) > MAX_ALIAS_EXPANSION:
        raise TooLarge(f"aliases expand to more than {MAX_ALIAS_EXPANSION} nodes; is this an "
                       "alias bomb?")
    return data
