"""The join token's path: import from the primary, inject into secondaries, read join status.

The token is never printed, logged or put in an exception message. Every store read
happens before any write, so a failing store changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import re
import secrets as pysecrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from generator.errors import InvalidInput, UsageFailure
from generator.fleet.model import MC_NAMESPACE, Cluster, Fleet
from generator.fleet.validate import load_fleet
from generator.output import FileSpec, Manifest, WriteResult, read_manifest, write_tree
from generator.problems import Problem
from generator.render.central import credential_file, credential_secret, credentialed_profiles
from generator.render.fleet import (
    JOIN_TOKEN_TYPE,
    MC_JOIN_SOPS_FILE,
    cluster_dir,
    join_config_data,
    mc_join_secret,
    needs_endpoint,
)
from generator.render.templates import object_meta
from generator.render.yamlout import dump
from generator.secrets.base import ENDPOINT_KEY, TOKEN_KEY, StoreError, open_store, optional
from generator.secrets.sops import find_sops_config, run_sops
from generator.tools import atomic_write, load_kubectl_output

ENCRYPTED_REGEX = "^(data|stringData)$"
_AGE_RECIPIENT = re.compile(r"age1[0-9a-z]{58}\Z")


@dataclass(frozen=True)
class JoinToken:
    token: str
    endpoint: str | None = None


def _bad_input(source: str, message: str) -> InvalidInput:
    return InvalidInput([Problem(source, 1, 1, "", message, rule="token")])


def parse_join_token_secret(text: str, source: str, expected_name: str) -> JoinToken:
    """Read ``kubectl get secret NAME -n kasten-io-mc -o json|yaml`` output (or a List)."""
    try:
        doc = load_kubectl_output(text)
    except ValueError:
        raise _bad_input(source, "not the JSON or YAML that kubectl get secret prints "
                         f"(run: kubectl get secret {expected_name} -n {MC_NAMESPACE} "
                         "-o json)") from None
    if not isinstance(doc, dict):
        raise _bad_input(source, "expected a Kubernetes Secret (or List) object")
    items = doc.get("items") if doc.get("kind") == "List" else [doc]
    if not isinstance(items, list):
        raise _bad_input(source, "a List without items")
    secrets_found = [i for i in items if isinstance(i, dict) and i.get("kind") == "Secret"]
    named = [s for s in secrets_found
             if isinstance(s.get("metadata"), dict) and s["metadata"].get("name") == expected_name]
    if not named:
        names = sorted(str((s.get("metadata") or {}).get("name")) for s in secrets_found)
        raise _bad_input(source, f"no Secret named {expected_name!r} (tokens.joinTokenSecret); "
                         f"found {', '.join(names) or 'no Secret'}")
    secret = named[0]
    if secret.get("type") != JOIN_TOKEN_TYPE:
        raise _bad_input(source, f"Secret {expected_name!r} has type {secret.get('type')!r}, "
                         f"not {JOIN_TOKEN_TYPE}: this is not a K10 join-token Secret")
    data = secret.get("data") or {}
    if not isinstance(data, dict) or not data.get("token"):
        raise _bad_input(source, f"Secret {expected_name!r} has no token yet: K10 fills it in "
                         "once the primary is promoted; wait and run again")
    try:
        token = base64.b64decode(str(data["token"]), validate=True).decode("utf-8").strip()
        endpoint_raw = data.get("endpoint")
        endpoint = (base64.b64decode(str(endpoint_raw), validate=True).decode().strip()
                    if endpoint_raw else None)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad_input(source, f"Secret {expected_name!r} data is not valid base64") from None
    if not token:
        raise _bad_input(source, f"Secret {expected_name!r} holds an empty token")
    return JoinToken(token, endpoint or None)


def import_token(fleet_path: str, text: str, source: str) -> tuple[Fleet, bool]:
    """Store the primary's join token (and endpoint) in the fleet's store."""
    fleet, _ = load_fleet(fleet_path)
    joined = parse_join_token_secret(text, source, fleet.tokens.join_token_secret)
    store = open_store(fleet.tokens.store)
    store.put(TOKEN_KEY, joined.token)
    if joined.endpoint:
        store.put(ENDPOINT_KEY, joined.endpoint)
    return fleet, joined.endpoint is not None


def read_token(fleet: Fleet, secondaries: Sequence[Cluster]) -> JoinToken:
    """Everything inject needs from the store, read before anything is written."""
    store = open_store(fleet.tokens.store)
    token = store.get(TOKEN_KEY)
    endpoint = None
    if any(needs_endpoint(s) for s in secondaries):
        endpoint = optional(store, ENDPOINT_KEY)
        if endpoint is None:
            raise StoreError(store.name, "secondaries on K10 6.5.8-6.5.13 need the primary's "
                             "endpoint too; re-run k10fleet token import (the join-token "
                             "Secret carries it)")
    return JoinToken(token, endpoint)


def fingerprint(plaintext: bytes, recipients: Sequence[str], salt: bytes | None = None) -> str:
    """Salted digest that tells whether a secret must be re-encrypted, without decrypting.

    The token is long and random, so a salted SHA-256 cannot be inverted; the salt keeps
    equal tokens in different trees from looking alike.
    """
    salt = salt or pysecrets.token_bytes(16)
    digest = hmac.new(salt, plaintext + "\0".join(sorted(recipients)).encode(),
                      hashlib.sha256).hexdigest()
    return f"hmac-sha256:{salt.hex()}:{digest}"


def fingerprint_matches(stored: str, plaintext: bytes, recipients: Sequence[str]) -> bool:
    try:
        scheme, salt, _ = stored.split(":")
        if scheme != "hmac-sha256":
            return False
        expected = fingerprint(plaintext, recipients, bytes.fromhex(salt))
    except ValueError:
        return False
    return hmac.compare_digest(expected, stored)


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
                matches = pattern is None or re.search(str(pattern), relative) is not None
            except re.error:
                raise UsageFailure(f"{config}: invalid path_regex {pattern!r}") from None
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


def encrypt(plaintext: bytes, recipients: Sequence[str], what: str = "mc-join") -> bytes:
    """SOPS-encrypt a Secret through pipes (no plaintext on disk), 2-space YAML."""
    with tempfile.TemporaryDirectory(prefix="k10fleet-sops-") as scratch:
        config = os.path.join(scratch, "sops.yaml")  # formatting only: holds no secret
        with open(config, "w", encoding="utf-8") as handle:
            handle.write("creation_rules:\n  - path_regex: .*\nstores:\n  yaml:\n    indent: 2\n")
        return run_sops(f"(encrypting {what} with sops)", [
            "--config", config, "--encrypt", "--age", ",".join(recipients),
            "--encrypted-regex", ENCRYPTED_REGEX, "--input-type", "yaml", "--output-type",
            "yaml", "--filename-override", MC_JOIN_SOPS_FILE, "/dev/stdin"], stdin=plaintext)


@dataclass
class InjectOutcome:
    fleet: Fleet
    written: WriteResult | None = None
    plain_files: list[str] = field(default_factory=list)
    encryptions: int = 0
    kept: int = 0
    out_dir: str = ""  # the tree written (absolute)


def _join_targets(fleet: Fleet) -> list[Cluster]:
    return [s for s in fleet.secondaries if s.join_with == "token"]


def read_profile_credentials(fleet: Fleet) -> dict[str, dict[str, str]]:
    """Each credentialed profile's values (required keys, and optional ones when present)."""
    values: dict[str, dict[str, str]] = {}
    for profile in credentialed_profiles(fleet):
        assert profile.credentials is not None
        store = open_store(profile.credentials.store)
        found = {key: store.get(key) for key in profile.credentials.format.required}
        for key in profile.credentials.format.optional:
            value = optional(store, key)
            if value is not None:
                found[key] = value
        values[profile.name] = found
    return values


