"""The join token: imported from the primary into the fleet's store, read back for inject.

The token is never printed, logged or put in an exception message. Every store read
happens before any write, so a failing store changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from generator import kubectl
from generator.errors import InvalidInput, UsageFailure
from generator.fleet.model import MC_NAMESPACE, Cluster, Fleet
from generator.fleet.validate import load_fleet
from generator.output import MANIFEST
from generator.render.eso import needs_endpoint
from generator.render.layout import JOIN_TOKEN_TYPE
from generator.secrets.base import ENDPOINT_KEY, TOKEN_KEY, StoreError, open_store, optional
from generator.tables import clean

MAX_TOKEN_BYTES = 16 * 1024  # K10's tokens are a few hundred bytes; a Secret holds 1 MiB
MAX_ENDPOINT_BYTES = 2048
_PRINTABLE = re.compile(r"[\x21-\x7e]+\Z")  # no spaces, no control codes, ASCII


@dataclass(frozen=True)
class JoinToken:
    token: str
    endpoint: str | None = None


def _bad_input(source: str, message: str) -> InvalidInput:
    return kubectl.bad_output(source, message, rule="tokens")


def _named_secret(doc: object, source: str, expected_name: str) -> dict[str, object]:
    if not isinstance(doc, dict):
        raise _bad_input(source, "expected a Kubernetes Secret (or List) object")
    items = doc.get("items") if doc.get("kind") == "List" else [doc]
    if not isinstance(items, list):
        raise _bad_input(source, "a List without items")
    secrets_found = [i for i in items if isinstance(i, dict) and i.get("kind") == "Secret"]
    names = [kubectl.object_name(s) for s in secrets_found]
    for secret, name in zip(secrets_found, names, strict=True):
        if name == expected_name:
            return secret
    shown = sorted(clean(repr(n), 80) for n in names if n is not None)[:10]
    raise _bad_input(source, f"no Secret named {expected_name!r} (tokens.joinTokenSecret); "
                     f"found {', '.join(shown) or 'no Secret'}")


def _decoded(source: str, name: str, value: object, limit: int) -> str:
    """One base64 data value as printable ASCII of at most ``limit`` bytes."""
    if not isinstance(value, str) or len(value) > limit * 4 // 3 + 4:
        raise _bad_input(source, f"Secret {name!r} data is not a base64 string of at most "
                         f"{limit} bytes")
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8").strip()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad_input(source, f"Secret {name!r} data is not valid base64") from None
    if text and not _PRINTABLE.match(text):
        raise _bad_input(source, f"Secret {name!r} data holds spaces or control characters: "
                         "not a K10 join token")
    return text


def parse_join_token_secret(text: str, source: str, expected_name: str) -> JoinToken:
    """Read ``kubectl get secret NAME -n kasten-io-mc -o json|yaml`` output (or a List)."""
    try:
        doc = kubectl.parse_output(text)
    except ValueError:
        raise _bad_input(source, "not the JSON or YAML that kubectl get secret prints "
                         f"(run: kubectl get secret {expected_name} -n {MC_NAMESPACE} "
                         "-o json)") from None
    secret = _named_secret(doc, source, expected_name)
    kind = secret.get("type")
    if kind != JOIN_TOKEN_TYPE:
        shown = repr(kind) if isinstance(kind, str | None) else "a non-text value"
        raise _bad_input(source, f"Secret {expected_name!r} has type {clean(shown, 80)}, "
                         f"not {JOIN_TOKEN_TYPE}: this is not a K10 join-token Secret")
    data = secret.get("data") or {}
    if not isinstance(data, dict) or not data.get("token"):
        raise _bad_input(source, f"Secret {expected_name!r} has no token yet: K10 fills it in "
                         "once the primary is promoted; wait and run again")
    token = _decoded(source, expected_name, data["token"], MAX_TOKEN_BYTES)
    endpoint_raw = data.get("endpoint")
    endpoint = (_decoded(source, expected_name, endpoint_raw, MAX_ENDPOINT_BYTES)
                if endpoint_raw else None)
    if not token:
        raise _bad_input(source, f"Secret {expected_name!r} holds an empty token")
    return JoinToken(token, endpoint or None)


def read_from_primary(fleet: Fleet) -> tuple[str, str]:
    """(kubectl output, source label) of the join-token Secret, read from the primary."""
    name = fleet.tokens.join_token_secret
    what = f"reading Secret {name} in {MC_NAMESPACE}"
    out = kubectl.run(fleet.primary, ["get", "secret", name, "-n", MC_NAMESPACE,
                                      "--ignore-not-found", "-o", "json"], what=what,
                      limit=kubectl.SECRET_INPUT_LIMIT)
    source = f"kubectl get secret {name} on {kubectl.where(fleet.primary)}"
    if not out.strip():
        raise _bad_input(source, f"no Secret {name} in {MC_NAMESPACE} on the primary yet: K10 "
                         "creates it once the primary is promoted (or create it, then wait "
                         "for K10 to fill in the token)")
    return out.decode("utf-8", errors="replace"), source


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


def _output_tree_around(path: str, fleet: Fleet, fleet_path: str) -> str | None:
    """The k10fleet output tree ``path`` lies in: one with a manifest, or the fleet's own."""
    base = os.path.dirname(os.path.abspath(fleet_path))
    trees = {os.path.realpath(os.path.join(base, "output")), os.path.realpath("output")}
    if fleet.gitops.path != ".":
        trees.add(os.path.realpath(os.path.join(base, fleet.gitops.path)))
    current = os.path.dirname(path)
    while True:
        if current in trees or os.path.isfile(os.path.join(current, MANIFEST)):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def guard_store_location(fleet: Fleet, fleet_path: str) -> None:
    """A file store must never land where the token gets committed or rendered over: not in
    an output tree, and (for plaintext file:// stores) not in any Git work tree."""
    uri = fleet.tokens.store or ""
    scheme, _, location = uri.partition("://")
    if scheme not in ("file", "sops") or not location:
        return
    path = os.path.realpath(os.path.expanduser(location))
    tree = _output_tree_around(path, fleet, fleet_path)
    if tree is not None:
        raise UsageFailure(f"tokens.store {uri} lies inside the output tree {tree}, which is "
                           "committed and rewritten by render: keep the store outside it")
    repo = inside_git_work_tree(os.path.dirname(path)) if scheme == "file" else None
    if repo is not None:
        raise UsageFailure(f"tokens.store {uri} is a plaintext file inside the Git work tree "
                           f"{repo}: the token must never be committed; move the store outside "
                           "it, or use sops:// (encrypted) or vault://")


