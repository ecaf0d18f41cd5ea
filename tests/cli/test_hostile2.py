"""Hostile input, round two (issue 22): links, user files, the manifest, odd file types, stores.

Each case here failed before the fixes it names: a store file's content printed by ``diff``
or copied into the tree through a symlink, a user's file overwritten, a shared folder
chmod'ed, a hostile manifest obeyed, a hang on a FIFO or a trickling server, or an internal
error where a clear message belongs. The fake Vault servers below play a broken or hostile
server (what no real OpenBao does on purpose); everything else is the real CLI on real files.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from tests.conftest import REPO, example_fleet, run_cli

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
SECRET = "STORE-CONTENT-" + "q7Zx" * 8  # what a store file outside the tree holds
NOBODY = 65534


def limited_memory() -> None:
    limit = 2 * 1024**3  # a runaway read fails here instead of exhausting the machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def k10fleet(*args: str | os.PathLike[str], env: dict[str, str] | None = None,
             timeout: float = 60, prefix: tuple[str, ...] = (),
             **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, for cases that could hang or that need process limits."""
    return subprocess.run([*prefix, sys.executable, "-m", "generator", *map(str, args)],
                          capture_output=True, text=True, env=env or ENV, check=False,
                          timeout=timeout, preexec_fn=limited_memory, **kwargs)


def clean(output: str) -> bool:
    return "internal error" not in output and "Traceback" not in output


def fleet_without(*names: str) -> dict[str, Any]:
    data = example_fleet()
    data["spec"]["secondaries"] = [s for s in data["spec"]["secondaries"]
                                   if s["name"] not in names]
    return data


def token_fleet() -> dict[str, Any]:
    """The example fleet without global resources: only join tokens, from env://K10_TOKEN."""
    data = example_fleet()
    for key in ("policies", "profiles", "distributions"):
        data["spec"].pop(key, None)
    data["spec"]["tokens"] = {"mode": "sops", "store": "env://K10_TOKEN"}
    return data


