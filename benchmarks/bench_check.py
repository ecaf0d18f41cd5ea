"""``check`` and the PR gate, side by side with their peers in one run, whole processes.

Usage: python benchmarks/bench_check.py [--sizes 2000,10000] [--repeat 5] [--json OUT.json]

Cases (each timed ``--repeat`` times, the peers alternating run by run, min/median/max):
- check of an N-secondary tree vs ``kubeconform -strict -n 2`` on the same manifests with the
  same schemas (check with ``--kubeconform off``: our validator alone);
- one file holding a 100,000-object List, check vs kubeconform;
- the PR gate on a fresh clone (no unchanged-inputs cache): ``validate`` + ``render --check``
  + ``check`` as three processes vs ``k10fleet ci`` (one process);
- check of the repository's example tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from benchmarks.make_fleet import make_fleet  # noqa: E402
from generator.check import DEFAULT_KUBERNETES_VERSION, kubeconform  # noqa: E402
from generator.check.documents import tree_entries, tree_files  # noqa: E402
from generator.check.run import _kubeconform_files  # noqa: E402
from generator.check.schemas import SchemaStore, write_standalone_cache  # noqa: E402

CRDS = str(Path(os.environ.get("K10FLEET_SHARED", REPO.parent / "shared")) / "crd-schemas")
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
K10FLEET = [sys.executable, "-m", "generator", "--quiet"]
# bytecode, as a regular install has it (PYTHONDONTWRITEBYTECODE would have every run compile)
subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "generator")], check=True,
               capture_output=True)


def run(args: list[str], ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=ENV, check=False)
    elapsed = time.perf_counter() - start
    assert done.returncode in ok, (args[:6], done.returncode, done.stdout[-1500:],
                                   done.stderr[-1500:])
    return elapsed


def paired(cases: dict[str, Callable[[], float]], repeat: int) -> dict[str, dict[str, float]]:
    """Each case ``repeat`` times, alternating: the peers share the machine's moods."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, case in cases.items():
            times[name].append(case())
    return {name: {"min": round(min(t), 3), "median": round(statistics.median(t), 3),
                   "max": round(max(t), 3)} for name, t in times.items()}


def _locations() -> list[str]:
    """The schema folders check hands kubeconform."""
    store = SchemaStore(DEFAULT_KUBERNETES_VERSION, [CRDS])
    return store.kubeconform_locations(kubeconform.cache_root())


def kubeconform_args(manifests: list[str]) -> list[str]:
    binary = kubeconform.locate("required")
    assert binary
    standalone = os.path.dirname(write_standalone_cache(DEFAULT_KUBERNETES_VERSION,
                                                        kubeconform.cache_root()))
    return kubeconform.command(binary, manifests, DEFAULT_KUBERNETES_VERSION, standalone,
                               _locations())


def check_args(tree: Path) -> list[str]:
    return [*K10FLEET, "check", str(tree), "--kubeconform", "off", "--schema-location", CRDS]


def tree_case(scratch: Path, count: int, repeat: int) -> dict[str, object]:
    fleet = scratch / f"fleet-{count}.yaml"
    fleet.write_text(yaml.safe_dump(make_fleet(count), sort_keys=False))
    tree = scratch / f"out-{count}"
    run([*K10FLEET, "render", str(fleet), "-o", str(tree)])
    cache = scratch / f".out-{count}.k10fleet-cache.json"
    listing = list(tree_entries(str(tree)))
    manifests = _kubeconform_files(str(tree), [rel for rel, _ in listing],
                                   {rel for rel, regular in listing if not regular})

    def fresh_clone() -> None:
        cache.unlink(missing_ok=True)

    def separate() -> float:
        fresh_clone()
        return (run([*K10FLEET, "validate", str(fleet)])
                + run([*K10FLEET, "render", str(fleet), "-o", str(tree), "--check"])
                + run(check_args(tree)))

    def together() -> float:
        fresh_clone()
        return run([*K10FLEET, "ci", str(fleet), "-o", str(tree), "--kubeconform", "off",
                    "--schema-location", CRDS])

    check = paired({"k10fleet check": lambda: run(check_args(tree)),
                    "kubeconform -strict -n 2": lambda: run(kubeconform_args(manifests))},
                   repeat)
    gate = paired({"validate + render --check + check": separate, "k10fleet ci": together},
                  repeat)
    files = sum(1 for _ in tree_files(str(tree)))
    return {"secondaries": count, "files": files, "kubeconform_manifests": len(manifests),
            "check": check, "gate": gate,
            "ratio_check_vs_kubeconform": round(check["kubeconform -strict -n 2"]["median"]
                                                / check["k10fleet check"]["median"], 2),
            "ci_speedup_vs_three_commands": round(
                gate["validate + render --check + check"]["median"]
                / gate["k10fleet ci"]["median"], 2)}


def list_case(scratch: Path, repeat: int) -> dict[str, object]:
    tree = scratch / "list"
    tree.mkdir()
    items = [{"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": f"cm-{i}", "namespace": "default"},
              "data": {"key": f"value-{i}"}} for i in range(100_000)]
    (tree / "list.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                                "items": items}))
    (tree / "list.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                                    "items": items}, sort_keys=False))
    results: dict[str, object] = {}
    for name in ("list.yaml", "list.json"):
        only = scratch / f"only-{name}"
        only.mkdir()
        os.link(tree / name, only / name)
        timing = paired({"k10fleet check": lambda only=only: run(check_args(only)),
                         "kubeconform -strict -n 2":
                             lambda only=only, name=name: run(kubeconform_args(
                                 [str(only / name)]))}, repeat)
        results[name] = {"objects": 100_000, "bytes": (tree / name).stat().st_size,
                         **timing, "ratio": round(
                             timing["kubeconform -strict -n 2"]["median"]
                             / timing["k10fleet check"]["median"], 2)}
    return results


def example_case(scratch: Path, repeat: int) -> dict[str, object]:
    tree = scratch / "example"
    run([*K10FLEET, "render", str(REPO / "fleet.yaml"), "-o", str(tree)])
    return {"files": sum(1 for _ in tree_files(str(tree))),
            **paired({"k10fleet check": lambda: run(check_args(tree))}, repeat)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="2000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="k10fleet-bench-check-") as name:
        scratch = Path(name)
        result: dict[str, object] = {
            "cores": len(os.sched_getaffinity(0)), "load_average_at_start": os.getloadavg(),
            "example_tree": example_case(scratch, options.repeat * 2),
            "trees": [tree_case(scratch, int(n), options.repeat)
                      for n in options.sizes.split(",")],
            "list_100k": list_case(scratch, options.repeat),
            "load_average_at_end": os.getloadavg(),
        }
    text = json.dumps(result, indent=2)
    print(text)
    if options.json:
        Path(options.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
