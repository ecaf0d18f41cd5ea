"""k10-fleet: declarative Kasten K10 multi-cluster fleets rendered for GitOps."""

from typing import Any


def __getattr__(name: str) -> Any:
    """``__version__`` on demand: importlib.metadata costs ~20 ms that most runs never need."""
    if name != "__version__":
        raise AttributeError(name)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("k10-fleet")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+source"
