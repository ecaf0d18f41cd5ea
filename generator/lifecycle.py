"""A fleet after its first join: what a change to fleet.yaml asks the user to do in K10.

Compares the fleet with the tree's previous manifest: secondaries that left or were
renamed (K10 has no rename), a rotated join token, a primary that changed, new secondaries
across the 6.5.14 line, and Secrets ``inject`` wrote from inputs that have changed since.
Nothing here reads a secret: stale Secrets are found from the non-secret inputs ``inject``
records beside each file (``inputs`` in the manifest entry).
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import yaml

from generator.fleet.loader import LoadLimits, load_yaml_file
from generator.fleet.model import (
    FIRST_INGRESS_IN_TOKEN,
    MC_NAMESPACE,
    Cluster,
    Fleet,
    GlobalResource,
)
from generator.fleet.rules import effective_version
from generator.output import Manifest, read_tree_file, sha256
from generator.problems import JsonPath, Problem
from generator.render.eso import needs_endpoint
from generator.render.global_resources import (
    credential_file,
    credential_secret,
    credentialed_profiles,
)
from generator.render.layout import JOIN_TOKEN_FILE, MC_JOIN_SOPS_FILE, cluster_dir
from generator.render.tree import mc_join_secret
from generator.secrets.sops import find_sops_config

CLUSTER_RESOURCE = "clusters.dist.kio.kasten.io"  # the full name: other CRDs are "Cluster" too
DISCONNECT_DOCS = "https://docs.kasten.io/latest/multicluster/how-tos/disconnect"
UPGRADE_DOCS = "https://docs.kasten.io/latest/multicluster/upgrading"
DISABLE_DOCS = "https://docs.kasten.io/latest/multicluster/how-tos/disable"
CLUSTER_INFO_FINALIZER = "dist.kio.kasten.io/cluster-info"
MC_SA_LABEL = "k10.kasten.io/k10-multi-cluster-sa"
RECORD_VERSION = "v1"


def _command(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def _context_flags(context: str | None) -> list[str]:
    return ["--context", context] if context else []


@dataclass
class Notice:
    """One thing the user must do in K10 after this render: what happened, the exact
    steps (commands to run where they say), and what to know."""

    kind: str  # departure | rename | rotation | primary-change
    title: str
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "steps": self.steps,
                "notes": self.notes}


@dataclass(frozen=True)
class StaleSecret:
    """A file ``inject`` wrote whose inputs changed since: ``inject`` must run again."""

    path: str
    reasons: tuple[str, ...]

    def as_text(self) -> str:
        return f"{self.path}: {'; '.join(self.reasons)}"


# --- what inject records, and what render compares -------------------------------------

def recipients_source(out_dir: str, age: Sequence[str]) -> str:
    """Where inject took its age recipients from: ``--age`` (render cannot know them) or the
    digest of the nearest .sops.yaml (render re-reads it)."""
    if any(a.strip() for a in age):
        return "--age"
    config = find_sops_config(out_dir)
    if config is None:
        return "none"
    try:
        with open(config, "rb") as handle:
            return "sops:" + hashlib.sha256(handle.read()).hexdigest()[:16]
    except OSError:
        return "none"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Inputs:
    """The non-secret inputs of every file ``inject`` writes for a fleet, indexed by path
    once (a large fleet has thousands), with the Secret shapes rendered once per namespace."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.targets: dict[str, Cluster | GlobalResource] = {
            f"{cluster_dir(s.name)}/{MC_JOIN_SOPS_FILE}": s
            for s in fleet.secondaries if s.join_with == "token"}
        primary = cluster_dir(fleet.primary.name)
        for profile in credentialed_profiles(fleet):
            self.targets[f"{primary}/{credential_file(profile, '.sops.yaml')}"] = profile
        self.shapes: dict[tuple[str, bool], str] = {}

    def _mc_join(self, secondary: Cluster) -> dict[str, str]:
        fleet, endpoint = self.fleet, needs_endpoint(secondary)
        key = (secondary.kasten.namespace, endpoint)
        if key not in self.shapes:  # the Secret depends on the namespace and its keys only
            self.shapes[key] = _digest(mc_join_secret(
                fleet, secondary, "<token>", "<endpoint>" if endpoint else None))
        return {"cluster": secondary.cluster_name,
                "keys": "token,endpoint" if endpoint else "token",
                "store": fleet.tokens.store or "", "secret": fleet.tokens.join_token_secret,
                "shape": self.shapes[key]}

    def _profile(self, profile: GlobalResource) -> dict[str, str]:
        assert profile.credentials is not None
        keys = profile.credentials.format.required
        shape = credential_secret(self.fleet, profile, {k: f"<{k}>" for k in keys})
        return {"cluster": "", "keys": ",".join(keys), "store": profile.credentials.store,
                "secret": profile.credentials.secret_name, "shape": _digest(shape)}

    def of(self, rel: str) -> dict[str, str] | None:
        """None: the fleet writes no such file (pruned with its cluster or profile)."""
        target = self.targets.get(rel)
        if isinstance(target, Cluster):
            return self._mc_join(target)
        return None if target is None else self._profile(target)


