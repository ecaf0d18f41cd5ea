"""The operations the CLI offers, as plain functions: no printing, no exiting."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from generator import lifecycle
from generator.errors import EnvironmentFailure, InvalidInput, UsageFailure
from generator.fleet.loader import LoadLimits
from generator.fleet.model import Fleet
from generator.fleet.validate import ValidationResult, load_fleet
from generator.output import (
    MANIFEST,
    DirCache,
    Drift,
    FileSpec,
    Manifest,
    WriteResult,
    diff_tree,
    read_manifest,
    read_tree_file,
    tree_entry,
    write_tree,
)
from generator.problems import Problem
from generator.render import tree as render_tree
from generator.render.global_resources import credential_file, credentialed_profiles
from generator.render.layout import MC_JOIN_SOPS_FILE, cluster_dir
from generator.secrets import sops

if TYPE_CHECKING:
    from generator.inject import InjectOutcome


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
    notices: list[lifecycle.Notice] = field(default_factory=list)  # what to do in K10 now
    stale: list[lifecycle.StaleSecret] = field(default_factory=list)  # inject must run again

    @property
    def failed(self) -> bool:
        """``--check``: the tree drifted, or holds Secrets made from outdated inputs."""
        return self.drift is not None and (not self.drift.clean or bool(self.stale))


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
    try:
        os.stat(out_dir)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENAMETOOLONG):
            raise UsageFailure(f"output path {out_dir} cannot be used: {e.strerror}") from None
    blocker = _not_a_folder_above(out)
    if blocker:
        raise UsageFailure(f"output path {out_dir} cannot be a directory: {blocker} is a file, "
                           "not a folder; choose another -o")
    if (os.path.isdir(out) and any(os.scandir(out))
            and not os.path.exists(os.path.join(out, MANIFEST))):
        raise UsageFailure(f"output directory {out_dir} is not empty and was not written by "
                           f"k10fleet (no {MANIFEST}); render into an empty or new folder")


def _not_a_folder_above(path: str) -> str | None:
    """The nearest existing ancestor of ``path`` when it is not a folder (``-o FILE/out``)."""
    current = os.path.dirname(path)
    while not os.path.lexists(current):
        current = os.path.dirname(current)
    return None if os.path.isdir(current) else current


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
    cache: DirCache = {}
    for rel, entry in sorted(old.owned_by("inject").items()):
        if rel not in live:
            continue
        content = read_tree_file(out_dir, rel, cache)  # never through a symlink
        if content is None:
            continue  # deleted or replaced by hand: inject will write it again
        kept[rel] = FileSpec(content, owner="inject", fingerprint=entry.get("fingerprint"),
                             inputs=entry.get("inputs"))
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
    tree = render_tree.render_fleet(fleet, injected=by_cluster, fingerprints=fingerprints)
    files = {p: FileSpec(f.content, f.mode) for p, f in tree.files.items()}
    files.update(kept)
    return files, tree.clusters


def manifest_meta(fleet: Fleet, clusters: dict[str, dict[str, str]]) -> dict[str, object]:
    return {"fleet": fleet.name, "engine": fleet.gitops.engine, "clusters": clusters,
            "joinTokenSecret": fleet.tokens.join_token_secret}


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

    Every run loads, validates, renders and reports in full; only the writer's reading of
    files it already knows to be unchanged is skipped (see ``generator.statcache``).
    Without ``out_dir`` the tree is the fleet's own (:func:`fleet_output_dir`).
    ``loaded``: the fleet already validated (by ``k10fleet ci``), not read again."""
    if loaded is not None and loaded.fleet is None:
        raise InvalidInput(loaded.problems)
    fleet, warnings = (loaded.fleet, loaded.problems) if loaded is not None and loaded.fleet \
        else load_fleet(fleet_path, limits)
    out_dir = out_dir or fleet_output_dir(fleet_path, fleet)
    guard_output_dir(out_dir, fleet_path)
    old = read_manifest(out_dir)
    problems = lifecycle.new_join_problems(fleet, old, fleet_path)
    if problems:
        raise InvalidInput(problems)
    files, clusters = desired_files(fleet, out_dir, old)
    meta = manifest_meta(fleet, clusters)
    found = lifecycle.notices(fleet, old, fleet_path, out_dir)
    outcome = RenderOutcome(fleet.name, os.path.abspath(out_dir), warnings, notices=found,
                            disconnect=lifecycle.disconnect_commands(found),
                            stale=lifecycle.stale_secrets(fleet, out_dir, old))
    if fleet.tokens.mode == "sops":
        outcome.awaiting_inject = [p for p in injected_paths(fleet) if p not in files]
    if check:
        outcome.drift = diff_tree(out_dir, files, meta, old)
        unequal = {*outcome.drift.missing, *outcome.drift.differing}
        outcome.same = {p: s.content for p, s in files.items() if p not in unequal}
    else:
        _make_parent(out_dir)
        outcome.written = write_tree(out_dir, files, meta, progress)
    return outcome


