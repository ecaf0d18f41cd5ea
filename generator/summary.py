"""What a fleet change does, for a pull request: ``k10fleet diff --format markdown``.

The change is the tree on disk (the committed ``output/``, or a base branch's copy given
with ``-o``) against what the fleet renders now.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import yaml

from generator import lifecycle
from generator.pipeline import DiffResult, injected_paths
from generator.render.layout import (
    EXTERNAL_SECRET_FILE,
    JOIN_TOKEN_FILE,
    KSOPS_GENERATOR_FILE,
    MC_JOIN_FILE,
    MC_JOIN_SOPS_FILE,
    PUSH_SECRET_FILE,
    SECRET_STORE_FILE,
)

TOKEN_FILES = {JOIN_TOKEN_FILE, PUSH_SECRET_FILE, EXTERNAL_SECRET_FILE, MC_JOIN_FILE,
               MC_JOIN_SOPS_FILE, KSOPS_GENERATOR_FILE, SECRET_STORE_FILE}
STATUS_WORDS = {"missing": "added", "differs": "changed", "extra": "removed"}
VALUES_FILE = re.compile(r"^clusters/([^/]+)/k10-values\.yaml$")
MAX_VALUES_LINES = 20


@dataclass
class Summary:
    fleet: str
    output: str
    first_render: bool = False
    joining: list[str] = field(default_factory=list)
    leaving: list[tuple[str, str]] = field(default_factory=list)  # (cluster, kubectl command)
    versions: list[tuple[str, str, str]] = field(default_factory=list)  # cluster, before, after
    values: list[tuple[str, str]] = field(default_factory=list)  # cluster, short diff
    tokens: list[str] = field(default_factory=list)
    inject: list[str] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)  # path, added|changed|removed

    @property
    def changed(self) -> bool:
        return bool(self.files)


def _documents(content: bytes) -> Iterator[dict[str, object]]:
    try:
        for doc in yaml.safe_load_all(content):
            if isinstance(doc, dict):
                yield doc
    except yaml.YAMLError:
        return


def _chart_version(doc: Mapping[str, object]) -> str | None:
    """The K10 chart version an Argo CD Application or a Flux HelmRelease installs."""
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return None
    if doc.get("kind") == "Application":
        for source in spec.get("sources") or []:
            if isinstance(source, dict) and source.get("chart"):
                return str(source.get("targetRevision", ""))
    if doc.get("kind") == "HelmRelease":
        chart = (spec.get("chart") or {}).get("spec") or {}
        return str(chart.get("version", "")) if isinstance(chart, dict) else None
    return None


def chart_versions(files: Mapping[str, bytes]) -> dict[str, str]:
    """cluster -> chart version, from the engine files of a tree (none without an engine)."""
    found: dict[str, str] = {}
    for rel, content in files.items():
        match = (re.match(r"^argocd/([^/]+)\.yaml$", rel)
                 or re.match(r"^flux/releases/([^/]+)/helmrelease\.yaml$", rel))
        if not match or match.group(1) == "kustomization":
            continue
        for doc in _documents(content):
            version = _chart_version(doc)
            if version:
                found[match.group(1)] = version
    return found


def _disk_files(result: DiffResult, wanted: re.Pattern[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for rel in result.old.files:
        if wanted.match(rel):
            try:
                with open(os.path.join(result.out_dir, rel), "rb") as handle:
                    out[rel] = handle.read()
            except OSError:
                continue
    return out


def _short_diff(text: str) -> str:
    body = [line for line in text.splitlines() if not line.startswith(("---", "+++"))]
    if len(body) > MAX_VALUES_LINES:
        body = [*body[:MAX_VALUES_LINES], f"... {len(body) - MAX_VALUES_LINES} more lines"]
    return "\n".join(body)


def _token_mode_of_tree(paths: set[str]) -> str | None:
    names = {os.path.basename(p) for p in paths}
    if PUSH_SECRET_FILE in names or EXTERNAL_SECRET_FILE in names:
        return "external-secrets"
    if MC_JOIN_FILE in names:
        return "vault-plugin"
    if MC_JOIN_SOPS_FILE in names or KSOPS_GENERATOR_FILE in names:
        return "sops"
    return None


def _tokens(result: DiffResult, files: list[tuple[str, str]]) -> list[str]:
    tokens = result.fleet.tokens
    lines = []
    before = _token_mode_of_tree(set(result.old.files))
    after = _token_mode_of_tree(set(result.files)) or tokens.mode
    if before and before != after:
        lines.append(f"tokens.mode changes: `{before}` → `{tokens.mode}`")
    touched = [f"`{path}` ({status})" for path, status in files
               if os.path.basename(path) in TOKEN_FILES
               or os.path.basename(path).startswith("credentials-")]
    if touched:
        lines.append(f"join-token and credential objects touched: {', '.join(touched)}")
        lines.append(f"tokens.mode `{tokens.mode}`, store `{tokens.store or '(none)'}`")
    return lines


def _inject(result: DiffResult) -> list[str]:
    fleet = result.fleet
    if fleet.tokens.mode == "sops":
        return [p for p in injected_paths(fleet) if p not in result.files]
    return []


def build_summary(result: DiffResult) -> Summary:
    """The facts a reviewer needs, from the tree on disk and the new render."""
    fleet = result.fleet
    old_clusters = result.old.meta.get("clusters")
    before = old_clusters if isinstance(old_clusters, dict) else {}
    known = {str(info.get("clusterName", name)) for name, info in before.items()
             if isinstance(info, dict)}
    summary = Summary(fleet.name, result.out_dir, first_render=not result.old.files)
    summary.files = [(c.path, STATUS_WORDS.get(c.status, c.status)) for c in result.changes]
    summary.joining = [f"`{s.name}`" + ("" if s.cluster_name == s.name
                                        else f" (dashboard name `{s.cluster_name}`)")
                       for s in fleet.secondaries if s.cluster_name not in known]
    summary.leaving = [(shlex.split(command)[3], command)
                       for command in lifecycle.disconnect_commands(
                           lifecycle.notices(fleet, result.old, result.fleet_path,
                                             result.out_dir))]
    engine_files = re.compile(r"^(argocd/[^/]+\.yaml|flux/releases/[^/]+/helmrelease\.yaml)$")
    old_versions = chart_versions(_disk_files(result, engine_files))
    new_versions = chart_versions({p: f.content for p, f in result.files.items()
                                   if engine_files.match(p)})
    summary.versions = [(c, old_versions[c], new_versions[c]) for c in sorted(new_versions)
                        if c in old_versions and old_versions[c] != new_versions[c]]
    for change in result.changes:
        match = VALUES_FILE.match(change.path)
        if match and change.status == "differs":
            summary.values.append((match.group(1), _short_diff(change.diff)))
    summary.tokens = _tokens(result, summary.files)
    summary.inject = _inject(result)
    return summary


def _fence(text: str, info: str = "") -> str:
    """A code block whose fence is longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def as_markdown(summary: Summary, fleet_file: str) -> str:
    """GitHub/GitLab-flavoured Markdown for a job summary or a pull-request comment."""
    counts = {word: sum(1 for _, s in summary.files if s == word)
              for word in ("added", "changed", "removed")}
    out = [f"## k10fleet: fleet `{summary.fleet}`", ""]
    if not summary.changed:
        out += [f"No change: `{summary.output}` is what `{fleet_file}` renders.", ""]
        return "\n".join(out)
    out += [f"Tree `{summary.output}`: {counts['added']} file(s) added, "
            f"{counts['changed']} changed, {counts['removed']} removed"
            + (" (first render)." if summary.first_render else "."), ""]
    if summary.joining:
        out += ["### Clusters joining", "", *(f"- {name}" for name in summary.joining), ""]
    if summary.leaving:
        out += ["### Clusters leaving", "",
                "Removing their files disconnects nothing. After the merge, run against "
                "the primary:", "", _fence("\n".join(cmd for _, cmd in summary.leaving), "sh"),
                ""]
    if summary.versions:
        out += ["### K10 versions", "", "| cluster | before | after |", "|---|---|---|",
                *(f"| `{c}` | {old} | {new} |" for c, old, new in summary.versions), ""]
    if summary.values:
        out += ["### Helm values changed", ""]
        for cluster, text in summary.values:
            out += [f"<details><summary><code>{cluster}</code> k10-values.yaml</summary>", "",
                    _fence(text, "diff"), "", "</details>", ""]
    if summary.tokens:
        out += ["### Tokens and stores", "", *(f"- {line}" for line in summary.tokens), ""]
    if summary.inject:
        out += ["### Secrets that need `k10fleet inject`", "",
                *(f"- `{path}`" for path in summary.inject), "",
                f"Run `k10fleet inject {fleet_file}` and commit the encrypted files.", ""]
    out += [f"<details><summary>{len(summary.files)} file(s)</summary>", "",
            "| file | change |", "|---|---|",
            *(f"| `{path}` | {status} |" for path, status in summary.files), "", "</details>",
            ""]
    return "\n".join(out)
