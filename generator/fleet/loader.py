"""A YAML loader that remembers where every node came from.

PyYAML's (C-accelerated when available) composer builds the node graph; we
construct plain Python data ourselves so that we can record the line and
column of every value and key, reject duplicate keys, bound alias expansion,
depth and size, and turn every failure into a ``Problem`` instead of a traceback.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from generator import fastyaml
from generator.errors import InvalidInput
from generator.problems import JsonPath, Problem, RuleId, format_json_path

try:
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader

_STR = "tag:yaml.org,2002:str"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


@dataclass(frozen=True)
class LoadLimits:
    """Bounds that keep hostile input from exhausting time or memory."""

    max_bytes: int = 32 * 1024 * 1024
    max_nodes: int = 3_000_000
    max_alias_nodes: int = 100_000
    max_depth: int = 64
    max_items: int = 50_000  # entries of one list or mapping (10,000-cluster fleets fit)

    @classmethod
    def from_env(cls) -> LoadLimits:
        """Read overrides from ``K10FLEET_MAX_BYTES`` and friends."""
        base = cls()
        values: dict[str, int] = {}
        for name in ("max_bytes", "max_nodes", "max_alias_nodes", "max_depth", "max_items"):
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
    # Fast loads carry no marks; the first ``locate`` reads the file again with them.
    remark: Callable[[], LoadedDocument] | None = field(default=None, repr=False)

    def locate(self, path: JsonPath, *, key: bool = False) -> Mark:
        """Best position for ``path``: the key itself if asked, else the value, else a parent."""
        if self.remark is not None:
            marked, self.remark = self.remark(), None
            self.marks, self.key_marks = marked.marks, marked.key_marks
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
        rule: RuleId,
    ) -> Problem:
        line, column = self.locate(path, key=key)
        return Problem(self.file, line, column, format_json_path(path), message, level,
                       rule=rule)


class _ScalarLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Loader whose timestamps stay strings: Helm and Kubernetes see them as text anyway."""


_ScalarLoader.add_constructor(_TIMESTAMP, lambda loader, node: loader.construct_scalar(node))


