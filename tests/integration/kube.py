"""Real Kubernetes API servers for the integration tests: one etcd + one kube-apiserver per cluster.

Stable API (other tests build on it; see docs/integration-tests.md):

    from tests.integration.kube import Clusters

    clusters = Clusters.start(root, ["primary", "edge-1"], crds=True)  # N clusters at once,
                                   # each /readyz ok; crds=True: with default_crds() installed
    clusters.kubeconfig            # Path: one kubeconfig, one context per cluster, named like it
    clusters["primary"].context    # "primary" (the context name is the cluster name)
    clusters["primary"].server     # "https://127.0.0.1:PORT"
    clusters["primary"].kubeconfig_text()  # single-context kubeconfig with the server's CA as
                                   # certificate-authority-data and a system:masters token
                                   # (what a Flux kubeConfig.secretRef Secret holds)
    clusters.install_crds(crds=None)  # default_crds(): Argo CD, Flux, ESO kinds from
                                   # ../shared/crd-schemas + Kasten kinds; or the given CRDs
    clusters.apply("primary", objs)  # server-side apply, fieldValidation=Strict, in the given
                                   # order (API calls); objs: list of dicts or YAML text;
                                   # raises ApplyError. kubectl_apply(): same via kubectl.
    clusters["primary"].read("v1", "Secret", "mc-join", "kasten-io")  # via the API, None if absent
    clusters.get("primary", "secret", "mc-join", namespace="kasten-io")  # dict, None if absent
    clusters.kubectl("primary", "get", "ns")  # CompletedProcess, check=True, text
    clusters["edge-1"].stop()      # one cluster (e.g. a context pointing at a stopped server)
    clusters.stop()                # all, reverse order; kube-apiserver exits before its etcd
                                   # (idempotent: a test may stop its clusters early)

Pytest fixture (tests/integration/conftest.py): ``kube_clusters`` is a session-scoped factory,
``kube_clusters("primary", "edge-1", crds=True) -> Clusters``; every cluster it started is
stopped by PID at the end of the session, also when tests fail.

Binaries: kube-apiserver from ``.tools/bin`` (``tests/tools/setup.sh`` links it there) or
``$K10FLEET_TOOLS_CACHE``/``~/.cache/k10fleet-test-tools``; etcd and kubectl from PATH. A missing
binary fails the test (ToolMissing) with the set-up command; the tests never skip.
"""

from __future__ import annotations

import atexit
import base64
import concurrent.futures
import contextlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, SHARED, free_port

KUBE_VERSION = os.environ.get("KUBE_VERSION", "v1.34.0")
SETUP = "tests/tools/setup.sh"
FIELD_MANAGER = "k10fleet-tests"
STOP_TIMEOUT = 20.0
READY_TIMEOUT = float(os.environ.get("K10FLEET_KUBE_READY_TIMEOUT", "90"))


class ToolMissing(RuntimeError):
    """A binary the integration tests need is not installed."""


class ApplyError(AssertionError):
    """The API server refused an object (the message is kubectl's, naming the object)."""


def tools_cache() -> Path:
    return Path(os.environ.get("K10FLEET_TOOLS_CACHE",
                               Path.home() / ".cache" / "k10fleet-test-tools"))


def find_binary(name: str, *cached: Path) -> str:
    """``.tools/bin/<name>``, then the cache locations, then PATH."""
    for candidate in (REPO / ".tools" / "bin" / name, *cached):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise ToolMissing(f"{name} is missing: run `{SETUP}` (the README's test command does)")


def kube_apiserver() -> str:
    return find_binary("kube-apiserver",
                       tools_cache() / f"kube-apiserver-{KUBE_VERSION}" / "kube-apiserver")


