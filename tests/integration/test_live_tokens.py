"""token import, status and labels against live API servers (etcd + kube-apiserver each).

The tests play K10's part only where K10 itself writes: they fill in the join-token Secret on
the primary, write mc-join-status on the secondaries and create the Cluster objects in
kasten-io-mc. Everything k10fleet does goes through the real kubectl to the real servers.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import example_fleet, run_cli
from tests.integration.conftest import StartClusters
from tests.integration.kube import Clusters, kasten_crds

WriteFleet = Callable[..., Path]
TOKEN = "eyJrMTAiOiJqb2luIn0." + base64.urlsafe_b64encode(b"live-join-token" * 4).decode()
CLUSTER_API = "dist.kio.kasten.io/v1alpha1"


@pytest.fixture(scope="module")
def live(kube_clusters: StartClusters) -> Iterator[Clusters]:
    """A primary and two secondaries; the primary knows K10's Cluster kind. Stopped when
    this module's tests are done (the session fixture stops them too, should this fail)."""
    clusters = kube_clusters("primary-1", "edge-1", "edge-2")
    clusters["primary-1"].install_crds([c for c in kasten_crds()
                                        if c["spec"]["names"]["kind"] == "Cluster"])
    for name, namespace in (("primary-1", "kasten-io-mc"), ("edge-1", "kasten-io"),
                            ("edge-2", "kasten-io")):
        clusters.apply(name, [{"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": namespace}}])
    yield clusters
    clusters.stop()


@pytest.fixture(autouse=True)
def kube_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECACHEDIR", str(tmp_path / "kube-cache"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("K10FLEET_KUBECTL_TIMEOUT", "20")


def live_fleet(clusters: Clusters, store: Path, kubeconfig: Path | None = None) -> dict[str, Any]:
    """The example fleet pointed at the live servers (one kubeconfig, a context each)."""
    data = example_fleet()
    config = str(kubeconfig or clusters.kubeconfig)
    spec = data["spec"]
    spec["primary"].update(kubeContext="primary-1", kubeconfig=config)
    for secondary in spec["secondaries"]:
        if secondary["name"] in ("edge-1", "edge-2"):
            secondary.update(kubeContext=secondary["name"], kubeconfig=config)
        else:  # lab-1 joined with the k10multicluster tool: seen through the primary
            secondary["joinWith"] = "k10multicluster"
    spec["tokens"]["store"] = f"file://{store}"
    return data


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def join_token_secret(data: dict[str, str] | None) -> dict[str, Any]:
    secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret",
                              "type": "dist.kio.kasten.io/join-token",
                              "metadata": {"name": "join-token-secret",
                                           "namespace": "kasten-io-mc"}}
    if data is not None:
        secret["data"] = data
    return secret


def join_status(status: str, msg: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "mc-join-status", "namespace": "kasten-io"},
            "data": {"status": b64(status), "msg": b64(msg)}}


def cluster_object(name: str, kind: str, labels: dict[str, str] | None = None
                   ) -> dict[str, Any]:
    """A Cluster object as K10 creates it (its label, a finalizer, spec and status)."""
    return {"apiVersion": CLUSTER_API, "kind": "Cluster",
            "metadata": {"name": name, "namespace": "kasten-io-mc",
                         "labels": {"dist.kio.kasten.io/cluster-type": kind, **(labels or {})},
                         "finalizers": ["dist.kio.kasten.io/cluster-info"]},
            "spec": {"primary": kind == "primary", "k10": {"namespace": "kasten-io"}}}


def test_token_import_reads_the_live_primary(live: Clusters, tmp_path: Path,
                                             write_fleet: WriteFleet) -> None:
    store = tmp_path / "store" / "token.yaml"
    store.parent.mkdir()
    fleet = write_fleet(live_fleet(live, store))
    live.kubectl("primary-1", "delete", "secret", "join-token-secret", "-n", "kasten-io-mc",
                 "--ignore-not-found")
    absent = run_cli("token", "import", fleet)
    assert absent.exit_code == 1, absent.output
    assert "no Secret join-token-secret in kasten-io-mc on the primary yet" in absent.output
    live.apply("primary-1", [join_token_secret(None)])  # created, not filled in yet
    empty = run_cli("token", "import", fleet)
    assert empty.exit_code == 1 and "has no token yet" in empty.output
    assert not store.exists()
    # K10 fills in the token and the endpoint (the test plays K10 here)
    live.apply("primary-1", [join_token_secret({"token": b64(TOKEN),
                                                "endpoint": b64("https://10.0.0.1:443")})])
    imported = run_cli("token", "import", fleet)
    assert imported.exit_code == 0, imported.output
    assert "stored the join token and endpoint of primary-1" in imported.output
    assert TOKEN not in imported.output and b64(TOKEN) not in imported.output
    assert yaml.safe_load(store.read_text()) == {"token": TOKEN,
                                                 "endpoint": "https://10.0.0.1:443"}
    live.kubectl("primary-1", "delete", "secret", "join-token-secret", "-n", "kasten-io-mc")
    live.apply("primary-1", [{**join_token_secret({"token": b64(TOKEN)}), "type": "Opaque"}])
    wrong = run_cli("token", "import", fleet)
    assert wrong.exit_code == 1 and "not a K10 join-token Secret" in wrong.output