def _secret_plaintexts(fleet: Fleet, joined: JoinToken,
                       credentials: dict[str, dict[str, str]]) -> list[tuple[str, str, bytes]]:
    """(path in the tree, what, plaintext Secret) for everything inject encrypts."""
    items = [(f"{cluster_dir(s.name)}/{MC_JOIN_SOPS_FILE}", "mc-join",
              mc_join_secret(fleet, s, joined.token,
                             joined.endpoint if needs_endpoint(s) else None).encode())
             for s in _join_targets(fleet)]
    for profile in credentialed_profiles(fleet):
        items.append((f"{cluster_dir(fleet.primary.name)}/"
                      f"{credential_file(profile, '.sops.yaml')}", f"profile {profile.name}",
                      credential_secret(fleet, profile, credentials[profile.name]).encode()))
    return items


def _sops_files(out_dir: str, old: Manifest, secrets: list[tuple[str, str, bytes]],
                age: Sequence[str], outcome: InjectOutcome) -> dict[str, FileSpec]:
    """One SOPS file per Secret; unchanged ones keep their bytes, equal ones share."""
    files: dict[str, FileSpec] = {}
    fresh: dict[bytes, FileSpec] = {}
    verified: dict[tuple[str, bytes], bool] = {}
    for rel, what, plaintext in secrets:
        recipients = age_recipients(out_dir, age, rel)
        entry = old.files.get(rel, {})
        stored = entry.get("fingerprint", "")
        if stored and entry.get("owner") == "inject":
            key = (stored, plaintext)
            if key not in verified:
                verified[key] = fingerprint_matches(stored, plaintext, recipients)
            path = os.path.join(out_dir, rel)
            if verified[key] and os.path.isfile(path):
                with open(path, "rb") as handle:
                    files[rel] = FileSpec(handle.read(), owner="inject", fingerprint=stored)
                outcome.kept += 1
                continue
        shared = plaintext + b"\0" + ",".join(recipients).encode()
        if shared not in fresh:
            # identical Secrets (same namespace, token and recipients) may share one
            # encryption: the same plaintext under the same data key is one valid SOPS file
            content = encrypt(plaintext, recipients, what)
            fresh[shared] = FileSpec(content, owner="inject",
                                     fingerprint=fingerprint(plaintext, recipients))
            outcome.encryptions += 1
        files[rel] = fresh[shared]
    return files