def dump(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A store file outside every tree, holding something that must never leak."""
    store = tmp_path / "store" / "secret.yaml"
    store.parent.mkdir()
    store.write_text(f"token: {SECRET}\n")
    store.chmod(0o600)
    return store


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[Path, Path]:
    """The example fleet rendered into tmp_path/output: (fleet, output)."""
    fleet = dump(tmp_path / "fleet.yaml", example_fleet())
    out = tmp_path / "output"
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 0, result.output
    return fleet, out


def manifest_of(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / ".k10fleet-manifest.json").read_text())
    return data


def write_manifest(out: Path, data: dict[str, Any]) -> None:
    (out / ".k10fleet-manifest.json").write_text(json.dumps(data))


def leaks(result: Result | subprocess.CompletedProcess[str]) -> bool:
    text = result.output if isinstance(result, Result) else result.stdout + result.stderr
    return SECRET in text


# --- 22.2: diff never reads through a link that leaves the tree -------------------------

@pytest.mark.parametrize("output_format", ["text", "json"])
@pytest.mark.parametrize("where", ["file", "relative-file", "folder", "extra", "through-folder"])
def test_diff_never_reads_through_a_symlink(rendered: tuple[Path, Path], secret_file: Path,
                                            where: str, output_format: str) -> None:
    fleet, out = rendered
    values = out / "clusters/edge-1/k10-values.yaml"
    if where == "file":
        values.unlink()
        values.symlink_to(secret_file)
    elif where == "relative-file":
        values.unlink()
        values.symlink_to(os.path.relpath(secret_file, values.parent))
    elif where == "folder":  # the cluster's whole folder is a link to the store's folder
        shutil.rmtree(out / "clusters/edge-1")
        (secret_file.parent / "k10-values.yaml").symlink_to(secret_file)
        (out / "clusters/edge-1").symlink_to(secret_file.parent)
    elif where == "extra":  # a file render would prune, now a link to the store
        dump(fleet, fleet_without("edge-2"))
        (out / "clusters/edge-2/k10-values.yaml").unlink()
        (out / "clusters/edge-2/k10-values.yaml").symlink_to(secret_file)
    else:  # the manifest lists a path that runs through a user's symlinked folder
        (out / "linked").symlink_to(secret_file.parent)
        data = manifest_of(out)
        data["files"]["linked/secret.yaml"] = {"mode": "0644", "owner": "render",
                                              "sha256": "0" * 64}
        write_manifest(out, data)
    result = run_cli("diff", fleet, "-o", out, "--format", output_format)
    assert result.exit_code == (0 if where == "through-folder" else 1), result.output
    assert not leaks(result) and clean(result.output)
    assert secret_file.read_text() == f"token: {SECRET}\n"


def test_diff_does_not_hang_on_a_fifo_in_the_tree(rendered: tuple[Path, Path]) -> None:
    fleet, out = rendered
    values = out / "clusters/edge-1/k10-values.yaml"
    values.unlink()
    os.mkfifo(values)
    result = k10fleet("diff", fleet, "-o", out, timeout=30)
    assert result.returncode == 1 and clean(result.stderr), result.stderr
    assert "clusters/edge-1/k10-values.yaml is not a file; not read" in result.stdout


# --- 22.3: render never copies a link's target into the tree ----------------------------

@pytest.fixture
def injected(tmp_path: Path, age_key: str, monkeypatch: pytest.MonkeyPatch
             ) -> tuple[Path, Path]:
    """A token fleet rendered and injected (real sops, age): (fleet, output)."""
    monkeypatch.setenv("K10_TOKEN", "join-token-" + "t" * 40)
    fleet = dump(tmp_path / "fleet.yaml", token_fleet())
    out = tmp_path / "output"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    done = run_cli("inject", fleet, "-o", out, "--age", age_key)
    assert done.exit_code == 0, done.output
    assert (out / "clusters/edge-1/mc-join.sops.yaml").is_file()
    return fleet, out


@pytest.mark.parametrize("command", ["render", "inject"])
def test_injected_file_replaced_by_a_symlink_is_never_read(
        injected: tuple[Path, Path], secret_file: Path, command: str, age_key: str) -> None:
    fleet, out = injected
    target = out / "clusters/edge-1/mc-join.sops.yaml"
    target.unlink()
    target.symlink_to(secret_file)
    result = run_cli(command, fleet, "-o", out, *(["--age", age_key] if command == "inject"
                                                  else []))
    assert clean(result.output) and not leaks(result), result.output
    for path in out.rglob("*"):
        assert path.is_symlink() or path.is_dir() or SECRET not in path.read_text()
    assert secret_file.read_text() == f"token: {SECRET}\n"


@pytest.mark.parametrize("kind", ["loop", "file-for-folder", "fifo"])
def test_odd_entries_where_an_injected_file_was(injected: tuple[Path, Path],
                                                kind: str) -> None:
    fleet, out = injected
    target = out / "clusters/edge-1/mc-join.sops.yaml"
    if kind == "loop":
        target.unlink()
        target.symlink_to(target.name)  # points at itself
    elif kind == "fifo":
        target.unlink()
        os.mkfifo(target)
    else:  # the cluster's folder became a file
        shutil.rmtree(out / "clusters/edge-1")
        (out / "clusters/edge-1").write_text("my notes\n")
    result = k10fleet("render", fleet, "-o", out, timeout=30)
    assert clean(result.stderr), result.stderr
    if kind == "file-for-folder":
        assert result.returncode == 1 and "clusters/edge-1:1:1" in result.stderr
        assert (out / "clusters/edge-1").read_text() == "my notes\n"
    else:
        assert result.returncode == 0, result.stderr
        assert not target.exists() or target.is_file()


def test_symlinked_cluster_folder_is_refused_and_left_alone(rendered: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    fleet, out = rendered
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / "clusters/edge-1", elsewhere)
    (out / "clusters/edge-1").symlink_to(elsewhere)
    dump(fleet, {**example_fleet(), "metadata": {"name": "renamed"}})  # everything changes
    before = {p.name: p.read_bytes() for p in elsewhere.iterdir()}
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 1, result.output
    assert "clusters/edge-1:1:1" in result.output and "symbolic link" in result.output
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == before


def test_symlinked_manifest_is_not_followed(rendered: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    fleet, out = rendered
    outside = tmp_path / "manifest-elsewhere.json"
    shutil.move(out / ".k10fleet-manifest.json", outside)
    (out / ".k10fleet-manifest.json").symlink_to(outside)
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 1 and clean(result.output), result.output
    assert "not a regular file" in result.output


def test_a_1100_deep_user_folder_is_kept(rendered: tuple[Path, Path]) -> None:
    fleet, out = rendered
    levels = [out / "notes"]
    for _ in range(1100):  # made one by one below: os.makedirs recurses
        levels.append(levels[-1] / "d")
    try:
        for level in levels:
            level.mkdir()
        (levels[-1] / "leaf.txt").write_text("mine\n")
        dump(fleet, fleet_without("edge-2"))
        result = k10fleet("render", fleet, "-o", out)
        assert result.returncode == 0 and clean(result.stderr), result.stderr
        assert (levels[-1] / "leaf.txt").read_text() == "mine\n"
        assert not (out / "clusters/edge-2").exists()
    finally:  # shutil.rmtree (pytest's clean-up too) would recurse as deep
        for top in [out, *out.parent.glob(".output.k10fleet-stage-*")]:
            nested = [top / "notes", *(top / "notes" / rel.relative_to(levels[0])
                                       for rel in levels[1:])]
            (nested[-1] / "leaf.txt").unlink(missing_ok=True)
            for level in reversed(nested):
                if level.is_dir():
                    level.rmdir()


# --- 22.6: a file k10fleet did not write is never overwritten ---------------------------

USER_TEXT = "# written by hand, keep me\nfoo: bar\n"


@pytest.mark.parametrize("planted", [
    ("clusters/edge-2/k10-values.yaml",),
    ("clusters/edge-2/kustomization.yaml",),
    ("clusters/edge-2/k10-values.yaml", "clusters/edge-2/kustomization.yaml"),
    ("argocd/edge-2.yaml",),
    ("clusters/edge-2/mc-join-config.yaml",),
])
def test_hand_written_files_of_a_new_cluster_are_not_overwritten(
        tmp_path: Path, planted: tuple[str, ...]) -> None:
    fleet = dump(tmp_path / "fleet.yaml", fleet_without("edge-2"))
    out = tmp_path / "output"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    for rel in planted:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(USER_TEXT)
    dump(fleet, example_fleet())  # edge-2 joins the fleet
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 1, result.output
    for rel in planted:
        assert f"{out}/{rel}:1:1" in result.output
        assert (out / rel).read_text() == USER_TEXT
    assert "delete it or move it aside" in result.output
    cluster = out / "clusters/edge-2"
    assert (sorted(p.name for p in cluster.iterdir()) if cluster.exists() else []) == sorted(
        Path(rel).name for rel in planted if rel.startswith("clusters/"))  # nothing written
    for rel in planted:  # handed over: moved aside, the next render writes the file
        os.rename(out / rel, out / (rel + ".orig"))
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    for rel in planted:
        assert (out / (rel + ".orig")).read_text() == USER_TEXT
        assert (out / rel).read_text() != USER_TEXT


def test_hand_written_flux_release_is_not_overwritten(tmp_path: Path) -> None:
    data = fleet_without("edge-2")
    data["spec"]["gitops"] = {"engine": "flux", "repoURL": "https://github.com/acme/x.git"}
    fleet = dump(tmp_path / "fleet.yaml", data)
    out = tmp_path / "output"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    planted = out / "flux/releases/edge-2/helmrelease.yaml"
    planted.parent.mkdir(parents=True)
    planted.write_text(USER_TEXT)
    data["spec"]["secondaries"] = example_fleet()["spec"]["secondaries"]
    dump(fleet, data)
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 1 and f"{planted}:1:1" in result.output, result.output
    assert planted.read_text() == USER_TEXT


def test_user_symlink_at_a_generated_path_is_refused(tmp_path: Path,
                                                     secret_file: Path) -> None:
    fleet = dump(tmp_path / "fleet.yaml", fleet_without("edge-2"))
    out = tmp_path / "output"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    link = out / "clusters/edge-2/k10-values.yaml"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret_file)
    dump(fleet, example_fleet())
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 1 and f"{link}:1:1" in result.output, result.output
    assert "symbolic link" in result.output and link.is_symlink()
    assert secret_file.read_text() == f"token: {SECRET}\n"


def test_user_folder_at_a_generated_file_path_is_refused(tmp_path: Path) -> None:
    fleet = dump(tmp_path / "fleet.yaml", fleet_without("edge-2"))
    out = tmp_path / "output"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    folder = out / "clusters/edge-2/k10-values.yaml"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine\n")
    dump(fleet, example_fleet())
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 1 and f"{folder}:1:1" in result.output, result.output
    assert (folder / "notes.txt").read_text() == "mine\n"


def test_user_file_where_a_cluster_folder_goes_is_refused(tmp_path: Path) -> None:
    fleet = dump(tmp_path / "fleet.yaml", fleet_without("edge-2"))
    out = tmp_path / "output"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    (out / "clusters/edge-2").write_text(USER_TEXT)
    dump(fleet, example_fleet())
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 1, result.output
    assert f"{out}/clusters/edge-2:1:1" in result.output and "move it aside" in result.output
    assert (out / "clusters/edge-2").read_text() == USER_TEXT


def test_user_bootstrap_script_is_not_overwritten(tmp_path: Path) -> None:
    without_lab = fleet_without("lab-1")
    without_lab["spec"]["access"] = without_lab["spec"]["access"][:1]  # no env=lab grant
    fleet = dump(tmp_path / "fleet.yaml", without_lab)
    out = tmp_path / "output"
    first = run_cli("render", fleet, "-o", out)
    assert first.exit_code == 0, first.output
    script = out / "bootstrap/k10multicluster.sh"
    assert not script.exists()
    script.parent.mkdir(exist_ok=True)
    script.write_text("#!/bin/sh\necho my own bootstrap\n")
    with_script = example_fleet()
    lab = next(s for s in with_script["spec"]["secondaries"] if s["name"] == "lab-1")
    lab["joinWith"] = "k10multicluster"  # render now wants the script
    dump(fleet, with_script)
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 1 and f"{script}:1:1" in result.output, result.output
    assert script.read_text() == "#!/bin/sh\necho my own bootstrap\n"


def test_inject_does_not_overwrite_a_users_sops_file(tmp_path: Path, age_key: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K10_TOKEN", "join-token-" + "u" * 40)
    fleet = dump(tmp_path / "fleet.yaml", token_fleet())
    out = tmp_path / "output"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    mine = out / "clusters/edge-2/mc-join.sops.yaml"
    mine.write_text("# my own encrypted Secret\nsops: {}\n")
    result = run_cli("inject", fleet, "-o", out, "--age", age_key)
    assert result.exit_code == 1, result.output
    assert f"{mine}:1:1" in result.output and "delete it or move it aside" in result.output
    assert mine.read_text() == "# my own encrypted Secret\nsops: {}\n"
    assert not (out / "clusters/edge-1/mc-join.sops.yaml").exists()  # nothing written


# --- 22.7: the manifest is untrusted input ----------------------------------------------

def _hostile_manifest(out: Path, tmp_path: Path, how: str) -> None:
    data = manifest_of(out)
    entry = {"mode": "0644", "owner": "render", "sha256": "0" * 64}
    (tmp_path / "outside.txt").write_text(SECRET)
    if how == "dotdot":
        data["files"]["../outside.txt"] = entry
    elif how == "deep-dotdot":
        data["files"]["clusters/../../outside.txt"] = entry
    elif how == "absolute":
        data["files"][str(tmp_path / "outside.txt")] = entry
    elif how == "owner":
        data["files"]["clusters/edge-1/k10-values.yaml"]["owner"] = "root"
    elif how == "sha":
        data["files"]["clusters/edge-1/k10-values.yaml"]["sha256"] = "not-a-digest"
    elif how == "cluster-name":
        data["clusters"]["x; rm -rf ~"] = {"role": "secondary", "clusterName": "x; rm -rf ~"}
    elif how == "cluster-role":
        data["clusters"]["edge-1"]["role"] = "admin"
    write_manifest(out, data)


@pytest.mark.parametrize("how", ["dotdot", "deep-dotdot", "absolute", "owner", "sha",
                                 "cluster-name", "cluster-role"])
@pytest.mark.parametrize("command", ["render", "render --check", "diff"])
def test_hostile_manifest_is_refused(rendered: tuple[Path, Path], tmp_path: Path, how: str,
                                     command: str) -> None:
    fleet, out = rendered
    _hostile_manifest(out, tmp_path, how)
    before = (out / ".k10fleet-manifest.json").read_bytes()
    result = run_cli(*command.split(), fleet, "-o", out)
    assert result.exit_code == 1 and clean(result.output), result.output
    assert "not a valid k10fleet manifest" in result.output
    assert "extra:" not in result.output and "removed" not in result.output
    assert SECRET not in result.output and "kubectl delete" not in result.output
    assert (out / ".k10fleet-manifest.json").read_bytes() == before
    assert (tmp_path / "outside.txt").read_text() == SECRET


@pytest.mark.parametrize("mode", ["0777", "0000", "0755"])
def test_manifest_cannot_change_an_injected_files_mode(injected: tuple[Path, Path],
                                                       mode: str) -> None:
    fleet, out = injected
    data = manifest_of(out)
    data["files"]["clusters/edge-1/mc-join.sops.yaml"]["mode"] = mode
    write_manifest(out, data)
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((out / "clusters/edge-1/mc-join.sops.yaml").stat().st_mode) == 0o644
    assert manifest_of(out)["files"]["clusters/edge-1/mc-join.sops.yaml"]["mode"] == "0644"


@pytest.mark.parametrize("ghost", ["ghost-1", "edge-9"])
def test_manifest_cannot_make_render_disconnect_clusters_that_never_existed(
        rendered: tuple[Path, Path], ghost: str) -> None:
    fleet, out = rendered
    data = manifest_of(out)
    data["clusters"][ghost] = {"clusterName": ghost, "namespace": "kasten-io",
                               "role": "secondary"}
    data["files"][f"clusters/{ghost}/kustomization.yaml"] = {
        "mode": "0644", "owner": "render", "sha256": "0" * 64}  # listed, never on disk
    write_manifest(out, data)
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 0, result.output
    assert "kubectl delete" not in result.output and ghost not in result.output


def test_a_cluster_that_left_is_still_disconnected(rendered: tuple[Path, Path]) -> None:
    """The guard above must not hide real departures (regression companion)."""
    fleet, out = rendered
    dump(fleet, fleet_without("edge-2"))
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 0
    assert "kubectl delete clusters.dist.kio.kasten.io edge-2" in result.output


@pytest.mark.parametrize("kind", ["deep", "fifo"])
def test_unreadable_manifest_is_a_clear_error(rendered: tuple[Path, Path], kind: str) -> None:
    fleet, out = rendered
    manifest = out / ".k10fleet-manifest.json"
    manifest.unlink()
    if kind == "deep":
        manifest.write_text("[" * 100_000 + "]" * 100_000)
    else:
        os.mkfifo(manifest)
    result = k10fleet("render", fleet, "-o", out, timeout=30)
    assert result.returncode == 1 and clean(result.stderr), result.stderr
    assert "not a valid k10fleet manifest" in result.stderr


# --- 22.8: FIFOs and devices as the fleet, bounded stores, linear path_regex ------------

@pytest.mark.parametrize("command", ["render", "validate", "diff", "render --check"])
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_fleet_path_that_is_not_a_file_fails_fast(tmp_path: Path, command: str,
                                                  kind: str) -> None:
    if kind == "fifo":
        fleet = tmp_path / "fleet.yaml"
        os.mkfifo(fleet)
    else:
        fleet = Path(kind)
    args = [*command.split(), str(fleet)]
    if command != "validate":
        args += ["-o", str(tmp_path / "out")]
    start = time.monotonic()
    result = k10fleet(*args, timeout=30)
    assert time.monotonic() - start < 20
    assert result.returncode == 1 and clean(result.stderr), result.stderr
    assert "not a regular file" in result.stdout + result.stderr


@pytest.mark.parametrize("kind", ["under-a-file", "loop"])
def test_fleet_path_that_cannot_be_opened_is_a_located_error(tmp_path: Path,
                                                             kind: str) -> None:
    if kind == "under-a-file":
        (tmp_path / "afile").write_text("x")
        fleet = tmp_path / "afile" / "fleet.yaml"
    else:
        fleet = tmp_path / "fleet.yaml"
        fleet.symlink_to("fleet.yaml")
    result = run_cli("render", fleet, "-o", tmp_path / "out")
    assert result.exit_code == 1 and clean(result.output), result.output
    assert f"{fleet}:1:1: error: cannot read" in result.output


class _FakeVault(http.server.ThreadingHTTPServer):
    """A broken or hostile server on loopback, answering every request the same way."""

    daemon_threads = True

    def __init__(self, reply: Callable[[http.server.BaseHTTPRequestHandler], None]) -> None:
        self.reply = reply
        self.stopping = threading.Event()
        handler = type("Handler", (http.server.BaseHTTPRequestHandler,), {
            "do_GET": lambda h: self.reply(h), "do_POST": lambda h: self.reply(h),
            "do_PUT": lambda h: self.reply(h),
            "log_message": lambda h, *a: None})
        super().__init__(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self.thread.join(10)


def _json_reply(body: bytes, content_type: str = "application/json"
                ) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    def reply(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return reply


def _trickle(where: str) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    body = json.dumps({"data": {"data": {"token": "x" * 40}, "metadata": {}}}).encode()

    def reply(handler: http.server.BaseHTTPRequestHandler) -> None:
        server: Any = handler.server
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode())
        fast, slow = (b"", head + body) if where == "headers" else (head, body)
        handler.wfile.write(fast)
        handler.wfile.flush()
        for index in range(len(slow)):  # one byte every 0.2 s: each read is quick
            if server.stopping.wait(0.2):
                return
            handler.wfile.write(slow[index:index + 1])
            handler.wfile.flush()
        handler.close_connection = True

    return reply


@pytest.fixture
def fake_vault() -> Iterator[Callable[..., _FakeVault]]:
    servers: list[_FakeVault] = []

    def start(reply: Callable[[http.server.BaseHTTPRequestHandler], None]) -> _FakeVault:
        servers.append(_FakeVault(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _vault_fleet(tmp_path: Path) -> Path:
    data = token_fleet()
    data["spec"]["tokens"]["store"] = "vault://secret/k10fleet/demo"
    return dump(tmp_path / "fleet.yaml", data)


@pytest.mark.parametrize("body", [b'{"data": null}', b"[]", b'[{"data": {}}]', b'"hello"',
                                  b'{"data": []}', b'{"data": {"data": ["token"]}}',
                                  b"<html><body>Sign in</body></html>", b""])
def test_vault_reply_that_is_not_a_secret_is_a_store_error(
        tmp_path: Path, fake_vault: Callable[..., _FakeVault], body: bytes,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = fake_vault(_json_reply(body, "text/html" if body.startswith(b"<") else
                                    "application/json"))
    monkeypatch.setenv("VAULT_ADDR", server.address)
    monkeypatch.setenv("VAULT_TOKEN", "s.fake")
    fleet = _vault_fleet(tmp_path)
    assert run_cli("render", fleet, "-o", tmp_path / "out").exit_code == 0
    result = run_cli("inject", fleet, "-o", tmp_path / "out", "--age", "age1" + "q" * 58)
    assert result.exit_code == 3 and clean(result.output), result.output
    assert "secret store vault://secret/k10fleet/demo" in result.output
    assert "KV v2" in result.output


@pytest.mark.parametrize("where", ["headers", "body"])
def test_trickling_vault_hits_a_total_deadline(tmp_path: Path,
                                               fake_vault: Callable[..., _FakeVault],
                                               where: str) -> None:
    server = fake_vault(_trickle(where))
    fleet = _vault_fleet(tmp_path)
    env = {**ENV, "VAULT_ADDR": server.address, "VAULT_TOKEN": "s.fake",
           "K10FLEET_STORE_TIMEOUT": "2"}
    assert k10fleet("render", fleet, "-o", tmp_path / "out", env=env).returncode == 0
    start = time.monotonic()
    result = k10fleet("inject", fleet, "-o", tmp_path / "out", "--age", "age1" + "q" * 58,
                      env=env, timeout=60)
    elapsed = time.monotonic() - start
    assert result.returncode == 3 and clean(result.stderr), result.stderr
    assert "within 2 s" in result.stderr and "vault://secret/k10fleet/demo" in result.stderr
    assert elapsed < 10, elapsed


def _sops_rules(tmp_path: Path, rules: list[dict[str, str]]) -> None:
    (tmp_path / ".sops.yaml").write_text(yaml.safe_dump({"creation_rules": rules}))


def _long_name_fleet(tmp_path: Path) -> Path:
    data = token_fleet()
    data["spec"]["secondaries"] = [{"name": "a" * 60, "labels": {"env": "prod"}}]
    data["spec"].pop("access", None)
    return dump(tmp_path / "fleet.yaml", data)


def test_backtracking_path_regex_is_instant(tmp_path: Path, age_key: str) -> None:
    fleet = _long_name_fleet(tmp_path)
    _sops_rules(tmp_path, [{"path_regex": "([a-z]+)+!$", "age": "age1" + "q" * 58},
                           {"path_regex": r"\.sops\.yaml$", "age": age_key}])
    env = {**ENV, "K10_TOKEN": "join-token-" + "v" * 40}
    assert k10fleet("render", fleet, "-o", tmp_path / "output", env=env).returncode == 0
    start = time.monotonic()
    result = k10fleet("inject", fleet, "-o", tmp_path / "output", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start < 30
    written = tmp_path / "output" / "clusters" / ("a" * 60) / "mc-join.sops.yaml"
    assert age_key in written.read_text()  # the second rule's recipient, as sops picks


@pytest.mark.parametrize("pattern", [r"(clusters)/\1", "(?=clusters/)", "(?<!x)sops",
                                     "x" * 5000])
def test_path_regex_sops_would_reject_is_refused(tmp_path: Path, age_key: str,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 pattern: str) -> None:
    monkeypatch.setenv("K10_TOKEN", "join-token-" + "w" * 40)
    fleet = dump(tmp_path / "fleet.yaml", token_fleet())
    _sops_rules(tmp_path, [{"path_regex": pattern, "age": age_key}])
    assert run_cli("render", fleet, "-o", tmp_path / "output").exit_code == 0
    result = run_cli("inject", fleet, "-o", tmp_path / "output")
    assert result.exit_code == 2 and clean(result.output), result.output
    assert "invalid path_regex" in result.output and len(result.output) < 2000


# --- 22.4: inject --plain-dir -----------------------------------------------------------

def _plain_fleet(tmp_path: Path, names: tuple[str, ...] = ("edge-1", "edge-2")) -> Path:
    data = token_fleet()
    data["spec"]["tokens"] = {"mode": "plain", "store": "env://K10_TOKEN"}
    data["spec"]["secondaries"] = [{"name": n, "labels": {"env": "prod"}} for n in names]
    data["spec"].pop("access", None)
    return dump(tmp_path / "fleet.yaml", data)


PLAIN_ENV = {**ENV, "K10_TOKEN": "plain-join-token-" + "p" * 40}


@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o755, 0o750, 0o701])
def test_plain_dir_shared_folder_is_refused_and_its_mode_kept(tmp_path: Path,
                                                              mode: int) -> None:
    fleet = _plain_fleet(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    result = k10fleet("inject", fleet, "--plain-dir", shared, env=PLAIN_ENV)
    assert result.returncode == 2 and clean(result.stderr), result.stderr
    assert "never changes the mode" in result.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == mode
    assert list(shared.iterdir()) == []


def test_plain_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    fleet = _plain_fleet(tmp_path)
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(theirs, NOBODY, NOBODY)
        result = k10fleet("inject", fleet, "--plain-dir", theirs, env=PLAIN_ENV)
        assert result.returncode == 2 and "owned by another user" in result.stderr
    else:  # pragma: no cover - as a normal user: a folder of root's
        result = k10fleet("inject", fleet, "--plain-dir", "/root", env=PLAIN_ENV)
        assert result.returncode in (2, 3) and clean(result.stderr)
    assert list(theirs.iterdir()) == []


def _unprivileged() -> tuple[str, ...]:
    """Run as a user that may not chmod others' folders nor write past permissions: root
    without the capabilities that let it (setpriv), or the user running the tests."""
    if os.geteuid() != 0:  # pragma: no cover - already a normal user
        return ()
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner,-chown", "--")


def test_plain_dir_as_non_root_gives_a_message_not_a_permission_error(tmp_path: Path) -> None:
    fleet = _plain_fleet(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    if os.geteuid() == 0:
        os.chown(shared, NOBODY, NOBODY)  # like /tmp: someone else's, open to all
    result = k10fleet("inject", fleet, "--plain-dir", shared, env=PLAIN_ENV,
                      prefix=_unprivileged())
    assert result.returncode == 2 and clean(result.stderr), result.stderr
    assert "PermissionError" not in result.stderr and "not private" in result.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


def test_plain_dir_read_only_leaves_no_plaintext_and_keeps_its_mode(tmp_path: Path) -> None:
    fleet = _plain_fleet(tmp_path)
    private = tmp_path / "private"
    private.mkdir()
    private.chmod(0o500)  # private but read-only
    result = k10fleet("inject", fleet, "--plain-dir", private, env=PLAIN_ENV,
                      prefix=_unprivileged())
    assert result.returncode == 3 and clean(result.stderr), result.stderr
    assert stat.S_IMODE(private.stat().st_mode) == 0o500
    assert list(private.iterdir()) == []


def test_plain_dir_full_disk_leaves_no_plaintext(tmp_path: Path) -> None:
    short, long_name = "e", "edge-with-a-much-longer-name-than-the-first"
    fleet = _plain_fleet(tmp_path, (short, long_name))
    probe = tmp_path / "probe"
    assert k10fleet("inject", fleet, "--plain-dir", probe, env=PLAIN_ENV).returncode == 0
    limit = (probe / f"{short}.yaml").stat().st_size
    assert (probe / f"{long_name}.yaml").stat().st_size > limit
    target = tmp_path / "target"
    prlimit = ("prlimit", f"--fsize={limit}", "--")  # the second file cannot be written
    result = k10fleet("inject", fleet, "--plain-dir", target, env=PLAIN_ENV, prefix=prlimit)
    assert result.returncode == 3 and clean(result.stderr), result.stderr
    assert "no plaintext file was left behind" in result.stderr
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("kind", ["file", "link"])
def test_plain_dir_keeps_a_users_file_of_the_same_name(tmp_path: Path, kind: str,
                                                       secret_file: Path) -> None:
    fleet = _plain_fleet(tmp_path)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    mine = private / "edge-1.yaml"
    if kind == "file":
        mine.write_text(USER_TEXT)
    else:
        mine.symlink_to(secret_file)
    result = k10fleet("inject", fleet, "--plain-dir", private, env=PLAIN_ENV)
    assert result.returncode == 1 and f"{mine}:1:1" in result.stderr, result.stderr
    assert mine.is_symlink() == (kind == "link")
    assert mine.read_text() == (USER_TEXT if kind == "file" else f"token: {SECRET}\n")
    assert not (private / "edge-2.yaml").exists()


def test_plain_dir_under_a_file(tmp_path: Path) -> None:
    fleet = _plain_fleet(tmp_path)
    (tmp_path / "afile").write_text("x")
    plain = tmp_path / "afile" / "plain"
    result = k10fleet("inject", fleet, "--plain-dir", plain, env=PLAIN_ENV)
    assert result.returncode in (2, 3) and clean(result.stderr), result.stderr
    assert str(plain) in result.stderr and (tmp_path / "afile").read_text() == "x"


def test_plain_dir_rerun_replaces_its_own_files(tmp_path: Path) -> None:
    """Regression companion: k10fleet's own plaintext files are still refreshed."""
    fleet = _plain_fleet(tmp_path)
    private = tmp_path / "private"
    assert k10fleet("inject", fleet, "--plain-dir", private, env=PLAIN_ENV).returncode == 0
    again = k10fleet("inject", fleet, "--plain-dir", private,
                     env={**PLAIN_ENV, "K10_TOKEN": "rotated-" + "r" * 40})
    assert again.returncode == 0, again.stderr
    assert base64.b64encode(b"rotated-" + b"r" * 40).decode() in (
        private / "edge-1.yaml").read_text()


# --- 22.9: init under a file, -o FILE/out ------------------------------------------------

@pytest.mark.parametrize("force", [False, True])
def test_init_under_a_file(tmp_path: Path, force: bool) -> None:
    (tmp_path / "afile").write_text("x")
    args = ["init", str(tmp_path / "afile" / "fleet.yaml"), "--name", "demo", "--primary",
            "p-1", "--ingress", "https://p.example.com/k10", "--engine", "none"]
    result = run_cli(*args, *(["--force"] if force else []))
    assert result.exit_code == 2 and clean(result.output), result.output
    assert "afile/fleet.yaml" in result.output and (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("command", ["render", "render --check", "diff", "inject"])
def test_output_under_a_file_is_a_clear_usage_error(tmp_path: Path, command: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K10_TOKEN", "join-token-" + "o" * 40)
    fleet = dump(tmp_path / "fleet.yaml", token_fleet())
    (tmp_path / "afile").write_text("x")
    result = run_cli(*command.split(), fleet, "-o", tmp_path / "afile" / "out",
                     *(["--age", "age1" + "q" * 58] if command == "inject" else []))
    assert result.exit_code == 2 and clean(result.output), result.output
    assert "restore" not in result.output and "is a file, not a folder" in result.output


@pytest.mark.parametrize("command", ["render", "diff"])
def test_output_that_is_a_symlink_loop_is_a_clear_usage_error(tmp_path: Path,
                                                              command: str) -> None:
    fleet = dump(tmp_path / "fleet.yaml", example_fleet())
    (tmp_path / "loop").symlink_to("loop")
    result = run_cli(command, fleet, "-o", tmp_path / "loop")
    assert result.exit_code == 2 and clean(result.output), result.output
    assert "restore" not in result.output and "symbolic links" in result.output


# --- 22.10: root keeps owners; long values are cut in messages -------------------------

def _chown_tree(root: Path, uid: int) -> None:
    os.chown(root, uid, uid)
    for path in root.rglob("*"):
        os.lchown(path, uid, uid)


def test_render_as_root_keeps_the_owner_of_folders_and_files(rendered: tuple[Path, Path]
                                                            ) -> None:
    fleet, out = rendered
    assert os.geteuid() == 0, "CI and the developers' machines run the suite as root"
    _chown_tree(out, NOBODY)
    data = example_fleet()
    data["spec"]["secondaries"][0]["values"]["ingress"]["host"] = "one.example.com"
    dump(fleet, data)
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 0 and "0 written" not in result.output, result.output
    owners = {str(p.relative_to(out)): p.lstat().st_uid for p in out.rglob("*")}
    assert out.stat().st_uid == NOBODY
    assert {rel for rel, uid in owners.items() if uid != NOBODY} == set(), owners


LONG = "x" * 1_000_000


@pytest.mark.parametrize("where", ["unknown-field", "duplicate-key", "int-tag", "url",
                                   "label-key", "selector"])
@pytest.mark.parametrize("output_format", ["text", "json"])
def test_a_1mb_value_is_cut_in_messages(tmp_path: Path, where: str,
                                        output_format: str) -> None:
    text = yaml.safe_dump(example_fleet(), sort_keys=False, width=10**8)
    if where == "unknown-field":  # explicit keys (? key) may be longer than 1024 characters
        text = text.replace("spec:\n", f"spec:\n  ? {LONG}\n  : 1\n", 1)
    elif where == "duplicate-key":
        text += f"? {LONG}\n: 1\n? {LONG}\n: 2\n"
    elif where == "int-tag":
        text = text.replace("spec:\n", f"spec:\n  replicas: !!int {LONG}\n", 1)
    elif where == "url":
        text = text.replace("https://primary.example.com/k10", "https://" + LONG, 1)
    elif where == "label-key":
        line = next(line for line in text.splitlines() if line.strip() == "env: lab")
        indent = line[:len(line) - len(line.lstrip())]
        text = text.replace(line, f"{indent}? {LONG}\n{indent}: lab", 1)
    else:
        text = text.replace("selector: env=lab", f"selector: {LONG}=lab", 1)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(text)
    result = run_cli("validate", fleet, "--format", output_format)
    assert result.exit_code == 1 and clean(result.output), result.output[:500]
    assert len(result.output) < 20_000, (where, len(result.output))
    assert "x" * 400 not in result.output


def test_a_1mb_age_recipient_is_cut_in_the_message(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K10_TOKEN", "join-token-" + "m" * 40)
    fleet = dump(tmp_path / "fleet.yaml", token_fleet())
    assert run_cli("render", fleet, "-o", tmp_path / "out").exit_code == 0
    result = run_cli("inject", fleet, "-o", tmp_path / "out", "--age", LONG)
    assert result.exit_code == 2 and "not an age recipient" in result.output
    assert len(result.output) < 5000


def test_deep_flow_nesting_fleet_is_refused_fast(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("apiVersion: k10fleet/v1alpha1\nkind: Fleet\nmetadata: {name: bomb}\n"
                     "spec: " + "[" * 150_000 + "]" * 150_000 + "\n")
    start = time.monotonic()
    result = k10fleet("validate", fleet, timeout=60)
    assert result.returncode == 1 and clean(result.stdout + result.stderr)
    assert "fleet.yaml:" in result.stdout + result.stderr
    assert time.monotonic() - start < 10
