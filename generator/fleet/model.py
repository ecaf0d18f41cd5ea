"""The typed, defaulted view of a valid fleet that renderers work from."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

MC_NAMESPACE = "kasten-io-mc"
DEFAULT_NAMESPACE = "kasten-io"
DEFAULT_RELEASE = "k10"
DEFAULT_CHART_REPOSITORY = "https://charts.kasten.io/"
DEFAULT_CHART_NAME = "k10"
DEFAULT_JOIN_TOKEN_SECRET = "join-token-secret"

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


class K10Version(NamedTuple):
    """A K10 release; ordering decides how clusters are promoted and joined."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> K10Version | None:
        return _parse_version(text)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@functools.lru_cache(maxsize=256)
def _parse_version(text: str) -> K10Version | None:
    """Versions repeat across thousands of clusters: parse each spelling once."""
    match = _VERSION.fullmatch(text)
    if not match:
        return None
    major, minor, patch = (int(g) for g in match.groups())
    return K10Version(major, minor, patch)


FIRST_TOOL_SUPPORTED = K10Version(6, 0, 0)  # 6.0.x-6.4.x: only the k10multicluster tool
FIRST_SUPPORTED = K10Version(6, 5, 0)  # the first release with declarative Multi-Cluster setup
K10MULTICLUSTER_DEPRECATED = K10Version(7, 0, 0)
FIRST_HELM_PRIMARY = K10Version(6, 5, 8)
FIRST_INGRESS_IN_TOKEN = K10Version(6, 5, 14)


@dataclass(frozen=True)
class Chart:
    """Where a cluster's K10 Helm chart comes from (a Helm repository or an oci:// one)."""

    repository: str
    name: str
    version: str


@dataclass(frozen=True)
class KastenSettings:
    version: K10Version
    namespace: str
    release_name: str
    chart: Chart


@dataclass(frozen=True)
class Destination:
    """How the GitOps engine reaches a cluster."""

    server: str | None = None
    name: str | None = None
    kubeconfig_secret: str | None = None
    kubeconfig_key: str = "value"


@dataclass(frozen=True)
class Cluster:
    """One cluster with every fleet default applied."""

    name: str
    role: str  # "primary" | "secondary"
    kasten: KastenSettings
    values: dict[str, Any]
    ingress_url: str | None
    cluster_name: str
    primary_ingress_url: str | None = None
    join_with: str = "token"
    kube_context: str | None = None
    kubeconfig: str | None = None
    destination: Destination = Destination()
    labels: Mapping[str, str] = field(default_factory=dict)
    ingress_skip_tls_verify: bool = False  # k10multicluster: skip TLS verification of ingressURL

    @property
    def is_primary(self) -> bool:
        return self.role == "primary"

    @property
    def tool_only(self) -> bool:
        """K10 6.0.x-6.4.x: no declarative Multi-Cluster setup, only the k10multicluster tool."""
        return self.kasten.version < FIRST_SUPPORTED

    def kubectl_flags(self) -> list[str]:
        """``--context``/``--kubeconfig`` that reach this cluster (empty when unknown)."""
        flags = ["--context", self.kube_context] if self.kube_context else []
        return flags + (["--kubeconfig", self.kubeconfig] if self.kubeconfig else [])


SCRIPT_PATH = "bootstrap/k10multicluster.sh"


def setup_path(cluster: Cluster) -> str:
    """How k10fleet sets this cluster up, in a few words (``validate`` prints it)."""
    version = cluster.kasten.version
    if cluster.is_primary:
        if cluster.tool_only:
            return f"primary on K10 {version}: k10multicluster setup-primary ({SCRIPT_PATH})"
        if version < FIRST_HELM_PRIMARY:
            return f"primary on K10 {version}: promoted by a Bootstrap object (bootstrap.yaml)"
        return f"primary on K10 {version}: promoted by Helm values (multicluster.primary)"
    if cluster.join_with == "k10multicluster":
        return f"secondary on K10 {version}: k10multicluster bootstrap ({SCRIPT_PATH})"
    if version < FIRST_INGRESS_IN_TOKEN:
        return (f"secondary on K10 {version}: joins with mc-join (token and endpoint) and "
                "mc-join-config")
    return f"secondary on K10 {version}: joins with mc-join (token) and mc-join-config"


@dataclass(frozen=True)
class Tokens:
    mode: str
    join_token_secret: str
    store: str | None
    eso_store_name: str = "k10fleet"
    eso_store_kind: str = "ClusterSecretStore"
    eso_refresh_interval: str = "1h0m0s"
    eso_vault: Mapping[str, Any] | None = field(default=None, hash=False)  # opt-in store

    @property
    def vault_mount_and_path(self) -> tuple[str, str]:
        """(mount, path) of a vault:// store."""
        return vault_mount_and_path(self.store or "")


