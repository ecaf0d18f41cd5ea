"""Checks beyond per-kind schemas: plaintext secrets, K10 values, kustomizations."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

from generator.check.documents import (
    KUSTOMIZATION_FILES,
    Document,
    Unreadable,
    is_list,
    read_text,
)
from generator.check.schemas import Validator
from generator.errors import EnvironmentFailure
from generator.merge import deep_merge
from generator.problems import Problem
from generator.resources import load_schema
from generator.yamllimits import TooLarge

ALLOW_PLAINTEXT = "k10fleet.io/allow-plaintext"
VALUES_FILE = "k10-values.yaml"
_SOPS_VALUE = re.compile(r"ENC\[[A-Z0-9_]+,data:[^,\]]*,iv:[^,\]]+,tag:[^,\]]+,type:[a-z]+\]\Z")
_AVP_PLACEHOLDER = re.compile(r"\s*<(?:path:[^<>]+|[A-Za-z0-9_.\-]+)(?:\s*\|[^<>]*)?>\s*\Z")
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@|github\.com/|gitlab\.com/)")


def is_sops_encrypted(doc: Document) -> bool:
    return isinstance(doc.data, dict) and isinstance(doc.data.get("sops"), dict)


def is_sops_value(value: Any) -> bool:
    return isinstance(value, str) and bool(_SOPS_VALUE.match(value))


def is_avp_placeholder(value: Any) -> bool:
    return isinstance(value, str) and bool(_AVP_PLACEHOLDER.match(value))


def secret_shaped(data: Any, at: tuple[str | int, ...] = ()
                  ) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every Secret in a document, whatever its apiVersion: the object itself, or the items
    of a typed list (``SecretList``, or a List kubectl would not expand: no apiVersion).
    The items of an expanded ``kind: List`` are documents of their own."""
    if not isinstance(data, dict):
        return
    kind = data.get("kind")
    if kind == "Secret":
        yield at, data
    items = data.get("items")
    if isinstance(kind, str) and kind.lower().endswith("list") and isinstance(items, list) \
            and not is_list(data):
        for index, item in enumerate(items):
            if kind == "SecretList" and isinstance(item, dict) and "kind" not in item:
                yield (*at, "items", index), item
            else:
                yield from secret_shaped(item, (*at, "items", index))


