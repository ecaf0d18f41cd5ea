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


class _KubeLoader(_Loader):  # type: ignore[valid-type,misc]
    """PyYAML with the one YAML 1.1 habit it lacks but Go's YAML (kubectl) has: y/n are
    booleans."""


_KubeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"),
                                  list("yYnN"))
_KubeLoader.add_constructor(
    "tag:yaml.org,2002:bool",
    lambda loader, node: loader.construct_scalar(node).lower() in ("y", "yes", "true", "on"))

MAX_ALIAS_EXPANSION = 100_000


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


def fast_path_safe(text: str) -> bool:
    if _ryaml is None:
        return False
    # cheap first look at the raw text; only on a hit set quoted strings and comments aside
    return not _RISKY.search("\n" + text) or not _RISKY.search("\n" + _SET_ASIDE.sub(" ", text))


_DOCUMENT_MARKER = re.compile(r"^(?:---|\.\.\.)(?:\s|$)", re.MULTILINE)


def load_plain(text: str) -> Any:
    """The fast path alone, for callers with their own slow path (the fleet loader):
    returns None when the text is not provably safe or the fast parser declines it.
    Document markers are declined too: several documents must reach the slow path."""
    if not fast_path_safe(text) or _DOCUMENT_MARKER.search(text):
        return None
    try:
        return _ryaml.loads(text)
    except Exception:
        return None


def load(text: str) -> Any:
    """One YAML document, with PyYAML's (YAML 1.1) meaning; raises PyYAML's errors."""
    if fast_path_safe(text):
        try:
            return _ryaml.loads(text)
        except Exception:
            pass
    data = yaml.load(text, Loader=_KubeLoader)
    if "*" in text and _expanded_size(data, MAX_ALIAS_EXPANSION) > MAX_ALIAS_EXPANSION:
        raise TooLarge(f"aliases expand to more than {MAX_ALIAS_EXPANSION} nodes; is this an "
                       "alias bomb?")
    return data
