"""Hostile input to the commands that read cluster data: token import, status, labels.

Alias bombs, FIFOs and devices, floods, hanging kubectl and API servers, escape codes and
forged table rows, stores in the wrong place, oversized tokens. Each case runs the real CLI
(in a child process where a failure would be a hang) and bounds its time.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, example_fleet, free_port, run_cli

WriteFleet = Callable[..., Path]
TOKEN = "eyJrMTAiOiJqb2luIn0." + "A" * 64


def k10fleet(*args: str | os.PathLike[str], env: dict[str, str] | None = None,
             timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process, memory-limited, killed by the test at ``timeout``."""

    def limit_memory() -> None:
        limit = 2 * 1024**3
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([sys.executable, "-m", "generator", *map(str, args)],
                          capture_output=True, text=True, env=full_env, check=False,
                          timeout=timeout, preexec_fn=limit_memory, **kwargs)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def join_token_secret(token: str = TOKEN, **extra: Any) -> dict[str, Any]:
    secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret",
                              "type": "dist.kio.kasten.io/join-token",
                              "metadata": {"name": "join-token-secret",
                                           "namespace": "kasten-io-mc"},
                              "data": {"token": b64(token)}}
    secret.update(extra)
    return secret


def status_secret(status: str, msg: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mc-join-status"},
            "data": {"status": b64(status), "msg": b64(msg)}}


ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] +
    [f"{label}: &{label} [" + ",".join(["*" + "abcdefghi"[i]] * 9) + "]"
     for i, label in enumerate("bcdefghi")])


def bomb_under(prefix: str) -> str:
    """YAML whose value at ``prefix`` (indented lines) is a billion-laughs alias bomb."""
    return ALIAS_BOMB + "\n" + prefix


@pytest.fixture
def file_store_fleet(tmp_path: Path, write_fleet: WriteFleet) -> tuple[Path, Path]:
    """The example fleet with a file:// store outside any Git work tree or output tree."""
    data = example_fleet()
    store = tmp_path / "store" / "token.yaml"
    store.parent.mkdir()
    data["spec"]["tokens"]["store"] = f"file://{store}"
    return write_fleet(data), store


def args_for(command: str, fleet: Path, source: str | Path | None = None) -> list[str | Path]:
    """The command line of token import, status or labels, reading ``source`` if given."""
    words = {"token": ["token", "import"], "status": ["status"], "labels": ["labels"]}[command]
    base: list[str | Path] = [*words, fleet]
    if source is None:
        return base
    return [*base, "--from", f"edge-1={source}" if command == "status" else source]


def no_contexts_fleet() -> dict[str, Any]:
    data = example_fleet()
    for key in ("policies", "profiles", "distributions", "access"):
        data["spec"].pop(key, None)
    data["spec"]["secondaries"] = [s for s in data["spec"]["secondaries"]
                                   if s.get("joinWith") != "k10multicluster"
                                   and not s.get("kubeContext")]  # only --from sources
    return data


# -- alias bombs: str()/repr() of them never finishes --------------------------------------

@pytest.mark.parametrize("where", ["metadata-name", "type", "token"])
def test_alias_bomb_in_token_import(tmp_path: Path, file_store_fleet: tuple[Path, Path],
                                    where: str) -> None:
    fleet, store = file_store_fleet
    body = {"metadata-name": "kind: Secret\nmetadata: {name: *i}\n",
            "type": "kind: Secret\nmetadata: {name: join-token-secret}\ntype: *i\n",
            "token": "kind: Secret\nmetadata: {name: join-token-secret}\n"
                     "type: dist.kio.kasten.io/join-token\ndata: {token: *i}\n"}[where]
    source = tmp_path / "bomb.yaml"
    source.write_text(bomb_under(body))
    done = k10fleet("token", "import", fleet, "--from", source, timeout=30)
    assert done.returncode == 1, done.stderr
    assert "not the JSON or YAML that kubectl get secret prints" in done.stderr
    assert not store.exists()