def vault_mount_and_path(uri: str) -> tuple[str, str]:
    """(mount, path) of ``vault://MOUNT/PATH``."""
    mount, _, path = uri.removeprefix("vault://").strip("/").partition("/")
    return mount, path


def is_vault_uri(uri: str) -> bool:
    """``vault://MOUNT/PATH`` with a mount, a path and no empty segment."""
    mount, path = vault_mount_and_path(uri)
    return uri.startswith("vault://") and bool(mount and path) and "//" not in f"{mount}/{path}"


@dataclass(frozen=True)
class GitOps:
    engine: str
    repo_url: str | None
    revision: str
    path: str
    namespace: str = "argocd"
    project: str = "default"
    interval: str = "10m"
    sops_secret: str = "sops-age"


CLUSTER_TYPE_LABEL = "dist.kio.kasten.io/cluster-type"  # K10 sets it on every Cluster object
CONFIG_API = "config.kio.kasten.io/v1alpha1"


@dataclass(frozen=True)
class CredentialFormat:
    """The Secret K10 expects behind a profile's ``credential.secretType``."""

    secret_type: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


# docs.kasten.io api/profiles and kastenhq/kasten-multicluster-argocd
CREDENTIAL_FORMATS: dict[str, CredentialFormat] = {
    "AwsAccessKey": CredentialFormat(
        "secrets.kanister.io/aws", ("aws_access_key_id", "aws_secret_access_key"), ("role",)),
    "AzStorageAccount": CredentialFormat(
        "secrets.kanister.io/azure", ("azure_storage_account_id", "azure_storage_key"),
        ("azure_storage_environment",)),
    "GcpServiceAccountKey": CredentialFormat("Opaque", ("project-id", "service-account.json")),
}


def credential_holder(spec: Mapping[str, Any]) -> str:
    """Where a Profile spec keeps its ``credential``: locationSpec or infra."""
    return "locationSpec" if spec.get("type") == "Location" else "infra"


def with_credential_secret(spec: Mapping[str, Any], secret_name: str) -> dict[str, Any]:
    """The Profile spec with ``credential.secret`` naming the Secret k10fleet writes beside it
    in kasten-io-mc (the spec unchanged when it has no credential to point from)."""
    holder_key = credential_holder(spec)
    holder = spec.get(holder_key)
    credential = holder.get("credential") if isinstance(holder, dict) else None
    if not isinstance(holder, dict) or not isinstance(credential, dict):
        return dict(spec)
    secret = {"apiVersion": "v1", "kind": "Secret", "name": secret_name, "namespace": MC_NAMESPACE}
    return {**spec, holder_key: {**holder, "credential": {**credential, "secret": secret}}}


@dataclass(frozen=True)
class ClusterTarget:
    """One entry of a ``clusters`` list: a K10 Cluster name, or a label selector."""

    name: str | None = None
    selector: str | None = None

    def as_k10(self) -> dict[str, str]:
        return {"name": self.name} if self.name is not None else {"selector": self.selector or ""}


@dataclass(frozen=True)
class AccessGrant:
    name: str
    role: str
    subjects: tuple[tuple[str, str], ...]  # (kind, name)
    clusters: tuple[ClusterTarget, ...]
    dashboard_access: str = "user"  # user | admin | none: the Kubernetes RBAC layer


@dataclass(frozen=True)
class ProfileCredentials:
    """A Profile's credentials: read from ``store`` by inject (or fetched at sync time),
    written as Secret ``secret_name`` in the form ``format`` says."""

    store: str
    secret_name: str
    format: CredentialFormat


@dataclass(frozen=True)
class GlobalResource:
    """A Policy or Profile as the fleet author wrote it, destined for kasten-io-mc."""

    kind: str
    name: str
    spec: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    credentials: ProfileCredentials | None = None


@dataclass(frozen=True)
class DistributionPlan:
    name: str
    clusters: tuple[ClusterTarget, ...]
    resources: tuple[tuple[str, str], ...]  # (kind, name)


@dataclass(frozen=True)
class Fleet:
    name: str
    primary: Cluster
    secondaries: tuple[Cluster, ...]
    tokens: Tokens
    gitops: GitOps
    source: str = field(default="fleet.yaml", compare=False)
    access: tuple[AccessGrant, ...] = ()
    policies: tuple[GlobalResource, ...] = ()
    profiles: tuple[GlobalResource, ...] = ()
    distributions: tuple[DistributionPlan, ...] = ()

    @property
    def clusters(self) -> tuple[Cluster, ...]:
        return (self.primary, *self.secondaries)
