from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from generator.fleet.validate import build_fleet
from generator.merge import deep_merge
from generator.render.layout import SCRIPT_PATH
from generator.render.tree import render_fleet
from tests.conftest import K10_CHARTS, SHARED, example_fleet


def render(data: dict[str, Any]) -> dict[str, str]:
    tree = render_fleet(build_fleet(data, "fleet.yaml"))
    return {p: f.content.decode() for p, f in tree.files.items()}


def docs(text: str) -> list[Any]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def with_version(version: str) -> dict[str, Any]:
    data = example_fleet()
    data["spec"]["kasten"]["version"] = version
    data["spec"]["kasten"]["chart"]["version"] = version
    for secondary in data["spec"]["secondaries"]:
        secondary.get("kasten", {}).pop("version", None)
    return data


def test_values_precedence_fleet_then_cluster_then_generated() -> None:
    data = example_fleet()
    data["spec"]["kasten"]["values"] = {"a": {"x": 1, "y": 1}, "list": [1, 2]}
    data["spec"]["primary"]["values"] = {"a": {"y": 2}, "list": [3]}
    values = yaml.safe_load(render(data)["clusters/primary-1/k10-values.yaml"])
    assert values["a"] == {"x": 1, "y": 2}
    assert values["list"] == [3]
    assert values["multicluster"] == {"enabled": True, "primary": {
        "create": True, "name": "primary-1", "ingressURL": "https://primary.example.com/k10"}}


def test_secondaries_never_promote() -> None:
    files = render(example_fleet())
    for path, text in files.items():
        if path.endswith("k10-values.yaml") and "primary-1" not in path:
            assert yaml.safe_load(text)["multicluster"] == {"enabled": True}


def test_join_token_secret_has_type_and_no_data() -> None:
    (secret,) = docs(render(example_fleet())["clusters/primary-1/join-token-secret.yaml"])
    assert secret["type"] == "dist.kio.kasten.io/join-token"
    assert secret["metadata"]["name"] == "join-token-secret"
    assert secret["metadata"]["namespace"] == "kasten-io-mc"
    assert "data" not in secret and "stringData" not in secret


def test_old_primary_gets_exactly_one_bootstrap_and_no_helm_promotion() -> None:
    files = render(with_version("6.5.5"))
    values = yaml.safe_load(files["clusters/primary-1/k10-values.yaml"])
    assert values["multicluster"] == {"enabled": True}
    bootstraps = [d for path, text in files.items() if path.endswith(".yaml")
                  for d in docs(text) if d.get("kind") == "Bootstrap"]
    assert len(bootstraps) == 1
    (bootstrap,) = bootstraps
    assert bootstrap["metadata"]["namespace"] == "kasten-io-mc"
    assert bootstrap["spec"]["clusters"] == {"primary-1": {
        "name": "primary-1", "primary": True,
        "k10": {"namespace": "kasten-io", "releaseName": "k10",
                "ingress": {"url": "https://primary.example.com/k10"}}}}
    kustomization = yaml.safe_load(files["clusters/primary-1/kustomization.yaml"])
    assert "bootstrap.yaml" in kustomization["resources"]


def test_helm_primary_has_no_bootstrap() -> None:
    assert not any("Bootstrap" in t for t in render(with_version("6.5.8")).values())


@pytest.mark.parametrize(("version", "expected"), [
    ("7.5.2", {"cluster-name": "edge-one", "cluster-ingress": "https://edge-1.example.com/k10",
               "primary-ingress": "https://mc.example.com/k10"}),
    ("6.5.14", {"cluster-name": "edge-one", "cluster-ingress": "https://edge-1.example.com/k10",
                "primary-ingress": "https://mc.example.com/k10"}),
    ("6.5.13", {"cluster-name": "edge-one", "primary-endpoint": "https://mc.example.com/k10"}),
    ("6.5.8", {"cluster-name": "edge-one", "primary-endpoint": "https://mc.example.com/k10"}),
])
def test_join_config_follows_the_version(version: str, expected: dict[str, str]) -> None:
    data = with_version(version)
    data["spec"]["secondaries"][0]["primaryIngressURL"] = "https://mc.example.com/k10"
    (config,) = docs(render(data)["clusters/edge-1/mc-join-config.yaml"])
    assert config["data"] == expected
    assert config["metadata"] == {**config["metadata"], "name": "mc-join-config",
                                  "namespace": "kasten-io"}