def test_alias_bomb_in_status(tmp_path: Path, write_fleet: WriteFleet) -> None:
    fleet = write_fleet(no_contexts_fleet())
    source = tmp_path / "status.yaml"
    source.write_text(bomb_under("kind: Secret\nmetadata: {name: mc-join-status}\n"
                                 "data: {status: *i, msg: *i}\n"))
    done = k10fleet("status", fleet, "--from", f"edge-1={source}", timeout=30)
    assert done.returncode == 1
    assert f"{source}:1:1: error: not the JSON or YAML" in done.stderr


def test_alias_bomb_in_labels(tmp_path: Path) -> None:
    source = tmp_path / "clusters.yaml"
    source.write_text(bomb_under("kind: List\nitems:\n- kind: Cluster\n  metadata:\n"
                                 "    name: edge-2\n    labels: {env: *i}\n"))
    done = k10fleet("labels", REPO / "fleet.yaml", "--from", source, timeout=30)
    assert done.returncode == 1
    assert "not the JSON or YAML that kubectl get prints" in done.stderr


# -- FIFOs, devices and floods as --from ----------------------------------------------------

@pytest.mark.parametrize("command", ["token", "status", "labels"])
def test_fifo_as_from_is_refused_without_waiting(tmp_path: Path,
                                                 file_store_fleet: tuple[Path, Path],
                                                 command: str) -> None:
    fleet, _ = file_store_fleet
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    args = args_for(command, fleet, fifo)
    done = k10fleet(*args, timeout=30)
    assert done.returncode == 2, done.stderr
    assert "is not a regular file" in done.stderr


@pytest.mark.parametrize("command", ["token", "status", "labels"])
def test_dev_zero_as_from_is_refused(file_store_fleet: tuple[Path, Path], command: str) -> None:
    fleet, _ = file_store_fleet
    args = args_for(command, fleet, "/dev/zero")
    done = k10fleet(*args, timeout=30)
    assert done.returncode == 2, done.stderr
    assert "/dev/zero is not a regular file" in done.stderr


def test_endless_stdin_is_cut_at_the_size_cap(file_store_fleet: tuple[Path, Path]) -> None:
    fleet, store = file_store_fleet
    with open("/dev/zero", "rb") as zero:
        done = k10fleet("token", "import", fleet, "--from", "-", stdin=zero, timeout=30)
    assert done.returncode == 1
    assert "<stdin>:1:1: error: larger than 4194304 bytes" in done.stderr
    assert not store.exists()


def test_oversized_saved_secret_is_refused(tmp_path: Path,
                                           file_store_fleet: tuple[Path, Path]) -> None:
    fleet, store = file_store_fleet
    padded = join_token_secret()
    padded["metadata"]["annotations"] = {"padding": "x" * 5 * 1024 * 1024}
    source = tmp_path / "big.json"
    source.write_text(json.dumps(padded))
    result = run_cli("token", "import", fleet, "--from", source)
    assert result.exit_code == 1 and "larger than 4194304 bytes" in result.output
    assert not store.exists()


# -- hanging kubectl and API servers ---------------------------------------------------------

def kubeconfig(tmp_path: Path, server: str, *, exec_plugin: Path | None = None) -> Path:
    user: dict[str, Any] = {"token": "not-a-real-token"}
    if exec_plugin is not None:
        user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                         "command": str(exec_plugin), "interactiveMode": "Never"}}
    contexts = ["primary-1", "edge-1", "edge-2", "lab-1"]
    config = {"apiVersion": "v1", "kind": "Config",
              "clusters": [{"name": "c", "cluster": {"server": server,
                                                     "insecure-skip-tls-verify": True}}],
              "users": [{"name": "u", "user": user}],
              "contexts": [{"name": n, "context": {"cluster": "c", "user": "u"}}
                           for n in contexts]}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A loopback server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def hanging_plugin(tmp_path: Path) -> tuple[Path, Path]:
    """An exec credential plugin that records its PID and hangs (sleep runs in its place)."""
    pid_file = tmp_path / "plugin.pid"
    plugin = tmp_path / "hang-credentials"
    plugin.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 600\n")
    plugin.chmod(0o755)
    return plugin, pid_file