def _secret_values(secret: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    for field in ("data", "stringData"):
        values = secret.get(field)
        if isinstance(values, dict):
            for key, value in values.items():
                yield field, str(key), value


def secret_findings(doc: Document) -> Iterator[Problem]:
    """No Secret anywhere in the document may carry a readable value unless it opts out by
    annotation."""
    for at, secret in secret_shaped(doc.data):
        yield from _plaintext_findings(doc, at, secret)


def _plaintext_findings(doc: Document, at: tuple[str | int, ...], secret: dict[str, Any]
                        ) -> Iterator[Problem]:
    finding = partial(doc.finding, rule="plaintext-secret")
    meta = secret.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    opted_out = isinstance(annotations, dict) and annotations.get(ALLOW_PLAINTEXT) == "true"
    encrypted = isinstance(secret.get("sops"), dict)
    for field, key, value in _secret_values(secret):
        if value in (None, "") or opted_out:
            continue
        if encrypted and is_sops_value(value):
            continue
        if not encrypted and is_avp_placeholder(value):
            continue
        what = ("is not encrypted although the Secret has a sops block (partially encrypted?)"
                if encrypted else "holds a plaintext value")
        where = "".join(f"{p}." for p in at)
        yield finding(f"{where}{field}.{cut(key)} {what}: encrypt it (k10fleet inject, "
                          "SOPS), use an argocd-vault-plugin placeholder, or annotate the "
                          f'Secret {ALLOW_PLAINTEXT}: "true" if plaintext is intended',
                          path=(*at, field, key),
                          pointer="".join(f"/{p}" for p in (*at, field, key)))


def cut(text: str, limit: int = 80) -> str:
    """A name from the input, short enough for a message."""
    return text if len(text) <= limit else text[:limit] + "..."


def secret_leaves(data: Any) -> set[str]:
    """Every value under the data/stringData of any Secret in the document, as text."""
    leaves: set[str] = set()
    for _, secret in secret_shaped(data):
        stack = [secret.get("data"), secret.get("stringData")]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif item is not None and item != "":
                leaves.add(str(item))
                leaves.add(json.dumps(item))
    return leaves


_QUOTED = re.compile(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"")


def without_quoted(message: str) -> str:
    return _QUOTED.sub("(value not shown)", message)


def redact(message: str, path: tuple[str | int, ...], leaves: set[str],
           rule: str | None = None) -> str:
    """A message about a Secret that shows no value of its data: under ``data`` or
    ``stringData`` only the rule broken is named (the caller names field and key); elsewhere
    quoted text goes if it holds a value."""
    under_data = any(p in ("data", "stringData") for p in path)
    if not under_data and not any(leaf in message for leaf in leaves):
        return message
    if rule:
        return f"value not shown; breaks the schema rule {rule}"
    quoted_out = without_quoted(message)
    if not any(leaf in quoted_out for leaf in leaves):
        return quoted_out
    return "value not shown; rejected by the schema"


def schema_view(doc: Document) -> Any:
    """What the Kubernetes schema should see: the sops block set aside, and encrypted values
    or vault-plugin placeholders replaced by empty (valid) data."""
    if doc.kind != "Secret" or not isinstance(doc.data, dict):
        return doc.data
    view = {k: v for k, v in doc.data.items() if k != "sops"}
    for field in ("data", "stringData"):
        values = view.get(field)
        if isinstance(values, dict):
            view[field] = {k: ("" if is_sops_value(v) or is_avp_placeholder(v) else v)
                           for k, v in values.items()}
    return view


@dataclass
class ChartValues:
    """A K10 chart's values schema and defaults, from ``--k10-chart``."""

    validator: Validator
    defaults: dict[str, Any]
    source: str

    @classmethod
    def load(cls, location: str) -> ChartValues:
        path = Path(location)
        schema_file = path / "values.schema.json" if path.is_dir() else path
        values_file = schema_file.parent / "values.yaml"
        import yaml  # --k10-chart only

        try:
            schema = json.loads(schema_file.read_text(encoding="utf-8"))
            defaults = (yaml.safe_load(values_file.read_text(encoding="utf-8")) or {}
                        if values_file.is_file() else {})
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise EnvironmentFailure(f"cannot read the K10 chart at {location}: {e}") from e
        return cls(Validator(schema, strict_formats=False), defaults, str(schema_file))


@cache
def _owned_values() -> Validator:
    """The schema of the values keys k10fleet owns, compiled when a values file is met."""
    return Validator(load_schema("k10-values.schema.json"), strict_formats=False)


def values_findings(doc: Document, chart: ChartValues | None) -> Iterator[Problem]:
    """The keys k10fleet owns, the chart's own schema, and what the chart's templates fail on."""
    finding = partial(doc.finding, rule="k10-values")
    values = doc.data
    if not isinstance(values, dict):
        yield finding("Helm values must be a mapping")
        return
    for error in _owned_values().errors(values):
        yield finding(f"{'.'.join(map(str, error.path)) or 'values'}: {error.message}",
                          path=error.path, pointer=error.pointer)
    effective = deep_merge(chart.defaults, values) if chart else values
    if chart:
        for error in chart.validator.errors(effective):
            where = ".".join(map(str, error.path)) or "values"
            yield finding(f"{where}: {error.message} (K10 chart schema {chart.source})",
                              path=error.path, pointer=error.pointer)
    multicluster = effective.get("multicluster")
    if not isinstance(multicluster, dict):
        return
    primary = multicluster.get("primary")
    if isinstance(primary, dict) and primary.get("create") is True:
        if multicluster.get("enabled", True) is not True:
            yield finding("a primary (multicluster.primary.create: true) needs "
                              "multicluster.enabled: true; the K10 chart fails otherwise",
                              path=("multicluster", "enabled"))
        for key in ("name", "ingressURL"):
            if not primary.get(key):
                yield finding(f"a primary needs a non-empty multicluster.primary.{key}; "
                                  "the K10 chart fails otherwise",
                                  path=("multicluster", "primary", key))


LIST_FIELDS = ("resources", "components", "generators", "transformers", "validators", "crds",
               "configurations", "patchesStrategicMerge", "patches", "patchesJson6902",
               "configMapGenerator", "secretGenerator")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _listed_paths(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, local path) of everything a kustomization refers to."""
    for field in ("resources", "components", "generators", "transformers", "validators",
                  "crds", "configurations", "patchesStrategicMerge"):
        for entry in _as_list(data.get(field)):
            if isinstance(entry, str) and "\n" not in entry:
                yield field, entry
    for field in ("patches", "patchesJson6902"):
        for entry in _as_list(data.get(field)):
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                yield field, entry["path"]
    for field in ("configMapGenerator", "secretGenerator"):
        for generator in _as_list(data.get(field)):
            if not isinstance(generator, dict):
                continue
            for sub in ("files", "envs"):
                for entry in _as_list(generator.get(sub)):
                    if isinstance(entry, str):
                        yield f"{field}.{sub}", entry.split("=", 1)[-1]
            if isinstance(generator.get("env"), str):
                yield f"{field}.env", generator["env"]


def _missing_entry(target: str, entry: str) -> str:
    """What is wrong with a listed path (empty: a file; "directory": a kustomization)."""
    try:
        info = os.stat(target)
    except OSError:
        return f"{cut(entry)!r}, which does not exist"
    if stat.S_ISDIR(info.st_mode):
        if not any(os.path.exists(os.path.join(target, n)) for n in KUSTOMIZATION_FILES):
            return f"directory {cut(entry)!r}, which has no kustomization.yaml"
        return "directory"
    if not stat.S_ISREG(info.st_mode):
        return f"{cut(entry)!r}, which is not a regular file (a device, pipe or socket?)"
    return ""


def _local_entries(doc: Document, root: str) -> Iterator[tuple[str, str, str, str]]:
    """(field, entry, path, path relative to root) of every local path a kustomization lists."""
    folder = os.path.dirname(doc.rel)
    base = os.path.join(root, folder)
    prefix = os.path.join(root, "")
    for field, entry in _listed_paths(doc.data):
        if _REMOTE.match(entry):
            continue
        if "/" not in entry and entry not in (".", "..", ""):  # a file beside it: the most
            rel = f"{folder}/{entry}" if folder else entry   # common entry, no path to clean
            yield field, entry, prefix + rel, rel
            continue
        target = os.path.normpath(os.path.join(base, entry))
        rel = (target[len(prefix):] if target.startswith(prefix)
               else os.path.relpath(target, root)).replace(os.sep, "/")
        yield field, entry, target, rel


def kustomization_findings(doc: Document, root: str, already_read: set[str]
                           ) -> Iterator[Problem]:
    """Every listed file exists and parses (``already_read``: files known to exist and to
    have been parsed, or reported, already); no Secret is generated from plaintext."""
    finding = partial(doc.finding, rule="kustomization")
    if not isinstance(doc.data, dict):
        return
    for field in LIST_FIELDS:
        if field in doc.data and not isinstance(doc.data[field], list | type(None)):
            yield finding(f"{field} must be a list", path=(field,))
    for generator in _as_list(doc.data.get("secretGenerator")):
        name = generator.get("name", "?") if isinstance(generator, dict) else "?"
        yield finding(f"secretGenerator {name!r} builds a Secret from plaintext kept in "
                          "Git; use a SOPS-encrypted Secret (KSOPS / Flux decryption) instead",
                          path=("secretGenerator",))
    for field, entry, target, rel in _local_entries(doc, root):
        if rel in already_read:  # a file read above exists and is regular: no stat
            continue
        problem = _missing_entry(target, entry)
        if problem:
            if problem != "directory":
                yield finding(f"{field} lists {problem}", path=(field,))
            continue
        if entry.endswith((".yaml", ".yml")):
            yield from _parse_findings(finding, field, entry, target)


def _parse_findings(finding: partial[Problem], field: str, entry: str, target: str
                    ) -> Iterator[Problem]:
    from generator import yaml11  # a file no check above read: rare

    try:
        text = read_text(target)
        yaml11.check_depth(text)
        yaml11.load_all(text)
    except Unreadable as e:
        yield finding(f"{field} lists {cut(entry)!r}: {e}", path=(field,))
    except (yaml11.YAMLError, TooLarge) as e:
        reason = getattr(e, "problem", None) or e
        yield finding(f"{field} lists {cut(entry)!r}, which does not parse: {reason}",
                      path=(field,))


def encrypted_resource_findings(doc: Document, root: str, encrypted_files: set[str]
                                ) -> Iterator[Problem]:
    """Argo CD never gets an encrypted Secret as-is (for a tree Argo CD applies)."""
    if not isinstance(doc.data, dict):
        return
    for field, entry, _, rel in _local_entries(doc, root):
        if field == "resources" and rel in encrypted_files:
            yield doc.finding(f"resources lists {cut(entry)!r}, a SOPS-encrypted Secret: "
                              "Argo CD would apply it still encrypted; name it in a KSOPS "
                              "generator instead", path=(field,), rule="kustomization")
