"""A YAML loader that remembers where every node came from.

PyYAML's (C-accelerated when available) composer builds the node graph; we
construct plain Python data ourselves so that we can record the line and
column of every value and key, reject duplicate keys, bound alias expansion,
depth and size, and turn every failure into a ``Problem`` instead of a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from generator.errors import InvalidInput
from generator.problems import JsonPath, Problem, format_json_path

try:
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


@dataclass(frozen=True)
class LoadLimits:
    """Bounds that keep hostile input from exhausting time or memory."""

    max_bytes: int = 32 * 1024 * 1024
    max_nodes: int = 3_000_000
    max_alias_nodes: int = 100_000
    max_depth: int = 64

    @classmethod
    def from_env(cls) -> LoadLimits:
        """Read overrides from ``K10FLEET_MAX_BYTES`` and friends."""
        base = cls()
        values: dict[str, int] = {}
        for name in ("max_bytes", "max_nodes", "max_alias_nodes", "max_depth"):
            raw = os.environ.get("K10FLEET_" + name.upper())
            values[name] = int(raw) if raw and raw.isdigit() else getattr(base, name)
        return cls(**values)


Mark = tuple[int, int]


@dataclass
class LoadedDocument:
    """Plain data plus where each piece of it was written (1-based line, column)."""

    file: str
    data: Any
    marks: dict[JsonPath, Mark] = field(default_factory=dict)
    key_marks: dict[JsonPath, Mark] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # found while loading, not fatal

    def locate(self, path: JsonPath, *, key: bool = False) -> Mark:
        """Best position for ``path``: the key itself if asked, else the value, else a parent."""
        if key and path in self.key_marks:
            return self.key_marks[path]
        probe = tuple(path)
        while probe:
            if probe in self.marks:
                return self.marks[probe]
            probe = probe[:-1]
        return self.marks.get((), (1, 1))

    def problem(
        self, path: JsonPath, message: str, *, key: bool = False, level: str = "error",
        rule: str = "",
    ) -> Problem:
        line, column = self.locate(path, key=key)
        return Problem(self.file, line, column, format_json_path(path), message, level, rule)


class _ScalarLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Loader whose timestamps stay strings: Helm and Kubernetes see them as text anyway."""


_ScalarLoader.add_constructor(_TIMESTAMP, lambda loader, node: loader.construct_scalar(node))


def _alias_mark(text: str, target: JsonPath) -> Mark | None:
    """Where the alias at ``target`` is written (composed nodes forget alias positions).

    Only called on failure: re-reads the event stream, tracking the path of each node.
    """
    frames: list[list[Any]] = []  # ["map", key, awaiting_key] or ["seq", index]

    def value_done() -> None:
        if frames:
            if frames[-1][0] == "map":
                frames[-1][2] = True
            else:
                frames[-1][1] += 1

    try:
        for event in yaml.parse(text, Loader=_BaseLoader):
            if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                frames.pop()
                value_done()
                continue
            if not isinstance(event, yaml.NodeEvent):
                continue
            if frames and frames[-1][0] == "map" and frames[-1][2]:
                frames[-1][1] = getattr(event, "value", None)
                frames[-1][2] = False
                if isinstance(event, yaml.CollectionStartEvent):
                    return None  # complex keys: give up, the caller has a fallback
                continue
            mark = event.start_mark
            if (isinstance(event, yaml.AliasEvent) and mark is not None
                    and tuple(str(f[1]) if f[0] == "map" else f[1] for f in frames) == target):
                return (mark.line + 1, mark.column + 1)
            if isinstance(event, yaml.MappingStartEvent):
                frames.append(["map", None, True])
            elif isinstance(event, yaml.SequenceStartEvent):
                frames.append(["seq", 0])
            else:
                value_done()
    except yaml.YAMLError:
        return None
    return None