@pytest.mark.parametrize("command", ["token", "status", "labels"])
def test_hanging_kubectl_is_killed_at_the_timeout(tmp_path: Path,
                                                  file_store_fleet: tuple[Path, Path],
                                                  command: str) -> None:
    fleet, store = file_store_fleet
    plugin, pid_file = hanging_plugin(tmp_path)
    config = kubeconfig(tmp_path, "https://127.0.0.1:1", exec_plugin=plugin)
    args = args_for(command, fleet)
    started = time.monotonic()
    done = k10fleet(*args, env={"KUBECONFIG": str(config), "K10FLEET_KUBECTL_TIMEOUT": "3"},
                    timeout=25)
    assert time.monotonic() - started < 20
    assert done.returncode == 3, done.stderr
    assert "no answer within 3 s" in done.stderr and "(--context " in done.stderr
    assert "Traceback" not in done.stderr
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # the plug-in was killed with kubectl
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
    assert not store.exists()


@pytest.mark.parametrize("command", ["token", "status"])
def test_api_server_that_never_answers_is_exit_3(tmp_path: Path, blackhole: str,
                                                 file_store_fleet: tuple[Path, Path],
                                                 command: str) -> None:
    fleet, store = file_store_fleet
    config = kubeconfig(tmp_path, blackhole)
    args = args_for(command, fleet)
    started = time.monotonic()
    done = k10fleet(*args, env={"KUBECONFIG": str(config), "K10FLEET_KUBECTL_TIMEOUT": "3"},
                    timeout=40)
    assert time.monotonic() - started < 30
    assert done.returncode == 3, done.stderr
    assert "(--context " in done.stderr
    assert not store.exists()


@pytest.mark.parametrize("command", ["token", "status"])
def test_stopped_server_is_exit_3_naming_the_context(tmp_path: Path,
                                                     file_store_fleet: tuple[Path, Path],
                                                     command: str) -> None:
    fleet, store = file_store_fleet
    config = kubeconfig(tmp_path, f"https://127.0.0.1:{free_port()}")  # nothing listens
    args = args_for(command, fleet)
    done = k10fleet(*args, env={"KUBECONFIG": str(config)}, timeout=40)
    assert done.returncode == 3, done.stderr
    assert any(f"{name} (--context {name})" in done.stderr
               for name in ("primary-1", "edge-1", "lab-1")), done.stderr
    assert not store.exists()


def test_broken_kubectl_is_exit_3_not_an_internal_error(tmp_path: Path,
                                                        write_fleet: WriteFleet) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    broken = bin_dir / "kubectl"
    broken.write_text("#!/nonexistent/interpreter\n")  # exec fails with ENOENT
    broken.chmod(0o755)
    fleet = write_fleet(example_fleet())
    done = k10fleet("status", fleet, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert done.returncode == 3, done.stderr
    assert "internal error" not in done.stderr and "cannot run" in done.stderr


def test_bad_kubectl_timeout_setting_is_named(write_fleet: WriteFleet) -> None:
    fleet = write_fleet(example_fleet())
    done = k10fleet("labels", fleet, env={"K10FLEET_KUBECTL_TIMEOUT": "forever"})
    assert done.returncode == 3
    assert "K10FLEET_KUBECTL_TIMEOUT='forever' is not a number of seconds" in done.stderr


# -- cluster data printed as tables: no escape codes, no forged rows -------------------------

def test_status_escape_codes_and_forged_rows_are_neutralised(tmp_path: Path,
                                                             write_fleet: WriteFleet) -> None:
    fleet = write_fleet(no_contexts_fleet())
    source = tmp_path / "edge-1.json"
    source.write_text(json.dumps(status_secret(
        "Failed\x1b[2J", "\x1b[32mall good\x1b[0m\nedge-2   Joined   fine\r")))
    result = run_cli("status", fleet, "--from", f"edge-1={source}")
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == 3  # header, edge-1, edge-2: no forged row
    assert lines[1].startswith("edge-1   Failed\\x1b[2J  \\x1b[32mall good")
    assert not any(line.startswith("edge-2   Joined") for line in lines)


def test_status_bidi_override_is_shown_escaped(tmp_path: Path, write_fleet: WriteFleet) -> None:
    fleet = write_fleet(no_contexts_fleet())
    source = tmp_path / "edge-1.json"
    source.write_text(json.dumps(status_secret("Joined", "ok \u202edenioj ton\u202c")))
    result = run_cli("status", fleet, "--from", f"edge-1={source}")
    assert "\u202e" not in result.stdout and "\\u202e" in result.stdout


def test_status_megabyte_message_is_cut(tmp_path: Path, write_fleet: WriteFleet) -> None:
    fleet = write_fleet(no_contexts_fleet())
    source = tmp_path / "edge-1.json"
    source.write_text(json.dumps(status_secret("Failed", "y" * 1024 * 1024)))
    result = run_cli("status", fleet, "--from", f"edge-1={source}")
    assert result.exit_code == 1 and len(result.stdout) < 2000
    assert "yyy..." in result.stdout


def test_labels_forged_keys_never_reach_the_table_or_kubectl(tmp_path: Path) -> None:
    evil = "\x1b]0;pwned\x07evil"
    listing = {"kind": "List", "items": [{
        "apiVersion": "dist.kio.kasten.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "edge-2",
                     "labels": {evil: "x", "a\nlab-1  in-sync": "y", "--all": "z"},
                     "annotations": {"k10fleet.io/managed-labels":
                                     f"{evil},a\nlab-1  in-sync,--all,env"}}}]}
    source = tmp_path / "clusters.json"
    source.write_text(json.dumps(listing))
    result = run_cli("labels", REPO / "fleet.yaml", "--from", source)
    assert result.exit_code == 1
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == 5  # header and the fleet's four clusters
    edge = next(line for line in lines if line.startswith("edge-2"))
    assert "evil" not in edge and "--all-" not in edge and "lab-1" not in edge


