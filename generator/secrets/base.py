"""The small interface every secret store implements, and the registry of schemes."""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from generator.errors import EnvironmentFailure

TOKEN_KEY = "token"
ENDPOINT_KEY = "endpoint"


class StoreError(EnvironmentFailure):
    """A secret store failed (unreachable, denied, missing, unsafe): exit 3, nothing written."""

    def __init__(self, store: str, message: str) -> None:
        self.store = store
        super().__init__(f"secret store {store}: {message}")


class MissingKey(StoreError):
    """The store is fine but holds no value under the key asked for."""


class SecretStore(Protocol):
    """Where join tokens live. ``name`` is the URI, safe to print (it holds no secret)."""

    name: str

    def get(self, key: str) -> str:
        """The value under ``key``; raises ``MissingKey`` or ``StoreError``."""
        ...

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, keeping other keys; raises ``StoreError``."""
        ...


class MappingStore:
    """Stores that hold one mapping in a file; subclasses say how to read it."""

    name: str
    path: str

    def _read(self, *, missing_ok: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def _as_mapping(self, data: Any) -> dict[str, Any]:
        """What a store file must hold: a mapping (empty when the file is empty)."""
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise StoreError(self.name, f"{self.path} must hold a mapping with key 'token'")
        return data

    def get(self, key: str) -> str:
        value = self._read().get(key)
        if value is None or value == "":
            raise MissingKey(self.name, f"{self.path} has no {key!r}")
        return as_secret_text(self.name, key, value)


# scheme -> "module:class"; modules are imported only when their scheme is used
STORES: dict[str, str] = {
    "vault": "generator.secrets.vault:VaultStore",
    "sops": "generator.secrets.sops:SopsStore",
    "env": "generator.secrets.env:EnvStore",
    "file": "generator.secrets.file:FileStore",
}


def as_secret_text(store: str, key: str, value: Any) -> str:
    """A stored value as Secret text: strings as they are, numbers in decimal; anything
    else (a mapping, a list, true/false) is refused rather than written as Python's repr."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    kind = "a boolean" if isinstance(value, bool) else type(value).__name__
    raise StoreError(store, f"{key!r} holds {kind}, not text; store it as a string (for JSON "
                     "such as a service account key, the JSON text itself)")


def open_store(uri: str | None) -> SecretStore:
    """The store a URI names, e.g. ``vault://secret/k10fleet/demo``."""
    if not uri:
        raise StoreError("(none)", "the fleet sets no tokens.store; add e.g. "
                         "tokens.store: vault://secret/k10fleet/<fleet>")
    scheme, sep, location = uri.partition("://")
    if not sep or scheme not in STORES or not location:
        raise StoreError(uri, f"unknown store; use one of {', '.join(s + '://' for s in STORES)}")
    module_name, class_name = STORES[scheme].split(":")
    store: SecretStore = getattr(importlib.import_module(module_name), class_name)(uri, location)
    return store


def optional(store: SecretStore, key: str) -> str | None:
    """``store.get(key)``, or None when only that key is missing."""
    try:
        return store.get(key)
    except MissingKey:
        return None
