"""The operations the CLI offers, as plain functions: no printing, no exiting."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from generator.errors import EnvironmentFailure, InvalidInput, UsageFailure
from generator.fleet.loader import LoadLimits
from generator.fleet.model import MC_NAMESPACE, Fleet
from generator.fleet.validate import ValidationResult, load_fleet
from generator.inject import (
    InjectOutcome,
    join_targets,
    read_profile_credentials,
    secret_plaintexts,
    sops_files,
    write_plain,
)
from generator.output import (
    MANIFEST,
    Drift,
    FileSpec,
    Manifest,
    WriteResult,
    diff_tree,
    read_manifest,
    write_tree,
)
from generator.problems import Problem
from generator.render.central import credential_file, credentialed_profiles
from generator.render.fleet import MC_JOIN_SOPS_FILE, cluster_dir, render_fleet, source_label
from generator.resources import data_dir
from generator.secrets import sops
from generator.tokens import inside_git_work_tree, read_token
from generator.tools import atomic_write


@dataclass
class RenderOutcome:
    fleet_name: str
    out_dir: str
    warnings: list[Problem] = field(default_factory=list)
    written: WriteResult | None = None
    drift: Drift | None = None
    disconnect: list[str] = field(default_factory=list)
    awaiting_inject: list[str] = field(default_factory=list)  # sops files inject will write
    same: dict[str, bytes] | None = None  # --check: files whose bytes on disk were proven equal


def fleet_output_dir(fleet_path: str, fleet: Fleet) -> str:
    """Where the tree goes unless ``-o`` says otherwise: ``<fleet's folder>/<gitops.path>``
    (absolute), wherever the command runs from."""
    return os.path.join(os.path.dirname(os.path.abspath(fleet_path)), fleet.gitops.path)


_GITOPS_KEY = re.compile(r"^( +)gitops: *(#.*)?$")
_PLAIN_KEY = re.compile(r"^ *([A-Za-z]+):(?: +(.*))?$")
_PLAIN_PATH = re.compile(r"^([A-Za-z0-9._/-]+) *(#.*)?$")
_UNSURE = re.compile(r"[&*<{}\[\]\"'!|>]")  # anchors, aliases, merges, flow or quoted text


def _gitops_path_hint(text: str) -> str | None:
    """``gitops.path`` of a block-style fleet read without parsing it (for the unchanged
    re-render, which never parses), or None when the text is anything less plain."""
    lines = text.split("\n")
    heads = [i for i, line in enumerate(lines) if line.lstrip().startswith("gitops")]
    if not heads and "gitops" not in text.replace("gitops.", "").replace("gitops-", ""):
        return "output"
    match = _GITOPS_KEY.match(lines[heads[0]]) if len(heads) == 1 else None
    if match is None:
        return None
    indent = len(match.group(1))
    parents = [line for line in lines[:heads[0]] if line.strip()
               and not line.lstrip().startswith("#") and len(line) - len(line.lstrip()) < indent]
    if not parents or parents[-1].rstrip() != "spec:":
        return None
    found, child = "output", -1
    for line in lines[heads[0] + 1:]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        depth = len(line) - len(line.lstrip())
        if depth <= indent:
            break
        key = _PLAIN_KEY.match(line)
        if child not in (-1, depth) or key is None or _UNSURE.search(line.split("#")[0]):
            return None
        child = depth
        if key.group(1) == "path":
            value = _PLAIN_PATH.match(key.group(2) or "")
            if value is None:
                return None
            found = value.group(1)
    return found.strip("/") or "."


def guessed_output_dir(fleet_path: str) -> str | None:
    """:func:`fleet_output_dir` without loading the fleet, when its text is plain enough."""
    try:
        with open(fleet_path, encoding="utf-8") as handle:
            hint = _gitops_path_hint(handle.read())
    except (OSError, UnicodeDecodeError):
        return None
    return None if hint is None else os.path.join(
        os.path.dirname(os.path.abspath(fleet_path)), hint)


def default_output_dir(fleet_path: str) -> str:
    """:func:`fleet_output_dir`, loading the fleet only when its text is not plain enough;
    for a fleet that does not load, ``output`` beside it (the caller reports the fleet)."""
    guess = guessed_output_dir(fleet_path)
    if guess is not None:
        return guess
    try:
        return fleet_output_dir(fleet_path, load_fleet(fleet_path)[0])
    except InvalidInput:
        return os.path.join(os.path.dirname(os.path.abspath(fleet_path)), "output")


def guard_output_dir(out_dir: str, fleet_path: str) -> None:
    """The output tree is swapped as a whole, so it must be a folder of its own."""
    out = os.path.realpath(out_dir)
    if os.path.exists(os.path.join(out, ".git")):
        raise UsageFailure(f"output directory {out_dir} is a Git work tree root; render into a "
                           "folder of its own, such as output/")
    fleet = os.path.realpath(fleet_path)
    if fleet == out or fleet.startswith(out + os.sep):
        raise UsageFailure(f"output directory {out_dir} contains the fleet file {fleet_path}; "
                           "render into a folder of its own, such as output/")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageFailure(f"output path {out_dir} exists and is not a directory")
    if (os.path.isdir(out) and any(os.scandir(out))
            and not os.path.exists(os.path.join(out, MANIFEST))):
        raise UsageFailure(f"output directory {out_dir} is not empty and was not written by "
                           f"k10fleet (no {MANIFEST}); render into an empty or new folder")


def injected_paths(fleet: Fleet) -> list[str]:
    """Where ``inject`` writes SOPS files for this fleet: mc-join per token-joined secondary,
    and a credential Secret per global profile with credentials (on the primary)."""
    paths = [f"{cluster_dir(s.name)}/{MC_JOIN_SOPS_FILE}"
             for s in fleet.secondaries if s.join_with == "token"]
    primary = cluster_dir(fleet.primary.name)
    paths += [f"{primary}/{credential_file(p, '.sops.yaml')}" for p in credentialed_profiles(fleet)]
    return paths


def injected_files(fleet: Fleet, out_dir: str, old: Manifest) -> dict[str, FileSpec]:
    """Files ``inject`` wrote that this fleet still needs: kept as they are."""
    if fleet.tokens.mode != "sops":
        return {}
    live = set(injected_paths(fleet))
    kept: dict[str, FileSpec] = {}
    for rel, entry in sorted(old.owned_by("inject").items()):
        if rel not in live:
            continue
        try:
            with open(os.path.join(out_dir, rel), "rb") as handle:
                content = handle.read()
        except FileNotFoundError:
            continue  # deleted by hand: inject will write it again
        kept[rel] = FileSpec(content, int(entry.get("mode", "0644"), 8), owner="inject",
                             fingerprint=entry.get("fingerprint"))
    return kept


def disconnect_commands(fleet: Fleet, old: Manifest) -> list[str]:
    """``kubectl delete cluster`` for every secondary that left the fleet (or was renamed)."""
    before = old.meta.get("clusters", {})
    if not isinstance(before, dict):
        return []
    now = {s.cluster_name for s in fleet.secondaries}
    gone = sorted({
        str(info.get("clusterName", name)) for name, info in before.items()
        if isinstance(info, dict) and info.get("role") == "secondary"
        and str(info.get("clusterName", name)) not in now
    })
    extra = fleet.primary.kubectl_flags()
    return [" ".join(shlex.quote(a) for a in
                     ["kubectl", "delete", "cluster", name, "-n", MC_NAMESPACE, *extra])
            for name in gone]


def desired_files(
    fleet: Fleet, out_dir: str, old: Manifest, injected: dict[str, FileSpec] | None = None,
) -> tuple[dict[str, FileSpec], dict[str, dict[str, str]]]:
    """Rendered files plus the injected ones (given, or kept from the last inject), and the
    cluster facts for the manifest."""
    kept = injected if injected is not None else injected_files(fleet, out_dir, old)
    by_cluster: dict[str, list[str]] = {}
    for rel in kept:
        by_cluster.setdefault(rel.split("/")[1], []).append(os.path.basename(rel))
    primary = cluster_dir(fleet.primary.name) + "/"
    fingerprints = {rel.removeprefix(primary): spec.fingerprint for rel, spec in kept.items()
                    if rel.startswith(primary) and spec.fingerprint}
    tree = render_fleet(fleet, injected=by_cluster, fingerprints=fingerprints)
    files = {p: FileSpec(f.content, f.mode) for p, f in tree.files.items()}
    files.update(kept)
    return files, tree.clusters


@functools.cache
def _code_and_data_digest() -> bytes:
    """What, besides the fleet, decides the output: this package's code, templates, schemas."""
    digest = hashlib.sha256()
    roots = [Path(__file__).resolve().parent, data_dir("templates"), data_dir("schemas")]
    for root in roots:
        for path in sorted(root.rglob("*")):
            if "_data" in path.relative_to(root).parts:
                continue  # the wheel's copy of templates/schemas: hashed as its own root
            if path.is_file() and path.suffix in (".py", ".j2", ".json"):
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.digest()


