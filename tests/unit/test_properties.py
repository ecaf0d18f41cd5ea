"""Property-based tests (hypothesis): valid fleets render cleanly, broken ones fail cleanly.

Profiles: the default ("ci") runs 800 valid fleets, 1,500 mutations, 500 corruptions and 500
loader comparisons (3,300 examples); HYPOTHESIS_PROFILE=long runs 8,000 + 12,000 + 4,000 + 4,000
(28,000 examples).
"""

from __future__ import annotations

import copy
import os
import re
import string
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.check.run import CheckOptions, run_check
from tests.conftest import SHARED, counting_renders, run_cli, tree_bytes

settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("long", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
SCALE = 10 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 1
VALID_EXAMPLES = 800 if SCALE == 1 else 8_000
MUTATION_EXAMPLES = 1500 if SCALE == 1 else 12_000
CORRUPTION_EXAMPLES = 500 if SCALE == 1 else 4_000

LOCATED = re.compile(r"^.+:\d+:\d+: error: ", re.MULTILINE)
VERSIONS = ["6.5.0", "6.5.7", "6.5.8", "6.5.13", "6.5.14", "7.0.12", "7.5.2", "9.0.7"]
HOSTILE = ["a: b", "#x", "'q'", '"dq"', "multi\nline", "{{ x }}", "*s", "&a", "!b", "yes", "no",
           "on", "1e3", "0x1F", "10:30", "2024-01-01", "", " lead", "é😀", "\t", "~", "null"]

label_chars = string.ascii_lowercase + string.digits
dns_label = st.builds(
    lambda first, middle, last: (first + middle + last)[:63],
    st.sampled_from(label_chars), st.text(label_chars + "-", max_size=61),
    st.sampled_from(label_chars)).filter(lambda s: not s.endswith("-"))
cluster_name = st.one_of(dns_label, st.builds(lambda a, b: f"{a[:30]}.{b[:30]}",
                                               dns_label, dns_label))
text = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30))
keys = text.filter(lambda k: k and k not in ("multicluster", "fips") and len(k) <= 256)
scalars = st.one_of(text, st.integers(-2**40, 2**40), st.booleans(), st.none(),
                    st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=12)
values_map = st.dictionaries(keys, values, max_size=4)


ROLES = ["k10-multi-cluster-admin", "k10-multi-cluster-basic", "k10-multi-cluster-config-view"]
SELECTORS = ["", "env=prod", "env in (prod,lab),!legacy", "region", "env notin (x)", "n>3"]
cluster_labels = st.fixed_dictionaries(
    {"env": st.sampled_from(["prod", "lab", ""])},
    optional={"region": st.sampled_from(["eu", "us-1", "a.b_c"]),
              "example.com/team": st.sampled_from(["x", "Y-1"])})


