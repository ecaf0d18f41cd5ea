"""``env://VAR``: the variable holds the join token (read-only)."""

from __future__ import annotations

import os

from generator.secrets.base import TOKEN_KEY, MissingKey, StoreError


class EnvStore:
    def __init__(self, uri: str, variable: str) -> None:
        self.name = uri
        self.variable = variable

    def get(self, key: str) -> str:
        if key != TOKEN_KEY:
            raise MissingKey(self.name, f"holds only the token, not {key!r}")
        value = os.environ.get(self.variable)
        if value is None:
            raise StoreError(self.name, f"environment variable {self.variable} is not set")
        if not value.strip():
            raise StoreError(self.name, f"environment variable {self.variable} is empty")
        return value.strip()

    def put(self, key: str, value: str) -> None:
        raise StoreError(self.name, f"environment stores are read-only; export "
                         f"{self.variable}=<token> yourself, or use a vault://, sops:// or "
                         "file:// store")