def test_status_over_live_secondaries_is_a_ci_gate(live: Clusters, tmp_path: Path,
                                                   write_fleet: WriteFleet) -> None:
    fleet = write_fleet(live_fleet(live, tmp_path / "token.yaml"))
    live.apply("edge-1", [join_status("Joined", "")])
    live.apply("edge-2", [join_status("Failed", "failed to reach primary ingress: 502")])
    live.apply("primary-1", [cluster_object("lab-1", "secondary")])  # k10multicluster joined it
    failed = run_cli("status", fleet)
    assert failed.exit_code == 1, failed.output
    rows = {line.split()[0]: line for line in failed.stdout.splitlines()[1:]}
    assert rows["edge-1"].split()[1] == "Joined"
    assert rows["edge-2"].split()[1] == "Failed"
    assert "failed to reach primary ingress: 502" in rows["edge-2"]
    assert rows["lab-1"].split()[1] == "Joined" and "k10multicluster" in rows["lab-1"]
    assert "1 secondary not joined: edge-2" in failed.stderr

    def k10_retries_and_joins() -> None:
        time.sleep(2)
        live.apply("edge-2", [join_status("Joined", "")])

    writer = threading.Thread(target=k10_retries_and_joins)
    started = time.monotonic()
    writer.start()
    try:
        waited = run_cli("status", fleet, "--wait", "--timeout", "60s", "--interval", "1s")
    finally:
        writer.join()
    assert waited.exit_code == 0, waited.output
    assert time.monotonic() - started >= 2  # it polled until K10 wrote Joined
    assert [line.split()[1] for line in waited.stdout.splitlines()[1:]] == ["Joined"] * 3


def test_labels_apply_on_live_cluster_objects(live: Clusters, tmp_path: Path,
                                              write_fleet: WriteFleet) -> None:
    data = live_fleet(live, tmp_path / "token.yaml")
    fleet = write_fleet(data)
    live.apply("primary-1", [
        cluster_object("primary-1", "primary"),
        cluster_object("edge-one", "secondary", {"owner": "team-a"}),  # edge-1's clusterName
        cluster_object("edge-2", "secondary", {"region": "us-east"}),
        cluster_object("lab-1", "secondary")])
    before = run_cli("labels", fleet)
    assert before.exit_code == 1, before.output
    assert "edge-1     drift  env=prod region=eu-west" in before.stdout
    applied = run_cli("labels", fleet, "--apply")
    assert applied.exit_code == 0, applied.output

    def labels_of(name: str) -> dict[str, str]:
        obj = live.get("primary-1", "clusters.dist.kio.kasten.io", name, "kasten-io-mc")
        assert obj is not None
        assert obj["spec"]["k10"] == {"namespace": "kasten-io"}  # spec untouched
        assert obj["metadata"]["finalizers"] == ["dist.kio.kasten.io/cluster-info"]
        labels: dict[str, str] = obj["metadata"]["labels"]
        return labels

    assert labels_of("edge-one") == {"dist.kio.kasten.io/cluster-type": "secondary",
                                     "owner": "team-a", "env": "prod", "region": "eu-west"}
    assert labels_of("primary-1") == {"dist.kio.kasten.io/cluster-type": "primary",
                                      "env": "prod"}
    assert labels_of("lab-1")["env"] == "lab"
    assert run_cli("labels", fleet).exit_code == 0  # in sync now
    # the fleet drops edge-1's region: k10fleet removes the key it set, nothing else
    del data["spec"]["secondaries"][0]["labels"]["region"]
    write_fleet(data)
    assert run_cli("labels", fleet, "--apply").exit_code == 0
    assert labels_of("edge-one") == {"dist.kio.kasten.io/cluster-type": "secondary",
                                     "owner": "team-a", "env": "prod"}
    assert labels_of("edge-2")["region"] == "us-east"


def test_context_on_a_stopped_server_is_exit_3_within_the_timeout(
        kube_clusters: StartClusters, tmp_path: Path, write_fleet: WriteFleet,
        monkeypatch: pytest.MonkeyPatch) -> None:
    gone = kube_clusters("primary-1", "edge-1", "edge-2")
    for cluster in gone:
        cluster.stop()  # every context now points at a stopped server
    store = tmp_path / "token.yaml"
    fleet = write_fleet(live_fleet(gone, store))
    out = tmp_path / "output"
    monkeypatch.setenv("K10FLEET_KUBECTL_TIMEOUT", "5")
    commands: list[list[str | Path]] = [["token", "import", fleet], ["status", fleet],
                                        ["labels", fleet, "--apply"]]
    for args in commands:
        started = time.monotonic()
        result = run_cli(*args)
        assert result.exit_code == 3, (args, result.output)
        assert time.monotonic() - started < 30
        assert "(--context primary-1 --kubeconfig" in result.output or \
            "(--context edge-1 --kubeconfig" in result.output
        assert "Traceback" not in result.output
    assert not store.exists() and not out.exists()