def kubectl_binary() -> str:
    return find_binary("kubectl")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Cluster:
    """One API server with its own etcd, started by ``Clusters.start``."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.context = name
        self.root = root
        self.token = "k10fleet-test-" + os.urandom(12).hex()
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.etcd: subprocess.Popen[bytes] | None = None
        self.apiserver: subprocess.Popen[bytes] | None = None
        self._logs: list[Any] = []
        self._discovery: dict[str, dict[str, tuple[str, bool]]] = {}

    # -- processes -------------------------------------------------------------------------
    def _spawn(self, args: Sequence[str], log: str) -> subprocess.Popen[bytes]:
        handle = open(self.root / log, "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(handle)
        return subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def start_etcd(self, seed: Path | None = None) -> None:
        """``seed``: a stopped etcd's data directory to start from (a copy of it)."""
        client, peer = free_port(), free_port()
        data = _etcd_data_dir(self.root)
        if seed is not None:
            shutil.copytree(seed, data, dirs_exist_ok=True)
        self._etcd_data = data
        self.etcd_url = f"http://127.0.0.1:{client}"
        self.etcd = self._spawn([
            find_binary("etcd"), "--name", "default", "--data-dir", str(data),
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer}",
            "--logger", "zap", "--log-level", "warn"], "etcd.log")

    def start_apiserver(self) -> None:
        key = self.root / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                       capture_output=True, timeout=60)
        tokens = self.root / "tokens.csv"
        tokens.write_text(f'{self.token},k10fleet-test,k10fleet-test,"system:masters"\n')
        self.apiserver = self._spawn([
            kube_apiserver(), "--etcd-servers", self.etcd_url,
            "--secure-port", str(self.port), "--bind-address", "127.0.0.1",
            "--advertise-address", "127.0.0.1", "--cert-dir", str(self.root / "certs"),
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", str(key),
            "--service-account-signing-key-file", str(key),
            "--authorization-mode", "RBAC", "--token-auth-file", str(tokens),
            "--service-cluster-ip-range", "10.0.0.0/24",
            "--disable-admission-plugins", "ServiceAccount"], "kube-apiserver.log")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for process, what in ((self.etcd, "etcd"), (self.apiserver, "kube-apiserver")):
                if process is None or process.poll() is not None:
                    raise RuntimeError(f"{what} of cluster {self.name} exited: "
                                       f"{self.log_tail(what)}")
            try:
                if self.request("/readyz", timeout=2) == b"ok":
                    return
            except (OSError, ssl.SSLError, FileNotFoundError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster {self.name}: /readyz not ok after {timeout:.0f} s: "
                                   f"{self.log_tail('kube-apiserver')}")
            time.sleep(0.1)

    def log_tail(self, what: str, lines: int = 15) -> str:
        path = self.root / f"{what}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, keep_data: bool = False) -> None:
        """kube-apiserver first, waited for, then etcd; safe to call twice."""
        stop_process(self.apiserver)
        stop_process(self.etcd)
        if self.etcd is not None and self._etcd_data.parent != self.root and not keep_data:
            shutil.rmtree(self._etcd_data, ignore_errors=True)
        for handle in self._logs:
            handle.close()
        self._logs.clear()

    @property
    def running(self) -> bool:
        return self.apiserver is not None and self.apiserver.poll() is None

    # -- access ----------------------------------------------------------------------------
    @property
    def ca_file(self) -> Path:
        """The serving certificate and the CA kube-apiserver made for it (--cert-dir)."""
        return self.root / "certs" / "apiserver.crt"

    def request(self, path: str, timeout: float = 10, method: str = "GET",
                body: Any = None, content_type: str = "application/json") -> bytes:
        """One API call (JSON body); urllib.error.HTTPError on a refusal."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers=headers)
        with urllib.request.urlopen(req, timeout=timeout, context=context) as response:
            answer: bytes = response.read()
            return answer

    def resource_path(self, api_version: str, kind: str, name: str,
                      namespace: str | None) -> str:
        """The REST path of an object, from the server's discovery (cached per group)."""
        if api_version not in self._discovery:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            found = json.loads(self.request(base))["resources"]
            self._discovery[api_version] = {r["kind"]: (r["name"], r["namespaced"])
                                            for r in found if "/" not in r["name"]}
        plural, namespaced = self._discovery[api_version][kind]
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        scope = f"/namespaces/{namespace}" if namespaced and namespace else ""
        return f"{base}{scope}/{plural}/{name}"

    def apply_object(self, doc: dict[str, Any], manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply of one object with fieldValidation=Strict (force: the test owns
        every field). Raises ApplyError with the server's message."""
        meta = doc["metadata"]
        what = f"{doc['kind']} {meta.get('namespace', '')}/{meta['name']}"
        try:
            path = self.resource_path(doc["apiVersion"], doc["kind"], meta["name"],
                                      meta.get("namespace"))
            query = f"?fieldManager={manager}&force=true&fieldValidation=Strict"
            answer = self.request(path + query, method="PATCH", body=doc,
                                  content_type="application/apply-patch+yaml")
        except KeyError:
            raise ApplyError(f"cluster {self.name}: no resource for {what} "
                             f"({doc['apiVersion']})") from None
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("message", detail)
            raise ApplyError(f"cluster {self.name} refused {what}: {detail}") from None
        stored: dict[str, Any] = json.loads(answer)
        return stored

    def read(self, api_version: str, kind: str, name: str,
             namespace: str | None = None) -> dict[str, Any] | None:
        """The object as stored, None when absent."""
        try:
            return dict(json.loads(self.request(
                self.resource_path(api_version, kind, name, namespace))))
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def install_crds(self, crds: Sequence[dict[str, Any]], timeout: float = 60) -> None:
        """Server-side apply each CRD (strict), then wait until all are Established."""
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        query = f"?fieldManager={FIELD_MANAGER}&force=true&fieldValidation=Strict"
        for crd in crds:
            self.request(f"{base}/{crd['metadata']['name']}{query}", method="PATCH", body=crd,
                         content_type="application/apply-patch+yaml", timeout=60)
        self._discovery.clear()
        wanted = {crd["metadata"]["name"] for crd in crds}
        deadline = time.monotonic() + timeout
        while True:
            items = json.loads(self.request(base))["items"]
            established = {item["metadata"]["name"] for item in items
                           if any(c["type"] == "Established" and c["status"] == "True"
                                  for c in (item.get("status") or {}).get("conditions") or [])}
            if wanted <= established:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRDs not established: {sorted(wanted - established)}")
            time.sleep(0.1)

    def kubeconfig_entry(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        return ({"name": self.name, "cluster": {"server": self.server,
                                                "certificate-authority-data": ca}},
                {"name": self.name, "user": {"token": self.token}},
                {"name": self.name, "context": {"cluster": self.name, "user": self.name}})

    def kubeconfig_text(self, server: str | None = None) -> str:
        """A kubeconfig with only this cluster (current-context set); ``server`` overrides
        the address (e.g. a stopped port for fault tests)."""
        cluster, user, context = self.kubeconfig_entry()
        if server:
            cluster["cluster"]["server"] = server
        return _kubeconfig_yaml([cluster], [user], [context], self.name)


def _etcd_data_dir(root: Path) -> Path:
    """etcd's data in tmpfs when there is one (fsync on a busy disk slows every write)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="k10fleet-etcd-", dir=shm))
    return root / "etcd"


def _kubeconfig_yaml(clusters: list[Any], users: list[Any], contexts: list[Any],
                     current: str) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": clusters,
                           "users": users, "contexts": contexts, "current-context": current,
                           "preferences": {}}, sort_keys=False)


def _documents(objects: str | Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(objects, str):
        return [doc for doc in yaml.safe_load_all(objects) if doc]
    return list(objects)


class Clusters:
    """Several clusters with one kubeconfig (a context per cluster)."""

    def __init__(self, root: Path, clusters: list[Cluster]) -> None:
        self.root = root
        self.clusters = {c.name: c for c in clusters}
        self.kubeconfig = root / "kubeconfig"

    @classmethod
    def start(cls, root: Path, names: Sequence[str], crds: bool = False) -> Clusters:
        """Start every cluster (etcds first, then the API servers), wait for /readyz, write
        the kubeconfig. On any failure everything started is stopped again."""
        root.mkdir(parents=True, exist_ok=True)
        members = []
        for name in names:
            (root / name).mkdir(parents=True, exist_ok=True)
            members.append(Cluster(name, root / name))
        self = cls(root, members)
        try:
            seed = default_crd_seed() if crds else None
            for member in members:
                member.start_etcd(seed)
            for member in members:
                member.start_apiserver()
            for member in members:
                member.wait_ready()
            self.write_kubeconfig()
        except BaseException:
            self.stop()
            raise
        return self

    def __getitem__(self, name: str) -> Cluster:
        return self.clusters[name]

    def __iter__(self) -> Iterator[Cluster]:
        return iter(self.clusters.values())

    def write_kubeconfig(self) -> Path:
        entries = [c.kubeconfig_entry() for c in self]
        self.kubeconfig.write_text(_kubeconfig_yaml(
            [e[0] for e in entries], [e[1] for e in entries], [e[2] for e in entries],
            next(iter(self.clusters))))
        self.kubeconfig.chmod(0o600)
        return self.kubeconfig

    def stop(self) -> None:
        """Every kube-apiserver (newest first) is signalled and waited for, then every etcd."""
        members = list(reversed(list(self)))
        for member in members:
            if member.apiserver is not None and member.apiserver.poll() is None:
                member.apiserver.terminate()
        for member in members:
            stop_process(member.apiserver)
        for member in members:
            member.stop()

    # -- kubectl ---------------------------------------------------------------------------
    def kubectl(self, name: str, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECACHEDIR": str(self.root / "kube-cache")}
        env.pop("KUBECONFIG", None)
        return subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(self.kubeconfig), "--context", name, *args],
            input=input, capture_output=True, text=True, check=check, timeout=timeout, env=env)

    def apply(self, name: str, objects: str | Iterable[dict[str, Any]],
              manager: str = FIELD_MANAGER) -> list[dict[str, Any]]:
        """Server-side apply with fieldValidation=Strict through the API, one object after
        the other in the given order (what ``kubectl apply --server-side --validate=strict``
        sends, without a kubectl start per call). Returns the objects as stored."""
        return [self[name].apply_object(doc, manager) for doc in _documents(objects)]

    def kubectl_apply(self, name: str, objects: str | Iterable[dict[str, Any]],
                      manager: str = FIELD_MANAGER) -> None:
        """The same through the real ``kubectl apply --server-side --validate=strict``."""
        stream = yaml.safe_dump_all(_documents(objects), sort_keys=False)
        result = self.kubectl(name, "apply", "--server-side", "--force-conflicts",
                              "--validate=strict", f"--field-manager={manager}", "-f", "-",
                              input=stream, check=False)
        if result.returncode != 0:
            raise ApplyError(f"cluster {name} refused objects:\n{result.stderr.strip()}")

    def get_many(self, name: str, refs: Sequence[str],
                 namespace: str | None = None) -> list[dict[str, Any]]:
        """``kubectl get REF...`` (``kind.group/name``) in one call; fails if any is missing."""
        args = ["get", *refs, "-o", "json"] + (["-n", namespace] if namespace else [])
        data = json.loads(self.kubectl(name, *args).stdout)
        items: list[dict[str, Any]] = data["items"] if data.get("kind") == "List" else [data]
        return items

    def get(self, name: str, resource: str, object_name: str,
            namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", resource, object_name, "-o", "json", "--ignore-not-found"]
        if namespace:
            args += ["-n", namespace]
        out = self.kubectl(name, *args).stdout
        return json.loads(out) if out.strip() else None

    # -- CRDs ------------------------------------------------------------------------------
    def install_crds(self, crds: Sequence[dict[str, Any]] | None = None) -> None:
        """Install CRDs (default: ``default_crds()``) on every cluster in parallel and wait
        until each is Established. ``Clusters.start(..., crds=True)`` is faster: it starts
        from a copy of an etcd that holds the default CRDs already."""
        wanted = list(crds) if crds is not None else default_crds()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.clusters)) as pool:
            for future in [pool.submit(m.install_crds, wanted) for m in self]:
                future.result()


_SEEDS: dict[str, Path] = {}
_SEED_LOCK = threading.Lock()


def default_crds() -> list[dict[str, Any]]:
    """Argo CD, Flux and ESO kinds from ../shared/crd-schemas, and the Kasten kinds."""
    return [*shared_crds(), *kasten_crds()]


def default_crd_seed() -> Path:
    """The data directory of a stopped etcd that holds ``default_crds()``, made once per
    process by a throwaway cluster (applying ~1 MB of CRDs takes 10-20 s; copying 2 ms)."""
    with _SEED_LOCK:
        if "default" not in _SEEDS:
            root = Path(tempfile.mkdtemp(prefix="k10fleet-crd-seed-"))
            member = Cluster("seed", root)
            try:
                member.start_etcd()
                member.start_apiserver()
                member.wait_ready()
                member.install_crds(default_crds())
            finally:
                member.stop(keep_data=True)
            _SEEDS["default"] = member._etcd_data
            atexit.register(shutil.rmtree, member._etcd_data, True)
            atexit.register(shutil.rmtree, root, True)
        return _SEEDS["default"]


# ---------------------------------------------------------------------------------------------
# CRDs
# (group, lower-case kind in the file name) -> (Kind, plural, scope)
SHARED_KINDS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("argoproj.io", "application"): ("Application", "applications", "Namespaced"),
    ("argoproj.io", "applicationset"): ("ApplicationSet", "applicationsets", "Namespaced"),
    ("argoproj.io", "appproject"): ("AppProject", "appprojects", "Namespaced"),
    ("external-secrets.io", "clusterexternalsecret"):
        ("ClusterExternalSecret", "clusterexternalsecrets", "Cluster"),
    ("external-secrets.io", "clustersecretstore"):
        ("ClusterSecretStore", "clustersecretstores", "Cluster"),
    ("external-secrets.io", "externalsecret"):
        ("ExternalSecret", "externalsecrets", "Namespaced"),
    ("external-secrets.io", "pushsecret"): ("PushSecret", "pushsecrets", "Namespaced"),
    ("external-secrets.io", "secretstore"): ("SecretStore", "secretstores", "Namespaced"),
    ("helm.toolkit.fluxcd.io", "helmrelease"): ("HelmRelease", "helmreleases", "Namespaced"),
    ("kustomize.toolkit.fluxcd.io", "kustomization"):
        ("Kustomization", "kustomizations", "Namespaced"),
    ("source.toolkit.fluxcd.io", "gitrepository"):
        ("GitRepository", "gitrepositories", "Namespaced"),
    ("source.toolkit.fluxcd.io", "helmrepository"):
        ("HelmRepository", "helmrepositories", "Namespaced"),
    ("source.toolkit.fluxcd.io", "ocirepository"):
        ("OCIRepository", "ocirepositories", "Namespaced"),
}
# Kasten publishes no CRDs: open specs, groups/versions as the generator renders them.
KASTEN_KINDS: dict[str, tuple[str, ...]] = {
    "dist.kio.kasten.io": ("Bootstrap", "Cluster", "Distribution"),
    "auth.kio.kasten.io": ("K10ClusterRoleBinding",),
    "config.kio.kasten.io": ("Policy", "Profile"),
}
KASTEN_VERSION = "v1alpha1"


def structural(schema: Any) -> Any:
    """The schema without the ``additionalProperties: false`` the catalog added (kept where
    additionalProperties is a schema: maps). A CRD accepts the result."""
    if isinstance(schema, dict):
        return {key: structural(value) for key, value in schema.items()
                if not (key == "additionalProperties" and value is False)}
    if isinstance(schema, list):
        return [structural(item) for item in schema]
    return schema


def _crd(group: str, kind: str, plural: str, scope: str,
         versions: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    storage = _storage_version([v for v, _ in versions])
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": scope,
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                           "listKind": f"{kind}List"},
                 "versions": [{"name": version, "served": True, "storage": version == storage,
                               "schema": {"openAPIV3Schema": schema},
                               "subresources": {"status": {}}}
                              for version, schema in versions]}}


def _storage_version(versions: list[str]) -> str:
    stable = [v for v in versions if "alpha" not in v and "beta" not in v]
    return sorted(stable or versions)[-1]


def shared_crds(shared: Path = SHARED) -> list[dict[str, Any]]:
    """Argo CD, Flux and ESO CRDs from ../shared/crd-schemas (structural schemas)."""
    root = shared / "crd-schemas"
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is missing (set K10FLEET_SHARED)")
    versions: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for path in sorted(root.glob("*/*.json")):
        lower, version = path.stem.rsplit("_", 1)
        schema = structural(json.loads(path.read_text()))
        versions.setdefault((path.parent.name, lower), []).append((version, schema))
    return [_crd(group, *SHARED_KINDS[(group, lower)], found)
            for (group, lower), found in sorted(versions.items())]


def kasten_crds() -> list[dict[str, Any]]:
    open_spec = {"type": "object", "properties": {
        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    return [_crd(group, kind, plural_of(kind), "Namespaced", [(KASTEN_VERSION, open_spec)])
            for group, kinds in sorted(KASTEN_KINDS.items()) for kind in kinds]


def plural_of(kind: str) -> str:
    lower = kind.lower()
    return lower[:-1] + "ies" if lower.endswith("y") else lower + "s"


def crds_from_files(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """CRDs as published (e.g. the Flux controllers' config/crd/bases)."""
    return [doc for path in sorted(paths) for doc in yaml.safe_load_all(path.read_text())
            if doc and doc.get("kind") == "CustomResourceDefinition"]
