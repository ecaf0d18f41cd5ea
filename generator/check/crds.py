"""``check --crd``: CustomResourceDefinition YAML turned into strict JSON Schemas.

Like kubeconform users' ``openapi2jsonschema`` in strict mode: each served version's
``openAPIV3Schema`` becomes a schema in which every object that lists ``properties`` (and
does not say ``x-kubernetes-preserve-unknown-fields``) gets ``additionalProperties: false``,
the root included; ``x-kubernetes-int-or-string`` (and ``format: int-or-string``) accepts an
integer or a string; ``nullable: true`` also accepts null. Imported only when ``--crd`` is
given; imports nothing of the rest of ``check``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from generator.errors import EnvironmentFailure, InvalidInput, UsageFailure
from generator.problems import JsonPath, Problem, format_json_path

CRD_SUFFIXES = (".yaml", ".yml", ".json")
_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]
_DOC_START = re.compile(r"^---(?:[ \t]|$)", re.MULTILINE)
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser where built


@dataclass(frozen=True)
class CrdSchema:
    """The strict schema of one served version of one CRD, and where it was read."""

    api_version: str
    kind: str
    schema: dict[str, Any]
    file: str
    line: int

    @property
    def source(self) -> str:
        return f"--crd {self.file}:{self.line}"


def crd_files(paths: Sequence[str]) -> Iterator[str]:
    """Each given file, and the YAML/JSON files under each given folder, in a stable order."""
    for path in paths:
        if os.path.isfile(path):
            yield path
        elif os.path.isdir(path):  # sorted by path below the folder; hidden folders skipped
            found = []
            for current, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found += [os.path.join(current, name) for name in files
                          if name.endswith(CRD_SUFFIXES)]
            yield from sorted(found, key=lambda f: os.path.relpath(f, path).split(os.sep))
        else:
            raise UsageFailure(f"--crd {path}: no such file or folder")


def load_crds(paths: Sequence[str]) -> dict[tuple[str, str], CrdSchema]:
    """Every served version of every CRD in ``paths``; the first definition of a kind wins."""
    found: dict[tuple[str, str], CrdSchema] = {}
    for path in crd_files(paths):
        for crd in _file_crds(path):
            found.setdefault((crd.api_version, crd.kind), crd)
    if not found:
        shown = ", ".join(paths)
        raise InvalidInput([Problem(paths[0], 1, 1, "", f"--crd {shown} holds no "
                                    "CustomResourceDefinition (other documents are ignored)",
                                    rule="crd")])
    return found


def _file_crds(path: str) -> Iterator[CrdSchema]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as e:
        raise EnvironmentFailure(f"cannot read --crd file {path}: {e}") from e
    for first_line, chunk in _chunks(text):
        try:
            doc = yaml.load(chunk, Loader=_LOADER)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark
            raise InvalidInput([Problem(path, first_line + (mark.line if mark else 0),
                                        mark.column + 1 if mark else 1, "",
                                        f"invalid YAML: {e.problem}", rule="yaml")]) from e
        except yaml.YAMLError as e:
            raise InvalidInput([Problem(path, first_line, 1, "", f"invalid YAML: {e}",
                                        rule="yaml")]) from e
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition" and \
                str(doc.get("apiVersion", "")).startswith("apiextensions.k8s.io/"):
            yield from _versions(doc, _Locator(chunk, first_line, path))


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """(line of its first line, text) of each document of a multi-document stream."""
    starts = [0, *(m.start() for m in _DOC_START.finditer(text) if m.start() > 0), len(text)]
    for begin, end in itertools.pairwise(starts):
        yield text.count("\n", 0, begin) + 1, text[begin:end]


class _Locator:
    """Turns a path inside one document into a located problem (marks read on demand)."""

    def __init__(self, chunk: str, first_line: int, file: str) -> None:
        self.chunk, self.first_line, self.file = chunk, first_line, file

    def line(self) -> int:
        """The document's first line of content."""
        for offset, text in enumerate(self.chunk.split("\n")):
            stripped = text.strip()
            if stripped and not stripped.startswith("#") and not _DOC_START.match(text):
                return self.first_line + offset
        return self.first_line

    def problem(self, path: JsonPath, message: str) -> Problem:
        node: Any = yaml.compose(self.chunk, Loader=_LOADER)
        for part in path:
            child = _child(node, part)
            if child is None:
                break
            node = child
        mark = node.start_mark
        return Problem(self.file, self.first_line + mark.line, mark.column + 1,
                       format_json_path(path), message, rule="crd")


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if k.value == part), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def _versions(crd: dict[str, Any], where: _Locator) -> Iterator[CrdSchema]:
    spec = crd.get("spec")
    names = spec.get("names") if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("group"), str) or \
            not isinstance(names, dict) or not isinstance(names.get("kind"), str):
        raise InvalidInput([where.problem(("spec",), "a CustomResourceDefinition needs "
                                          "spec.group and spec.names.kind")])
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        raise InvalidInput([where.problem(("spec", "versions"), "a CustomResourceDefinition "
                                          "needs a list of spec.versions")])
    shared = (spec.get("validation") or {}).get("openAPIV3Schema")  # apiextensions v1beta1
    for index, version in enumerate(versions):
        if not isinstance(version, dict) or not isinstance(version.get("name"), str):
            raise InvalidInput([where.problem(("spec", "versions", index),
                                              "each version needs a name")])
        if version.get("served") is False:
            continue
        path: JsonPath = ("spec", "versions", index, "schema", "openAPIV3Schema")
        openapi = (version.get("schema") or {}).get("openAPIV3Schema")
        if openapi is None and shared is not None:
            openapi, path = shared, ("spec", "validation", "openAPIV3Schema")
        if openapi is None:
            continue  # no schema: the API server accepts anything, and so would we
        problems = [where.problem((*path, *inner), message)
                    for inner, message in schema_problems(openapi)]
        if problems:
            raise InvalidInput(problems[:20])
        yield CrdSchema(f"{spec['group']}/{version['name']}", names["kind"],
                        strict_schema(openapi), where.file, where.line())


