"""The Flux stack for end-to-end tests: a smart-HTTP git server, a local chart repository with a
stand-in ``k10`` chart written here, and the real source-, kustomize- and helm-controller as
local processes against a kube-apiserver from tests/integration/kube.py.

    stack = FluxStack.start(root, clusters, "hub")   # flux-system on cluster "hub"
    stack.git_url                                     # http://127.0.0.1:PORT/fleet.git
    stack.chart_url                                   # http://127.0.0.1:PORT/ (index.yaml)
    stack.kubeconfig_secret("edge-1")                 # Secret edge-1-kubeconfig (key "value")
    stack.sops_secret(age_identity)                   # Secret sops-age (key age.agekey)
    stack.wait_ready("Kustomization", "k10-mc-edge-1")
    stack.reconcile("GitRepository", "k10fleet")      # reconcile.fluxcd.io/requestedAt
    stack.stop()                                      # controllers, servers; by PID, reverse order

The stand-in chart (``k10`` at every version in CHART_VERSIONS) writes its values into the
ConfigMap ``k10-chart-values`` of its namespace; ``PENDING_VERSION`` adds a Deployment that never
becomes ready (no kubelet here), so its HelmRelease stays pending.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, free_port
from tests.integration.kube import (
    Cluster,
    Clusters,
    crds_from_files,
    find_binary,
    kasten_crds,
    stop_process,
    tools_cache,
)

NAMESPACE = "flux-system"
CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller")
FLUX_VERSIONS = {"source-controller": os.environ.get("FLUX_SOURCE_VERSION", "v1.9.6"),
                 "kustomize-controller": os.environ.get("FLUX_KUSTOMIZE_VERSION", "v1.9.6"),
                 "helm-controller": os.environ.get("FLUX_HELM_VERSION", "v1.4.0")}
CHART_VERSIONS = ("7.5.2", "7.5.3")
PENDING_VERSION = "7.0.12"
API = {"GitRepository": "source.toolkit.fluxcd.io/v1",
       "HelmRepository": "source.toolkit.fluxcd.io/v1",
       "Kustomization": "kustomize.toolkit.fluxcd.io/v1",
       "HelmRelease": "helm.toolkit.fluxcd.io/v2"}


def controller_dir(name: str) -> Path:
    """Where setup.sh linked the controller and its CRDs (or the build cache)."""
    for candidate in (REPO / ".tools" / "flux" / name,
                      tools_cache() / f"flux-{name}-{FLUX_VERSIONS[name]}"):
        if (candidate / name).is_file():
            return candidate
    find_binary(name)  # raises ToolMissing naming the set-up command
    raise AssertionError("unreachable")


def flux_crds() -> list[dict[str, Any]]:
    return crds_from_files(p for name in CONTROLLERS
                           for p in (controller_dir(name) / "crds").glob("*.yaml"))


# -- the stand-in chart ----------------------------------------------------------------------
CHART_TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: k10-chart-values
  namespace: {{ .Release.Namespace }}
data:
  values.yaml: {{ toYaml .Values | quote }}
  chart-version: {{ .Chart.Version | quote }}
"""
PENDING_TEMPLATE = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: k10-never-ready
  namespace: {{ .Release.Namespace }}
spec:
  replicas: 1
  selector: {matchLabels: {app: k10-never-ready}}
  template:
    metadata: {labels: {app: k10-never-ready}}
    spec:
      containers: [{name: pause, image: registry.invalid/pause:1}]