def test_http_primary_lets_secondaries_join_insecurely() -> None:
    data = example_fleet()
    data["spec"]["primary"]["ingressURL"] = "http://primary.example.com/k10"
    data["spec"]["primary"]["insecureIngress"] = True
    text = render(data)["clusters/edge-2/mc-join-config.yaml"]
    assert 'allow-insecure-primary-ingress: "true"' in text
    assert docs(text)[0]["data"]["allow-insecure-primary-ingress"] == "true"
    https = render(example_fleet())["clusters/edge-2/mc-join-config.yaml"]
    assert "allow-insecure" not in https


def test_per_cluster_version_namespace_and_chart() -> None:
    data = example_fleet()
    data["spec"]["secondaries"][1]["kasten"] = {"version": "6.5.12", "namespace": "k10-ns"}
    files = render(data)
    (config,) = docs(files["clusters/edge-2/mc-join-config.yaml"])
    assert config["metadata"]["namespace"] == "k10-ns"
    assert "(chart k10 6.5.12)" in files["clusters/edge-2/k10-values.yaml"]


def test_k10multicluster_script_is_exact() -> None:
    data = example_fleet()
    lab = data["spec"]["secondaries"][2]
    lab["ingressURL"] = "http://lab 1.example.com/k10"  # quoting is exercised, not validated here
    tree = render_fleet(build_fleet(data, "fleet.yaml"))
    script = tree.files[SCRIPT_PATH]
    assert script.mode == 0o755
    text = script.content.decode()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail\n" in text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("k10multicluster ")]
    words = shlex.split(line)  # the URL with a space survives the shell's quoting
    assert words[:2] == ["k10multicluster", "bootstrap"]
    flags = dict(zip(words[2::2], words[3::2], strict=False))
    assert set(flags) | {words[-1]} <= documented_bootstrap_flags()
    primary = data["spec"]["primary"]
    assert flags["--primary-context"] == primary.get("kubeContext", primary["name"])
    assert flags["--primary-name"] == primary["name"]
    assert flags["--secondary-context"] == lab.get("kubeContext", lab["name"])
    assert flags["--secondary-name"] == lab["name"]
    assert flags["--secondary-cluster-ingress"] == "http://lab 1.example.com/k10"
    assert flags["--secondary-k10-namespace"] == flags["--primary-k10-namespace"] == "kasten-io"
    assert words[-1] == "--secondary-cluster-ingress-tls-insecure"  # an http URL
    assert "mc-join-config" not in " ".join(p for p in tree.files if "lab-1" in p)


def documented_bootstrap_flags() -> set[str]:
    """The flags of ``k10multicluster bootstrap``, from the team's Kasten notes (an
    independent source: what the tool accepts, not what the code writes)."""
    notes = (SHARED / "spec/kasten-multicluster.md").read_text(encoding="utf-8")
    (line,) = [ln for ln in notes.splitlines() if "`bootstrap --primary-context" in ln]
    flags = set(re.findall(r"--[a-z][a-z0-9-]+", line))
    for pattern in re.findall(r"--\*(-[a-z0-9-]+)", line):
        flags |= {f"--primary{pattern}", f"--secondary{pattern}"}
    assert "--secondary-cluster-ingress-tls-insecure" in flags
    return flags


def test_no_script_without_k10multicluster_joins() -> None:
    data = example_fleet()
    data["spec"]["secondaries"][2].pop("joinWith")
    assert SCRIPT_PATH not in render(data)