class _LoadAbort(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _mark(event: yaml.Event) -> Mark:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


_UNREAD = object()
_NodeEvent = yaml.ScalarEvent | yaml.AliasEvent | yaml.MappingStartEvent | yaml.SequenceStartEvent


class _Builder:
    """Builds data straight from the parser's event stream while recording marks.

    Working from events (not a composed node graph) is several times faster, keeps
    every alias's own position, and lets an alias reuse the anchored value while its
    size is charged to the alias budget, so alias bombs stop before they cost anything.
    """

    def __init__(self, loader: yaml.SafeLoader, doc: LoadedDocument, limits: LoadLimits) -> None:
        self.loader: Any = loader  # the C parser's event methods carry no type information
        self.doc = doc
        self.limits = limits
        self.nodes = 0
        self.alias_nodes = 0
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.plain: dict[str, Any] = {}  # untagged plain scalars read so far, by their text

    def fail(self, event: yaml.Event, message: str) -> _LoadAbort:
        line, column = _mark(event)
        return _LoadAbort(Problem(self.doc.file, line, column, "", message, rule="yaml"))

    def build(self, path: JsonPath) -> tuple[Any, int]:
        """The next node's value and how many nodes it expands to."""
        event = self.loader.get_event()
        self.doc.marks[path] = _mark(event)
        if isinstance(event, yaml.AliasEvent):
            return self.alias(event)
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise self.fail(event, f"document has more than {self.limits.max_nodes} nodes "
                            "(limit K10FLEET_MAX_NODES)")
        if len(path) > self.limits.max_depth:
            raise self.fail(event, f"nesting deeper than {self.limits.max_depth} levels "
                            "(limit K10FLEET_MAX_DEPTH)")
        if isinstance(event, yaml.ScalarEvent):
            value: Any = self.scalar(event)
            # a long string weighs more, so aliasing it many times is charged fairly
            size = 1 + len(event.value) // 64
        elif isinstance(event, yaml.SequenceStartEvent):
            self.check_collection_tag(event, _SEQ)
            value, size = self.sequence(path)
        elif isinstance(event, yaml.MappingStartEvent):
            self.check_collection_tag(event, _MAP)
            value, size = self.mapping(path)
        else:  # pragma: no cover - the parser guarantees a node event here
            raise self.fail(event, "unexpected YAML event")
        if event.anchor:
            self.anchors[event.anchor] = (value, size)
        return value, size

    def alias(self, event: yaml.AliasEvent) -> tuple[Any, int]:
        """The anchored value again, its size charged to the alias budget."""
        if event.anchor not in self.anchors:
            raise self.fail(event, f"alias *{event.anchor} is used before its anchor "
                            f"&{event.anchor} is defined")
        shared, size = self.anchors[event.anchor]
        self.alias_nodes += size
        if self.alias_nodes > self.limits.max_alias_nodes:
            raise self.fail(event, "aliases expand to more than "
                            f"{self.limits.max_alias_nodes} nodes (limit "
                            "K10FLEET_MAX_ALIAS_NODES); is this an alias bomb?")
        return shared, size

    def check_collection_tag(self, event: yaml.CollectionStartEvent, default: str) -> None:
        if event.tag not in (None, "!", default):
            raise self.fail(event, f"unsupported YAML tag {event.tag!r}; "
                            "use plain strings, numbers, booleans, lists and mappings")

    def scalar(self, event: yaml.ScalarEvent) -> Any:
        tag = event.tag
        if tag is None:
            if not event.implicit[0]:
                return event.value  # quoted: a string to the resolver
            known = self.plain.get(event.value, _UNREAD)
            if known is _UNREAD:  # plain text means the same wherever it stands
                known = self.plain[event.value] = self.resolved(event, tag)
            return known
        return self.resolved(event, tag)

    def resolved(self, event: yaml.ScalarEvent, tag: str | None) -> Any:
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _STR:
            return event.value
        constructor = self.loader.yaml_constructors.get(tag)
        if constructor is None:
            raise self.fail(event, f"unsupported YAML tag {tag!r}; "
                            "use plain strings, numbers, booleans, lists and mappings")
        node = yaml.ScalarNode(tag, event.value, style=event.style)
        try:
            value = constructor(self.loader, node)
        except (yaml.YAMLError, ValueError, TypeError, KeyError, OverflowError) as e:
            raise self.fail(event, f"cannot read {event.value!r} as {tag.rsplit(':', 1)[-1]}"
                            ) from e
        if ":" in event.value and tag in _NUMBER_TAGS and event.implicit[0]:
            # YAML 1.1 base-60 numbers (10:30): Helm and kubectl read them as strings
            return event.value
        return value

    def sequence(self, path: JsonPath) -> tuple[list[Any], int]:
        items: list[Any] = []
        size = 1
        while not self.loader.check_event(yaml.SequenceEndEvent):
            if len(items) >= self.limits.max_items:
                raise self.fail(self.loader.peek_event(), "list has more than "
                                f"{self.limits.max_items} entries (limit K10FLEET_MAX_ITEMS)")
            value, child_size = self.build((*path, len(items)))
            items.append(value)
            size += child_size
        self.loader.get_event()
        return items, size

    def mapping(self, path: JsonPath) -> tuple[dict[Any, Any], int]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        first_marks: dict[Any, Mark] = {}
        size = 1
        while not self.loader.check_event(yaml.MappingEndEvent):
            if len(result) >= self.limits.max_items:
                raise self.fail(self.loader.peek_event(), "mapping has more than "
                                f"{self.limits.max_items} entries (limit K10FLEET_MAX_ITEMS)")
            key_event = self.loader.get_event()
            if not isinstance(key_event, yaml.ScalarEvent):
                raise self.fail(key_event, "mapping keys must be plain scalars")
            if key_event.tag is None and key_event.implicit[0] and key_event.value == "<<":
                source, child_size = self.build(path)
                merged.update(self.merge_sources(key_event, source))
                size += child_size
                continue
            key = self.scalar(key_event)
            child = (*path, str(key))
            if key in result:  # reported, and loading goes on so every problem shows
                first_line, first_col = first_marks[key]
                line, column = _mark(key_event)
                self.doc.problems.append(Problem(
                    self.doc.file, line, column, format_json_path(child),
                    f"duplicate key {key!r} (first defined at line {first_line}, column "
                    f"{first_col}); remove one", rule="yaml"))
                self.build((*path, "<duplicate>"))
                continue
            self.doc.key_marks[child] = first_marks[key] = _mark(key_event)
            result[key], child_size = self.build(child)
            size += child_size
        self.loader.get_event()
        for key, value in merged.items():
            result.setdefault(key, value)
        return result, size

    def merge_sources(self, key_event: yaml.Event, source: Any) -> dict[Any, Any]:
        sources = source if isinstance(source, list) else [source]
        merged: dict[Any, Any] = {}
        for item in reversed(sources):
            if not isinstance(item, dict):
                raise self.fail(key_event, "a merge key '<<' must refer to a mapping")
            merged.update(item)
        return merged


class _NeedMarks(Exception):
    """The quick pass met what only the marked pass reports exactly (a duplicate key, a limit)."""


class _QuickBuilder(_Builder):
    """The same data without marks, for the common case of a fleet with no problem at all.

    Recording a mark and a path for every node is most of the marked pass's cost. Anything
    the marked pass would report ends this pass (``_NeedMarks``, or its own error), and the
    marked pass runs instead, so every problem and its location stay exactly as they were.
    """

    def value(self, event: Any, depth: int) -> tuple[Any, int]:
        """The value that starts with ``event`` (already read), and its size in nodes."""
        kind = type(event)
        if kind is yaml.AliasEvent:
            return self.alias(event)
        self.nodes += 1
        if self.nodes > self.limits.max_nodes or depth > self.limits.max_depth:
            raise _NeedMarks
        value: Any
        if kind is yaml.ScalarEvent:
            value, size = self.scalar(event), 1 + len(event.value) // 64
        elif kind is yaml.MappingStartEvent:
            self.check_collection_tag(event, _MAP)
            value, size = self.quick_mapping(depth)
        elif kind is yaml.SequenceStartEvent:
            self.check_collection_tag(event, _SEQ)
            value, size = self.quick_sequence(depth)
        else:
            raise _NeedMarks
        if event.anchor:
            self.anchors[event.anchor] = (value, size)
        return value, size

    def quick_sequence(self, depth: int) -> tuple[list[Any], int]:
        items: list[Any] = []
        size, get, most = 1, self.loader.get_event, self.limits.max_items
        while type(event := get()) is not yaml.SequenceEndEvent:
            if len(items) >= most:
                raise _NeedMarks
            item, child_size = self.value(event, depth + 1)
            items.append(item)
            size += child_size
        return items, size

    def quick_mapping(self, depth: int) -> tuple[dict[Any, Any], int]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        size, get, most = 1, self.loader.get_event, self.limits.max_items
        while type(key_event := get()) is not yaml.MappingEndEvent:
            if len(result) >= most or type(key_event) is not yaml.ScalarEvent:
                raise _NeedMarks
            if key_event.tag is None and key_event.implicit[0] and key_event.value == "<<":
                source, child_size = self.value(get(), depth)
                merged.update(self.merge_sources(key_event, source))
                size += child_size
                continue
            key = self.scalar(key_event)
            if key in result:
                raise _NeedMarks
            result[key], child_size = self.value(get(), depth + 1)
            size += child_size
        for key, item in merged.items():
            result.setdefault(key, item)
        return result, size


def _load_quick(raw: bytes, file: str, limits: LoadLimits) -> Any | None:
    """The data of a one-mapping document that loads without any problem, or None: then
    the marked pass must read it (and report what is wrong, located)."""
    if len(raw) > limits.max_bytes:
        return None
    try:
        loader = _ScalarLoader(_decode(raw, file))
    except InvalidInput:
        return None
    try:
        get = loader.get_event
        get()  # stream start
        if type(get()) is not yaml.DocumentStartEvent:
            return None
        first = get()
        if type(first) is not yaml.MappingStartEvent:
            return None
        data, _ = _QuickBuilder(loader, LoadedDocument(file, None), limits).value(first, 0)
        get()  # document end
        return data if loader.check_event(yaml.StreamEndEvent) else None
    except (yaml.YAMLError, _LoadAbort, _NeedMarks, RecursionError):
        return None
    finally:
        loader.dispose()


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


def _within_limits(data: Any, limits: LoadLimits) -> bool:
    """The bounds the marked loader enforces, checked on fast-path data."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes or depth > limits.max_depth:
            return False
        if isinstance(item, dict):
            if len(item) > limits.max_items:
                return False
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            if len(item) > limits.max_items:
                return False
            stack.extend((v, depth + 1) for v in item)
    return True


def load_yaml_bytes(raw: bytes, file: str, limits: LoadLimits | None = None) -> LoadedDocument:
    """Parse one YAML document holding a mapping; raise ``InvalidInput`` with located problems.

    Valid-looking text takes the fast path (see ``generator.fastyaml``); other text that
    loads without a problem takes the quick pass (PyYAML, no marks). Both get their marks
    only if a problem needs a location; anything else is read by the marked loader.
    """
    limits = limits or LoadLimits()
    if len(raw) <= limits.max_bytes and not raw.startswith(b"\xef\xbb\xbf"):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        data = fastyaml.load_plain(text) if text else None
        if isinstance(data, dict) and data and _within_limits(data, limits):
            return LoadedDocument(file=file, data=data,
                                  remark=lambda: _load_marked(raw, file, limits))
    data = _load_quick(raw, file, limits)
    if data is not None:
        return LoadedDocument(file=file, data=data, remark=lambda: _load_marked(raw, file, limits))
    return _load_marked(raw, file, limits)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content_lines(lines: list[str], before: int) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank, non-comment lines above line ``before``."""
    for number in range(before - 1, 0, -1):
        text = lines[number - 1]
        if text.strip() and not text.lstrip().startswith("#"):
            yield number, text


def _open_columns(lines: list[str], line: int) -> list[tuple[int, int]]:
    """(indent, first line) of the blocks still open above ``line``, innermost first; a
    list item ``- key: v`` right above also opens its key's column."""
    found: list[tuple[int, int]] = []
    for number, text in _content_lines(lines, line):
        depth = _indent(text)
        stripped = text.lstrip(" ")
        if not found and stripped.startswith("- "):
            found.append((depth + 2 + _indent(stripped[2:]), number))
        if found and depth > found[-1][0]:
            continue
        if found and depth == found[-1][0]:
            found[-1] = (depth, number)  # walking up: the block starts earlier
        else:
            found.append((depth, number))
    return found


def _indentation_problem(text: str, line: int, message: str) -> tuple[int, int, str] | None:
    """The parser's words for misplaced indentation ("did not find expected key", "mapping
    values are not allowed here"), said plainly, naming the lines involved."""
    lines = text.split("\n")
    if not 0 < line <= len(lines) or not lines[line - 1].strip() or "\t" in text:
        return None  # tabs get their own message
    depth = _indent(lines[line - 1])
    previous = next(_content_lines(lines, line), None)
    if "mapping values are not allowed" in message and previous is not None:
        above, above_text = previous
        if depth > _indent(above_text) and ":" in above_text:
            return line, depth + 1, (
                f"wrong indentation: line {line} is indented {depth} spaces, deeper than "
                f"line {above} ({_indent(above_text)} spaces), so YAML reads it as more of "
                f"line {above}'s value; indent it {_indent(above_text)} spaces like line "
                f"{above}, or put it under a key that ends with ':'")
    if not any(words in message for words in ("expected key", "expected <block end>",
                                              "expected '-'")):
        return None
    columns = _open_columns(lines, line)
    inner = [(indent, number) for indent, number in columns if indent > depth]
    outer = [(indent, number) for indent, number in columns if indent < depth]
    if not inner or not outer:
        return None
    (deep, deep_line), (shallow, shallow_line) = inner[-1], outer[0]
    return line, depth + 1, (
        f"wrong indentation: line {line} is indented {depth} spaces, but the block above it "
        f"(from line {deep_line}) is indented {deep} and the one around that (from line "
        f"{shallow_line}) {shallow}; keys of one mapping, and items of one list, start in the "
        f"same column: indent line {line} like one of them, or fix the indentation from "
        f"line {deep_line} on")


_EMPTY = "file is empty; expected a Fleet document (apiVersion: k10fleet/v1alpha1)"


def _load_marked(raw: bytes, file: str, limits: LoadLimits) -> LoadedDocument:
    if len(raw) > limits.max_bytes:
        raise InvalidInput([Problem(file, 1, 1, "", f"file is {len(raw)} bytes, more than the "
                                    f"limit of {limits.max_bytes} (K10FLEET_MAX_BYTES)",
                                    rule="size")])
    text = _decode(raw, file)
    doc = LoadedDocument(file=file, data=None)
    loader = _ScalarLoader(text)
    try:
        _read_one_mapping(loader, doc, limits)
    except _LoadAbort as e:
        raise InvalidInput([e.problem]) from None
    except yaml.MarkedYAMLError as e:
        raise InvalidInput([_marked_error(e, file, text)]) from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise InvalidInput([Problem(file, line, column, "", f"invalid YAML: character "
                                    f"U+{e.character:04X} is not allowed in YAML; remove it",
                                    rule="yaml")]) from None
    except yaml.YAMLError as e:
        message = " ".join(str(e).split())
        raise InvalidInput([Problem(file, 1, 1, "", f"invalid YAML: {message}",
                                    rule="yaml")]) from None
    except RecursionError:
        raise InvalidInput([Problem(file, 1, 1, "", "YAML nesting is too deep to read",
                                    rule="yaml")]) from None
    finally:
        loader.dispose()
    return doc


def _read_one_mapping(loader: _ScalarLoader, doc: LoadedDocument, limits: LoadLimits) -> None:
    """Fill ``doc.data`` from a stream of exactly one document whose top is a mapping."""
    file = doc.file
    loader.get_event()  # stream start
    if loader.check_event(yaml.StreamEndEvent):
        raise InvalidInput([Problem(file, 1, 1, "", _EMPTY, rule="yaml")])
    loader.get_event()  # document start
    first = loader.peek_event()
    if isinstance(first, yaml.ScalarEvent) and first.value == "" and first.tag is None:
        raise InvalidInput([Problem(file, 1, 1, "", _EMPTY, rule="yaml")])
    if not isinstance(first, yaml.MappingStartEvent):
        line, column = _mark(first)
        found = "a list" if isinstance(first, yaml.SequenceStartEvent) else "a scalar"
        raise InvalidInput([Problem(file, line, column, "", "expected a mapping at the top "
                                    f"of the document, found {found}", rule="yaml")])
    doc.data, _ = _Builder(loader, doc, limits).build(())
    loader.get_event()  # document end
    if not loader.check_event(yaml.StreamEndEvent):
        line, column = _mark(loader.peek_event())
        raise InvalidInput([Problem(file, line, column, "", "more than one YAML document; "
                                    "a fleet file holds exactly one", rule="yaml")])


def _marked_error(e: yaml.MarkedYAMLError, file: str, text: str) -> Problem:
    """The parser's complaint, located and in words a fleet author can act on."""
    mark = e.problem_mark or e.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = str(e.problem or "invalid YAML")
    plain = _indentation_problem(text, line, message)
    if plain is not None:
        return Problem(file, plain[0], plain[1], "", plain[2], rule="yaml")
    if "tab" in message or ("cannot start any token" in message and _tab_at(text, mark)):
        message = "tab character where YAML expects indentation or a value; use spaces"
    elif "but found another document" in message or "expected a single document" in str(
            e.context or ""):
        message = "more than one YAML document; a fleet file holds exactly one"
    elif e.context:
        message = f"{message} ({e.context})"
    return Problem(file, line, column, "", f"invalid YAML: {message}", rule="yaml")


def _io_problem(path: str, message: str, rule: RuleId = "io") -> InvalidInput:
    return InvalidInput([Problem(path, 1, 1, "", message, rule=rule)])


def read_input_file(path: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them. A FIFO, device
    or socket is refused without reading (it could block forever or never end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _io_problem(path, "file not found") from None
    except PermissionError:
        raise _io_problem(path, "permission denied") from None
    except OSError as e:
        raise _io_problem(path, f"cannot read: {e.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _io_problem(path, "is a directory, expected a fleet file")
        if not stat.S_ISREG(info.st_mode):
            raise _io_problem(path, "is not a regular file (a FIFO, device or socket?); "
                              "expected a fleet file")
        if info.st_size > max_bytes:
            raise _io_problem(path, f"file is {info.st_size} bytes, more than the limit of "
                              f"{max_bytes} (K10FLEET_MAX_BYTES)", "size")
        chunks = []
        size = 0
        while size <= max_bytes and (chunk := os.read(fd, 1 << 20)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as e:
        raise _io_problem(path, f"cannot read: {e.strerror}") from None
    finally:
        os.close(fd)


def load_yaml_file(path: str, limits: LoadLimits | None = None) -> LoadedDocument:
    """Read ``path`` (a regular file, size-checked before reading) and load it."""
    limits = limits or LoadLimits()
    return load_yaml_bytes(read_input_file(path, limits.max_bytes), path, limits)