def input_fingerprint(fleet_path: str) -> str | None:
    """Digest of everything a render depends on; None when the fleet cannot be read."""
    try:
        with open(fleet_path, "rb") as handle:
            fleet_bytes = handle.read()
    except OSError:
        return None
    digest = hashlib.sha256(b"k10fleet-inputs-1\0" + _code_and_data_digest())
    digest.update(source_label(fleet_path).encode() + b"\0" + fleet_bytes)
    return digest.hexdigest()


def _signature(path: str) -> list[int] | None:
    """What changes whenever a file's content or mode changes (as Git's index relies on)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_mode]


def _signatures(out_dir: str, manifest: Manifest) -> dict[str, list[int] | None]:
    # sequential on purpose: lstat is cheap (~3 µs); a thread pool costs more than it saves
    return {rel: _signature(os.path.join(out_dir, rel)) for rel in sorted(manifest.files)}


def manifest_meta(fleet: Fleet, clusters: dict[str, dict[str, str]]) -> dict[str, object]:
    return {"fleet": fleet.name, "engine": fleet.gitops.engine, "clusters": clusters}


def _cache_path(out_dir: str) -> str:
    """Beside the tree (like the lock), never in it: the committed tree stays byte-stable."""
    parent, name = os.path.split(os.path.abspath(out_dir))
    return os.path.join(parent, f".{name}.k10fleet-cache.json")


def remember_inputs(out_dir: str, inputs: str | None) -> None:
    """Record which inputs produced the tree now on disk, and each file's stat signature
    (best effort: it is only a shortcut; the tree itself was just written or verified)."""
    try:
        with open(os.path.join(out_dir, MANIFEST), "rb") as handle:
            manifest_digest = hashlib.sha256(handle.read()).hexdigest()
        manifest = read_manifest(out_dir)
        atomic_write(_cache_path(out_dir), json.dumps(
            {"inputs": inputs, "manifest": manifest_digest,
             "files": _signatures(out_dir, manifest)}, separators=(",", ":")).encode(), 0o644)
    except (OSError, InvalidInput):
        pass


def _unchanged_since_last_run(out_dir: str, inputs: str | None) -> Manifest | None:
    """The tree's manifest when the same inputs produced it and it is intact, else None."""
    try:
        with open(_cache_path(out_dir), "rb") as handle:
            cache = json.loads(handle.read())
        with open(os.path.join(out_dir, MANIFEST), "rb") as handle:
            manifest_bytes = handle.read()
    except (OSError, ValueError):
        return None
    if not inputs or not isinstance(cache, dict) or cache.get("inputs") != inputs:
        return None
    if cache.get("manifest") != hashlib.sha256(manifest_bytes).hexdigest():
        return None
    manifest = read_manifest(out_dir)
    recorded = cache.get("files")
    if not isinstance(recorded, dict) or set(recorded) != set(manifest.files):
        return None
    return manifest if _signatures(out_dir, manifest) == recorded else None