# -- where the token may go, and how big it may be -------------------------------------------

def test_store_inside_the_output_tree_is_refused(tmp_path: Path, write_fleet: WriteFleet) -> None:
    out = tmp_path / "output"
    data = example_fleet()
    assert run_cli("render", write_fleet(data), "-o", out).exit_code == 0
    store = out / "clusters" / "token.yaml"
    data["spec"]["tokens"]["store"] = f"file://{store}"
    fleet = write_fleet(data)
    source = tmp_path / "secret.json"
    source.write_text(json.dumps(join_token_secret()))
    result = run_cli("token", "import", fleet, "--from", source)
    assert result.exit_code == 2 and "lies inside the output tree" in result.output
    assert not store.exists()
    sops_store = f"sops://{out / 'token.sops.yaml'}"
    data["spec"]["tokens"]["store"] = sops_store
    result = run_cli("token", "import", write_fleet(data), "--from", source)
    assert result.exit_code == 2 and "lies inside the output tree" in result.output


def test_plaintext_store_inside_a_git_work_tree_is_refused(tmp_path: Path,
                                                          write_fleet: WriteFleet) -> None:
    repo = tmp_path / "repo"
    (repo / "secrets").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    data = example_fleet()
    store = repo / "secrets" / "token.yaml"
    data["spec"]["tokens"]["store"] = f"file://{store}"
    source = tmp_path / "secret.json"
    source.write_text(json.dumps(join_token_secret()))
    result = run_cli("token", "import", write_fleet(data), "--from", source)
    assert result.exit_code == 2 and f"inside the Git work tree {repo}" in result.output
    assert not store.exists()


def test_oversized_token_is_refused(tmp_path: Path, file_store_fleet: tuple[Path, Path]) -> None:
    fleet, store = file_store_fleet
    source = tmp_path / "secret.json"
    source.write_text(json.dumps(join_token_secret("t" * 100_000)))
    result = run_cli("token", "import", fleet, "--from", source)
    assert result.exit_code == 1 and "at most 16384 bytes" in result.output
    assert not store.exists()


def test_ten_megabyte_token_is_refused(tmp_path: Path, file_store_fleet: tuple[Path, Path]) -> None:
    fleet, store = file_store_fleet
    source = tmp_path / "secret.json"
    source.write_text(json.dumps(join_token_secret("t" * 10 * 1024 * 1024)))
    result = run_cli("token", "import", fleet, "--from", source)
    assert result.exit_code == 1 and "larger than" in result.output
    assert not store.exists()


