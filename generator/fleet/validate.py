"""fleet.yaml -> problems, and for a valid fleet the typed model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from generator.errors import InvalidInput
from generator.fleet.global_resources import central_problems
from generator.fleet.loader import LoadedDocument, LoadLimits, load_yaml_file
from generator.fleet.model import (
    CREDENTIAL_FORMATS,
    DEFAULT_CHART_NAME,
    DEFAULT_CHART_REPOSITORY,
    DEFAULT_JOIN_TOKEN_SECRET,
    DEFAULT_NAMESPACE,
    DEFAULT_RELEASE,
    FIRST_SUPPORTED,
    AccessGrant,
    Chart,
    Cluster,
    ClusterTarget,
    Destination,
    DistributionPlan,
    Fleet,
    GitOps,
    GlobalResource,
    K10Version,
    KastenSettings,
    ProfileCredentials,
    Tokens,
    credential_holder,
)
from generator.fleet.rules import rule_problems
from generator.fleet.schema import schema_problems
from generator.merge import deep_merge
from generator.problems import Problem, has_errors

MAX_PROBLEMS = 1000


@dataclass
class ValidationResult:
    """Every problem found; ``fleet`` is set only when there is no error."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    fleet: Fleet | None = None

    @property
    def valid(self) -> bool:
        return not has_errors(self.problems)


def validate_document(doc: LoadedDocument) -> ValidationResult:
    problems = (doc.problems + schema_problems(doc) + rule_problems(doc)
                + central_problems(doc))
    problems = sorted(set(problems), key=lambda p: (p.line, p.column, p.path, p.message))
    if len(problems) > MAX_PROBLEMS:  # a broken 10,000-cluster file must not flood the terminal
        extra = len(problems) - MAX_PROBLEMS
        last = problems[MAX_PROBLEMS - 1]
        problems = [*problems[:MAX_PROBLEMS], Problem(
            doc.file, last.line, last.column, "", f"... and {extra} more problems", "error",
            rule="size")]
    result = ValidationResult(doc.file, problems)
    if result.valid:
        result.fleet = build_fleet(doc.data, doc.file)
    return result


def validate_file(path: str, limits: LoadLimits | None = None) -> ValidationResult:
    """Load and validate; YAML-level failures come back as problems too."""
    try:
        doc = load_yaml_file(path, limits or LoadLimits.from_env())
    except InvalidInput as e:
        return ValidationResult(path, e.problems)
    return validate_document(doc)


def load_fleet(path: str, limits: LoadLimits | None = None) -> tuple[Fleet, list[Problem]]:
    """The fleet and its warnings; raise ``InvalidInput`` when it has errors."""
    result = validate_file(path, limits)
    if result.fleet is None:
        raise InvalidInput(result.problems)
    return result.fleet, result.problems


def _kasten(fleet_kasten: dict[str, Any], own: dict[str, Any]) -> KastenSettings:
    version = K10Version.parse(own.get("version", fleet_kasten["version"]))
    assert version is not None  # the schema and rules checked it
    fleet_chart, own_chart = fleet_kasten.get("chart", {}), own.get("chart", {})
    chart = {**fleet_chart, **own_chart}
    if "version" in own_chart:
        chart_version = own_chart["version"]
    elif "version" in own:  # a cluster that overrides K10's version follows it
        chart_version = str(version)
    else:
        chart_version = fleet_chart.get("version", str(version))
    return KastenSettings(
        version=version,
        namespace=own.get("namespace", fleet_kasten.get("namespace", DEFAULT_NAMESPACE)),
        release_name=own.get("releaseName", fleet_kasten.get("releaseName", DEFAULT_RELEASE)),
        chart=Chart(
            repository=chart.get("repository", DEFAULT_CHART_REPOSITORY),
            name=chart.get("name", DEFAULT_CHART_NAME),
            version=chart_version,
        ),
    )


def _join_with(raw: dict[str, Any], kasten: KastenSettings, tool_primary: bool) -> str:
    """6.0.x-6.4.x clusters, and every secondary of such a primary, join with the tool."""
    tool_only = kasten.version < FIRST_SUPPORTED or tool_primary
    return "k10multicluster" if tool_only else str(raw.get("joinWith", "token"))


