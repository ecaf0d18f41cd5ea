"""Where every kind's schema comes from, compiled once per kind.

Kubernetes core kinds: the strict schemas bundled with ``kubernetes-validate``,
made standalone (every reachable definition inlined) so that no ``$ref`` points
at the network. Every other kind, first match wins (docs/check-schemas.md):

1. ``--crd`` CustomResourceDefinitions (converted strictly, see ``check/crds.py``);
2. ``--schema-location`` folders, in the order given, in kubeconform's
   ``{group}/{kind}_{version}.json`` layout;
3. the schemas k10fleet ships: ``schemas/engines`` (Argo CD, Flux, ESO) and
   ``schemas/kasten``, written from the documented APIs.

A user's explicit schema thus always wins over the shipped ones. Validators come
from jsonschema-rs when installed (fast), else jsonschema.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import importlib.util
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.errors import EnvironmentFailure
from generator.jsonschemas import detailed_validator_class, fast_validator
from generator.resources import data_dir

if TYPE_CHECKING:
    from generator.check.crds import CrdSchema

_DEFS_REF = re.compile(r"^(?:/api/_definitions\.json)?#/\$defs/(.+)$")


def is_base64(value: object) -> bool:
    """Strict base64, as the API server decodes Secret ``data``."""
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(value) % 4 == 0


@dataclass(frozen=True)
class SchemaError:
    pointer: str
    path: tuple[str | int, ...]
    message: str
    rule: str = "schema"  # the rule broken, without the value: for messages about Secrets


_SAFE_DETAILS = ("format", "types", "pattern", "limit")


def _rule_of(name: str, details: dict[str, Any]) -> str:
    shown = [", ".join(map(str, v)) if isinstance(v, list) else str(v)
             for k, v in details.items() if k in _SAFE_DETAILS]
    return f"{name} ({'; '.join(shown)})" if shown else name


class Validator:
    """One compiled schema; errors as (JSON pointer, message)."""

    def __init__(self, schema: dict[str, Any], *, strict_formats: bool) -> None:
        self.schema = schema
        self._fast = fast_validator(schema, formats={"byte": is_base64},
                                    validate_formats=strict_formats)
        if self._fast is None:
            import jsonschema  # the slow fallback: imported only when needed

            checker = jsonschema.FormatChecker(formats=()) if strict_formats else None
            if checker is not None:
                checker.checks("byte")(is_base64)
            self._slow = detailed_validator_class(schema)(schema, format_checker=checker)

    def errors(self, instance: Any) -> Iterator[SchemaError]:
        if self._fast is not None:
            try:
                found = list(self._fast.iter_errors(instance))
            except (ValueError, TypeError, OverflowError):
                yield SchemaError("", (), "holds a mapping key or value that is not JSON "
                                  "(a number or boolean used as a key?); quote it")
                return
            for error in found:
                path = tuple(error.instance_path)
                kind = error.kind
                yield SchemaError(_pointer(path), path, error.message,
                                  _rule_of(kind.name, kind.as_dict()))
        else:
            for error in self._slow.iter_errors(instance):
                path = tuple(error.absolute_path)
                rule = str(error.validator)
                details = {{"type": "types"}.get(rule, rule): error.validator_value}
                yield SchemaError(_pointer(path), path, error.message, _rule_of(rule, details))


def _pointer(path: tuple[str | int, ...]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def kubernetes_schema_root() -> Path:
    """Found without importing the package (which would import jsonschema and more)."""
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.origin:
        raise EnvironmentFailure("check needs the kubernetes-validate package for Kubernetes "
                                 "schemas: pip install kubernetes-validate")
    return Path(spec.origin).resolve().parent / "kubernetes-json-schema"


@cache
def kubernetes_schema_dir(version: str) -> Path:
    """The bundled strict schema folder for ``version`` (latest not newer than it)."""
    wanted = _minor(version)
    root = kubernetes_schema_root()
    available = sorted((_minor(d.name), d) for d in root.iterdir()
                       if d.name.endswith("-local-strict"))
    usable = [d for minor, d in available if minor <= wanted]
    if not usable:
        raise EnvironmentFailure(f"no bundled Kubernetes schemas for version {version}; "
                                 f"oldest is {available[0][1].name if available else 'none'}")
    return usable[-1]


def _minor(version: str) -> tuple[int, int]:
    match = re.match(r"v?(\d+)\.(\d+)", version)
    if not match:
        raise EnvironmentFailure(f"not a Kubernetes version: {version!r} (use e.g. 1.32.0)")
    return int(match.group(1)), int(match.group(2))


def kind_file_name(api_version: str, kind: str) -> str:
    """``apps/v1`` + ``Deployment`` -> ``deployment-apps-v1.json`` (bundled naming)."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{group_version}.json"


@cache
def _definitions(schema_dir: Path) -> dict[str, Any]:
    with open(schema_dir / "_definitions.json", encoding="utf-8") as handle:
        defs: dict[str, Any] = json.load(handle)["$defs"]
    return defs


