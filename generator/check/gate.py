"""``k10fleet ci``: the pull-request gate (validate, render --check, check) in one command.

Each stage gives the verdict its own command gives; the gain is one start-up instead of
three, one validation instead of two, and the two cores at once: check reads the tree in
a forked helper while this process validates and renders (neither writes to the tree).
On one core the stages run in turn, and check does not read again the files render
--check has just proven byte-for-byte equal to a fresh render (their bytes are handed on).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from generator import pipeline
from generator.check.run import CheckOptions, CheckReport, run_check
from generator.errors import EnvironmentFailure, InvalidInput, K10FleetError
from generator.fleet.validate import ValidationResult, validate_file
from generator.forking import in_forked_child, parallel_jobs

_Checked = tuple[CheckReport | None, K10FleetError | None]


@dataclass
class GateReport:
    """What each stage found; a stage that failed outright holds its error instead."""

    validation: ValidationResult
    render: pipeline.RenderOutcome | None = None
    render_error: K10FleetError | None = None
    check: CheckReport | None = None
    check_error: K10FleetError | None = None


def run_gate(fleet: str, options: CheckOptions) -> GateReport:
    """Validate ``fleet``, compare the tree at ``options.root`` with its render, check it."""
    beside = _check_beside(options) if parallel_jobs() > 1 else None
    try:
        report = GateReport(validate_file(fleet))
        try:
            report.render = pipeline.render(fleet, options.root, check=True,
                                            loaded=report.validation)
        except (InvalidInput, K10FleetError) as e:
            report.render_error = e
    finally:
        checked = beside() if beside is not None else None  # the helper is always waited for
    if checked is None:
        same = report.render.same if report.render is not None else None
        checked = _checked(options, same or {})
    report.check, report.check_error = checked
    return report


def _checked(options: CheckOptions, known: Mapping[str, bytes]) -> _Checked:
    try:
        return run_check(options, known=known), None
    except K10FleetError as e:
        return None, e


def _check_beside(options: CheckOptions) -> Callable[[], _Checked]:
    """check in a forked helper, on the other core (with that one core: it forks no helper
    of its own); the call that waits for its report."""
    def in_helper() -> _Checked:
        os.environ["K10FLEET_JOBS"] = "1"
        return _checked(options, {})

    wait = in_forked_child(in_helper)

    def collect() -> _Checked:
        try:
            checked: _Checked = wait()
        except OSError as e:
            return None, EnvironmentFailure(f"the check helper process failed ({e.strerror});"
                                            " the tree was not checked")
        return checked
    return collect