def inside_git_work_tree(path: str) -> str | None:
    """The work tree root containing ``path`` (symlinks resolved), if any."""
    current = os.path.realpath(path)
    while True:
        if os.path.exists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _plain_documents(fleet: Fleet, secondary: Cluster, joined: JoinToken) -> str:
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": object_meta(fleet.name, "mc-join-config", secondary.kasten.namespace,
                                      {}),
              "data": join_config_data(fleet, secondary)}
    secret = mc_join_secret(fleet, secondary, joined.token,
                            joined.endpoint if needs_endpoint(secondary) else None)
    return (f"# Apply against secondary {secondary.name}: kubectl apply -f {secondary.name}.yaml"
            f"\n# Contains the join token in plaintext: keep it out of Git, delete it after use."
            f"\n{dump(config)}---\n{secret}")


def _write_plain(fleet: Fleet, plain_dir: str, joined: JoinToken,
                 credentials: dict[str, dict[str, str]]) -> list[str]:
    os.makedirs(plain_dir, mode=0o700, exist_ok=True)
    os.chmod(plain_dir, 0o700)
    written = []
    for secondary in _join_targets(fleet):
        target = os.path.join(plain_dir, f"{secondary.name}.yaml")
        atomic_write(target, _plain_documents(fleet, secondary, joined).encode(), 0o600)
        written.append(target)
    profiles = credentialed_profiles(fleet)
    if profiles:
        primary = fleet.primary.name
        text = (f"# Apply against primary {primary}: kubectl apply -f {primary}.yaml\n"
                "# Contains profile credentials in plaintext: keep it out of Git, delete it "
                "after use.\n" + "---\n".join(
                    credential_secret(fleet, p, credentials[p.name]) for p in profiles))
        target = os.path.join(plain_dir, f"{primary}.yaml")
        atomic_write(target, text.encode(), 0o600)
        written.append(target)
    return written