def standalone(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """Inline every definition the schema reaches; refs become local ``#/$defs/NAME``."""
    needed: dict[str, Any] = {}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    match = _DEFS_REF.match(value)
                    if match:
                        name = match.group(1)
                        if name not in needed:
                            needed[name] = None  # placeholder first: cycles terminate
                            needed[name] = rewrite(definitions[name])
                        out[key] = f"#/$defs/{name}"
                        continue
                out[key] = rewrite(value)
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    body: dict[str, Any] = rewrite({k: v for k, v in schema.items()
                                    if k not in ("$id", "$defs")})
    body["$defs"] = dict(sorted(needed.items()))
    return body


BUILT_IN = ("engines", "kasten")  # folders of schemas/ that k10fleet ships, searched last


def built_in_locations() -> list[Path]:
    """The shipped schema folders (Argo CD/Flux/ESO, then Kasten), wherever they are installed."""
    return [data_dir("schemas") / name for name in BUILT_IN]


class SchemaStore:
    """Finds and compiles the schema of each (apiVersion, kind), once."""

    def __init__(self, kubernetes_version: str, locations: list[str],
                 crds: Sequence[str] = (), cache_root: str | None = None) -> None:
        self.kubernetes_dir = kubernetes_schema_dir(kubernetes_version)
        # standalone copies of the core schemas, kept between runs (also kubeconform's)
        self.standalone_dir = (standalone_dir(self.kubernetes_dir, cache_root) if cache_root
                               else None)
        self.locations = [Path(p) for p in locations]
        self.built_in = built_in_locations()
        self.crds: dict[tuple[str, str], CrdSchema] = {}
        if crds:  # the CRD reader is imported only when it is needed
            from generator.check.crds import load_crds

            self.crds = load_crds(crds)
        self._cache: dict[tuple[str, str], tuple[Validator, str] | None] = {}

    def search_path(self) -> list[Path]:
        """Schema folders in the order they are searched (after ``--crd``)."""
        return [*self.locations, *self.built_in]

    def kubeconform_locations(self, cache_root: str) -> list[str]:
        """The same precedence for kubeconform: converted ``--crd`` schemas first."""
        folders = [str(p) for p in self.search_path()]
        if self.crds:
            from generator.check.crds import write_kubeconform_dir

            folders.insert(0, write_kubeconform_dir(self.crds, os.path.join(
                os.path.dirname(cache_root), "crd-schemas")))
        return folders

    def lookup(self, api_version: str, kind: str) -> tuple[Validator, str] | None:
        """(validator, where the schema came from) or None when no schema is known."""
        key = (api_version, kind)
        if key not in self._cache:
            self._cache[key] = self._load(api_version, kind)
        return self._cache[key]

    def _load(self, api_version: str, kind: str) -> tuple[Validator, str] | None:
        group, _, version = api_version.rpartition("/")
        if not group or group.endswith(".k8s.io") or "." not in group:
            path = self.kubernetes_dir / kind_file_name(api_version, kind)
            if path.is_file():
                schema = self._standalone(path)
                return Validator(schema, strict_formats=True), f"kubernetes {path.parent.name}"
        crd = self.crds.get((api_version, kind))
        if crd is not None:
            return Validator(crd.schema, strict_formats=False), crd.source
        relative = f"{group}/{kind.lower()}_{version}.json"
        for root in self.search_path():
            path = root / relative
            if path.is_file():
                try:
                    with open(path, encoding="utf-8") as handle:
                        schema = json.load(handle)
                except (OSError, ValueError) as e:
                    raise EnvironmentFailure(f"cannot read schema {path}: {e}") from e
                return Validator(schema, strict_formats=False), str(path)
        return None


    def _standalone(self, path: Path) -> dict[str, Any]:
        """A core kind's schema made standalone: from the cache when a run has written it
        (the 1.3 MB of definitions are then not read), else made and written there."""
        cached = self.standalone_dir / path.name if self.standalone_dir else None
        if cached is not None:
            try:
                with open(cached, encoding="utf-8") as handle:
                    schema: dict[str, Any] = json.load(handle)
                return schema
            except (OSError, ValueError):
                pass  # not written yet (or spoilt): made again below
        with open(path, encoding="utf-8") as handle:
            original = json.load(handle)
        schema = standalone(original, _definitions(self.kubernetes_dir))
        if cached is not None and "x-kubernetes-group-version-kind" in original:
            with contextlib.suppress(OSError):  # a read-only cache only costs time
                cached.parent.mkdir(parents=True, exist_ok=True)
                _write_atomically(cached, json.dumps(schema, separators=(",", ":")))
        return schema


def standalone_dir(schema_dir: Path, cache_root: str) -> Path:
    """Where the standalone copies of one bundled schema folder are kept."""
    return Path(cache_root) / f"{schema_dir.name.removesuffix('-local-strict')}-standalone-strict"


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the whole new one (the name is unique per process: both
    check processes may write the same kind)."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_standalone_cache(version: str, cache_root: str) -> str:
    """Standalone copies of the bundled schemas, laid out for kubeconform; returns the folder."""
    schema_dir = kubernetes_schema_dir(version)
    target = standalone_dir(schema_dir, cache_root)
    marker = target / ".complete"
    if marker.is_file():
        return str(target)
    target.mkdir(parents=True, exist_ok=True)
    definitions = _definitions(schema_dir)
    for path in sorted(schema_dir.glob("*.json")):
        if path.name.startswith("_"):
            continue
        with open(path, encoding="utf-8") as handle:
            schema = json.load(handle)
        if "x-kubernetes-group-version-kind" not in schema:
            continue
        _write_atomically(target / path.name,
                          json.dumps(standalone(schema, definitions), separators=(",", ":")))
    marker.write_text("", encoding="utf-8")
    return str(target)
