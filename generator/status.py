"""Join status of every secondary: a CI gate that passes only when all have joined.

Token-joined secondaries report in the Secret ``mc-join-status`` that K10 writes in their own
K10 namespace (keys ``status`` and ``msg``; see docs/status.md). Secondaries joined with
``k10multicluster`` have no such Secret: they count as joined when their Cluster object exists
in ``kasten-io-mc`` on the primary. Clusters are asked concurrently (bounded), each kubectl
call under its own timeout.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from generator import kubectl
from generator.errors import InvalidInput, K10FleetError, UsageFailure
from generator.fleet.model import MC_NAMESPACE, Cluster, Fleet
from generator.fleet.validate import load_fleet
from generator.labels import CLUSTER_RESOURCE, live_clusters
from generator.tables import clean, table

STATUS_SECRET = "mc-join-status"
MAX_PARALLEL = 16  # kubectl processes at once


@dataclass(frozen=True)
class JoinStatus:
    cluster: str
    status: str  # K10's word (Joined, Failed, ...), or pending / unknown when there is none
    message: str
    source: str  # where it was read
    error: str | None = None  # the kubectl failure (exit 3) when the cluster could not be read

    @property
    def joined(self) -> bool:
        return self.error is None and self.status.strip().lower() == "joined"


def _bad(source: str, message: str) -> InvalidInput:
    return InvalidInput.in_file(source, message, rule="status")


def _decoded(data: Mapping[str, object], key: str) -> str:
    raw = data.get(key)
    if raw is None:
        return ""
    if not isinstance(raw, str):
        return "(not text)"
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8").strip()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return "(undecodable)"


def parse_join_status(cluster: str, text: str, source: str) -> JoinStatus:
    """One secondary's ``kubectl get secret mc-join-status -n kasten-io -o json`` output."""
    try:
        doc = kubectl.parse_output(text)
    except ValueError:
        raise _bad(source, "not the JSON or YAML that kubectl get secret prints") from None
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(doc, dict) or doc.get("kind") != "Secret" or name != STATUS_SECRET:
        raise _bad(source, f"not the Secret {STATUS_SECRET} (run: kubectl get secret "
                   f"{STATUS_SECRET} -n kasten-io -o json on {cluster})")
    data = doc.get("data")
    if not isinstance(data, dict) or not data.get("status"):
        return JoinStatus(cluster, "pending", "mc-join-status has no status yet", source)
    return JoinStatus(cluster, clean(_decoded(data, "status"), 40),
                      clean(_decoded(data, "msg"), 300), source)


def _ask_secondary(secondary: Cluster) -> JoinStatus:
    source = f"{STATUS_SECRET} on {secondary.name}"
    if not secondary.kube_context:
        return JoinStatus(secondary.name, "unknown", "no kubeContext in the fleet; pass --from "
                          f"{secondary.name}=FILE", source)
    try:
        out = kubectl.run(secondary, ["get", "secret", STATUS_SECRET, "-n",
                                      secondary.kasten.namespace, "--ignore-not-found", "-o",
                                      "json"], what=f"reading {STATUS_SECRET}",
                          limit=kubectl.SECRET_INPUT_LIMIT)
    except K10FleetError as e:
        return JoinStatus(secondary.name, "unknown", str(e), source, error=str(e))
    if not out.strip():
        return JoinStatus(secondary.name, "pending", f"no {STATUS_SECRET} yet: the join has "
                          "not started (are mc-join and mc-join-config applied?)", source)
    try:
        return parse_join_status(secondary.name, out.decode("utf-8", errors="replace"),
                                 f"kubectl get secret {STATUS_SECRET} on {secondary.name}")
    except InvalidInput as e:
        reason = e.problems[0].message if e.problems else "unreadable"
        return JoinStatus(secondary.name, "unknown", reason, source, error=reason)


def _legacy_statuses(fleet: Fleet, legacy: Sequence[Cluster]) -> list[JoinStatus]:
    """k10multicluster-joined secondaries: joined when the primary has their Cluster object."""
    if not legacy:
        return []
    source = f"{CLUSTER_RESOURCE} on the primary"
    try:
        live = live_clusters(fleet, None, "-")
    except K10FleetError as e:
        reason = f"cannot read the Cluster objects on the primary: {e}"
        error = reason if isinstance(e, kubectl.KubectlFailure) and fleet.primary.kube_context \
            else None
        return [JoinStatus(s.name, "unknown", reason, source, error) for s in legacy]
    return [JoinStatus(s.name, "Joined", f"Cluster object {s.cluster_name} exists (joined "
                       "with k10multicluster)", source) if s.cluster_name in live else
            JoinStatus(s.name, "pending", f"no Cluster object {s.cluster_name} in "
                       f"{MC_NAMESPACE} on the primary yet (joined with k10multicluster)",
                       source) for s in legacy]


def check_given(fleet: Fleet, given: Mapping[str, str]) -> None:
    """--from names must be secondaries of this fleet."""
    names = {s.name for s in fleet.secondaries}
    unknown = sorted(set(given) - names)
    if unknown:
        raise UsageFailure(f"--from {unknown[0]}=...: {unknown[0]!r} is not a secondary of "
                           f"fleet {fleet.name} (secondaries: {', '.join(sorted(names))})")


def collect(fleet: Fleet, given: Mapping[str, JoinStatus]) -> list[JoinStatus]:
    """Every secondary's status, in fleet order: from --from outputs, else from the clusters."""
    token = [s for s in fleet.secondaries if s.join_with == "token" and s.name not in given]
    legacy = [s for s in fleet.secondaries if s.join_with != "token" and s.name not in given]
    found = dict(given)
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(token)))) as pool:
        for result in pool.map(_ask_secondary, token):
            found[result.cluster] = result
    for result in _legacy_statuses(fleet, legacy):
        found[result.cluster] = result
    return [found[s.name] for s in fleet.secondaries]


def wait_for_join(fleet_path: str, given: Mapping[str, str], *, wait: float | None = None,
                  interval: float = 5.0, source_names: Mapping[str, str] | None = None,
                  sleep: Callable[[float], None] = time.sleep) -> tuple[Fleet, list[JoinStatus]]:
    """The statuses; with ``wait`` seconds, polled until all are joined or time runs out."""
    fleet, _ = load_fleet(fleet_path)
    check_given(fleet, given)
    source_names = source_names or {}
    saved = {name: parse_join_status(name, text, source_names.get(name, f"--from {name}"))
             for name, text in given.items()}
    deadline = time.monotonic() + (wait or 0)
    while True:
        results = collect(fleet, saved)
        pending = [r for r in results if not r.joined]
        left = deadline - time.monotonic()
        if not pending or wait is None or left <= 0 or all(r.cluster in given for r in pending):
            return fleet, results
        sleep(min(interval, left))


def as_json(results: Sequence[JoinStatus]) -> str:
    return json.dumps([{"cluster": r.cluster, "status": r.status, "joined": r.joined,
                        "message": r.message, "source": r.source}
                       for r in results], indent=2)


def as_table(results: Sequence[JoinStatus]) -> str:
    return table(("CLUSTER", "STATUS", "MESSAGE"),
                 [(r.cluster, r.status, r.message) for r in results])


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``5m``, ``1h30m``, ``1m30s``; ValueError otherwise."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?", text.strip())
    if not text.strip() or match is None:
        raise ValueError(text)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0 or total > 7 * 86400:
        raise ValueError(text)
    return total
