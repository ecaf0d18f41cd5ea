"""YAML read the way kubectl and kubeconform read it (Go's YAML: YAML 1.1 habits), through
PyYAML: the exact reader, slower than ``fastyaml``'s fast path and used where that declines.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from generator.yamllimits import (
    MAX_ALIAS_EXPANSION,
    MAX_DEPTH,
    TooDeep,
    TooLarge,
    expanded_size,
    may_be_too_deep,
)

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

YAMLError = yaml.YAMLError
MarkedYAMLError = yaml.MarkedYAMLError


class KubeLoader(_Loader):  # type: ignore[valid-type,misc]
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
    def constructor(loader: KubeLoader, node: yaml.ScalarNode) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, OverflowError):
            return loader.construct_scalar(node)
    return constructor


for _tag, _construct in (("int", _Loader.construct_yaml_int),
                         ("float", _Loader.construct_yaml_float),
                         ("timestamp", _Loader.construct_yaml_timestamp)):
    KubeLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _or_text(_construct))

KubeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"),
                                  list("yYnN"))
KubeLoader.add_constructor(
    "tag:yaml.org,2002:bool",
    lambda loader, node: loader.construct_scalar(node).lower() in ("y", "yes", "true", "on"))


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


def load(text: str) -> Any:
    """One YAML document, with Go's YAML meaning; raises PyYAML's errors, and ``TooDeep`` or
    ``TooLarge`` for nesting or alias bombs."""
    check_depth(text)
    data = yaml.load(text, Loader=KubeLoader)
    if "*" in text and expanded_size(data, MAX_ALIAS_EXPANSION) > MAX_ALIAS_EXPANSION:
        raise TooLarge(f"aliases expand to more than {MAX_ALIAS_EXPANSION} nodes; is this an "
                       "alias bomb?")
    return data


def load_all(text: str) -> list[Any]:
    """Every document of a stream, read as PyYAML's C loader reads it (no Go habits: for a
    file listed by a kustomization, only whether it parses matters)."""
    return list(yaml.load_all(text, Loader=_Loader))