def inject_records(fleet: Fleet, rels: Sequence[str], recipients: str) -> dict[str, str]:
    """What ``inject`` records beside each file it wrote: every non-secret input, readable."""
    index = _Inputs(fleet)
    records = {}
    for rel in rels:
        inputs = index.of(rel)
        if inputs is not None:
            parts = [f"{k}={quote(v, safe='/:,.@+-_')}"
                     for k, v in {**inputs, "recipients": recipients}.items()]
            records[rel] = ";".join([RECORD_VERSION, *parts])
    return records


def _parse_record(record: str) -> dict[str, str]:
    version, _, rest = record.partition(";")
    if version != RECORD_VERSION:
        return {}
    pairs = (part.partition("=") for part in rest.split(";") if part)
    return {key: unquote(value) for key, _, value in pairs}


_WHY = {
    "keys": "its keys changed from {old} to {new} (the K10 version moved across 6.5.14, where "
            "mc-join stopped carrying the endpoint)",
    "cluster": "the cluster name changed from {old} to {new}",
    "store": "the store changed from {old} to {new}",
    "secret": "it was made from join-token Secret {old}, the fleet now uses {new} (a rotated "
              "token)",
    "recipients": "the age recipients changed (.sops.yaml)",
    "shape": "its namespace, labels or annotations changed",
}


def stale_secrets(fleet: Fleet, out_dir: str, manifest: Manifest) -> list[StaleSecret]:
    """Injected files the fleet still uses whose recorded inputs differ from today's."""
    stale: list[StaleSecret] = []
    index = _Inputs(fleet)
    recipients = None
    for rel, entry in sorted(manifest.owned_by("inject").items()):
        now = index.of(rel)
        if now is None:
            continue  # pruned with its cluster or profile
        record = entry.get("inputs")
        if not record:
            stale.append(StaleSecret(rel, ("inject recorded no inputs for it (an older "
                                           "k10fleet wrote it)",)))
            continue
        before = _parse_record(record)
        recorded = before.get("recipients", "")
        if recipients is None:
            recipients = recipients_source(out_dir, ())
        now["recipients"] = recorded if recorded == "--age" else recipients
        changed = [key for key, value in now.items() if before.get(key) != value]
        if "keys" in changed and "shape" in changed:
            changed.remove("shape")  # the keys are part of the shape: say it once
        reasons = tuple(_WHY[key].format(old=before.get(key) or "(none)",
                                         new=now[key] or "(none)") for key in changed)
        if reasons:
            stale.append(StaleSecret(rel, reasons))
    return stale


# --- departures, renames, rotation, primary changes -------------------------------------

def _previous(manifest: Manifest) -> dict[str, dict[str, str]]:
    clusters = manifest.meta.get("clusters", {})
    if not isinstance(clusters, dict):
        return {}
    return {str(name): {str(k): str(v) for k, v in info.items()}
            for name, info in clusters.items() if isinstance(info, dict)}


