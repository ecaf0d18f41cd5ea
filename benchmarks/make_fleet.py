"""Write an N-secondary fleet with a hostile but valid mix of optional fields and values.

Usage: python benchmarks/make_fleet.py N OUT.yaml
"""

from __future__ import annotations

import random
import sys

import yaml


def make_fleet(secondaries: int, seed: int = 7) -> dict[str, object]:
    rng = random.Random(seed)
    hostile = ["a: b", "#x", "yes", "{{ x }}", "*star", "multi\nline", "1e3", "é😀", "on"]
    clusters = []
    for i in range(secondaries):
        entry: dict[str, object] = {"name": f"edge-{i:05d}"}
        if rng.random() < 0.5:
            entry["clusterName"] = f"site-{i:05d}.eu"
        if rng.random() < 0.5:
            entry["ingressURL"] = f"https://edge-{i:05d}.example.com/k10"
        if rng.random() < 0.2:
            entry["kasten"] = {"version": rng.choice(["7.0.12", "7.5.2", "8.0.1"])}
        entry["labels"] = {"env": rng.choice(["prod", "staging", "lab"]),
                           "region": rng.choice(["eu-west", "us-east", "ap-south"])}
        if rng.random() < 0.7:
            entry["values"] = {"global": {"persistence": {"storageClass": rng.choice(hostile)}},
                               "labels": {f"k{j}": rng.choice(hostile) for j in range(3)}}
        clusters.append(entry)
    return {
        "apiVersion": "k10fleet/v1alpha1", "kind": "Fleet", "metadata": {"name": "bench"},
        "spec": {
            "kasten": {"version": "7.5.2", "values": {"auth": {"tokenAuth": {"enabled": True}}}},
            "primary": {"name": "primary", "ingressURL": "https://primary.example.com/k10"},
            "secondaries": clusters,
            "tokens": {"mode": "sops", "store": "vault://secret/k10fleet/bench"},
            "gitops": {"engine": "argocd", "repoURL": "https://git.example.com/fleet.git"},
            "access": [
                {"name": "admins", "role": "k10-multi-cluster-admin",
                 "subjects": [{"kind": "Group", "name": "k10-admins"}],
                 "clusters": [{"selector": ""}]},
                {"name": "lab-viewers", "role": "k10-multi-cluster-config-view",
                 "subjects": [{"kind": "Group", "name": "lab"}],
                 "clusters": [{"selector": "env=lab,region in (eu-west,us-east)"}]},
            ],
            "policies": [{"metadata": {"name": "prod-daily"}, "spec": {
                "frequency": "@daily", "retention": {"daily": 7},
                "actions": [{"action": "backup"}]}}],
            "distributions": [{"name": "prod", "clusters": [{"selector": "env=prod"}],
                               "resources": [{"kind": "Policy", "name": "prod-daily"}]}],
        },
    }


if __name__ == "__main__":
    count, target = int(sys.argv[1]), sys.argv[2]
    with open(target, "w", encoding="utf-8") as handle:
        yaml.safe_dump(make_fleet(count), handle, sort_keys=False, allow_unicode=True)
