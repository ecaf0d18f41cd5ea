"""k10-fleet: declarative Kasten K10 multi-cluster fleets rendered for GitOps."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("k10-fleet")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