def _make_parent(out_dir: str) -> None:
    """A nested gitops.path (deploy/tree) gets its parent folders, for the tree's lock."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
    except OSError as e:
        raise EnvironmentFailure(f"cannot create the folder of {out_dir}: {e.strerror}") from e


def render(fleet_path: str, out_dir: str | None, *, check: bool = False,
           limits: LoadLimits | None = None,
           progress: Callable[[int, int], None] | None = None,
           loaded: ValidationResult | None = None) -> RenderOutcome:
    """Validate, render and either write the tree or (``check``) report its drift.

    When the fleet, k10fleet and its templates are unchanged since the tree was written
    (the manifest records their digest) and every recorded file is intact, there is
    nothing to do and nothing is rendered. Without ``out_dir`` the tree is the fleet's own
    (:func:`fleet_output_dir`). ``loaded``: the fleet already validated (by
    ``k10fleet ci``), not read again.
    """
    inputs = input_fingerprint(fleet_path)
    known = out_dir or guessed_output_dir(fleet_path)
    if known and os.path.isfile(os.path.join(known, MANIFEST)):
        guard_output_dir(known, fleet_path)
        unchanged = _unchanged_since_last_run(known, inputs)
        if unchanged is not None:
            outcome = RenderOutcome(str(unchanged.meta.get("fleet", "")), os.path.abspath(known))
            if check:
                outcome.drift = Drift()
            else:
                outcome.written = WriteResult(unchanged=len(unchanged.files) + 1)
            return outcome
    if loaded is not None and loaded.fleet is None:
        raise InvalidInput(loaded.problems)
    fleet, warnings = (loaded.fleet, loaded.problems) if loaded is not None and loaded.fleet \
        else load_fleet(fleet_path, limits)
    out_dir = out_dir or fleet_output_dir(fleet_path, fleet)
    guard_output_dir(out_dir, fleet_path)
    old = read_manifest(out_dir)
    files, clusters = desired_files(fleet, out_dir, old)
    meta = manifest_meta(fleet, clusters)
    outcome = RenderOutcome(fleet.name, os.path.abspath(out_dir), warnings,
                            disconnect=disconnect_commands(fleet, old))
    if fleet.tokens.mode == "sops":
        outcome.awaiting_inject = [p for p in injected_paths(fleet) if p not in files]
    if check:
        outcome.drift = diff_tree(out_dir, files, meta)
        unequal = {*outcome.drift.missing, *outcome.drift.differing}
        outcome.same = {p: s.content for p, s in files.items() if p not in unequal}
        if outcome.drift.clean:
            remember_inputs(out_dir, inputs)
    else:
        _make_parent(out_dir)
        outcome.written = write_tree(out_dir, files, meta, progress)
        remember_inputs(out_dir, inputs)
    return outcome


@dataclass
class FileDiff:
    path: str
    status: str  # missing | differs | extra
    diff: str


@dataclass
class DiffResult:
    fleet: Fleet
    out_dir: str  # absolute
    changes: list[FileDiff]
    files: dict[str, FileSpec]  # the tree render would write
    old: Manifest  # what the tree on disk holds


def diff(fleet_path: str, out_dir: str | None) -> DiffResult:
    """Unified diffs of what ``render`` would change (the human form of ``render --check``)."""
    import difflib

    fleet, _ = load_fleet(fleet_path)
    out_dir = out_dir or fleet_output_dir(fleet_path, fleet)
    guard_output_dir(out_dir, fleet_path)
    old = read_manifest(out_dir)
    files, clusters = desired_files(fleet, out_dir, old)
    meta = manifest_meta(fleet, clusters)
    drift = diff_tree(out_dir, files, meta)

    def text_of(path: str) -> list[str]:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read().splitlines(keepends=True)
        except OSError:
            return []

    result = []
    for status, paths in (("missing", drift.missing), ("differs", drift.differing),
                          ("extra", drift.extra)):
        for rel in paths:
            if rel == MANIFEST:
                continue  # bookkeeping: its changes follow from the files'
            current = [] if status == "missing" else text_of(os.path.join(out_dir, rel))
            wanted = (files[rel].content.decode(errors="replace").splitlines(keepends=True)
                      if rel in files else [])
            lines = difflib.unified_diff(current, wanted, f"a/{rel}", f"b/{rel}")
            result.append(FileDiff(rel, status, "".join(lines) or f"(mode of {rel} differs)\n"))
    return DiffResult(fleet, os.path.abspath(out_dir), result, files, old)


def inject(fleet_path: str, out_dir: str | None, *, age: Sequence[str] = (),
           plain_dir: str | None = None) -> InjectOutcome:
    """Fill every secondary's mc-join (and credentialed profiles' Secrets) from the stores:
    SOPS files written into the tree with the rendered files, or plain files outside Git."""
    fleet, _ = load_fleet(fleet_path)
    mode = fleet.tokens.mode
    if mode in ("external-secrets", "vault-plugin"):
        raise UsageFailure(f"tokens.mode {mode} needs no inject: render writes the objects "
                           "that fetch the token at sync time")
    if mode == "plain":
        return _inject_plain(fleet, plain_dir)
    if plain_dir:
        raise UsageFailure("--plain-dir is for tokens.mode plain; this fleet uses sops")
    out_dir = out_dir or fleet_output_dir(fleet_path, fleet)
    guard_output_dir(out_dir, fleet_path)
    for rel in injected_paths(fleet):  # configuration problems before the stores
        sops.age_recipients(out_dir, age, rel)
    old = read_manifest(out_dir)
    joined = read_token(fleet, join_targets(fleet))  # all reads before any write
    credentials = read_profile_credentials(fleet)
    outcome = InjectOutcome(fleet, out_dir=os.path.abspath(out_dir))
    injected = sops_files(out_dir, old, secret_plaintexts(fleet, joined, credentials), age,
                          outcome)
    files, clusters = desired_files(fleet, out_dir, old, injected=injected)
    outcome.written = write_tree(out_dir, files, manifest_meta(fleet, clusters))
    return outcome


def _inject_plain(fleet: Fleet, plain_dir: str | None) -> InjectOutcome:
    if not plain_dir:
        raise UsageFailure("tokens.mode plain writes plaintext Secrets only to --plain-dir "
                           "DIR, a folder outside every Git work tree")
    repo = inside_git_work_tree(plain_dir)
    if repo is not None:
        raise UsageFailure(f"--plain-dir {plain_dir} lies inside the Git work tree {repo}; "
                           "plaintext tokens must never be committed: choose a folder "
                           "outside it")
    joined = read_token(fleet, join_targets(fleet))
    credentials = read_profile_credentials(fleet)
    return InjectOutcome(fleet, plain_files=write_plain(fleet, plain_dir, joined, credentials))