def disconnect_command(fleet: Fleet, cluster_name: str) -> str:
    """Documented disconnect, run against the primary, with the CRD's full name."""
    return _command(["kubectl", "delete", CLUSTER_RESOURCE, cluster_name, "-n", MC_NAMESPACE,
                     *fleet.primary.kubectl_flags()])


def _unresponsive_steps(fleet: Fleet, cluster_name: str, namespace: str,
                        context: str | None) -> list[str]:
    primary = fleet.primary.kubectl_flags()
    secondary = _context_flags(context)
    return [
        "If that does not complete (the secondary does not answer), clean up by hand:",
        "  on the secondary: " + _command(["kubectl", "delete", "secret", "mc-cluster-info",
                                           "-n", namespace, *secondary]),
        "  on the secondary (exists when it joined with a cluster-ingress): " + _command(
            ["kubectl", "delete", "serviceaccounts", "-n", namespace, "-l",
             f"{MC_SA_LABEL}={fleet.primary.name}", *secondary]),
        f"  on the primary, remove the finalizer {CLUSTER_INFO_FINALIZER} from the Cluster "
        "object: " + _command(["kubectl", "edit", CLUSTER_RESOURCE, cluster_name, "-n",
                               MC_NAMESPACE, *primary]),
        "  then check it is gone: " + _command(["kubectl", "get", CLUSTER_RESOURCE,
                                                cluster_name, "-n", MC_NAMESPACE, *primary]),
    ]


REJOIN_NOTE = ("To join it again later, use a fresh join token: K10 does not accept a token "
               "already used for a join after a disconnect (public practice); rotate "
               "tokens.joinTokenSecret.")
LEFT_BEHIND_NOTES = [
    "Resources distributed to the secondary (policies, profiles) stay on it after the "
    "disconnect: delete them there if they must go.",
    "mc-join-status on the secondary may still say joined afterwards; the primary's Cluster "
    "objects are what counts.",
]


def _departure(fleet: Fleet, name: str, info: dict[str, str]) -> Notice:
    cluster_name = info.get("clusterName", name)
    return Notice(
        "departure", f"secondary {cluster_name} ({name}) left the fleet; removing its files "
        "disconnects nothing",
        [f"On the primary: {disconnect_command(fleet, cluster_name)}",
         *_unresponsive_steps(fleet, cluster_name, info.get("namespace", "kasten-io"),
                              info.get("kubeContext"))],
        [*LEFT_BEHIND_NOTES, REJOIN_NOTE, f"Procedure: {DISCONNECT_DOCS}"])


def _rename(fleet: Fleet, secondary: Cluster, old_name: str) -> Notice:
    namespace = secondary.kasten.namespace
    flags = secondary.kubectl_flags()
    return Notice(
        "rename", f"secondary {secondary.name} is renamed from {old_name} to "
        f"{secondary.cluster_name}: K10 has no rename, so it must leave and join again",
        [f"1. Disconnect the old Cluster object on the primary: "
         f"{disconnect_command(fleet, old_name)}",
         *("   " + step for step in _unresponsive_steps(fleet, old_name, namespace,
                                                        secondary.kube_context)),
         "2. Join again under the new name with a fresh token: change tokens.joinTokenSecret "
         "(a token rotation), render, commit and sync, then `k10fleet token "
         "import` and `k10fleet inject`, commit and sync: mc-join-config now carries "
         f"cluster-name {secondary.cluster_name}.",
         "3. If the secondary does not start the new join, remove its old join status: "
         + _command(["kubectl", "delete", "secret", "mc-join-status", "-n", namespace, *flags])],
        [*LEFT_BEHIND_NOTES, f"Procedure: {DISCONNECT_DOCS}"])