def inject(fleet_path: str, out_dir: str | None, *, age: Sequence[str] = (),
           plain_dir: str | None = None) -> InjectOutcome:
    """Fill every secondary's mc-join from the store: SOPS files in the tree, or plain files."""
    from generator import pipeline

    fleet, _ = load_fleet(fleet_path)
    mode = fleet.tokens.mode
    if mode in ("external-secrets", "vault-plugin"):
        raise UsageFailure(f"tokens.mode {mode} needs no inject: render writes the objects "
                           "that fetch the token at sync time")
    if mode == "plain":
        if not plain_dir:
            raise UsageFailure("tokens.mode plain writes plaintext Secrets only to --plain-dir "
                               "DIR, a folder outside every Git work tree")
        repo = inside_git_work_tree(plain_dir)
        if repo is not None:
            raise UsageFailure(f"--plain-dir {plain_dir} lies inside the Git work tree {repo}; "
                               "plaintext tokens must never be committed: choose a folder "
                               "outside it")
        joined = read_token(fleet, _join_targets(fleet))
        credentials = read_profile_credentials(fleet)
        return InjectOutcome(fleet, plain_files=_write_plain(fleet, plain_dir, joined,
                                                             credentials))
    if plain_dir:
        raise UsageFailure("--plain-dir is for tokens.mode plain; this fleet uses sops")
    out_dir = out_dir or pipeline.fleet_output_dir(fleet_path, fleet)
    pipeline.guard_output_dir(out_dir, fleet_path)
    for rel in pipeline.injected_paths(fleet):  # configuration problems before the stores
        age_recipients(out_dir, age, rel)
    old = read_manifest(out_dir)
    joined = read_token(fleet, _join_targets(fleet))  # all reads before any write
    credentials = read_profile_credentials(fleet)
    outcome = InjectOutcome(fleet, out_dir=os.path.abspath(out_dir))
    injected = _sops_files(out_dir, old, _secret_plaintexts(fleet, joined, credentials), age,
                           outcome)
    files, clusters = pipeline.desired_files(fleet, out_dir, old, injected=injected)
    outcome.written = write_tree(out_dir, files, pipeline.manifest_meta(fleet, clusters))
    pipeline.remember_inputs(out_dir, pipeline.input_fingerprint(fleet_path))
    return outcome


@dataclass(frozen=True)
class JoinStatus:
    cluster: str
    status: str
    message: str


def parse_join_status(cluster: str, text: str) -> JoinStatus:
    """One secondary's ``kubectl get secret mc-join-status -n kasten-io -o json``."""
    try:
        doc = load_kubectl_output(text)
    except ValueError:
        return JoinStatus(cluster, "unreadable", "not kubectl JSON/YAML output")
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict):
        return JoinStatus(cluster, "unknown", "no mc-join-status data yet (join not started?)")

    def decoded(key: str) -> str:
        try:
            return base64.b64decode(str(data.get(key, "")), validate=True).decode().strip()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return "(undecodable)"

    return JoinStatus(cluster, decoded("status") or "unknown", decoded("msg"))


def collect_status(fleet_path: str, given: dict[str, str]) -> list[JoinStatus]:
    """Status per secondary: from given outputs, else by running kubectl with its context."""
    fleet, _ = load_fleet(fleet_path)
    results = []
    kubectl = shutil.which("kubectl")
    for secondary in _join_targets(fleet):
        if secondary.name in given:
            results.append(parse_join_status(secondary.name, given[secondary.name]))
            continue
        if not secondary.kube_context:
            results.append(JoinStatus(secondary.name, "unknown",
                                      "no kubeContext in the fleet; pass --from "
                                      f"{secondary.name}=FILE"))
            continue
        if kubectl is None:
            results.append(JoinStatus(secondary.name, "unknown", "kubectl not on PATH"))
            continue
        args = [kubectl, *secondary.kubectl_flags(), "get", "secret", "mc-join-status", "-n",
                secondary.kasten.namespace, "-o", "json", "--request-timeout", "10s"]
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=30)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["kubectl failed"])[-1][:200]
            results.append(JoinStatus(secondary.name, "unknown", reason))
        else:
            results.append(parse_join_status(secondary.name, done.stdout))
    return results


def status_as_json(results: Sequence[JoinStatus]) -> str:
    return json.dumps([{"cluster": r.cluster, "status": r.status, "message": r.message}
                       for r in results], indent=2)


def status_table(results: Sequence[JoinStatus]) -> str:
    rows: list[tuple[str, ...]] = [("CLUSTER", "STATUS", "MESSAGE")]
    rows += [(r.cluster, r.status, r.message) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows)


