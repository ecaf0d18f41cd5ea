"""A small, strict YAML emitter for generated files.

Why not ``yaml.dump``: PyYAML resolves scalars with YAML 1.1 rules of its own
and emits e.g. the string ``1e3`` plain, which Go's YAML (Helm, kustomize,
kubectl) reads back as a number. Here a string is emitted plain only when it
is unambiguous to every YAML 1.1 and 1.2 reader; anything else is
double-quoted with escapes, so every string round-trips byte for byte.
"""

from __future__ import annotations

import math
import re
from typing import Any

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@:-]*\Z")
_RESERVED = frozenset(
    ["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"]
)


def _escape_table() -> dict[int, str]:
    table: dict[int, str] = {ord("\\"): "\\\\", ord('"'): '\\"'}
    named = {"\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v",
             "\f": "\\f", "\r": "\\r", "\x1b": "\\e", "\x85": "\\N", "\xa0": "\\_",
             "\u2028": "\\L", "\u2029": "\\P"}
    for code in [*range(0x20), *range(0x7F, 0xA0)]:
        table[code] = named.get(chr(code), f"\\x{code:02x}")
    for char, escape in named.items():
        table[ord(char)] = escape
    for code in [*range(0xD800, 0xE000), 0xFEFF, 0xFFFE, 0xFFFF]:
        table[code] = f"\\u{code:04x}"
    return table


_ESCAPES = _escape_table()


def quote(text: str) -> str:
    """Double-quoted YAML scalar that reads back as exactly ``text``."""
    return '"' + text.translate(_ESCAPES) + '"'


_STRING_CACHE: dict[str, str] = {}


def _string(value: str) -> str:
    cached = _STRING_CACHE.get(value)
    if cached is None:
        plain = (_PLAIN.match(value) and not value.endswith(":")
                 and value.lower() not in _RESERVED)
        cached = value if plain else quote(value)
        if len(_STRING_CACHE) < 100_000:  # names and values repeat across clusters
            _STRING_CACHE[value] = cached
    return cached


def scalar(value: Any) -> str:
    """One YAML scalar for a str, int, float, bool or None."""
    if type(value) is str:
        return _string(value)
    if isinstance(value, str):
        return _string(str(value))
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    raise TypeError(f"cannot emit {type(value).__name__} as YAML")


def _text(value: Any) -> str:
    """:func:`scalar`, with the common case (a string met before) first."""
    if type(value) is str:
        cached = _STRING_CACHE.get(value)
        if cached is not None:
            return cached
    return scalar(value)


def _lines(value: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for key, child in value.items():
            if type(child) is str and child in _STRING_CACHE:  # most leaves: inline
                out.append(f"{pad}{_text(key)}: {_STRING_CACHE[child]}")
            else:
                _entry(f"{pad}{_text(key)}:", child, indent, out, True)
    else:
        for child in value:
            if isinstance(child, dict) and child:
                prefix = f"{pad}- "
                for key, grandchild in child.items():
                    _entry(f"{prefix}{_text(key)}:", grandchild, indent + 2, out, True)
                    prefix = f"{pad}  "
            else:
                _entry(f"{pad}-", child, indent, out, False)


def _entry(head: str, value: Any, indent: int, out: list[str], keyed: bool) -> None:
    """``head`` and ``value``; a sequence under a mapping key (``keyed``) sits at the key's
    indentation (kubectl style), one under a list dash two columns in."""
    if isinstance(value, dict):
        if value:
            out.append(head)
            _lines(value, indent + 2, out)
        else:
            out.append(head + " {}")
    elif isinstance(value, list | tuple):
        if value:
            out.append(head)
            _lines(value, indent if keyed else indent + 2, out)
        else:
            out.append(head + " []")
    else:
        out.append(f"{head} {_text(value)}")


def dump(value: dict[str, Any]) -> str:
    """Block-style document for a mapping, LF line ends, final newline."""
    if not value:
        return "{}\n"
    out: list[str] = []
    _lines(value, 0, out)
    return "\n".join(out) + "\n"


def field(key: str, value: Any, indent: int = 0) -> str:
    """``key: value`` at ``indent``, for templates (no trailing newline)."""
    out: list[str] = []
    _entry(f"{' ' * indent}{scalar(key)}:", value, indent, out, True)
    return "\n".join(out)