def _rotation(fleet: Fleet, old_secret: str, fleet_path: str, out_dir: str) -> Notice:
    new = fleet.tokens.join_token_secret
    primary = fleet.primary.kubectl_flags()
    get = ["kubectl", *primary, "get", "secret", new, "-n", MC_NAMESPACE]
    steps = [
        f"1. Commit and sync the primary: the tree now declares the join-token Secret {new}, "
        "K10 fills it with a new token, and "
        + (f"the GitOps engine prunes {old_secret}." if fleet.gitops.engine != "none" else
           f"{old_secret} is no longer declared: delete it "
           + _command(["kubectl", "delete", "secret", old_secret, "-n", MC_NAMESPACE,
                       *primary])),
        "2. Wait until K10 filled it (non-zero): " + _command([*get, "-o",
                                                              "jsonpath={.data.token}"])
        + " | wc -c",
    ]
    mode = fleet.tokens.mode
    if mode in ("sops", "plain", "vault-plugin"):
        steps.append("3. Import the new token: " + _command([*get, "-o", "json"]) + " | "
                     + _command(["k10fleet", "token", "import", fleet_path]))
    if mode == "sops":
        steps.append("4. " + _command(["k10fleet", "inject", fleet_path, "-o", out_dir])
                     + ", then commit and sync the secondaries.")
    elif mode == "plain":
        steps.append("4. " + _command(["k10fleet", "inject", fleet_path, "--plain-dir", "DIR"])
                     + " and kubectl apply each file on its secondary.")
    elif mode == "vault-plugin":
        steps.append("4. Refresh the secondaries' Applications (hard refresh) so the plugin "
                     "reads the new token.")
    else:
        steps.append("3. The PushSecret pushes the new token to the store and each "
                     "ExternalSecret picks it up at its refresh interval.")
    return Notice(
        "rotation", f"tokens.joinTokenSecret changed from {old_secret} to {new}: the join token "
        "is rotated", steps,
        ["Clusters already joined stay joined; deleting the old Secret only revokes its token "
         "for new joins.", "Secondaries that join from now on (new, renamed or rejoining "
         "after a disconnect) need the new token."])


def _primary_change(fleet: Fleet, old: str, info: dict[str, str],
                    secondaries: list[str]) -> Notice:
    old_name = info.get("clusterName", old)
    context = _context_flags(info.get("kubeContext"))
    steps = [f"1. Disconnect every secondary of {old_name} first (on {old_name}): "
             + _command(["kubectl", "delete", CLUSTER_RESOURCE, "-n", MC_NAMESPACE, "-l",
                         "dist.kio.kasten.io/cluster-type=secondary", *context])]
    steps.append("2. Then disconnect the primary itself by deleting its Cluster object: "
                 + _command(["kubectl", "delete", CLUSTER_RESOURCE, old_name, "-n",
                             MC_NAMESPACE, *context]))
    steps.append(f"3. Stop promoting {old_name}: its K10 release keeps the last Helm values "
                 "(multicluster.primary.create: true) unless the GitOps engine removed it; set "
                 "multicluster.primary.create=false there (with multicluster.enabled=false "
                 "only after everything is disconnected, or the upgrade fails).")
    if fleet.primary.name != old:
        steps.append(f"4. {fleet.primary.name} becomes the primary: a cluster that is still "
                     "a secondary somewhere must be disconnected before it can be promoted; "
                     "then every secondary joins the new primary with its new token "
                     "(`k10fleet token import`, `k10fleet inject`).")
    return Notice(
        "primary-change", f"the primary changed from {old_name} to "
        f"{fleet.primary.cluster_name}: a primary is demoted by disconnecting it", steps,
        [f"Secondaries that were joined to {old_name}: {', '.join(secondaries) or 'none'}.",
         f"Procedure: {DISCONNECT_DOCS} (Disconnecting a Primary Cluster), {DISABLE_DOCS}"])


def _declared_secret(out_dir: str, primary: str | None) -> str | None:
    """The join-token Secret a tree rendered before the manifest recorded its name declares."""
    if primary is None:
        return None
    try:  # never through a symlink: the tree is anyone's to edit
        content = read_tree_file(out_dir, f"{cluster_dir(primary)}/{JOIN_TOKEN_FILE}")
        doc = yaml.safe_load(content) if content is not None else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None


