"""`k10fleet check` (our validator alone) vs the real `kubeconform -strict -n 2`, same tree.

Usage: python benchmarks/bench_check.py [SECONDARIES=2000] [--json OUT.json]
Renders an N-secondary fleet into a temporary tree, then times both whole processes
(start-up included) on the same manifests and schemas; prints manifests/s and the ratio.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from benchmarks.make_fleet import make_fleet
from generator.check import kubeconform
from generator.check.documents import read_documents
from generator.check.run import _kubeconform_files
from generator.check.schemas import write_standalone_cache


def timed(args: list[str], repeat: int = 3) -> tuple[float, subprocess.CompletedProcess[str]]:
    best, last = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        last = subprocess.run(args, capture_output=True, text=True, check=False)
        best = min(best, time.perf_counter() - start)
    assert last is not None
    return best, last


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 2000
    out_json = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    binary = shutil.which("kubeconform") or str(Path(".tools/bin/kubeconform").resolve())
    with tempfile.TemporaryDirectory() as scratch:
        fleet = Path(scratch, "fleet.yaml")
        fleet.write_text(yaml.safe_dump(make_fleet(count), sort_keys=False))
        tree = Path(scratch, "out")
        subprocess.run(["k10fleet", "render", str(fleet), "-o", str(tree)], check=True,
                       capture_output=True)
        documents, _ = read_documents(str(tree), str(tree))
        manifests = _kubeconform_files(str(tree), documents)
        n_manifests = len(manifests)
        crds = str(Path(__file__).resolve().parents[2] / "shared" / "crd-schemas")
        ours_time, ours = timed(["k10fleet", "--quiet", "check", str(tree), "--kubeconform",
                                 "off", "--schema-location", crds])
        assert ours.returncode == 0, ours.stdout[-2000:]
        standalone = os.path.dirname(write_standalone_cache("1.32.0", kubeconform.cache_root()))
        args = kubeconform.command(binary, manifests, "1.32.0", standalone,
                                   [kubeconform.kasten_location(), crds])
        theirs_time, theirs = timed(args)
        summary = json.loads(theirs.stdout)["summary"]
        assert summary["valid"] == n_manifests, summary
    result = {
        "secondaries": count,
        "documents_checked_by_k10fleet": len(documents),
        "manifests": n_manifests,
        "k10fleet_seconds": round(ours_time, 3),
        "k10fleet_manifests_per_s": round(n_manifests / ours_time),
        "k10fleet_documents_per_s": round(len(documents) / ours_time),
        "kubeconform_seconds": round(theirs_time, 3),
        "kubeconform_manifests_per_s": round(n_manifests / theirs_time),
        "ratio_k10fleet_over_kubeconform_speed": round(theirs_time / ours_time, 2),
    }
    for key, value in result.items():
        print(f"{key:42} {value}")
    if out_json:
        Path(out_json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
