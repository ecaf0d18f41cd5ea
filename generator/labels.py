"""Cluster labels: from the fleet onto the Cluster objects K10 owns on the primary.

Git never carries Cluster objects: K10 creates them when a cluster joins, and deleting one
disconnects the cluster, so a GitOps engine that pruned or recreated them would break the
fleet. Instead ``k10fleet labels --apply`` changes only labels, with ``kubectl label``:

* a label patch never creates an object, so a cluster that left in between stays gone;
* it carries no resourceVersion, so K10 updating the object's status is no conflict;
* the annotation ``k10fleet.io/managed-labels`` lists the keys k10fleet set, so a key the
  fleet drops is removed, and labels set by anyone else are left alone;
* K10's own label (``dist.kio.kasten.io/cluster-type``), ``spec``, ``status`` and finalizers
  are never touched.
Clusters that need the same change are patched by one kubectl call.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

from generator import kubectl
from generator.errors import InvalidInput, UsageFailure
from generator.fleet.model import MC_NAMESPACE, Fleet
from generator.fleet.selectors import label_key_problem
from generator.fleet.validate import load_fleet
from generator.tables import table

MANAGED_LABELS = "k10fleet.io/managed-labels"
CLUSTER_RESOURCE = "clusters.dist.kio.kasten.io"


@dataclass(frozen=True)
class LiveCluster:
    name: str
    labels: dict[str, str]
    managed: frozenset[str]  # label keys k10fleet set (its annotation)


@dataclass
class LabelChange:
    """What one fleet cluster needs; ``state`` is in-sync, drift or not-joined."""

    cluster: str  # the fleet name
    object_name: str  # the Cluster object's name (cluster-name)
    state: str
    desired: dict[str, str] = field(default_factory=dict)
    set: dict[str, str] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    annotate: bool = False  # the managed-labels annotation must change


_bad_input = functools.partial(InvalidInput.in_file, rule="labels")


def _managed_label_keys(meta: dict[str, Any]) -> frozenset[str]:
    """The keys k10fleet recorded; anything that is not a valid label key is ignored, so a
    forged annotation can never put an option or a removal of someone else's key on the
    kubectl command line."""
    annotations = meta.get("annotations")
    listed = annotations.get(MANAGED_LABELS) if isinstance(annotations, dict) else None
    if not isinstance(listed, str):
        return frozenset()
    keys = (k.strip() for k in listed[:65536].split(","))
    return frozenset(k for k in keys if k and label_key_problem(k) is None)


def _text_labels(labels: Any) -> dict[str, str]:
    """Labels as text; entries that are not text (only a hand-made file has them) dropped."""
    if not isinstance(labels, dict):
        return {}
    return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}


def parse_cluster_list(text: str, source: str) -> dict[str, LiveCluster]:
    """``kubectl get clusters.dist.kio.kasten.io -n kasten-io-mc -o json`` output (a List,
    or one Cluster)."""
    try:
        doc = kubectl.parse_output(text)
    except ValueError:
        raise _bad_input(source, "not the JSON or YAML that kubectl get prints") from None
    if not isinstance(doc, dict):
        raise _bad_input(source, "expected a List of Cluster objects")
    items = doc.get("items") if "items" in doc else [doc]
    if not isinstance(items, list):
        raise _bad_input(source, "a List without items")
    live: dict[str, LiveCluster] = {}
    for item in items:
        if not isinstance(item, dict) or item.get("kind") not in ("Cluster", None):
            continue
        meta = item.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            continue
        live[meta["name"]] = LiveCluster(meta["name"], _text_labels(meta.get("labels")),
                                         _managed_label_keys(meta))
    return live


def plan(fleet: Fleet, live: dict[str, LiveCluster]) -> list[LabelChange]:
    """Per fleet cluster: the labels to set, the k10fleet-set ones to remove, and whether the
    record of what k10fleet manages changes (it adopts keys that already have its value)."""
    changes = []
    for cluster in fleet.clusters:
        desired = dict(cluster.labels)
        current = live.get(cluster.cluster_name)
        if current is None:
            changes.append(LabelChange(cluster.name, cluster.cluster_name, "not-joined", desired,
                                       dict(desired)))
            continue
        to_set = {k: v for k, v in desired.items() if current.labels.get(k) != v}
        to_remove = sorted(k for k in current.managed - desired.keys() if k in current.labels)
        annotate = current.managed != frozenset(desired)
        state = "drift" if to_set or to_remove or annotate else "in-sync"
        changes.append(LabelChange(cluster.name, cluster.cluster_name, state, desired, to_set,
                                   to_remove, annotate))
    return changes


def kubectl_calls(changes: list[LabelChange]) -> list[list[str]]:
    """``kubectl label``/``annotate`` arguments, one call per distinct change."""
    labels: dict[tuple[str, ...], list[str]] = {}
    notes: dict[str, list[str]] = {}
    for change in changes:
        if change.state != "drift":
            continue
        edits = tuple([f"{k}={v}" for k, v in sorted(change.set.items())] +
                      [f"{k}-" for k in change.remove])
        if edits:
            labels.setdefault(edits, []).append(change.object_name)
        if change.annotate:
            keys = ",".join(sorted(change.desired))
            notes.setdefault(f"{MANAGED_LABELS}={keys}" if keys else f"{MANAGED_LABELS}-",
                             []).append(change.object_name)
    calls = [["label", "--overwrite", "-n", MC_NAMESPACE, CLUSTER_RESOURCE, *sorted(names),
              *edits] for edits, names in sorted(labels.items())]
    calls += [["annotate", "--overwrite", "-n", MC_NAMESPACE, CLUSTER_RESOURCE, *sorted(names),
               note] for note, names in sorted(notes.items())]
    return calls


def live_clusters(fleet: Fleet, given: str | None, source: str) -> dict[str, LiveCluster]:
    if given is not None:
        return parse_cluster_list(given, source)
    out = kubectl.run(fleet.primary, ["get", CLUSTER_RESOURCE, "-n", MC_NAMESPACE, "-o", "json"],
                      what=f"listing {CLUSTER_RESOURCE}")
    return parse_cluster_list(out.decode("utf-8", errors="replace"),
                              f"kubectl get {CLUSTER_RESOURCE}")


def reconcile(fleet_path: str, *, given: str | None = None, source: str = "-",
              apply: bool = False) -> tuple[Fleet, list[LabelChange], bool]:
    """The label plan, applied when asked; returns (fleet, plan, applied)."""
    if apply and given is not None:
        raise UsageFailure("--apply reads the Cluster objects from the primary itself (a saved "
                           "listing may be stale); use --from only to show a plan")
    fleet, _ = load_fleet(fleet_path)
    changes = plan(fleet, live_clusters(fleet, given, source))
    calls = kubectl_calls(changes)
    if apply and calls:
        for call in calls:
            kubectl.run(fleet.primary, call, what=f"kubectl {call[0]}")
        return fleet, changes, True
    return fleet, changes, False


def plan_as_json(changes: list[LabelChange]) -> str:
    return json.dumps([{"cluster": c.cluster, "clusterObject": c.object_name, "state": c.state,
                        "set": c.set, "remove": c.remove} for c in changes], indent=2)


def plan_table(changes: list[LabelChange]) -> str:
    rows = []
    for c in changes:
        parts = [f"{k}={v}" for k, v in sorted(c.set.items())] + [f"{k}-" for k in c.remove]
        rows.append((c.cluster, c.state, " ".join(parts) if c.state != "in-sync" else ""))
    return table(("CLUSTER", "STATE", "CHANGES"), rows)
