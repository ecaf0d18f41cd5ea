"""The operations the CLI offers, as plain functions: no printing, no exiting."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from generator import lifecycle
from generator.errors import InvalidInput, UsageFailure
from generator.fleet.loader import LoadLimits
from generator.fleet.model import Fleet
from generator.fleet.validate import load_fleet
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
    notices: list[lifecycle.Notice] = field(default_factory=list)  # what to do in K10 now
    stale: list[lifecycle.StaleSecret] = field(default_factory=list)  # inject must run again

    @property
    def failed(self) -> bool:
        """``--check``: the tree drifted, or holds Secrets made from outdated inputs."""
        return self.drift is not None and (not self.drift.clean or bool(self.stale))


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
                             fingerprint=entry.get("fingerprint"), inputs=entry.get("inputs"))
    return kept


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


def input_fingerprint(fleet_path: str, out_dir: str | None = None) -> str | None:
    """Digest of everything a render depends on; None when the fleet cannot be read. With
    ``out_dir``, the .sops.yaml whose recipients decide whether injected files are stale."""
    try:
        with open(fleet_path, "rb") as handle:
            fleet_bytes = handle.read()
    except OSError:
        return None
    digest = hashlib.sha256(b"k10fleet-inputs-1\0" + _code_and_data_digest())
    digest.update(source_label(fleet_path).encode() + b"\0" + fleet_bytes)
    if out_dir is not None:
        digest.update(b"\0" + lifecycle.recipients_source(out_dir, ()).encode())
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
    return {"fleet": fleet.name, "engine": fleet.gitops.engine, "clusters": clusters,
            "joinTokenSecret": fleet.tokens.join_token_secret}


def _cache_path(out_dir: str) -> str:
    """Beside the tree (like the lock), never in it: the committed tree stays byte-stable."""
    parent, name = os.path.split(os.path.abspath(out_dir))
    return os.path.join(parent, f".{name}.k10fleet-cache.json")


def remember_inputs(out_dir: str, inputs: str | None,
                    stale: list[lifecycle.StaleSecret] | None = None) -> None:
    """Record which inputs produced the tree now on disk, and each file's stat signature
    (best effort: it is only a shortcut; the tree itself was just written or verified)."""
    try:
        with open(os.path.join(out_dir, MANIFEST), "rb") as handle:
            manifest_digest = hashlib.sha256(handle.read()).hexdigest()
        manifest = read_manifest(out_dir)
        cache = {"inputs": inputs, "manifest": manifest_digest,
                 "files": _signatures(out_dir, manifest),
                 "stale": [[s.path, *s.reasons] for s in stale or []]}
        atomic_write(_cache_path(out_dir), json.dumps(cache, separators=(",", ":")).encode(),
                     0o644)
    except (OSError, InvalidInput):
        pass


def _cached_stale(out_dir: str) -> list[lifecycle.StaleSecret]:
    """The stale Secrets the last full run found (same inputs, same manifest: same answer)."""
    try:
        with open(_cache_path(out_dir), "rb") as handle:
            entries = json.loads(handle.read()).get("stale", [])
        return [lifecycle.StaleSecret(str(e[0]), tuple(str(r) for r in e[1:]))
                for e in entries if isinstance(e, list) and e]
    except (OSError, ValueError, AttributeError):
        return []


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


def render(fleet_path: str, out_dir: str, *, check: bool = False,
           limits: LoadLimits | None = None,
           progress: Callable[[int, int], None] | None = None) -> RenderOutcome:
    """Validate, render and either write the tree or (``check``) report its drift.

    When the fleet, k10fleet and its templates are unchanged since the tree was written
    (the manifest records their digest) and every recorded file is intact, there is
    nothing to do and nothing is rendered.
    """
    inputs = input_fingerprint(fleet_path, out_dir)
    if os.path.isfile(os.path.join(out_dir, MANIFEST)):
        guard_output_dir(out_dir, fleet_path)
        unchanged = _unchanged_since_last_run(out_dir, inputs)
        if unchanged is not None:
            outcome = RenderOutcome(str(unchanged.meta.get("fleet", "")), out_dir,
                                    stale=_cached_stale(out_dir))
            if check:
                outcome.drift = Drift()
            else:
                outcome.written = WriteResult(unchanged=len(unchanged.files) + 1)
            return outcome
    fleet, warnings = load_fleet(fleet_path, limits)
    guard_output_dir(out_dir, fleet_path)
    old = read_manifest(out_dir)
    problems = lifecycle.new_join_problems(fleet, old, fleet_path)
    if problems:
        raise InvalidInput(problems)
    files, clusters = desired_files(fleet, out_dir, old)
    meta = manifest_meta(fleet, clusters)
    found = lifecycle.notices(fleet, old, fleet_path, out_dir)
    outcome = RenderOutcome(fleet.name, out_dir, warnings, notices=found,
                            disconnect=lifecycle.disconnect_commands(found),
                            stale=lifecycle.stale_secrets(fleet, out_dir, old))
    if fleet.tokens.mode == "sops":
        outcome.awaiting_inject = [p for p in injected_paths(fleet) if p not in files]
    if check:
        outcome.drift = diff_tree(out_dir, files, meta)
        if outcome.drift.clean:
            remember_inputs(out_dir, inputs, outcome.stale)
    else:
        outcome.written = write_tree(out_dir, files, meta, progress)
        remember_inputs(out_dir, inputs, outcome.stale)
    return outcome


@dataclass
class FileDiff:
    path: str
    status: str  # missing | differs | extra
    diff: str


def diff(fleet_path: str, out_dir: str) -> tuple[Fleet, list[FileDiff]]:
    """Unified diffs of what ``render`` would change (the human form of ``render --check``)."""
    import difflib

    fleet, _ = load_fleet(fleet_path)
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
    return fleet, result


def inject(fleet_path: str, out_dir: str, *, age: Sequence[str] = (),
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
    guard_output_dir(out_dir, fleet_path)
    for rel in injected_paths(fleet):  # configuration problems before the stores
        sops.age_recipients(out_dir, age, rel)
    old = read_manifest(out_dir)
    joined = read_token(fleet, join_targets(fleet))  # all reads before any write
    credentials = read_profile_credentials(fleet)
    outcome = InjectOutcome(fleet)
    injected = sops_files(out_dir, old, secret_plaintexts(fleet, joined, credentials), age,
                          outcome)
    records = lifecycle.inject_records(fleet, list(injected),
                                       lifecycle.recipients_source(out_dir, age))
    injected = {rel: replace(spec, inputs=records.get(rel)) for rel, spec in injected.items()}
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