def schema_problems(node: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, str]]:
    """What makes ``node`` no usable OpenAPI v3 schema (so that no object gets a false error)."""
    if not isinstance(node, dict):
        yield path, "a schema must be a mapping"
        return
    kind = node.get("type")
    if kind is not None and kind not in _TYPES:
        yield (*path, "type"), f"type {kind!r} is not one of {', '.join(sorted(_TYPES))}"
    properties = node.get("properties")
    if properties is not None and not isinstance(properties, dict):
        yield (*path, "properties"), "properties must be a mapping"
    elif properties:
        for name, child in properties.items():
            yield from schema_problems(child, (*path, "properties", str(name)))
    required = node.get("required")
    if required is not None and not (isinstance(required, list) and
                                     all(isinstance(r, str) for r in required)):
        yield (*path, "required"), "required must be a list of property names"
    for key in ("items", "not"):
        if key in node:
            yield from schema_problems(node[key], (*path, key))
    extra = node.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool):
        yield from schema_problems(extra, (*path, "additionalProperties"))
    for key in _SCHEMA_LISTS:
        if key in node:
            if not isinstance(node[key], list):
                yield (*path, key), f"{key} must be a list of schemas"
                continue
            for index, child in enumerate(node[key]):
                yield from schema_problems(child, (*path, key, index))
    if "enum" in node and not isinstance(node["enum"], list):
        yield (*path, "enum"), "enum must be a list"


def strict_schema(openapi: dict[str, Any]) -> dict[str, Any]:
    """openapi2jsonschema's strict conversion of one CRD version's ``openAPIV3Schema``."""
    schema: dict[str, Any] = _strict(openapi)
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        for name, shape in (("apiVersion", "string"), ("kind", "string"),
                            ("metadata", "object")):
            schema["properties"].setdefault(name, {"type": shape})
    return schema


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: (value if key in ("enum", "default", "example", "required") else
                 {k: _strict(v) for k, v in value.items()} if key == "properties" and
                 isinstance(value, dict) else _strict(value))
           for key, value in node.items()}
    if out.get("x-kubernetes-int-or-string") or out.get("format") == "int-or-string":
        out.pop("type", None)
        if out.get("format") == "int-or-string":
            out.pop("format")
        if not any(key in out for key in _SCHEMA_LISTS):
            out["anyOf"] = list(_INT_OR_STRING)
    if out.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    if "properties" in out and "additionalProperties" not in out and \
            not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def write_kubeconform_dir(crds: dict[tuple[str, str], CrdSchema], cache_root: str) -> str:
    """The converted schemas in kubeconform's ``{group}/{kind}_{version}.json`` layout, in a
    folder named after their content (written once); returns the folder."""
    bodies = {f"{crd.api_version.rpartition('/')[0]}/{crd.kind.lower()}_"
              f"{crd.api_version.rpartition('/')[2]}.json":
              json.dumps(crd.schema, sort_keys=True, separators=(",", ":"))
              for crd in crds.values()}
    digest = hashlib.sha256(json.dumps(bodies, sort_keys=True).encode()).hexdigest()[:16]
    target = os.path.join(cache_root, f"crd-{digest}")
    marker = os.path.join(target, ".complete")
    if os.path.isfile(marker):
        return target
    try:
        for relative, body in sorted(bodies.items()):
            path = os.path.join(target, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(body)
            os.replace(tmp, path)
        with open(marker, "w", encoding="utf-8"):
            pass
    except OSError as e:
        raise EnvironmentFailure(f"cannot write converted CRD schemas to {target}: "
                                 f"{e.strerror}") from e
    return target