class _LoadAbort(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _mark(node: yaml.Node) -> Mark:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Turns a composed node graph into data while recording marks."""

    def __init__(self, loader: yaml.SafeLoader, doc: LoadedDocument, limits: LoadLimits,
                 text: str) -> None:
        self.loader = loader
        self.doc = doc
        self.limits = limits
        self.text = text
        self.nodes = 0
        self.alias_nodes = 0
        self.alias_origin: JsonPath = ()
        self.seen: set[int] = set()

    def fail(self, node: yaml.Node, message: str) -> _LoadAbort:
        line, column = _mark(node)
        return _LoadAbort(Problem(self.doc.file, line, column, "", message, rule="yaml"))

    def build(self, node: yaml.Node, path: JsonPath, in_alias: bool) -> Any:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise self.fail(node, f"document has more than {self.limits.max_nodes} nodes "
                            "(limit K10FLEET_MAX_NODES)")
        if in_alias:
            self.alias_nodes += 1
            if self.alias_nodes > self.limits.max_alias_nodes:
                line, column = (_alias_mark(self.text, self.alias_origin)
                                or self.doc.locate(self.alias_origin, key=True))
                raise _LoadAbort(Problem(
                    self.doc.file, line, column, "", "aliases expand to more than "
                    f"{self.limits.max_alias_nodes} nodes (limit K10FLEET_MAX_ALIAS_NODES); "
                    "is this an alias bomb?", rule="yaml"))
        if len(path) > self.limits.max_depth:
            raise self.fail(node, f"nesting deeper than {self.limits.max_depth} levels "
                            "(limit K10FLEET_MAX_DEPTH)")
        self.doc.marks[path] = _mark(node)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if node.tag not in _COLLECTION_TAGS:
            raise self.fail(node, f"unsupported YAML tag {node.tag!r}; "
                            "use plain strings, numbers, booleans, lists and mappings")
        if id(node) in self.seen and not in_alias:
            in_alias = True
            self.alias_origin = path
        self.seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), in_alias) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, in_alias)
        raise self.fail(node, "unsupported YAML node")  # pragma: no cover

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == _STR:
            return node.value
        constructor = self.loader.yaml_constructors.get(node.tag)
        if constructor is None:
            raise self.fail(node, f"unsupported YAML tag {node.tag!r}; "
                            "use plain strings, numbers, booleans, lists and mappings")
        try:
            return constructor(self.loader, node)
        except yaml.YAMLError as e:
            raise self.fail(node, f"cannot read value: {getattr(e, 'problem', e)}") from e

    def mapping(self, node: yaml.MappingNode, path: JsonPath, in_alias: bool) -> dict[Any, Any]:
        merged: dict[Any, Any] = {}
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.update(self.merge_sources(value_node, path, in_alias))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, "mapping keys must be plain scalars")
            key = self.scalar(key_node)
            try:
                hash(key)
            except TypeError as e:  # pragma: no cover - scalars are hashable
                raise self.fail(key_node, "unhashable mapping key") from e
            if key in result:  # reported, and loading goes on so every problem shows
                first_line, first_col = self.doc.key_marks[(*path, str(key))]
                line, column = _mark(key_node)
                self.doc.problems.append(Problem(
                    self.doc.file, line, column, format_json_path((*path, str(key))),
                    f"duplicate key {key!r} (first defined at line {first_line}, column "
                    f"{first_col}); remove one", rule="yaml"))
                continue
            child = (*path, str(key))
            self.doc.key_marks[child] = _mark(key_node)
            result[key] = self.build(value_node, child, in_alias)
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def merge_sources(self, node: yaml.Node, path: JsonPath, in_alias: bool) -> dict[Any, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[Any, Any] = {}
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode):
                raise self.fail(source, "a merge key '<<' must refer to a mapping")
            merged.update(self.mapping(source, path, True))
        return merged


def _decode(raw: bytes, file: str) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        before = raw[: e.start]
        line = before.count(b"\n") + 1
        column = e.start - (before.rfind(b"\n") + 1) + 1
        raise InvalidInput([Problem(file, line, column, "", "file is not valid UTF-8 "
                                    f"(byte 0x{raw[e.start]:02x}); save it as UTF-8",
                                    rule="encoding")]) from e


def _tab_at(text: str, mark: yaml.Mark | None) -> bool:
    if mark is None:
        return False
    lines = text.split("\n", mark.line + 1)
    return mark.line < len(lines) and lines[mark.line][mark.column: mark.column + 1] == "\t"


def load_yaml_bytes(raw: bytes, file: str, limits: LoadLimits | None = None) -> LoadedDocument:
    """Parse one YAML document holding a mapping; raise ``InvalidInput`` with located problems."""
    limits = limits or LoadLimits()
    if len(raw) > limits.max_bytes:
        raise InvalidInput([Problem(file, 1, 1, "", f"file is {len(raw)} bytes, more than the "
                                    f"limit of {limits.max_bytes} (K10FLEET_MAX_BYTES)",
                                    rule="size")])
    text = _decode(raw, file)
    doc = LoadedDocument(file=file, data=None)
    loader = _ScalarLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InvalidInput([Problem(file, 1, 1, "", "file is empty; expected a Fleet "
                                        "document (apiVersion: k10fleet/v1alpha1)",
                                        rule="yaml")])
        if not isinstance(node, yaml.MappingNode):
            line, column = _mark(node)
            found = "a list" if isinstance(node, yaml.SequenceNode) else "a scalar"
            raise InvalidInput([Problem(file, line, column, "", "expected a mapping at the top "
                                        f"of the document, found {found}", rule="yaml")])
        doc.data = _Builder(loader, doc, limits, text).build(node, (), False)
    except _LoadAbort as e:
        raise InvalidInput([e.problem]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = str(e.problem or "invalid YAML")
        if "tab" in message or ("cannot start any token" in message and _tab_at(text, mark)):
            message = "tab character where YAML expects indentation or a value; use spaces"
        elif "but found another document" in message or "expected a single document" in str(
                e.context or ""):
            message = "more than one YAML document; a fleet file holds exactly one"
        elif e.context:
            message = f"{message} ({e.context})"
        raise InvalidInput([Problem(file, line, column, "", f"invalid YAML: {message}",
                                    rule="yaml")]) from None
    except yaml.YAMLError as e:
        raise InvalidInput([Problem(file, 1, 1, "", f"invalid YAML: {e}", rule="yaml")]) from None
    except RecursionError:
        raise InvalidInput([Problem(file, 1, 1, "", "YAML nesting is too deep to read",
                                    rule="yaml")]) from None
    finally:
        loader.dispose()
    return doc


def load_yaml_file(path: str, limits: LoadLimits | None = None) -> LoadedDocument:
    """Read ``path`` (size-checked before reading) and load it."""
    limits = limits or LoadLimits()
    try:
        size = os.stat(path).st_size
        if size > limits.max_bytes:
            raise InvalidInput([Problem(path, 1, 1, "", f"file is {size} bytes, more than the "
                                        f"limit of {limits.max_bytes} (K10FLEET_MAX_BYTES)",
                                        rule="size")])
        with open(path, "rb") as handle:
            raw = handle.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise InvalidInput([Problem(path, 1, 1, "", "file not found", rule="io")]) from None
    except IsADirectoryError:
        raise InvalidInput([Problem(path, 1, 1, "", "is a directory, expected a fleet file",
                                    rule="io")]) from None
    except PermissionError:
        raise InvalidInput([Problem(path, 1, 1, "", "permission denied", rule="io")]) from None
    return load_yaml_bytes(raw, path, limits)