def _was_rendered(old: Manifest, out_dir: str, name: str) -> bool:
    """The manifest is untrusted: a cluster counts as rendered before only when one of its
    files is listed there and still on disk with the listed bytes."""
    prefix = cluster_dir(name) + "/"
    for rel, entry in old.files.items():
        if rel.startswith(prefix):
            content = read_tree_file(out_dir, rel)
            if content is not None and sha256(content) == entry.get("sha256"):
                return True
    return False


def notices(fleet: Fleet, manifest: Manifest, fleet_path: str, out_dir: str) -> list[Notice]:
    """What this render asks the user to do in K10, compared with the previous render."""
    before = _previous(manifest)
    if not before:
        return []
    found: list[Notice] = []
    old_primary = next((n for n, i in before.items() if i.get("role") == "primary"), None)
    old_secondaries = {n: i for n, i in before.items() if i.get("role") == "secondary"}
    if old_primary is not None and (old_primary != fleet.primary.name or before[old_primary]
                                    .get("clusterName", old_primary) != fleet.primary.cluster_name):
        found.append(_primary_change(fleet, old_primary, before[old_primary],
                                     sorted(i.get("clusterName", n)
                                            for n, i in old_secondaries.items())))
    now = {s.name: s for s in fleet.secondaries}
    names_now = {s.cluster_name for s in fleet.secondaries}
    for name, info in sorted(old_secondaries.items()):
        old_cluster_name = info.get("clusterName", name)
        if old_cluster_name in names_now:
            continue  # same Cluster object (a moved directory changes nothing in K10)
        if not _was_rendered(manifest, out_dir, name):
            continue  # the manifest alone is no proof that this cluster ever joined
        if name in now:
            found.append(_rename(fleet, now[name], old_cluster_name))
        else:
            found.append(_departure(fleet, name, info))
    old_secret = manifest.meta.get("joinTokenSecret") or _declared_secret(out_dir, old_primary)
    if isinstance(old_secret, str) and old_secret != fleet.tokens.join_token_secret \
            and not fleet.primary.tool_only:
        found.append(_rotation(fleet, old_secret, fleet_path, out_dir))
    return found


def disconnect_commands(notices_found: Sequence[Notice]) -> list[str]:
    """The disconnect command of each departure and rename (the first step's command)."""
    commands = []
    for notice in notices_found:
        if notice.kind in ("departure", "rename") and notice.steps:
            commands.append(notice.steps[0].partition(": ")[2])
    return commands


# --- new joins across 6.5.14 ---------------------------------------------------------------

def _side(version: Any) -> str:
    return "6.5.14 or newer" if version >= FIRST_INGRESS_IN_TOKEN else "6.5.13 or older"


def new_join_problems(fleet: Fleet, manifest: Manifest, fleet_path: str) -> list[Problem]:
    """A secondary new to the tree (or renamed: it joins again) on the other side of the
    6.5.14 line from its primary: Kasten rejects that join in both directions."""
    before = _previous(manifest)
    primary = fleet.primary.kasten.version
    problems: list[Problem] = []
    doc = None
    for index, secondary in enumerate(fleet.secondaries):
        info = before.get(secondary.name)
        joined = info is not None and info.get("clusterName", secondary.name) == \
            secondary.cluster_name
        version = secondary.kasten.version
        if joined or (version >= FIRST_INGRESS_IN_TOKEN) == (primary >= FIRST_INGRESS_IN_TOKEN):
            continue
        if doc is None:  # only to locate the problem: the fleet was valid a moment ago
            doc = load_yaml_file(fleet_path, LoadLimits.from_env())
        where: JsonPath = effective_version(doc, ("spec", "secondaries", index))[0]
        problems.append(doc.problem(where, (
            f"secondary {secondary.name} is new to the tree and runs K10 {version} "
            f"({_side(version)}), its primary {fleet.primary.name} runs {primary} "
            f"({_side(primary)}): Kasten rejects new joins across 6.5.14 in both directions. "
            "Upgrade the primary first, then the secondaries that are already joined (they "
            "keep working during the upgrade), and join new secondaries on the primary's "
            f"side of the line ({UPGRADE_DOCS})"), rule="version"))
    return problems
