"""``file://PATH``: a YAML/JSON mapping on disk, readable by its owner only."""

from __future__ import annotations

import os
import stat
from typing import Any

import yaml

from generator.files import atomic_write
from generator.secrets.base import MappingStore, StoreError

MAX_STORE_BYTES = 1024 * 1024


class FileStore(MappingStore):
    def __init__(self, uri: str, path: str) -> None:
        self.name = uri
        self.path = os.path.expanduser(path)

    def _read(self, *, missing_ok: bool = False) -> dict[str, Any]:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            if missing_ok:
                return {}
            raise StoreError(self.name, f"file {self.path} does not exist") from None
        except OSError as e:
            raise StoreError(self.name, f"cannot read {self.path}: {e.strerror}") from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise StoreError(self.name, f"{self.path} is readable by group or others (mode "
                             f"{stat.S_IMODE(info.st_mode):04o}); run chmod 600 {self.path}")
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block, /dev/zero never end
            raise StoreError(self.name, f"{self.path} is not a regular file")
        if info.st_size > MAX_STORE_BYTES:
            raise StoreError(self.name, f"{self.path} is larger than {MAX_STORE_BYTES} bytes; "
                             "a token store holds a few keys")
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise StoreError(self.name, f"{self.path} is not a regular file")
                text = handle.read(MAX_STORE_BYTES + 1).decode("utf-8")
            data = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError) as e:
            raise StoreError(self.name, f"cannot read {self.path}") from e
        except (yaml.YAMLError, RecursionError):
            # the parser's message would quote the file, which holds the token
            raise StoreError(self.name, f"{self.path} is not valid YAML or JSON") from None
        return self._as_mapping(data)

    def put(self, key: str, value: str) -> None:
        data = self._read(missing_ok=True)
        data[key] = value
        try:
            atomic_write(self.path, yaml.safe_dump(data, sort_keys=True).encode(), 0o600)
        except OSError as e:
            raise StoreError(self.name, f"cannot write {self.path}: {e.strerror}") from None