@pytest.mark.parametrize(("engine", "namespace_ann", "secret_ann"), [
    ("argocd", {"argocd.argoproj.io/sync-options": "Prune=false,Delete=false",
                "argocd.argoproj.io/sync-wave": "1"}, {"argocd.argoproj.io/sync-wave": "1"}),
    ("flux", {"kustomize.toolkit.fluxcd.io/prune": "disabled"},
     {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}),
    ("none", None, None),
])
def test_engine_protections(engine: str, namespace_ann: Any, secret_ann: Any) -> None:
    data = example_fleet()
    data["spec"]["gitops"]["engine"] = engine
    files = render(data)
    (ns,) = docs(files["clusters/primary-1/kasten-io-mc-namespace.yaml"])
    (secret,) = docs(files["clusters/primary-1/join-token-secret.yaml"])
    assert ns["metadata"].get("annotations") == namespace_ann
    assert secret["metadata"].get("annotations") == secret_ann


def test_same_fleet_same_bytes() -> None:
    assert render(example_fleet()) == render(copy.deepcopy(example_fleet()))


# The real K10 chart: primary values merged over the chart's values.yaml must pass its schema.
CHART_FOR_K10 = {"6.5.801": "6.5.8", "7.5.1001": "7.5.10", "9.0.701": "9.0.7"}


@pytest.mark.parametrize("chart", sorted(CHART_FOR_K10))
def test_values_validate_against_real_k10_chart_schema(chart: str) -> None:
    chart_dir = K10_CHARTS / chart
    schema = json.loads((chart_dir / "values.schema.json").read_text())
    defaults = yaml.safe_load((chart_dir / "values.yaml").read_text())
    files = render(with_version(CHART_FOR_K10[chart]))
    validator = jsonschema.Draft201909Validator(schema)
    checked = 0
    for path, text in files.items():
        if path.endswith("k10-values.yaml"):
            merged = deep_merge(defaults, yaml.safe_load(text))
            errors = [e.message for e in validator.iter_errors(merged)]
            assert errors == [], (path, errors)
            checked += 1
    assert checked == 4
    primary = deep_merge(defaults, yaml.safe_load(files["clusters/primary-1/k10-values.yaml"]))
    assert primary["multicluster"]["primary"]["create"] is True


def test_chart_schema_would_catch_a_wrong_type() -> None:
    """Guards the test above: the chart schema really rejects a bad multicluster value."""
    schema = json.loads((K10_CHARTS / "7.5.1001/values.schema.json").read_text())
    bad = {"multicluster": {"enabled": True, "primary": {"create": "yes"}}}
    assert list(jsonschema.Draft201909Validator(schema).iter_errors(bad))


def test_every_manifest_parses_and_names_its_kind(tmp_path: Path) -> None:
    for path, text in render(example_fleet()).items():
        if path.endswith(".yaml") and not path.endswith("k10-values.yaml"):
            for doc in docs(text):
                assert doc["kind"] and doc["apiVersion"], path


def test_hostile_values_round_trip_through_k10_values() -> None:
    from tests.unit.test_yamlout import HOSTILE

    data = example_fleet()
    hostile = {f"k{i}": text for i, text in enumerate(HOSTILE)}
    data["spec"]["kasten"]["values"] = {"strings": hostile, "keys": {t: t for t in HOSTILE if t},
                                        "list": list(HOSTILE)}
    data["spec"]["secondaries"][0]["clusterName"] = "edge-one"
    values = yaml.safe_load(render(data)["clusters/edge-2/k10-values.yaml"])
    assert values["strings"] == hostile
    assert values["keys"] == {t: t for t in HOSTILE if t}
    assert values["list"] == list(HOSTILE)


@pytest.mark.parametrize("secret_name", ["k10-values", "kustomization", "kasten-io-mc-namespace"])
def test_join_token_secret_name_never_collides_with_generated_files(secret_name: str) -> None:
    data = example_fleet()
    data["spec"]["tokens"]["joinTokenSecret"] = secret_name
    files = render(data)
    (secret,) = docs(files["clusters/primary-1/join-token-secret.yaml"])
    assert secret["metadata"]["name"] == secret_name
    assert yaml.safe_load(files["clusters/primary-1/k10-values.yaml"])["multicluster"]
    kustomization = yaml.safe_load(files["clusters/primary-1/kustomization.yaml"])
    resources = kustomization["resources"]
    assert len(set(resources)) == len(resources)
    assert resources[:2] == ["kasten-io-mc-namespace.yaml", "join-token-secret.yaml"]
