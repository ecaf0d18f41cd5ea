"""External Secrets Operator objects' specs: the PushSecret that sends the join token to the
store, the ExternalSecrets that build mc-join and profile credentials from it. Every field
ESO would default is written out, so Argo CD never shows a perpetual diff."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from generator.fleet.model import (
    FIRST_INGRESS_IN_TOKEN,
    Cluster,
    Fleet,
    GlobalResource,
    vault_mount_and_path,
)


def push_secret_spec(fleet: Fleet) -> dict[str, Any]:
    """ESO PushSecret: the join-token Secret's ``token`` (K10 fills it) pushed to the store.
    Every field ESO would default is written, so Argo CD never shows a perpetual diff."""
    _, path = fleet.tokens.vault_mount_and_path
    tokens = fleet.tokens
    data = [{"conversionStrategy": "None",
             "match": {"secretKey": key, "remoteRef": {"remoteKey": path, "property": key}}}
            for key in ("token",)]
    return {
        "data": data,
        "deletionPolicy": "None",
        "refreshInterval": tokens.eso_refresh_interval,
        "secretStoreRefs": [{"kind": tokens.eso_store_kind, "name": tokens.eso_store_name}],
        "selector": {"secret": {"name": tokens.join_token_secret}},
        "updatePolicy": "Replace",
    }


def external_secret_spec(fleet: Fleet, secondary: Cluster) -> dict[str, Any]:
    """ESO ExternalSecret that builds Secret mc-join from the store, defaults written out."""
    _, path = fleet.tokens.vault_mount_and_path
    tokens = fleet.tokens
    keys = ["token", *(["endpoint"] if needs_endpoint(secondary) else [])]
    return {
        "data": eso_remote_data(path, keys),
        "refreshInterval": tokens.eso_refresh_interval,
        "secretStoreRef": {"kind": tokens.eso_store_kind, "name": tokens.eso_store_name},
        "target": {"creationPolicy": "Owner", "deletionPolicy": "Retain", "name": "mc-join"},
    }


def eso_remote_data(path: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    """ExternalSecret ``data`` entries, one per key of a KV v2 path, defaults written out."""
    return [{"remoteRef": {"conversionStrategy": "Default", "decodingStrategy": "None",
                           "key": path, "metadataPolicy": "None", "nullBytePolicy": "Ignore",
                           "property": key},
             "secretKey": key} for key in keys]


def needs_endpoint(secondary: Cluster) -> bool:
    """Before 6.5.14 the token does not carry the primary's address: mc-join adds it."""
    return secondary.kasten.version < FIRST_INGRESS_IN_TOKEN


def credential_external_secret_spec(fleet: Fleet, profile: GlobalResource) -> dict[str, Any]:
    """ESO ExternalSecret for a profile's credentials: the required keys, the Secret type K10
    expects, and every field ESO would default written out."""
    assert profile.credentials is not None
    _, path = vault_mount_and_path(profile.credentials.store)
    tokens = fleet.tokens
    return {
        "data": eso_remote_data(path, profile.credentials.format.required),
        "refreshInterval": tokens.eso_refresh_interval,
        "secretStoreRef": {"kind": tokens.eso_store_kind, "name": tokens.eso_store_name},
        "target": {"creationPolicy": "Owner", "deletionPolicy": "Retain",
                   "name": profile.credentials.secret_name,
                   "template": {"engineVersion": "v2", "mergePolicy": "Replace",
                                "type": profile.credentials.format.secret_type}},
    }