"""


def _tar_add(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def chart_archive(version: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _tar_add(tar, "k10/Chart.yaml", yaml.safe_dump(
            {"apiVersion": "v2", "name": "k10", "version": version, "appVersion": version,
             "description": "Stand-in for the K10 chart (k10-fleet tests)"}))
        _tar_add(tar, "k10/values.yaml", "{}\n")
        _tar_add(tar, "k10/templates/values.yaml", CHART_TEMPLATE)
        if version == PENDING_VERSION:
            _tar_add(tar, "k10/templates/pending.yaml", PENDING_TEMPLATE)
    return buffer.getvalue()


def write_chart_repo(folder: Path, url: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for version in (*CHART_VERSIONS, PENDING_VERSION):
        archive = chart_archive(version)
        (folder / f"k10-{version}.tgz").write_bytes(archive)
        entries.append({"apiVersion": "v2", "name": "k10", "version": version,
                        "appVersion": version, "created": "2026-01-01T00:00:00Z",
                        "digest": hashlib.sha256(archive).hexdigest(),
                        "urls": [f"{url}k10-{version}.tgz"]})
    (folder / "index.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "entries": {"k10": entries},
         "generated": "2026-01-01T00:00:00Z"}))


# -- the stack -------------------------------------------------------------------------------
class FluxStack:
    def __init__(self, root: Path, clusters: Clusters, home: str) -> None:
        self.root = root
        self.clusters = clusters
        self.home = home
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[Any] = []
        self.git_port, self.chart_port = free_port(), free_port()
        self.git_url = f"http://127.0.0.1:{self.git_port}/fleet.git"
        self.chart_url = f"http://127.0.0.1:{self.chart_port}/"

    @property
    def cluster(self) -> Cluster:
        return self.clusters[self.home]

    @classmethod
    def start(cls, root: Path, clusters: Clusters, home: str,
              kustomize_concurrent: int = 4) -> FluxStack:
        self = cls(root, clusters, home)
        try:
            self._start(kustomize_concurrent)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, args: Sequence[str], env: dict[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                   cwd=cwd, start_new_session=True)
        self.processes.append(process)
        return process

    def _start(self, kustomize_concurrent: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for member in self.clusters:
            member.install_crds(kasten_crds())
        self.cluster.install_crds(flux_crds())
        self.clusters.apply(self.home, [{"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": NAMESPACE}}])
        self._start_git()
        write_chart_repo(self.root / "charts", self.chart_url)
        self._spawn("chart-repo", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                   str(self.chart_port), "--directory",
                                   str(self.root / "charts")])
        kubeconfig = self.root / "flux-kubeconfig"
        kubeconfig.write_text(self.cluster.kubeconfig_text())
        env = {"KUBECONFIG": str(kubeconfig), "RUNTIME_NAMESPACE": NAMESPACE}
        health = {}
        for name in CONTROLLERS:
            health[name] = free_port()
            args = [str(controller_dir(name) / name), "--watch-all-namespaces",
                    "--enable-leader-election=false", "--log-level=info",
                    f"--metrics-addr=127.0.0.1:{free_port()}",
                    f"--health-addr=127.0.0.1:{health[name]}"]
            if name == "source-controller":
                storage = free_port()
                (self.root / "storage").mkdir(exist_ok=True)
                args += [f"--storage-path={self.root / 'storage'}",
                         f"--storage-addr=127.0.0.1:{storage}",
                         f"--storage-adv-addr=127.0.0.1:{storage}"]
            if name == "kustomize-controller":
                args += ["--no-remote-bases=true", f"--concurrent={kustomize_concurrent}"]
            self._spawn(name, args, env)
        for name in CONTROLLERS:
            self._wait_http(f"http://127.0.0.1:{health[name]}/readyz", name)
        self._wait_http(f"{self.git_url}/info/refs?service=git-upload-pack", "git server")
        self._wait_http(f"{self.chart_url}index.yaml", "chart repository")

    def _start_git(self) -> None:
        repos = self.root / "git"
        bare = repos / "fleet.git"
        bare.mkdir(parents=True)
        git("init", "--bare", "-b", "main", str(bare))
        git("-C", str(bare), "config", "http.receivepack", "true")
        self._spawn("git-server", [sys.executable, "-m", "tests.integration.git_http",
                                   str(repos), str(self.git_port)], cwd=REPO)

    def _wait_http(self, url: str, what: str, timeout: float = 60) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} not ready: {url}\n{self.log_tail(what)}") from None
                for process in self.processes:
                    if process.poll() is not None:
                        raise RuntimeError(f"a Flux stack process exited: {process.args!r}\n"
                                           f"{self.log_tail(what)}") from None
                time.sleep(0.2)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.root / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            stop_process(process)
        for log in self._logs:
            log.close()
        self._logs.clear()

    # -- objects ---------------------------------------------------------------------------
    def kubeconfig_secret(self, cluster: str, name: str | None = None) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name or f"{cluster}-kubeconfig", "namespace": NAMESPACE},
                "stringData": {"value": self.clusters[cluster].kubeconfig_text()}}

    @staticmethod
    def sops_secret(identity: str, name: str = "sops-age") -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "stringData": {"age.agekey": identity + "\n"}}

    def read(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.cluster.read(API[kind], kind, name, NAMESPACE)

    def reconcile(self, kind: str, name: str) -> None:
        """``reconcile.fluxcd.io/requestedAt`` (what ``flux reconcile`` sets); nothing when the
        object does not exist yet."""
        import urllib.error

        stamp = datetime.now(UTC).isoformat()
        path = self.cluster.resource_path(API[kind], kind, name, NAMESPACE)
        body = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}}
        try:
            self.cluster.request(path, method="PATCH", body=body,
                                 content_type="application/merge-patch+json")
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise

    def ready(self, kind: str, name: str) -> tuple[bool, str]:
        obj = self.read(kind, name)
        if obj is None:
            return False, "absent"
        generation = obj["metadata"].get("generation")
        status = obj.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition["type"] == "Ready":
                current = status.get("observedGeneration") == generation
                return (condition["status"] == "True" and current,
                        f"{condition['reason']}: {condition.get('message', '')}")
        return False, "no Ready condition"

    def wait_ready(self, kind: str, name: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            ok, why = self.ready(kind, name)
            if ok:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{kind} {name} not Ready after {timeout:.0f} s: {why}\n"
                                     + self.log_tail("kustomize-controller", 10))
            time.sleep(0.5)


def git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "k10fleet tests", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "k10fleet tests", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    env.pop("GIT_DIR", None)
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True, timeout=120).stdout


def wait_for(check: Any, what: str, timeout: float = 180, interval: float = 0.5) -> Any:
    """Poll ``check()`` until it returns something truthy; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = check()
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
