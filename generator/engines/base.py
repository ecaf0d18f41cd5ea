"""What a GitOps engine contributes to the tree, as one small Protocol.

The renderers write the Kasten objects; an engine adds its own objects around them and
says how to annotate the Kasten objects so that it orders them and never prunes or
overwrites what K10 also writes. An engine receives everything it needs as arguments
(the cluster's rendered ``k10-values.yaml`` among them): it never reads the tree, so the
order in which the renderer calls it does not matter.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from generator.fleet.model import Cluster, Fleet

# The Multi-Cluster objects k10fleet writes into a cluster's folder, as engines see them.
ObjectRole = Literal["namespace", "bootstrap", "join-token", "push-secret", "mc-join-config",
                     "external-secret", "mc-join", "credentials"]
Files = list[tuple[str, str]]  # (path in the tree, text)


class Engine(Protocol):
    name: str
    # True when the engine would apply an encrypted Secret as-is, so the renderer lists
    # inject's SOPS files through a KSOPS generator instead of as plain resources.
    needs_sops_generator: bool

    def annotations(self, role: ObjectRole) -> dict[str, str]:
        """Sync ordering of one Multi-Cluster object, and what keeps the engine from pruning
        or overwriting it where K10 also owns it (the namespace, the join-token Secret)."""
        ...

    def k10_object_annotations(self, wave: int) -> dict[str, str]:
        """For objects of K10's own kinds (global resources, Distributions): ordering after
        K10 is running, whose CRDs exist only then."""
        ...

    def cluster_files(self, fleet: Fleet, cluster: Cluster, values: bytes,
                      ctx: dict[str, Any]) -> Files:
        """The engine's objects for one cluster; ``values`` is its k10-values.yaml."""
        ...

    def global_files(self, fleet: Fleet, ctx: dict[str, Any]) -> Files:
        """The engine's objects for the whole fleet (sources, the top kustomization)."""
        ...


class NoEngine:
    """``gitops.engine: none``: plain kustomize folders, applied by whatever the user runs."""

    name = "none"
    needs_sops_generator = False

    def annotations(self, role: ObjectRole) -> dict[str, str]:
        return {}

    def k10_object_annotations(self, wave: int) -> dict[str, str]:
        return {}

    def cluster_files(self, fleet: Fleet, cluster: Cluster, values: bytes,
                      ctx: dict[str, Any]) -> Files:
        return []

    def global_files(self, fleet: Fleet, ctx: dict[str, Any]) -> Files:
        return []
