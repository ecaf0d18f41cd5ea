"""Checks beyond per-kind schemas: plaintext secrets, K10 values, kustomizations."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from generator.check.documents import Document
from generator.check.findings import Finding
from generator.check.schemas import Validator
from generator.errors import EnvironmentFailure
from generator.merge import deep_merge
from generator.resources import load_schema

ALLOW_PLAINTEXT = "k10fleet.io/allow-plaintext"
VALUES_FILE = "k10-values.yaml"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_SOPS_VALUE = re.compile(r"ENC\[[A-Z0-9_]+,data:[^,\]]*,iv:[^,\]]+,tag:[^,\]]+,type:[a-z]+\]\Z")
_AVP_PLACEHOLDER = re.compile(r"\s*<(?:path:[^<>]+|[A-Za-z0-9_.\-]+)(?:\s*\|[^<>]*)?>\s*\Z")
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@|github\.com/|gitlab\.com/)")


def is_sops_encrypted(doc: Document) -> bool:
    return isinstance(doc.data, dict) and isinstance(doc.data.get("sops"), dict)


def is_sops_value(value: Any) -> bool:
    return isinstance(value, str) and bool(_SOPS_VALUE.match(value))


def is_avp_placeholder(value: Any) -> bool:
    return isinstance(value, str) and bool(_AVP_PLACEHOLDER.match(value))


def _secret_values(doc: Document) -> Iterator[tuple[str, str, Any]]:
    for field in ("data", "stringData"):
        values = doc.data.get(field)
        if isinstance(values, dict):
            for key, value in values.items():
                yield field, str(key), value


def secret_findings(doc: Document) -> Iterator[Finding]:
    """No Secret may carry a readable value unless it opts out by annotation."""
    meta = doc.data.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    opted_out = isinstance(annotations, dict) and annotations.get(ALLOW_PLAINTEXT) == "true"
    encrypted = is_sops_encrypted(doc)
    for field, key, value in _secret_values(doc):
        if value in (None, "") or opted_out:
            continue
        if encrypted and is_sops_value(value):
            continue
        if not encrypted and is_avp_placeholder(value):
            continue
        what = ("is not encrypted although the Secret has a sops block (partially encrypted?)"
                if encrypted else "holds a plaintext value")
        yield doc.finding(f"{field}.{key} {what}: encrypt it (k10fleet inject, SOPS), use an "
                          "argocd-vault-plugin placeholder, or annotate the Secret "
                          f'{ALLOW_PLAINTEXT}: "true" if plaintext is intended',
                          path=(field, key), pointer=f"/{field}/{key}")


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
        try:
            schema = json.loads(schema_file.read_text(encoding="utf-8"))
            defaults = (yaml.safe_load(values_file.read_text(encoding="utf-8")) or {}
                        if values_file.is_file() else {})
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise EnvironmentFailure(f"cannot read the K10 chart at {location}: {e}") from e
        return cls(Validator(schema, strict_formats=False), defaults, str(schema_file))


_OWNED_VALUES = Validator(load_schema("k10-values.schema.json"), strict_formats=False)


def values_findings(doc: Document, chart: ChartValues | None) -> Iterator[Finding]:
    """The keys k10fleet owns, the chart's own schema, and what the chart's templates fail on."""
    values = doc.data
    if not isinstance(values, dict):
        yield doc.finding("Helm values must be a mapping")
        return
    for error in _OWNED_VALUES.errors(values):
        yield doc.finding(f"{'.'.join(map(str, error.path)) or 'values'}: {error.message}",
                          path=error.path, pointer=error.pointer)
    effective = deep_merge(chart.defaults, values) if chart else values
    if chart:
        for error in chart.validator.errors(effective):
            where = ".".join(map(str, error.path)) or "values"
            yield doc.finding(f"{where}: {error.message} (K10 chart schema {chart.source})",
                              path=error.path, pointer=error.pointer)
    multicluster = effective.get("multicluster")
    if not isinstance(multicluster, dict):
        return
    primary = multicluster.get("primary")
    if isinstance(primary, dict) and primary.get("create") is True:
        if multicluster.get("enabled", True) is not True:
            yield doc.finding("a primary (multicluster.primary.create: true) needs "
                              "multicluster.enabled: true; the K10 chart fails otherwise",
                              path=("multicluster", "enabled"))
        for key in ("name", "ingressURL"):
            if not primary.get(key):
                yield doc.finding(f"a primary needs a non-empty multicluster.primary.{key}; "
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


def kustomization_findings(doc: Document, root: str, engine: str, encrypted_files: set[str],
                           already_read: set[str]) -> Iterator[Finding]:
    """Every listed file exists and parses; Argo CD never gets an encrypted Secret as-is."""
    if not isinstance(doc.data, dict):
        return
    for field in LIST_FIELDS:
        if field in doc.data and not isinstance(doc.data[field], list | type(None)):
            yield doc.finding(f"{field} must be a list", path=(field,))
    for generator in _as_list(doc.data.get("secretGenerator")):
        name = generator.get("name", "?") if isinstance(generator, dict) else "?"
        yield doc.finding(f"secretGenerator {name!r} builds a Secret from plaintext kept in "
                          "Git; use a SOPS-encrypted Secret (KSOPS / Flux decryption) instead",
                          path=("secretGenerator",))
    base = os.path.dirname(doc.rel)
    for field, entry in _listed_paths(doc.data):
        if _REMOTE.match(entry):
            continue
        target = os.path.normpath(os.path.join(root, base, entry))
        rel = os.path.relpath(target, root).replace(os.sep, "/")
        if not os.path.exists(target):
            yield doc.finding(f"{field} lists {entry!r}, which does not exist", path=(field,))
            continue
        if os.path.isdir(target):
            if not any(os.path.exists(os.path.join(target, n)) for n in KUSTOMIZATION_FILES):
                yield doc.finding(f"{field} lists directory {entry!r}, which has no "
                                  "kustomization.yaml", path=(field,))
            continue
        if field == "resources" and engine == "argocd" and rel in encrypted_files:
            yield doc.finding(f"resources lists {entry!r}, a SOPS-encrypted Secret: Argo CD would "
                              "apply it still encrypted; name it in a KSOPS generator instead",
                              path=(field,))
        if entry.endswith((".yaml", ".yml")) and rel not in already_read:
            try:
                with open(target, encoding="utf-8") as handle:
                    list(yaml.load_all(handle, Loader=yaml.CSafeLoader))
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
                reason = getattr(e, "problem", None) or e
                yield doc.finding(f"{field} lists {entry!r}, which does not parse: {reason}",
                                  path=(field,))
