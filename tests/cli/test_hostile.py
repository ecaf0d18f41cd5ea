"""Hostile input, crashes and secrets: bombs, kill -9 at many points, races, planted tokens."""

from __future__ import annotations

import base64
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.make_fleet import make_fleet
from tests.conftest import REPO, OpenBao, example_fleet, tree_bytes

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def k10fleet(*args: str, env: dict[str, str] | None = None, **kwargs: Any
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator", *args], capture_output=True,
                          text=True, env=env or ENV, check=False, timeout=120, **kwargs)


def limited_memory() -> None:
    limit = 2 * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize(("name", "content", "message"), [
    ("50 MB file", None, "more than the limit of 33554432"),
    ("100,000-element list", "secondaries", "list has more than 50000 entries"),
    ("deep nesting", "deep", "nesting"),  # ours (64 levels) or libyaml's own depth limit
    ("alias bomb", "bomb", "is this an alias bomb?"),
])
def test_resource_bombs_fail_fast_and_small(tmp_path: Path, name: str, content: str | None,
                                            message: str) -> None:
    path = tmp_path / "fleet.yaml"
    head = "apiVersion: k10fleet/v1alpha1\nkind: Fleet\nmetadata: {name: bomb}\n"
    if content is None:
        with open(path, "w") as handle:
            handle.write(head + "spec: {}\n")
            handle.write(("# padding " + "x" * 1013 + "\n") * 50 * 1024)
    elif content == "secondaries":
        path.write_text(head + "spec:\n  secondaries:\n" + "".join(
            f"  - name: e{i}\n" for i in range(100_000)))
    elif content == "deep":
        path.write_text(head + "spec: " + "[" * 5000 + "]" * 5000 + "\n")
    else:
        lines = [head + 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for index, label in enumerate("bcdefghi"):
            lines.append(f"{label}: &{label} [" + ",".join(["*" + "abcdefghi"[index]] * 9) + "]")
        path.write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "generator", "render", str(path), "-o",
                             str(tmp_path / "out")], capture_output=True, text=True, env=ENV,
                            preexec_fn=limited_memory, timeout=60, check=False)
    elapsed = time.monotonic() - start
    assert result.returncode == 1, (name, result.stdout, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert elapsed < 10, f"{name} took {elapsed:.1f} s"
    assert not (tmp_path / "out").exists()


def _fleet_pair(tmp_path: Path, count: int) -> tuple[Path, Path, dict[str, bytes],
                                                      dict[str, bytes]]:
    """Fleet A rendered into out/, fleet B differing everywhere; both trees' bytes."""
    a: dict[str, Any] = make_fleet(count, seed=1)
    b: dict[str, Any] = make_fleet(count, seed=2)
    b["spec"]["secondaries"] = b["spec"]["secondaries"][count // 10:]  # some leave the fleet
    for directory, data in (("a", a), ("b", b)):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "fleet.yaml").write_text(yaml.safe_dump(data))
        result = k10fleet("render", str(tmp_path / directory / "fleet.yaml"), "-o",
                          str(tmp_path / directory / "tree"))
        assert result.returncode == 0, result.stderr
    old = tree_bytes(tmp_path / "a/tree")
    new = tree_bytes(tmp_path / "b/tree")
    return tmp_path / "a/tree", tmp_path / "b/fleet.yaml", old, new


def _staging_left(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if "k10fleet-stage" in p.name]


def test_kill_9_during_render_leaves_old_or_new_tree(tmp_path: Path) -> None:
    pristine, fleet_b, old, new = _fleet_pair(tmp_path, 400)
    out = tmp_path / "work" / "output"
    out.parent.mkdir()
    shutil.copytree(pristine, out)
    start = time.monotonic()
    assert k10fleet("render", str(fleet_b), "-o", str(out)).returncode == 0
    duration = time.monotonic() - start
    seen = set()
    factors = [0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.5, 5.0]
    for step, factor in enumerate(factors):
        for leftover in _staging_left(out.parent):
            shutil.rmtree(out.parent / leftover)
        shutil.rmtree(out)
        shutil.copytree(pristine, out)
        process = subprocess.Popen([sys.executable, "-m", "generator", "render", str(fleet_b),
                                    "-o", str(out)], env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(duration * factor)  # from the start to well past the end
        process.send_signal(signal.SIGKILL)
        process.wait()
        now = tree_bytes(out)
        assert now in (old, new), f"mixed tree after kill at step {step}"
        seen.add("new" if now == new else "old")
    assert seen == {"old", "new"}, seen  # kills landed before the swap, late ones after it
    shutil.rmtree(out)
    shutil.copytree(pristine, out)
    process = subprocess.Popen([sys.executable, "-m", "generator", "render", str(fleet_b),
                                "-o", str(out)], env=ENV)
    time.sleep(duration * 0.8)  # most likely mid-staging: leaves a staging folder behind
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert tree_bytes(out) in (old, new)
    assert k10fleet("render", str(fleet_b), "-o", str(out)).returncode == 0
    assert tree_bytes(out) == new
    assert _staging_left(out.parent) == []


def test_kill_9_during_inject_leaves_old_or_new_tree(tmp_path: Path, age_key: str) -> None:
    token = "planted-" + base64.b32encode(os.urandom(20)).decode()
    fleet: dict[str, Any] = make_fleet(150)
    fleet["spec"]["tokens"] = {"mode": "sops", "store": "env://K10_TOKEN"}
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    env = {**ENV, "K10_TOKEN": token}
    out = tmp_path / "output"
    assert k10fleet("render", str(tmp_path / "fleet.yaml"), "-o", str(out), env=env
                    ).returncode == 0
    pristine = tmp_path / "pristine"
    shutil.copytree(out, pristine)
    old = tree_bytes(out)
    start = time.monotonic()
    done = k10fleet("inject", str(tmp_path / "fleet.yaml"), "-o", str(out), "--age", age_key,
                    env=env)
    assert done.returncode == 0, done.stderr
    duration = time.monotonic() - start
    outcomes = set()
    factors = [0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9, 1.1, 2.0, 5.0]
    for step, factor in enumerate(factors):
        for leftover in _staging_left(tmp_path):
            shutil.rmtree(tmp_path / leftover)
        shutil.rmtree(out)
        shutil.copytree(pristine, out)
        process = subprocess.Popen([sys.executable, "-m", "generator", "inject",
                                    str(tmp_path / "fleet.yaml"), "-o", str(out), "--age",
                                    age_key], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(duration * factor)
        process.send_signal(signal.SIGKILL)
        process.wait()
        now = tree_bytes(out)
        injected = [rel for rel in now if rel.endswith("mc-join.sops.yaml")]
        if now == old:
            outcomes.add("old")
        else:  # the complete new tree: every secondary injected, kustomizations listing them
            assert len(injected) == len(fleet["spec"]["secondaries"]), step
            outcomes.add("new")
        assert not any(token.encode() in content for content in now.values())
    assert outcomes == {"old", "new"}, outcomes
    assert k10fleet("inject", str(tmp_path / "fleet.yaml"), "-o", str(out), "--age", age_key,
                    env=env).returncode == 0
    assert _staging_left(tmp_path) == []


def test_concurrent_runs_do_not_corrupt(tmp_path: Path) -> None:
    pristine, fleet_b, _old, new = _fleet_pair(tmp_path, 400)
    out = tmp_path / "work" / "output"
    out.parent.mkdir()
    shutil.copytree(pristine, out)
    runs = [subprocess.Popen([sys.executable, "-m", "generator", "render", str(fleet_b), "-o",
                              str(out)], env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(3)]
    # communicate, not wait: a run whose output fills the pipe would block forever
    results = [(p.returncode, err) for p in runs for _, err in [p.communicate(timeout=300)]]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and set(codes) <= {0, 3}, results
    for code, stderr in results:
        if code == 3:
            assert "another k10fleet run is writing" in stderr
    assert tree_bytes(out) == new


def test_planted_token_never_printed_even_with_debug(tmp_path: Path, age_key: str) -> None:
    token = "PLANTED" + base64.b32encode(os.urandom(20)).decode()
    encoded = base64.b64encode(token.encode()).decode()
    data = example_fleet()
    server = OpenBao(tmp_path)
    server.stop()  # a store that is down
    data["spec"]["tokens"]["store"] = "vault://secret/k10fleet/planted"
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(data))
    out = tmp_path / "output"
    assert k10fleet("render", str(fleet), "-o", str(out)).returncode == 0
    down = {**ENV, **server.env()}
    good_secret = {"apiVersion": "v1", "kind": "Secret", "type": "dist.kio.kasten.io/join-token",
                   "metadata": {"name": "join-token-secret"}, "data": {"token": encoded}}
    inputs = {
        "yaml-error.txt": f"token: {token}\n  broken: [\n",
        "json-error.json": '{"data": {"token": "' + encoded + '"}',
        "wrong-type.json": json.dumps({**good_secret, "type": "Opaque"}),
        "good.json": json.dumps(good_secret),
    }
    outputs: list[str] = []
    for name, content in inputs.items():
        (tmp_path / name).write_text(content)
        result = k10fleet("--debug", "token", "import", str(fleet), "--from",
                          str(tmp_path / name), env=down)
        assert result.returncode in (1, 3), (name, result.stdout, result.stderr)
        outputs += [result.stdout, result.stderr]
    store_file = tmp_path / "store.yaml"
    store_file.write_text(f"token: {token}\n  oops: [\n")
    store_file.chmod(0o600)
    data["spec"]["tokens"]["store"] = f"file://{store_file}"
    fleet.write_text(yaml.safe_dump(data))
    broken_store = k10fleet("--debug", "inject", str(fleet), "-o", str(out), "--age", age_key)
    assert broken_store.returncode == 3
    (out / "clusters/edge-1/leak.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "leak"},
         "stringData": {"token": token}, "data": {"t": encoded}}))
    checked = k10fleet("--debug", "check", str(out), "--kubeconform", "off", "--format", "json")
    assert checked.returncode == 1
    outputs += [broken_store.stdout, broken_store.stderr, checked.stdout, checked.stderr]
    joined = "\n".join(outputs)
    assert token not in joined and encoded not in joined
    assert "Traceback" in joined  # --debug really printed tracebacks, and they are clean too
