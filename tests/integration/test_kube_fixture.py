"""The API server fixture itself: clusters start, take CRDs, refuse unknown fields, stop."""

from __future__ import annotations

import pytest

from tests.integration.conftest import StartClusters
from tests.integration.kube import ApplyError


def test_two_clusters_one_kubeconfig_strict_apply(kube_clusters: StartClusters) -> None:
    clusters = kube_clusters("alpha", "beta", crds=True)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kasten-io"}}
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "probe", "namespace": "kasten-io"}, "data": {"k": "v"}}
    clusters.apply("alpha", [namespace, config])
    stored = clusters.get("alpha", "configmap", "probe", "kasten-io")
    assert stored is not None and stored["data"] == {"k": "v"}
    assert clusters.get("beta", "namespace", "kasten-io") is None  # separate etcd
    with pytest.raises(ApplyError, match=r"\.spec: field not declared"):
        clusters.kubectl_apply("alpha", [{**config, "spec": {"x": 1}}])
    kasten = {"apiVersion": "dist.kio.kasten.io/v1alpha1", "kind": "Distribution",
              "metadata": {"name": "d", "namespace": "kasten-io"}, "spec": {"any": ["thing"]}}
    clusters.apply("alpha", [kasten])
    flux = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "k", "namespace": "kasten-io"},
            "spec": {"interval": "1m", "prune": True, "notAField": 1,
                     "sourceRef": {"kind": "GitRepository", "name": "g"}}}
    with pytest.raises(ApplyError, match="notAField"):
        clusters.apply("alpha", [flux])

    beta = clusters["beta"]
    beta.stop()  # kube-apiserver exited (waited for) before etcd was stopped
    assert beta.apiserver is not None and beta.apiserver.returncode is not None
    assert beta.etcd is not None and beta.etcd.returncode is not None
    assert not beta.running
    with pytest.raises(OSError):
        beta.request("/readyz", timeout=2)
    assert clusters["alpha"].request("/readyz") == b"ok"