def _cluster(raw: dict[str, Any], role: str, spec: dict[str, Any],
             tool_primary: bool = False) -> Cluster:
    fleet_kasten = spec["kasten"]
    kasten = _kasten(fleet_kasten, raw.get("kasten", {}))
    return Cluster(
        name=raw["name"],
        role=role,
        kasten=kasten,
        values=deep_merge(fleet_kasten.get("values", {}), raw.get("values", {})),
        ingress_url=raw.get("ingressURL"),
        cluster_name=raw.get("clusterName", raw["name"]),
        primary_ingress_url=raw.get("primaryIngressURL"),
        join_with=_join_with(raw, kasten, tool_primary) if role == "secondary" else "token",
        kube_context=raw.get("kubeContext"),
        kubeconfig=raw.get("kubeconfig"),
        destination=Destination(
            server=raw.get("destination", {}).get("server"),
            name=raw.get("destination", {}).get("name"),
            kubeconfig_secret=raw.get("destination", {}).get("kubeConfigSecret", {}).get("name"),
            kubeconfig_key=raw.get("destination", {}).get("kubeConfigSecret", {}).get(
                "key", "value"),
        ),
        labels=dict(sorted(raw.get("labels", {}).items())),
        ingress_skip_tls_verify=raw.get("ingressSkipTLSVerify", False),
    )


def _targets(raw: list[dict[str, str]], dashboard: dict[str, str]) -> tuple[ClusterTarget, ...]:
    """Fleet names become the K10 Cluster names (cluster-name) that K10 matches."""
    return tuple(ClusterTarget(name=dashboard[entry["name"]]) if "name" in entry
                 else ClusterTarget(selector=entry["selector"]) for entry in raw)


def credential_type(spec: dict[str, Any]) -> str | None:
    """A profile's ``credential.secretType``, for location and infrastructure profiles."""
    holder = spec.get(credential_holder(spec))
    credential = holder.get("credential") if isinstance(holder, dict) else None
    secret_type = credential.get("secretType") if isinstance(credential, dict) else None
    return secret_type if isinstance(secret_type, str) else None


def _global(kind: str, raw: dict[str, Any]) -> GlobalResource:
    meta = raw["metadata"]
    credentials = None
    if kind == "Profile" and "credentials" in raw:
        secret_type = credential_type(raw["spec"])
        assert secret_type is not None  # the rules checked it
        credentials = ProfileCredentials(
            store=raw["credentials"]["store"],
            secret_name=raw["credentials"].get("secretName", f"{meta['name']}-credentials"),
            format=CREDENTIAL_FORMATS[secret_type])
    return GlobalResource(kind=kind, name=meta["name"], spec=raw["spec"],
                          labels=dict(sorted(meta.get("labels", {}).items())),
                          annotations=dict(sorted(meta.get("annotations", {}).items())),
                          credentials=credentials)


def build_fleet(data: dict[str, Any], source: str) -> Fleet:
    """Apply defaults to schema- and rule-checked data."""
    spec = data["spec"]
    tokens = spec.get("tokens", {})
    eso = tokens.get("externalSecrets", {})
    gitops = spec.get("gitops", {})
    engine = gitops.get("engine", "none")
    dashboard = {c["name"]: c.get("clusterName", c["name"])
                 for c in [spec["primary"], *spec.get("secondaries", [])]}
    primary = _cluster(spec["primary"], "primary", spec)
    return Fleet(
        name=data["metadata"]["name"],
        primary=primary,
        secondaries=tuple(_cluster(s, "secondary", spec, primary.tool_only)
                          for s in spec.get("secondaries", [])),
        tokens=Tokens(
            mode=tokens.get("mode", "sops"),
            join_token_secret=tokens.get("joinTokenSecret", DEFAULT_JOIN_TOKEN_SECRET),
            store=tokens.get("store"),
            eso_store_name=eso.get("storeName", "k10fleet"),
            eso_store_kind=eso.get("storeKind", "ClusterSecretStore"),
            eso_refresh_interval=eso.get("refreshInterval", "1h0m0s"),
            eso_vault=eso.get("vault"),
        ),
        gitops=GitOps(
            engine=engine,
            repo_url=gitops.get("repoURL"),
            revision=gitops.get("revision", "main"),
            path=gitops.get("path", "output").strip("/") or ".",
            namespace=gitops.get("namespace", "flux-system" if engine == "flux" else "argocd"),
            project=gitops.get("project", "default"),
            interval=gitops.get("interval", "10m"),
            sops_secret=gitops.get("sopsSecret", "sops-age"),
        ),
        source=source,
        access=tuple(AccessGrant(
            name=grant["name"], role=grant["role"],
            subjects=tuple((s["kind"], s["name"]) for s in grant["subjects"]),
            clusters=_targets(grant["clusters"], dashboard),
            dashboard_access=grant.get("dashboardAccess", "user"))
            for grant in spec.get("access", [])),
        policies=tuple(_global("Policy", p) for p in spec.get("policies", [])),
        profiles=tuple(_global("Profile", p) for p in spec.get("profiles", [])),
        distributions=tuple(DistributionPlan(
            name=d["name"], clusters=_targets(d["clusters"], dashboard),
            resources=tuple((r["kind"], r["name"]) for r in d["resources"]))
            for d in spec.get("distributions", [])),
    )
