"""Time `k10fleet inject` (sops mode, real OpenBao) for the example fleet and N secondaries.

Usage: python benchmarks/bench_inject.py [N=100 ...]
Starts an OpenBao dev server on loopback, imports a token, renders, then times a cold
inject (encryption), a warm inject (nothing changed) and an inject after a token change.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyrage
import yaml

from benchmarks.make_fleet import make_fleet
from tests.conftest import OpenBao

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(["k10fleet", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"k10fleet {args[0]} failed: {done.stdout}{done.stderr}")
    return time.perf_counter() - start


def bench(label: str, fleet_data: dict[str, object], scratch: Path, env: dict[str, str]) -> None:
    work = scratch / label
    work.mkdir()
    fleet_data["spec"]["tokens"] = {"mode": "sops",  # type: ignore[index]
                                    "store": f"vault://secret/bench/{label}"}
    fleet = work / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(fleet_data, sort_keys=False))
    identity = pyrage.x25519.Identity.generate()
    (work / "key.txt").write_text(f"{identity}\n")
    (work / ".sops.yaml").write_text(f"creation_rules:\n  - age: {identity.to_public()}\n")
    env = {**env, "SOPS_AGE_KEY_FILE": str(work / "key.txt")}
    secret = {"kind": "Secret", "type": "dist.kio.kasten.io/join-token",
              "metadata": {"name": "join-token-secret"},
              "data": {"token": base64.b64encode(os.urandom(48).hex().encode()).decode()}}
    (work / "token.json").write_text(json.dumps(secret))
    run("token", "import", str(fleet), "--from", str(work / "token.json"), env=env)
    run("render", str(fleet), "-o", str(work / "output"), env=env)
    cold = run("inject", str(fleet), "-o", str(work / "output"), env=env)
    warm = run("inject", str(fleet), "-o", str(work / "output"), env=env)
    secret["data"]["token"] = base64.b64encode(os.urandom(48).hex().encode()).decode()  # type: ignore[index]
    (work / "token.json").write_text(json.dumps(secret))
    run("token", "import", str(fleet), "--from", str(work / "token.json"), env=env)
    rotated = run("inject", str(fleet), "-o", str(work / "output"), env=env)
    print(f"{label:>18}: inject cold {cold:.2f} s, unchanged {warm:.2f} s, "
          f"after token change {rotated:.2f} s")


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100]
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        server = OpenBao(scratch)
        try:
            env = {**os.environ, **server.env()}
            bench("example", yaml.safe_load((REPO / "fleet.yaml").read_text()), scratch, env)
            for size in sizes:
                bench(f"{size}-secondaries", make_fleet(size), scratch, env)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
