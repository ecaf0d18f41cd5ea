"""The rendered tree and its layout: files by relative path, and where each kind of file goes.
A leaf: it imports nothing of the renderers, so they and the engines can all use it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from generator.errors import InternalError
from generator.fleet.model import SCRIPT_PATH

__all__ = ["SCRIPT_PATH"]  # where the k10multicluster script goes; the model names it too
JOIN_TOKEN_TYPE = "dist.kio.kasten.io/join-token"
JOIN_TOKEN_FILE = "join-token-secret.yaml"
KSOPS_GENERATOR_FILE = "secret-generator.yaml"
MC_JOIN_SOPS_FILE = "mc-join.sops.yaml"
MC_JOIN_FILE = "mc-join.yaml"
PUSH_SECRET_FILE = "join-token-push-secret.yaml"
EXTERNAL_SECRET_FILE = "mc-join-external-secret.yaml"
SECRET_STORE_FILE = "secret-store.yaml"


class RenderedFile(NamedTuple):
    content: bytes
    mode: int = 0o644


@dataclass
class RenderedTree:
    """What ``render`` produces: files plus what the writer records about clusters."""

    files: dict[str, RenderedFile] = field(default_factory=dict)
    clusters: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, path: str, text: str, mode: int = 0o644) -> None:
        if path in self.files:  # two objects in one file name: never silently drop one
            raise InternalError(f"k10fleet would write {path} twice")
        self.files[path] = RenderedFile(text.encode("utf-8"), mode)


def cluster_dir(name: str) -> str:
    return f"clusters/{name}"