def test_token_with_control_characters_is_refused(tmp_path: Path,
                                                  file_store_fleet: tuple[Path, Path]) -> None:
    fleet, store = file_store_fleet
    source = tmp_path / "secret.json"
    source.write_text(json.dumps(join_token_secret("abc\ndef\x1b[0m")))
    result = run_cli("token", "import", fleet, "--from", source)
    assert result.exit_code == 1 and "spaces or control characters" in result.output
    assert "def" not in result.output
    assert not store.exists()


def test_megabyte_type_is_not_echoed(tmp_path: Path, file_store_fleet: tuple[Path, Path]) -> None:
    fleet, _ = file_store_fleet
    source = tmp_path / "secret.json"
    source.write_text(json.dumps(join_token_secret(type="T" * 1024 * 1024)))
    result = run_cli("token", "import", fleet, "--from", source)
    assert result.exit_code == 1 and "not a K10 join-token Secret" in result.output
    assert len(result.output) < 1000


def test_thousands_of_other_secrets_are_not_all_listed(
        tmp_path: Path, file_store_fleet: tuple[Path, Path]) -> None:
    fleet, _ = file_store_fleet
    listing = {"kind": "List", "items": [
        {"kind": "Secret", "metadata": {"name": f"other-{i:05d}"}} for i in range(5000)]}
    source = tmp_path / "list.json"
    source.write_text(json.dumps(listing))
    result = run_cli("token", "import", fleet, "--from", source)
    assert result.exit_code == 1 and "no Secret named 'join-token-secret'" in result.output
    assert len(result.output) < 1000


@pytest.mark.parametrize("content", ["", "  \n\n"])
def test_empty_input_says_it_was_empty(tmp_path: Path, file_store_fleet: tuple[Path, Path],
                                       content: str) -> None:
    fleet, _ = file_store_fleet
    done = k10fleet("token", "import", fleet, "--from", "-", input=content, stdin=None)
    assert done.returncode == 1
    assert "<stdin>:1:1: error: the input was empty" in done.stderr


def test_inject_refuses_an_oversized_token_from_any_store(tmp_path: Path,
                                                          file_store_fleet: tuple[Path, Path],
                                                          age_key: str) -> None:
    fleet, store = file_store_fleet
    store.write_text(yaml.safe_dump({"token": "t" * 200_000}))  # put there by hand
    store.chmod(0o600)
    data = yaml.safe_load(fleet.read_text())
    for key in ("policies", "profiles", "distributions"):
        data["spec"].pop(key, None)
    fleet.write_text(yaml.safe_dump(data))
    out = tmp_path / "output"
    result = run_cli("inject", fleet, "-o", out, "--age", age_key)
    assert result.exit_code == 3, result.output
    assert "'token' holds 200000 bytes" in result.output
    assert not out.exists()


def test_status_asks_many_hanging_secondaries_at_once(tmp_path: Path, blackhole: str,
                                                      write_fleet: WriteFleet) -> None:
    data = no_contexts_fleet()
    data["spec"]["secondaries"] = [{"name": f"edge-{i}", "kubeContext": "edge-1"}
                                   for i in range(8)]
    fleet = write_fleet(data)
    config = kubeconfig(tmp_path, blackhole)
    started = time.monotonic()
    done = k10fleet("status", fleet, env={"KUBECONFIG": str(config),
                                          "K10FLEET_KUBECTL_TIMEOUT": "4"}, timeout=60)
    took = time.monotonic() - started
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("(--context edge-1)") == 8
    assert took < 4 * 8 / 2  # eight sequential timeouts would take 32 s or more


@pytest.mark.parametrize("command", ["token", "status"])
def test_secret_text_given_as_from_path_is_never_echoed(
        file_store_fleet: tuple[Path, Path], command: str) -> None:
    """`--from "$(kubectl get secret ... -o json)"`: the value is the Secret, not a path."""
    fleet, store = file_store_fleet
    token = "eyJ" + "Q" * 300
    text = json.dumps({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "join-token-secret"},
                       "type": "dist.kio.kasten.io/join-token", "data": {"token": b64(token)}})
    result = run_cli(*args_for(command, fleet, text))
    assert result.exit_code == 2, result.output
    assert b64(token)[:24] not in result.output and token[:24] not in result.output
    assert "not a file name" in result.output
    assert not store.exists()
