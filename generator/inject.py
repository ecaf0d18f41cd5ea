"""What ``inject`` puts where: SOPS-encrypted Secrets for the tree, or plaintext files.

Nothing here writes the tree: ``sops_files`` returns the files, and the pipeline's inject step
hands them to the one writer (``generator.output``) together with the rendered files. Every
store read happens before any write, so a failing store changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as pysecrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from generator.fleet.model import Cluster, Fleet
from generator.output import (
    FileSpec,
    Manifest,
    WriteResult,
    read_tree_file,
    write_private_files,
)
from generator.render.eso import needs_endpoint
from generator.render.global_resources import (
    credential_file,
    credential_secret,
    credentialed_profiles,
)
from generator.render.layout import MC_JOIN_SOPS_FILE, cluster_dir
from generator.render.templates import object_meta
from generator.render.tree import join_config_data, mc_join_secret
from generator.render.yamlout import dump
from generator.secrets import sops
from generator.secrets.base import open_store, optional
from generator.tokens import JoinToken


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


@dataclass
class InjectOutcome:
    fleet: Fleet
    written: WriteResult | None = None
    plain_files: list[str] = field(default_factory=list)
    encryptions: int = 0
    kept: int = 0
    out_dir: str = ""  # the tree written (absolute)


def join_targets(fleet: Fleet) -> list[Cluster]:
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


def secret_plaintexts(fleet: Fleet, joined: JoinToken,
                       credentials: dict[str, dict[str, str]]) -> list[tuple[str, str, bytes]]:
    """(path in the tree, what, plaintext Secret) for everything inject encrypts."""
    items = [(f"{cluster_dir(s.name)}/{MC_JOIN_SOPS_FILE}", "mc-join",
              mc_join_secret(fleet, s, joined.token,
                             joined.endpoint if needs_endpoint(s) else None).encode())
             for s in join_targets(fleet)]
    for profile in credentialed_profiles(fleet):
        items.append((f"{cluster_dir(fleet.primary.name)}/"
                      f"{credential_file(profile, '.sops.yaml')}", f"profile {profile.name}",
                      credential_secret(fleet, profile, credentials[profile.name]).encode()))
    return items


def sops_files(out_dir: str, old: Manifest, secrets: list[tuple[str, str, bytes]],
                age: Sequence[str], outcome: InjectOutcome) -> dict[str, FileSpec]:
    """One SOPS file per Secret; unchanged ones keep their bytes, equal ones share."""
    files: dict[str, FileSpec] = {}
    fresh: dict[bytes, FileSpec] = {}
    verified: dict[tuple[str, bytes], bool] = {}
    for rel, what, plaintext in secrets:
        recipients = sops.age_recipients(out_dir, age, rel)
        entry = old.files.get(rel, {})
        stored = entry.get("fingerprint", "")
        if stored and entry.get("owner") == "inject":
            key = (stored, plaintext)
            if key not in verified:
                verified[key] = fingerprint_matches(stored, plaintext, recipients)
            content = read_tree_file(out_dir, rel) if verified[key] else None
            if content is not None:  # never read through a symlink
                files[rel] = FileSpec(content, owner="inject", fingerprint=stored)
                outcome.kept += 1
                continue
        shared = plaintext + b"\0" + ",".join(recipients).encode()
        if shared not in fresh:
            # identical Secrets (same namespace, token and recipients) may share one
            # encryption: the same plaintext under the same data key is one valid SOPS file
            content = sops.encrypt(plaintext, recipients, MC_JOIN_SOPS_FILE, what)
            fresh[shared] = FileSpec(content, owner="inject",
                                     fingerprint=fingerprint(plaintext, recipients))
            outcome.encryptions += 1
        files[rel] = fresh[shared]
    return files


PLAIN_HEADER = "# Apply against "  # how k10fleet's plaintext files begin


def _plain_documents(fleet: Fleet, secondary: Cluster, joined: JoinToken) -> str:
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": object_meta(fleet.name, "mc-join-config", secondary.kasten.namespace,
                                      {}),
              "data": join_config_data(fleet, secondary)}
    secret = mc_join_secret(fleet, secondary, joined.token,
                            joined.endpoint if needs_endpoint(secondary) else None)
    return (f"{PLAIN_HEADER}secondary {secondary.name}: kubectl apply -f {secondary.name}.yaml"
            f"\n# Contains the join token in plaintext: keep it out of Git, delete it after use."
            f"\n{dump(config)}---\n{secret}")


def write_plain(fleet: Fleet, plain_dir: str, joined: JoinToken,
                credentials: dict[str, dict[str, str]]) -> list[str]:
    files = {f"{s.name}.yaml": _plain_documents(fleet, s, joined).encode()
             for s in join_targets(fleet)}
    profiles = credentialed_profiles(fleet)
    if profiles:
        primary = fleet.primary.name
        text = (f"{PLAIN_HEADER}primary {primary}: kubectl apply -f {primary}.yaml\n"
                "# Contains profile credentials in plaintext: keep it out of Git, delete it "
                "after use.\n" + "---\n".join(
                    credential_secret(fleet, p, credentials[p.name]) for p in profiles))
        files[f"{primary}.yaml"] = text.encode()
    return write_private_files(plain_dir, files, PLAIN_HEADER.encode())