def _not_a_file_note(out_dir: str, rel: str) -> str:
    """Why the current side of a diff is shown empty: a link or other non-file, not read."""
    entry = tree_entry(out_dir, rel)
    if entry.kind == "file":
        return ""
    what = {"link": f"{rel} is a symbolic link",
            "blocked": f"{entry.blocker} is not a folder"}.get(entry.kind, f"{rel} is not a file")
    return f"({what}; not read)\n"


@dataclass
class FileDiff:
    path: str
    status: str  # missing | differs | extra
    diff: str


@dataclass
class DiffResult:
    fleet: Fleet
    fleet_path: str
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
    drift = diff_tree(out_dir, files, meta, old)

    def text_of(rel: str) -> list[str]:
        content = read_tree_file(out_dir, rel)  # never through a link that may leave the tree
        return [] if content is None else content.decode(errors="replace").splitlines(True)

    result = []
    for status, rel in drift.entries():
        if rel == MANIFEST:
            continue  # bookkeeping: its changes follow from the files'
        current = [] if status == "missing" else text_of(rel)
        wanted = (files[rel].content.decode(errors="replace").splitlines(keepends=True)
                  if rel in files else [])
        lines = difflib.unified_diff(current, wanted, f"a/{rel}", f"b/{rel}")
        note = _not_a_file_note(out_dir, rel) if status != "missing" else ""
        result.append(FileDiff(rel, status, note + ("".join(lines) or
                                                    f"(mode of {rel} differs)\n")))
    return DiffResult(fleet, fleet_path, os.path.abspath(out_dir), result, files, old)


def inject(fleet_path: str, out_dir: str | None, *, age: Sequence[str] = (),
           plain_dir: str | None = None) -> InjectOutcome:
    """Fill every secondary's mc-join (and credentialed profiles' Secrets) from the stores:
    SOPS files written into the tree with the rendered files, or plain files outside Git."""
    from generator import inject as injecting  # the stores: what only inject needs
    from generator.tokens import read_token

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
    joined = read_token(fleet, injecting.join_targets(fleet))  # all reads before any write
    credentials = injecting.read_profile_credentials(fleet)
    outcome = injecting.InjectOutcome(fleet, out_dir=os.path.abspath(out_dir))
    plaintexts = injecting.secret_plaintexts(fleet, joined, credentials)
    injected = injecting.sops_files(out_dir, old, plaintexts, age, outcome)
    records = lifecycle.inject_records(fleet, list(injected),
                                       lifecycle.recipients_source(out_dir, age))
    injected = {rel: spec._replace(inputs=records.get(rel)) for rel, spec in injected.items()}
    files, clusters = desired_files(fleet, out_dir, old, injected=injected)
    outcome.written = write_tree(out_dir, files, manifest_meta(fleet, clusters))
    return outcome


def _inject_plain(fleet: Fleet, plain_dir: str | None) -> InjectOutcome:
    from generator import inject as injecting
    from generator.tokens import inside_git_work_tree, read_token

    if not plain_dir:
        raise UsageFailure("tokens.mode plain writes plaintext Secrets only to --plain-dir "
                           "DIR, a folder outside every Git work tree")
    repo = inside_git_work_tree(plain_dir)
    if repo is not None:
        raise UsageFailure(f"--plain-dir {plain_dir} lies inside the Git work tree {repo}; "
                           "plaintext tokens must never be committed: choose a folder "
                           "outside it")
    joined = read_token(fleet, injecting.join_targets(fleet))
    credentials = injecting.read_profile_credentials(fleet)
    return injecting.InjectOutcome(fleet, plain_files=injecting.write_plain(
        fleet, plain_dir, joined, credentials))
