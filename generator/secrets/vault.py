"""``vault://MOUNT/PATH``: a KV v2 secret in Vault or OpenBao, through ``hvac``.

Address and token come from VAULT_ADDR/VAULT_TOKEN (or OpenBao's BAO_ADDR/BAO_TOKEN);
VAULT_NAMESPACE and VAULT_CACERT are honoured. Every request finishes within
K10FLEET_STORE_TIMEOUT seconds in total, not just per read: a server that trickles bytes
cannot stall a run. A reply that is not a KV v2 secret is a store failure, never a crash.
Error messages are written here, never copied from hvac, whose exceptions can carry
URLs and response bodies.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from generator.fleet.model import is_vault_uri, vault_mount_and_path
from generator.secrets.base import MissingKey, StoreError, as_secret_text

DEFAULT_TIMEOUT = 10.0
T = TypeVar("T")


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
        self._timeout = DEFAULT_TIMEOUT

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
        if not 0 < timeout <= 3600:
            raise StoreError(self.name, "K10FLEET_STORE_TIMEOUT must be between 0 and 3600 "
                             "seconds")
        self._timeout = timeout
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

    def _within_deadline(self, call: Callable[[], T], doing: str) -> T:
        """Run one request in a helper thread and wait for it at most the store timeout in
        total. A stalled request is abandoned (its daemon thread ends with the process)."""
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["value"] = call()
            except Exception as e:  # handed to the caller's thread, mapped there
                box["error"] = e

        thread = threading.Thread(target=work, name="k10fleet-vault", daemon=True)
        thread.start()
        thread.join(self._timeout)
        if thread.is_alive():
            self._client = None  # never reuse a connection in an unknown state
            address = os.environ.get("VAULT_ADDR") or os.environ.get("BAO_ADDR")
            raise StoreError(self.name, f"{address} gave no complete answer within "
                             f"{self._timeout:g} s while {doing} (K10FLEET_STORE_TIMEOUT); is "
                             "the server overloaded?")
        if "error" in box:
            raise box["error"]
        value: T = box["value"]
        return value

    def _read_all(self, *, missing_ok: bool = False) -> dict[str, Any]:
        client = self._connect()
        try:
            response = self._within_deadline(lambda: client.secrets.kv.v2.read_secret_version(
                path=self.path, mount_point=self.mount, raise_on_deleted_version=True),
                "reading")
        except StoreError:
            raise
        except Exception as e:
            failure = self._fail(e, "reading")
            if missing_ok and isinstance(failure, MissingKey):
                return {}
            raise failure from None
        return self._secret_data(response)

    def _secret_data(self, response: Any) -> dict[str, Any]:
        """The key/value mapping of a KV v2 read reply; anything else is a store failure."""
        body = response.get("data") if isinstance(response, dict) else None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(data, dict | None):
            found = ("a reply that is not JSON (an HTML page?)" if not isinstance(
                response, dict | list) else "a list" if isinstance(response, list)
                     else "JSON without a KV v2 secret in it")
            raise StoreError(self.name, f"the server sent {found} for {self.mount}/"
                             f"{self.path}; is VAULT_ADDR a Vault or OpenBao server, and "
                             f"{self.mount} a KV v2 mount?")
        return dict(data or {})

    def get(self, key: str) -> str:
        value = self._read_all().get(key)
        if value is None or value == "":
            raise MissingKey(self.name, f"no {key!r} at {self.mount}/{self.path}")
        return as_secret_text(self.name, key, value)

    def put(self, key: str, value: str) -> None:
        data = self._read_all(missing_ok=True)
        data[key] = value
        client = self._connect()
        try:
            self._within_deadline(lambda: client.secrets.kv.v2.create_or_update_secret(
                path=self.path, mount_point=self.mount, secret=data), "writing")
        except StoreError:
            raise
        except Exception as e:
            raise self._fail(e, "writing") from None