def url(host: str, insecure: bool) -> str:
    return f"{'http' if insecure else 'https'}://{host}.example.com/k10"


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(cluster_name, min_size=1, max_size=6, unique=True))
    aliases = iter(draw(st.lists(dns_label.map(lambda s: "x" + s[:60]), min_size=len(names),
                                 max_size=len(names), unique=True)))
    engine = draw(st.sampled_from(["argocd", "flux", "none"]))
    mode = draw(st.sampled_from(["sops", "external-secrets", "vault-plugin", "plain"]))
    insecure = draw(st.booleans())
    primary: dict[str, Any] = {"name": names[0], "ingressURL": url("primary", insecure),
                               "values": draw(values_map)}
    if insecure:
        primary["insecureIngress"] = True
    if draw(st.booleans()):
        primary["kasten"] = {"version": draw(st.sampled_from(VERSIONS))}
    secondaries = []
    for name in names[1:]:
        secondary: dict[str, Any] = {"name": name}
        if draw(st.booleans()):
            secondary["clusterName"] = next(aliases)
        if draw(st.booleans()):
            secondary["ingressURL"] = url("edge", False)
        if draw(st.booleans()):
            secondary["kasten"] = {"version": draw(st.sampled_from(VERSIONS)),
                                   "namespace": draw(st.sampled_from(["kasten-io", "k10"]))}
        if draw(st.booleans()):
            secondary["values"] = draw(values_map)
        if engine == "flux":
            secondary["destination"] = {"kubeConfigSecret": {"name": "kc"}}
        if draw(st.booleans()):
            secondary["labels"] = draw(cluster_labels)
        secondaries.append(secondary)
    if draw(st.booleans()):
        primary["labels"] = draw(cluster_labels)
    central: dict[str, Any] = {}
    if draw(st.booleans()):  # access grants, policies, profiles and distributions
        target = {"name": draw(st.sampled_from(names))}
        central["access"] = [{
            "name": "grant-" + draw(dns_label)[:40], "role": draw(st.sampled_from(ROLES)),
            "subjects": [{"kind": draw(st.sampled_from(["User", "Group"])),
                          "name": draw(st.text(min_size=1, max_size=20))}],
            "clusters": [target, {"selector": draw(st.sampled_from(SELECTORS))}]}]
        central["policies"] = [{"metadata": {"name": "p-" + draw(dns_label)[:40]}, "spec": {
            "frequency": "@daily", "retention": {"daily": draw(st.integers(0, 99))},
            "actions": [{"action": "backup", "backupParameters": draw(values_map)}]}}]
        central["profiles"] = [{"metadata": {"name": "s3"}, "spec": {
            "type": "Location", "locationSpec": {
                "type": "ObjectStore", "credential": {"secretType": "AwsAccessKey"},
                "objectStore": {"name": draw(text.filter(bool)), "objectStoreType": "S3"}}},
            "credentials": {"store": "vault://secret/k10fleet/s3"}}]
        central["distributions"] = [{
            "name": "d-" + draw(dns_label)[:40], "clusters": [target],
            "resources": [{"kind": "Policy", "name": central["policies"][0]["metadata"]["name"]},
                          {"kind": "Profile", "name": "s3"}]}]
    return {
        "apiVersion": "k10fleet/v1alpha1", "kind": "Fleet",
        "metadata": {"name": draw(dns_label)},
        "spec": {
            "kasten": {"version": draw(st.sampled_from(VERSIONS)), "values": draw(values_map)},
            "primary": primary, "secondaries": secondaries,
            "tokens": {"mode": mode, "store": "vault://secret/k10fleet/prop"},
            "gitops": {"engine": engine, "repoURL": "https://git.example.com/fleet.git"},
            **central,
        },
    }


