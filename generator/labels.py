"""Cluster labels: from the fleet onto the Cluster objects K10 owns on the primary.

Git never carries Cluster objects: K10 creates them when a cluster joins, and deleting one
disconnects the cluster, so a GitOps engine that pruned or recreated them would break the
fleet. Instead ``k10fleet labels`` applies only the ``metadata.labels`` it owns, with
server-side apply under its own field manager, to objects that already exist:

* keys k10fleet set earlier and the fleet no longer has are removed by the apply itself
  (server-side apply drops the fields a manager stops sending);
* K10's labels (``dist.kio.kasten.io/cluster-type``), ``spec``, ``status`` and finalizers
  are never sent, so nothing is fought over;
* each object carries the ``resourceVersion`` read from the primary, so an object deleted
  in between is never re-created.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

import yaml

from generator.errors import EnvironmentFailure, InvalidInput
from generator.fleet.model import MC_NAMESPACE, Fleet
from generator.fleet.validate import load_fleet
from generator.problems import Problem
from generator.render.yamlout import dump
from generator.tools import find_tool

FIELD_MANAGER = "k10fleet"
CLUSTER_API = "dist.kio.kasten.io/v1alpha1"
CLUSTER_RESOURCE = "clusters.dist.kio.kasten.io"


@dataclass(frozen=True)
class LiveCluster:
    name: str
    labels: dict[str, str]
    managed: frozenset[str]  # label keys our field manager owns
    resource_version: str | None


@dataclass
class LabelChange:
    """What one fleet cluster needs; ``state`` is in-sync, drift or not-joined."""

    cluster: str  # the fleet name
    object_name: str  # the Cluster object's name (cluster-name)
    state: str
    desired: dict[str, str] = field(default_factory=dict)
    set: dict[str, str] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    resource_version: str | None = None


def _bad_input(source: str, message: str) -> InvalidInput:
    return InvalidInput([Problem(source, 1, 1, "", message, rule="labels")])


def _managed_label_keys(meta: dict[str, Any]) -> frozenset[str]:
    keys: set[str] = set()
    for entry in meta.get("managedFields") or []:
        if not isinstance(entry, dict) or entry.get("manager") != FIELD_MANAGER:
            continue
        if entry.get("operation") != "Apply":
            continue
        fields = ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:labels") or {}
        keys.update(k[2:] for k in fields if isinstance(k, str) and k.startswith("f:"))
    return frozenset(keys)


def parse_cluster_list(text: str, source: str) -> dict[str, LiveCluster]:
    """``kubectl get clusters.dist.kio.kasten.io -n kasten-io-mc -o json
    --show-managed-fields`` output (a List, or one Cluster)."""
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
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
        labels = meta.get("labels") or {}
        live[meta["name"]] = LiveCluster(
            meta["name"], {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict)
            else {}, _managed_label_keys(meta),
            str(meta["resourceVersion"]) if meta.get("resourceVersion") else None)
    return live


def plan(fleet: Fleet, live: dict[str, LiveCluster]) -> list[LabelChange]:
    """Per fleet cluster: the labels to set and the k10fleet-owned ones to remove."""
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
        state = "drift" if to_set or to_remove else "in-sync"
        changes.append(LabelChange(cluster.name, cluster.cluster_name, state, desired, to_set,
                                   to_remove, current.resource_version))
    return changes


def apply_document(changes: list[LabelChange]) -> str:
    """The server-side apply input: only labels, only for objects that exist."""
    items = [{"apiVersion": CLUSTER_API, "kind": "Cluster", "metadata": {
        "name": c.object_name, "namespace": MC_NAMESPACE, "labels": c.desired,
        **({"resourceVersion": c.resource_version} if c.resource_version else {})}}
        for c in changes if c.state == "drift"]
    return dump({"apiVersion": "v1", "kind": "List", "items": items})


def _kubectl(fleet: Fleet) -> list[str]:
    kubectl = find_tool("kubectl")
    if kubectl is None:
        raise EnvironmentFailure("kubectl is not on PATH; install it, or pass --from FILE with "
                                 f"the output of: kubectl get {CLUSTER_RESOURCE} -n "
                                 f"{MC_NAMESPACE} -o json --show-managed-fields")
    primary = fleet.primary
    if not primary.kube_context:
        raise EnvironmentFailure("spec.primary.kubeContext is not set: k10fleet does not know "
                                 "which cluster is the primary; set it, or pass --from FILE")
    args = [kubectl, "--context", primary.kube_context]
    if primary.kubeconfig:
        args += ["--kubeconfig", primary.kubeconfig]
    return args


def _run(args: list[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EnvironmentFailure(f"could not run kubectl: {e}") from e
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["kubectl failed"])[-1][:300]
        raise EnvironmentFailure(f"kubectl failed on the primary: {reason}")
    return done.stdout


def live_clusters(fleet: Fleet, given: str | None, source: str) -> dict[str, LiveCluster]:
    if given is not None:
        return parse_cluster_list(given, source)
    args = [*_kubectl(fleet), "get", CLUSTER_RESOURCE, "-n", MC_NAMESPACE, "-o", "json",
            "--show-managed-fields", "--request-timeout", "20s"]
    return parse_cluster_list(_run(args), "kubectl get " + CLUSTER_RESOURCE)


def reconcile(fleet_path: str, *, given: str | None = None, source: str = "-",
              apply: bool = False) -> tuple[Fleet, list[LabelChange], bool]:
    """The label plan, applied when asked; returns (fleet, plan, applied)."""
    fleet, _ = load_fleet(fleet_path)
    changes = plan(fleet, live_clusters(fleet, given, source))
    drifting = [c for c in changes if c.state == "drift"]
    if apply and drifting:
        _run([*_kubectl(fleet), "apply", "--server-side", "--field-manager", FIELD_MANAGER,
              "--force-conflicts", "-f", "-"], stdin=apply_document(changes))
        return fleet, changes, True
    return fleet, changes, False


def plan_as_json(changes: list[LabelChange]) -> str:
    return json.dumps([{"cluster": c.cluster, "clusterObject": c.object_name, "state": c.state,
                        "set": c.set, "remove": c.remove} for c in changes], indent=2)


def plan_table(changes: list[LabelChange]) -> str:
    rows = [("CLUSTER", "STATE", "CHANGES")]
    for c in changes:
        parts = [f"{k}={v}" for k, v in sorted(c.set.items())] + [f"{k}-" for k in c.remove]
        rows.append((c.cluster, c.state, " ".join(parts) if c.state != "in-sync" else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows)
