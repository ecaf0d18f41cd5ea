"""Kubernetes label selectors (the string form ``kubectl -l`` takes), parsed and matched.

K10 matches Distribution and K10ClusterRoleBinding selectors against the labels of its
Cluster objects; k10fleet matches them against the fleet's labels to catch selectors that
select nothing, before anything reaches a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_KEY = re.compile(rf"(?:(?P<prefix>{_PREFIX})/)?(?P<name>{_NAME})\Z")
_VALUE = re.compile(rf"(?:{_NAME})?\Z")
_OPERATORS = frozenset(("==", "!=", "=", "(", ")", ",", "!", "<", ">"))
# Kubernetes' lexer knows only these four whitespace characters (not Unicode spaces)
_TOKEN = re.compile(r"[ \t\r\n]*(?:(?P<op>==|!=|=|\(|\)|,|!|<|>)|(?P<word>[^ \t\r\n,()=!<>]+))")
_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_INT64 = 2**63


class SelectorError(ValueError):
    """A selector that Kubernetes (and so K10) would refuse."""


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes label key, or None."""
    match = _KEY.match(key)
    if not match:
        return (f"{key!r} is not a label key: [prefix/]name, the name made of letters, digits, "
                "'-', '_' and '.', starting and ending with a letter or digit")
    if len(match.group("name")) > 63:
        return f"label key {key!r}: the name part is longer than 63 characters"
    if match.group("prefix") and len(match.group("prefix")) > 253:
        return f"label key {key!r}: the prefix is longer than 253 characters"
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > 63 or not _VALUE.match(value):
        return (f"{value!r} is not a label value: at most 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # in | notin | exists | !exists | gt | lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator == "in":
            return present and labels[self.key] in self.values
        if self.operator == "notin":  # as in Kubernetes: a missing key is "not in"
            return not present or labels[self.key] not in self.values
        have = int64(labels[self.key]) if present else None
        if have is None:
            return False
        bound = int(self.values[0])
        return have > bound if self.operator == "gt" else have < bound


def int64(text: str) -> int | None:
    """The integer Go's strconv.ParseInt(text, 10, 64) reads, or None."""
    if not _INTEGER.match(text):
        return None
    value = int(text)
    return value if -_INT64 <= value < _INT64 else None


@dataclass(frozen=True)
class Selector:
    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """An empty selector selects everything, as in Kubernetes."""
        return all(r.matches(labels) for r in self.requirements)


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip(" \t\r\n") == "":
                break
            raise SelectorError(f"unexpected {text[position:].strip()[:20]!r}")
        tokens.append(match.group("op") or match.group("word"))
        position = match.end()
    return [t for t in tokens if t is not None]


def _word(token: str | None, what: str, problem_of: Callable[[str], str | None]) -> str:
    """``token`` as a label key or value, or the reason it cannot be one."""
    if token is None or token in _OPERATORS:
        raise SelectorError(f"expected a label {what}, found {token or 'the end'!r}")
    problem = problem_of(token)
    if problem:
        raise SelectorError(problem)
    return token


def _key(token: str | None) -> str:
    return _word(token, "key", label_key_problem)


def _value(token: str | None) -> str:
    return _word(token, "value", label_value_problem)


def _value_list(key: str, op: str, take: Callable[[], str | None]) -> set[str]:
    """The values after ``(`` up to ``)``; as in Kubernetes, an empty slot (``()``, ``(,a)``,
    ``(a,)``) is the empty value."""
    values: set[str] = set()
    expect_value = True
    while True:
        token = take()
        if token == ")":
            if expect_value:
                values.add("")
            return values
        if token == ",":
            if expect_value:
                values.add("")
            expect_value = True
        elif token is not None and token not in _OPERATORS and expect_value:
            values.add(_value(token))
            expect_value = False
        else:
            raise SelectorError(f"expected a value, ',' or ')' in the values of {key} {op}, "
                                f"found {token or 'the end'!r}")


def parse(text: str) -> Selector:
    """Parse ``env=prod,tier in (a,b),!legacy``; raise ``SelectorError`` with the reason."""
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    index = 0

    def take() -> str | None:
        nonlocal index
        token = tokens[index] if index < len(tokens) else None
        index += 1
        return token

    def peek() -> str | None:
        return tokens[index] if index < len(tokens) else None

    while index < len(tokens):
        if peek() == "!":
            take()
            requirements.append(Requirement(_key(take()), "!exists"))
        else:
            key = _key(take())
            op = peek()
            if op in (None, ","):
                requirements.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!="):
                take()
                following = peek()
                value = "" if following in (None, ",") else _value(take())
                requirements.append(Requirement(key, "notin" if op == "!=" else "in", (value,)))
            elif op in ("<", ">"):
                take()
                bound = take() or ""
                if int64(bound) is None:
                    raise SelectorError(f"{key}{op}{bound}: the bound must be a 64-bit integer")
                requirements.append(Requirement(key, "gt" if op == ">" else "lt", (bound,)))
            elif op in ("in", "notin"):
                take()
                if take() != "(":
                    raise SelectorError(f"expected '(' after {key} {op}")
                values = _value_list(key, op, take)
                requirements.append(Requirement(key, op, tuple(sorted(values))))
            else:
                raise SelectorError(f"expected an operator (=, ==, !=, in, notin) after {key!r}, "
                                    f"found {op!r}")
        if index < len(tokens):
            if take() != ",":
                raise SelectorError("requirements must be separated by ','")
            if index >= len(tokens):
                raise SelectorError("a ',' must be followed by a requirement")
    return Selector(text, tuple(requirements))
