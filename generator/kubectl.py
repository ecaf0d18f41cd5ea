"""The one home of kubectl: found one way, run with a deadline, every failure exit 3.

Every call that reaches a cluster names the cluster's ``--context`` (and ``--kubeconfig``) in
its error, so a CI log says which cluster failed. kubectl runs in a session of its own: a
timeout kills it together with anything it started (exec credential plugins), and its output
is read with a size cap, so neither a hanging plug-in nor a flooding API server can stall or
exhaust k10fleet. Output of kubectl and saved kubectl output (``--from FILE``) are parsed here
too, as untrusted input: bounded in size, YAML aliases refused (kubectl never writes them).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import stat
import subprocess
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

import yaml

from generator.errors import EnvironmentFailure, InvalidInput, UsageFailure
from generator.problems import RuleId
from generator.tables import clean
from generator.tools import find_tool

if TYPE_CHECKING:
    from generator.fleet.model import Cluster

DEFAULT_TIMEOUT = 30.0  # seconds per kubectl call; K10FLEET_KUBECTL_TIMEOUT overrides
MAX_OUTPUT = 64 * 1024 * 1024  # what one kubectl call may print
SECRET_INPUT_LIMIT = 4 * 1024 * 1024  # a saved Secret: Kubernetes caps Secret data at 1 MiB
LIST_INPUT_LIMIT = 64 * 1024 * 1024  # a saved listing of Cluster objects


class KubectlFailure(EnvironmentFailure):
    """kubectl is missing, timed out or failed against a cluster (exit 3)."""


def timeout_seconds() -> float:
    raw = os.environ.get("K10FLEET_KUBECTL_TIMEOUT", "")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise KubectlFailure(f"K10FLEET_KUBECTL_TIMEOUT={clean(raw, 40)!r} is not a number of "
                             "seconds between 0 and 3600")
    return value


def find_kubectl() -> str:
    found = find_tool("kubectl")
    if found is None:
        raise KubectlFailure("kubectl is not on PATH: install it (or pass --from FILE with "
                             "saved kubectl output)")
    return found


def where(cluster: Cluster) -> str:
    """How an error names the cluster: its context (and kubeconfig)."""
    place = f"--context {cluster.kube_context}"
    if cluster.kubeconfig:
        place += f" --kubeconfig {cluster.kubeconfig}"
    return f"{cluster.name} ({place})"


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _collect(process: subprocess.Popen[bytes], deadline: float,
             limit: int) -> tuple[bytes, bytes, str | None]:
    """Read stdout and stderr until both close; the reason when stopped early."""
    assert process.stdout is not None and process.stderr is not None
    out_fd, err_fd = process.stdout.fileno(), process.stderr.fileno()
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    size = 0
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b"", b"", "timeout"
            for key, _ in selector.select(remaining):
                fd = int(key.fd)
                data = os.read(fd, 65536)
                if not data:
                    selector.unregister(fd)
                    continue
                size += len(data)
                if size > limit:
                    return b"", b"", "too much output"
                chunks[fd].append(data)
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd]), None


def run_bounded(argv: Sequence[str], *, what: str, timeout: float | None = None,
                limit: int = MAX_OUTPUT) -> tuple[int, bytes, bytes]:
    """(exit status, stdout, stderr) of a program, killed with its children at the deadline.
    Its stdin is /dev/null: nothing it starts can wait for a person at the terminal."""
    seconds = timeout if timeout is not None else timeout_seconds()
    deadline = time.monotonic() + seconds
    try:
        process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        raise KubectlFailure(f"{what}: cannot run {argv[0]}: {e.strerror}") from None
    try:
        out, err, stopped = _collect(process, deadline, limit)
    except BaseException:
        _kill(process)
        raise
    if stopped == "timeout":
        _kill(process)
        raise KubectlFailure(f"{what}: no answer within {seconds:g} s (K10FLEET_KUBECTL_TIMEOUT)")
    if stopped:
        _kill(process)
        raise KubectlFailure(f"{what}: more than {limit} bytes of output; refused")
    try:
        status = process.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(process)
        raise KubectlFailure(f"{what}: no answer within {seconds:g} s "
                             "(K10FLEET_KUBECTL_TIMEOUT)") from None
    return status, out, err


def failure_reason(stderr: bytes, status: int) -> str:
    """kubectl's last error line, made safe to print (no escape codes), cut."""
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return clean(lines[-1], 300) if lines else f"kubectl exited with status {status}"


