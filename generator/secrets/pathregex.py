"""A ``.sops.yaml`` ``path_regex``, matched the way sops matches it.

sops is written in Go, whose ``regexp`` package uses RE2 syntax and guarantees time linear
in the input: a pattern such as ``(a+)+$`` is instant there. Python's ``re`` backtracks and
may take forever on it, and accepts constructs (backreferences, lookarounds) that sops
rejects. So the pattern is compiled with RE2 itself (google-re2) and searched unanchored,
as Go's ``MatchString`` does; size is bounded too.
"""

from __future__ import annotations

import functools
from typing import Any

import re2  # type: ignore[import-untyped]

MAX_PATTERN = 4096  # characters; creation rules are short
MAX_PROGRAM_MEMORY = 8 << 20  # bytes RE2 may use for one compiled pattern


class PathRegexError(ValueError):
    """The pattern is not one sops would accept (or is too large)."""


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    if len(pattern) > MAX_PATTERN:
        raise PathRegexError(f"longer than {MAX_PATTERN} characters")
    options = re2.Options()
    options.log_errors = False  # RE2 would print to stderr; the message is ours
    options.max_mem = MAX_PROGRAM_MEMORY
    try:
        return re2.compile(pattern, options)
    except re2.error as e:
        reason = e.args[0].decode(errors="replace") if e.args and isinstance(
            e.args[0], bytes) else str(e)
        raise PathRegexError(reason) from None


def path_regex_matches(pattern: str, path: str) -> bool:
    """Whether ``pattern`` matches anywhere in ``path`` (Go ``regexp.MatchString``)."""
    return _compiled(pattern).search(path) is not None
