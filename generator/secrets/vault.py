"""``vault://MOUNT/PATH``: a KV v2 secret in Vault or OpenBao, through ``hvac``.

Address and token come from VAULT_ADDR/VAULT_TOKEN (or OpenBao's BAO_ADDR/BAO_TOKEN);
VAULT_NAMESPACE and VAULT_CACERT are honoured. Every request has a bounded timeout.
Error messages are written here, never copied from hvac, whose exceptions can carry
URLs and response bodies.
"""

from __future__ import annotations

import os
from typing import Any

from generator.fleet.model import is_vault_uri, vault_mount_and_path
from generator.secrets.base import MissingKey, StoreError, as_secret_text

DEFAULT_TIMEOUT = 10.0


def _hvac() -> Any:
    try:
        import hvac
    except ImportError as e:
        raise StoreError("vault://", "the hvac package is needed for vault:// stores: "
                         "pip install hvac") from e
    return hvac


class VaultStore:
    def __init__(self, uri: str, location: str) -> None:
        self.name = uri
        if not is_vault_uri(uri):
            raise StoreError(uri, "expected vault://MOUNT/PATH, e.g. vault://secret/k10fleet/demo")
        self.mount, self.path = vault_mount_and_path(uri)
        self._client: Any = None

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        hvac = _hvac()
        address = os.environ.get("VAULT_ADDR") or os.environ.get("BAO_ADDR")
        token = os.environ.get("VAULT_TOKEN") or os.environ.get("BAO_TOKEN")
        if not address:
            raise StoreError(self.name, "set VAULT_ADDR (or BAO_ADDR) to the server address")
        if not token:
            raise StoreError(self.name, "set VAULT_TOKEN (or BAO_TOKEN) to a token that may "
                             "read and write the path")
        try:
            timeout = float(os.environ.get("K10FLEET_STORE_TIMEOUT", DEFAULT_TIMEOUT))
        except ValueError:
            raise StoreError(self.name, "K10FLEET_STORE_TIMEOUT must be a number of "
                             "seconds") from None
        verify: Any = os.environ.get("VAULT_CACERT") or True
        self._client = hvac.Client(url=address, token=token, timeout=timeout, verify=verify,
                                   namespace=os.environ.get("VAULT_NAMESPACE") or None)
        return self._client

    def _fail(self, error: Exception, doing: str) -> StoreError:
        hvac = _hvac()
        exceptions = hvac.exceptions
        address = os.environ.get("VAULT_ADDR") or os.environ.get("BAO_ADDR")
        if isinstance(error, exceptions.Forbidden):
            return StoreError(self.name, f"permission denied while {doing} (check the token and "
                              f"its policy for {self.mount}/data/{self.path})")
        if isinstance(error, exceptions.InvalidPath):
            return MissingKey(self.name, f"nothing stored at {self.mount}/{self.path} "
                              "(run k10fleet token import first, or check the mount is KV v2)")
        if isinstance(error, exceptions.VaultError):
            return StoreError(self.name, f"server error while {doing} "
                              f"({type(error).__name__})")
        return StoreError(self.name, f"cannot reach {address} while {doing} "
                          f"({type(error).__name__}); is the server up?")

    def _read_all(self, *, missing_ok: bool = False) -> dict[str, Any]:
        client = self._connect()
        try:
            response = client.secrets.kv.v2.read_secret_version(
                path=self.path, mount_point=self.mount, raise_on_deleted_version=True)
        except Exception as e:
            failure = self._fail(e, "reading")
            if missing_ok and isinstance(failure, MissingKey):
                return {}
            raise failure from None
        data = (response or {}).get("data", {}).get("data")
        return dict(data) if isinstance(data, dict) else {}

    def get(self, key: str) -> str:
        value = self._read_all().get(key)
        if value is None or value == "":
            raise MissingKey(self.name, f"no {key!r} at {self.mount}/{self.path}")
        return as_secret_text(self.name, key, value)

    def put(self, key: str, value: str) -> None:
        data = self._read_all(missing_ok=True)
        data[key] = value
        try:
            self._connect().secrets.kv.v2.create_or_update_secret(
                path=self.path, mount_point=self.mount, secret=data)
        except Exception as e:
            raise self._fail(e, "writing") from None