def run(cluster: Cluster, args: Sequence[str], *, what: str, limit: int = MAX_OUTPUT) -> bytes:
    """stdout of ``kubectl --context C [--kubeconfig K] ARGS``; KubectlFailure otherwise."""
    if not cluster.kube_context:
        field = "spec.primary.kubeContext" if cluster.is_primary else "its kubeContext"
        raise KubectlFailure(f"{what}: {field} is not set for {cluster.name}, so k10fleet does "
                             "not know which cluster to ask; set it, or pass --from FILE")
    seconds = timeout_seconds()
    argv = [find_kubectl(), *cluster.kubectl_flags(), *args,
            f"--request-timeout={max(1, int(seconds))}s"]
    label = f"{what} on {where(cluster)}"
    status, out, err = run_bounded(argv, what=label, timeout=seconds, limit=limit)
    if status != 0:
        raise KubectlFailure(f"{label}: {failure_reason(err, status)}")
    return out


class _NoAliasLoader(yaml.SafeLoader):
    """kubectl prints no anchors or aliases; refusing them stops alias bombs at the door."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases are not kubectl output")
        return super().compose_node(parent, index)


def parse_output(text: str) -> Any:
    """What ``kubectl get -o json`` (or ``-o yaml``) printed; ValueError when it is neither.
    The parser's own message is dropped: it would quote the input, which may hold a secret."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except (yaml.YAMLError, RecursionError):
        raise ValueError("not kubectl JSON or YAML output") from None


def read_bounded(stream: IO[bytes], limit: int) -> bytes | None:
    """At most ``limit`` bytes of a stream; None when it holds more."""
    data = stream.read(limit + 1)
    return None if len(data) > limit else data


def read_saved(path: str, stdin: IO[bytes] | None, limit: int) -> str:
    """Saved kubectl output from a regular file (or stdin for ``-``): text, bounded.

    FIFOs and devices are refused before anything is read (``/dev/zero`` never ends, a FIFO
    without a writer never answers)."""
    source = "<stdin>" if path == "-" else path
    if path == "-":
        assert stdin is not None
        data = read_bounded(stdin, limit)
    else:
        data = _read_regular(path, limit)
    if data is None:
        raise bad_output(source, f"larger than {limit} bytes: not the kubectl output expected "
                         "here", rule="size")
    if not data.strip():
        raise bad_output(source, "the input was empty: expected kubectl JSON or YAML output",
                         rule="yaml")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageFailure(f"--from {source} is not text (expected kubectl JSON or "
                           "YAML)") from None


def shown_path(path: str) -> str:
    """``path`` as an error may show it: a value that is no file name (say the Secret's JSON
    passed where its file belongs) could hold a token, so it is never echoed."""
    if len(path) > 255 or any(c in path for c in "{}\n\r\"'") or not path.isprintable():
        return "(the value given is not a file name and is not shown; pass a file, or - for " \
            "stdin)"
    return path


def _read_regular(path: str, limit: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise UsageFailure(f"--from: cannot read {shown_path(path)}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not _is_regular(handle.fileno()):
            raise UsageFailure(f"--from {path} is not a regular file (a FIFO, device or "
                               "folder); save the kubectl output to a file, or use - for stdin")
        try:
            return read_bounded(handle, limit)
        except OSError as e:
            raise UsageFailure(f"--from: cannot read {shown_path(path)}: {e.strerror}") from None


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


def bad_output(source: str, message: str, rule: RuleId) -> InvalidInput:
    """Kubectl output (saved or live) that is not what was asked for: exit 1 at ``source``."""
    return InvalidInput.in_file(source, message, rule=rule)


def object_name(obj: Any) -> str | None:
    """``metadata.name`` when it is text (hostile input may put anything there)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None