def import_token(fleet_path: str, source: str | None,
                 stdin: IO[bytes] | None = None) -> tuple[Fleet, bool]:
    """Store the primary's join token (and endpoint) in the fleet's store: read with kubectl
    from the primary, or from saved kubectl output (``source``: a file, or - for stdin)."""
    fleet, _ = load_fleet(fleet_path)
    guard_store_location(fleet, fleet_path)
    if source is None:
        text, label = read_from_primary(fleet)
    else:
        text = kubectl.read_saved(source, stdin, kubectl.SECRET_INPUT_LIMIT)
        label = "<stdin>" if source == "-" else source
    joined = parse_join_token_secret(text, label, fleet.tokens.join_token_secret)
    store = open_store(fleet.tokens.store)
    store.put(TOKEN_KEY, joined.token)
    if joined.endpoint:
        store.put(ENDPOINT_KEY, joined.endpoint)
    return fleet, joined.endpoint is not None


def read_token(fleet: Fleet, secondaries: Sequence[Cluster]) -> JoinToken:
    """Everything inject needs from the store, read before anything is written."""
    store = open_store(fleet.tokens.store)
    token = _bounded(store.name, TOKEN_KEY, store.get(TOKEN_KEY), MAX_TOKEN_BYTES)
    endpoint = None
    if any(needs_endpoint(s) for s in secondaries):
        endpoint = optional(store, ENDPOINT_KEY)
        if endpoint is None:
            raise StoreError(store.name, "secondaries on K10 6.5.8-6.5.13 need the primary's "
                             "endpoint too; re-run k10fleet token import (the join-token "
                             "Secret carries it)")
        endpoint = _bounded(store.name, ENDPOINT_KEY, endpoint, MAX_ENDPOINT_BYTES)
    return JoinToken(token, endpoint)


def _bounded(store: str, key: str, value: str, limit: int) -> str:
    """A stored join value as inject may write it: at most ``limit`` bytes of printable
    ASCII (whatever put it in the store, the rendered Secret must pass check)."""
    size = len(value.encode())
    if size > limit:
        raise StoreError(store, f"{key!r} holds {size} bytes; a K10 join {key} is at most "
                         f"{limit}: is it the right value?")
    if not _PRINTABLE.match(value.strip()):
        raise StoreError(store, f"{key!r} holds spaces or control characters: not a K10 join "
                         f"{key}")
    return value.strip()