def write(directory: Path, data: dict[str, Any] | str) -> Path:
    path = directory / "fleet.yaml"
    path.write_text(data if isinstance(data, str) else
                    yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return path


@settings(max_examples=VALID_EXAMPLES)
@given(fleets())
def test_valid_fleets_render_check_and_settle(fleet: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        path = write(root, fleet)
        out = root / "out"
        rendered = run_cli("render", path, "-o", out)
        assert rendered.exit_code == 0, rendered.output
        for file in out.rglob("*.yaml"):
            list(yaml.safe_load_all(file.read_text()))
        report = run_check(CheckOptions(root=str(out), kubeconform="off",
                                        schema_locations=[str(SHARED / "crd-schemas")]))
        assert [f.as_text() for f in report.findings if f.level == "error"] == []
        before = tree_bytes(out)
        with counting_renders() as renders:  # a real second render, nothing to write
            again = run_cli("render", path, "-o", out)
        assert renders == [fleet["metadata"]["name"]], renders
        assert f"0 written, {len(before) - 1} unchanged, 0 removed" in again.output
        assert tree_bytes(out) == before


MUTATIONS = [
    lambda d, v: d.pop("apiVersion"),
    lambda d, v: d["spec"].pop("primary"),
    lambda d, v: d["spec"]["kasten"].update(version=v),
    lambda d, v: d["spec"]["kasten"].update(version="6.4.9"),
    lambda d, v: d["spec"]["primary"].update(name=str(v) + "_X"),
    lambda d, v: d["spec"]["primary"].update(ingressURL="ftp://" + str(v)),
    lambda d, v: d["spec"]["primary"].update(ingressURL="https://host-only"),
    lambda d, v: d["spec"]["primary"].update(ingressURL="http://insecure/k10",
                                             insecureIngress=False),
    lambda d, v: d["spec"]["primary"].update(unknownField=v),
    lambda d, v: d["spec"].update(secondarys=[]),
    lambda d, v: d["spec"]["kasten"].update(values={"multicluster": {"enabled": v}}),
    lambda d, v: d["spec"]["secondaries"].append({"name": d["spec"]["primary"]["name"]}),
    lambda d, v: d["spec"]["tokens"].update(mode=str(v) + "x"),
    lambda d, v: d["spec"]["tokens"].update(store="s3://bucket"),
    lambda d, v: d["spec"]["gitops"].pop("repoURL") if d["spec"]["gitops"]["engine"] != "none"
    else d.update(kind="Fleets"),
    lambda d, v: d["spec"].update(primary=[v]),
    lambda d, v: d["metadata"].update(name=""),
    lambda d, v: d["spec"].update(access=v),
    lambda d, v: d["spec"].update(distributions=[{"name": "d", "clusters": [{"selector": "a in"}],
                                                   "resources": [{"kind": "Policy", "name": "p"}]}],
                                  policies=[{"metadata": {"name": "p"}, "spec": v}]),
    lambda d, v: d["spec"]["primary"].update(labels={"kasten.io/x": "y", "ok": str(v)}),
    lambda d, v: d["spec"].update(access=[{"name": "g", "role": "k10-multi-cluster-admin",
                                           "subjects": [{"kind": "Group", "name": "x"}],
                                           "clusters": [{"name": "no-such-" + str(v)}]}]),
    lambda d, v: d["spec"].update(profiles=[{"metadata": {"name": "s"}, "spec": {
        "type": "Location", "locationSpec": {"type": "ObjectStore", "credential": {
            "secretType": v}, "objectStore": {"name": "b", "objectStoreType": "S3"}}},
        "credentials": {"store": "vault://secret/x"}}]),
]


@settings(max_examples=MUTATION_EXAMPLES)
@given(fleets(), st.sampled_from(range(len(MUTATIONS))), scalars)
def test_mutated_fleets_fail_with_a_location(fleet: dict[str, Any], which: int,
                                             value: Any) -> None:
    broken = copy.deepcopy(fleet)
    MUTATIONS[which](broken, value)
    with tempfile.TemporaryDirectory() as scratch:
        path = write(Path(scratch), broken)
        result = run_cli("validate", path)
        assert result.exit_code == 1, (which, result.output)
        assert LOCATED.search(result.output), result.output
        assert "Traceback" not in result.output and "internal error" not in result.output


@settings(max_examples=CORRUPTION_EXAMPLES)
@given(fleets(), st.data())
def test_corrupted_bytes_never_crash(fleet: dict[str, Any], data: st.DataObject) -> None:
    raw = yaml.safe_dump(fleet, allow_unicode=True, sort_keys=False).encode()
    cut = data.draw(st.integers(0, len(raw)))
    junk = data.draw(st.binary(max_size=8))
    corrupted = raw[:cut] + junk + raw[cut + data.draw(st.integers(0, 5)):]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "fleet.yaml"
        path.write_bytes(corrupted)
        out = Path(scratch) / "out"
        result = run_cli("render", path, "-o", out)
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output and "internal error" not in result.output
        if result.exit_code == 1:
            assert LOCATED.search(result.output), result.output
            assert not out.exists()


@settings(max_examples=MUTATION_EXAMPLES // 3)
@given(fleets(), st.lists(st.sampled_from(
    ["1e3", "1.0e3", "1e+3", "1.5e+3", "0777", "0o17", "0x1F", "1_000", "10:30", "190:20:30",
     "2024-01-01", "+1", ".5", "-2", "3.25", "7.5.2", "00", "-.inf", "12e", "9" * 20]),
    min_size=1, max_size=6))
def test_fast_fleet_loading_means_what_the_marked_loader_means(fleet: dict[str, Any],
                                                               tokens: list[str]) -> None:
    """Whichever path loads it (ryaml when provably safe, else events), the data is the same."""
    from generator.fleet.loader import LoadLimits, _load_marked, load_yaml_bytes

    raw = yaml.safe_dump(fleet, allow_unicode=True, sort_keys=False)
    extra = "\n".join(f"  k{i}: {token}" for i, token in enumerate(tokens))
    text = raw + "extra:\n" + extra + "\n"
    fast = load_yaml_bytes(text.encode(), "f.yaml")
    marked = _load_marked(text.encode(), "f.yaml", LoadLimits())
    assert repr(fast.data) == repr(marked.data)
