"""The example fleet in every engine x token mode, for golden trees.

Regenerate the golden trees after an intended change, then review `git diff tests/golden`:

    python -m tests.golden.variants
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "trees"
ENGINES = ("argocd", "flux", "none")
MODES = ("sops", "external-secrets", "vault-plugin", "plain")


def variant(engine: str, mode: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "fleet.yaml").read_text())
    data["spec"]["gitops"]["engine"] = engine
    data["spec"]["tokens"]["mode"] = mode
    if mode == "external-secrets":
        data["spec"]["tokens"]["externalSecrets"] = {"storeName": "vault-backend",
                                                     "storeKind": "ClusterSecretStore"}
    clusters = [data["spec"]["primary"], *data["spec"]["secondaries"]]
    if engine == "flux":
        for cluster in clusters:
            cluster["destination"] = {"kubeConfigSecret": {"name": f"{cluster['name']}-kubeconfig"}}
    elif engine == "argocd":
        clusters[0]["destination"] = {"server": "https://kubernetes.default.svc"}
    return data


def names() -> list[str]:
    return [f"{engine}-{mode}" for engine in ENGINES for mode in MODES]


def regenerate() -> None:
    from click.testing import CliRunner

    from generator.cli import main

    shutil.rmtree(GOLDEN, ignore_errors=True)
    GOLDEN.mkdir(parents=True)
    for name in names():
        engine, mode = name.split("-", 1)
        fleet = GOLDEN / f"{name}.fleet.yaml"
        fleet.write_text(yaml.safe_dump(variant(engine, mode), sort_keys=False))
        result = CliRunner().invoke(main, ["render", str(fleet), "-o", str(GOLDEN / name)])
        if result.exit_code != 0:
            sys.exit(result.output)
        fleet.unlink()
    print(f"regenerated {len(names())} golden trees in {GOLDEN}")


if __name__ == "__main__":
    regenerate()
