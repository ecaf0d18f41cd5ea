"""Fixtures for tests against real API servers (tests/integration/kube.py has the API)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.integration.kube import Clusters

StartClusters = Callable[..., Clusters]


@pytest.fixture(scope="session")
def kube_clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartClusters]:
    """``kube_clusters("primary", "edge-1", crds=True)`` starts those clusters (one etcd and
    one kube-apiserver each) and returns them; all are stopped at the end of the session, in
    reverse order, also when tests fail."""
    started: list[Clusters] = []

    def start(*names: str, crds: bool = False) -> Clusters:
        clusters = Clusters.start(tmp_path_factory.mktemp("kube"), names, crds=crds)
        started.append(clusters)
        return clusters

    try:
        yield start
    finally:
        for clusters in reversed(started):
            clusters.stop()
