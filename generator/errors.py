"""The one exception hierarchy of k10-fleet.

The CLI maps each class to an exit code; the core raises these and never prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from generator.problems import cut

if TYPE_CHECKING:
    from generator.problems import Problem, RuleId


def _rebuilt(cls: type[K10FleetError], args: tuple[object, ...], state: dict[str, object]
             ) -> K10FleetError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class K10FleetError(Exception):
    """Base class; ``exit_code`` is what the CLI returns for it."""

    exit_code = 1

    def __str__(self) -> str:
        return cut(super().__str__())

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as it is (a forked helper sends it back): not rebuilt through an
        ``__init__`` whose arguments differ from ``args`` (``InvalidInput``'s problems)."""
        return _rebuilt, (type(self), self.args, self.__dict__)


class InvalidInput(K10FleetError):
    """The user's input is wrong; carries every problem found, not just the first."""

    exit_code = 1

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) found")

    @classmethod
    def in_file(cls, source: str, message: str, *, rule: RuleId) -> InvalidInput:
        """A problem with a whole input (kubectl output, a token file), not one place in it."""
        from generator.problems import Problem  # problems imports nothing of errors

        return cls([Problem(source, 1, 1, "", message, rule=rule)])


class CheckFailed(K10FleetError):
    """A check (``render --check``, ``labels`` without ``--apply``) found differences; the
    command has already reported them, so the CLI only sets the exit code."""

    exit_code = 1


class InternalError(K10FleetError):
    """k10fleet broke one of its own promises (two objects for one file, an unsafe path from
    a renderer): a bug to report, never the user's input."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(f"internal error: {message}; please report it")


class EnvironmentFailure(K10FleetError):
    """A secret store, external tool or the file system failed; nothing was written."""

    exit_code = 3


class OutputLocked(EnvironmentFailure):
    """Another k10fleet run holds the output directory's lock."""


class UsageFailure(K10FleetError):
    """The command line asks for something unsafe or impossible (exit 2, like Click's)."""

    exit_code = 2
