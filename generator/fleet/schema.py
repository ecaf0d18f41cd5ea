"""JSON Schema validation of fleet.yaml, with errors a person can act on."""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Iterator, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from generator.fleet.loader import LoadedDocument
from generator.jsonschemas import detailed_validator_class, fast_validator
from generator.problems import JsonPath, Problem
from generator.resources import load_schema

if TYPE_CHECKING:
    import jsonschema

FLEET_SCHEMA = "fleet.schema.json"

_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
    "object": "a mapping", "array": "a list", "null": "null",
}


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """``pattern`` with ECMA-262 anchors: a final ``$`` must not match before a trailing newline.

    Python's ``re`` lets ``$`` match there, which would let ``"edge-1\\n"`` pass as a name.
    """
    import jsonschema

    if not isinstance(instance, str):
        return
    python_pattern = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
    if not re.search(python_pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _validator(schema_name: str = FLEET_SCHEMA) -> Any:
    """jsonschema, to explain errors (~60 ms to import, which valid fleets never pay)."""
    schema = load_schema(schema_name)
    return detailed_validator_class(schema, {"pattern": _ecma_pattern})(schema)


@cache
def _fast_validator(schema_name: str = FLEET_SCHEMA) -> Any:
    return fast_validator(load_schema(schema_name))


def _quickly_valid(data: Any) -> bool:
    fast = _fast_validator()
    if fast is None:
        return False
    try:
        return bool(fast.is_valid(data))
    except (ValueError, TypeError, OverflowError):  # not JSON-shaped: let jsonschema explain
        return False


def describe(value: Any) -> str:
    """Name a YAML value's type the way a fleet author thinks of it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 80 else value[:77] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _problems_for(doc: LoadedDocument, error: jsonschema.ValidationError) -> Iterator[Problem]:
    path: JsonPath = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed: list[str] = sorted(schema.get("properties", {}))
        for key in error.instance:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed) or f"; allowed: {', '.join(allowed)}"
                yield doc.problem((*path, str(key)), f"unknown field {str(key)!r}{hint}",
                                  key=True, rule="schema")
        return
    if kind == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else error.message
        yield doc.problem(path, f"missing required field {missing!r}", key=True, rule="schema")
        return
    if kind == "type":
        expected: Any = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
        hint = ""
        if "string" in names and isinstance(error.instance, int | float | bool):
            hint = " (quote it in YAML)"
        yield doc.problem(path, f"must be {wanted}, found {describe(error.instance)}{hint}",
                          rule="schema")
        return
    if kind == "enum":
        choices: Any = error.validator_value
        options = [str(o) for o in choices]
        hint = did_you_mean(str(error.instance), options) if isinstance(error.instance, str) else ""
        yield doc.problem(path, f"must be one of {', '.join(options)}; found "
                          f"{describe(error.instance)}{hint}", rule="schema")
        return
    if kind == "minItems" and isinstance(error.instance, list):
        least = error.validator_value
        yield doc.problem(path, "must not be empty" if least == 1 else
                          f"needs at least {least} entries", rule="schema")
        return
    custom = schema.get("errorMessage")
    if custom:
        yield doc.problem(path, f"{custom}; found {describe(error.instance)}", rule="schema")
        return
    yield doc.problem(path, error.message, rule="schema")


def object_problems(doc: LoadedDocument, path: JsonPath, schema_name: str,
                    instance: Any) -> list[Problem]:
    """Validate ``instance`` (found at ``path`` in the document) against ``schema_name``,
    locating each problem in the fleet file."""
    fast = _fast_validator(schema_name)
    try:
        if fast is not None and fast.is_valid(instance):
            return []
    except (ValueError, TypeError, OverflowError):
        pass
    problems: list[Problem] = []
    for error in _validator(schema_name).iter_errors(instance):
        error.path.extendleft(reversed(path))  # absolute_path follows .path
        problems.extend(_problems_for(doc, error))
    return problems


def schema_problems(doc: LoadedDocument) -> list[Problem]:
    """Every schema violation of the document, located.

    The fast validator settles the common (valid) case; only an invalid document pays
    for jsonschema, whose errors carry the detail that good messages need.
    """
    if _quickly_valid(doc.data):
        return []
    problems: list[Problem] = []
    for error in _validator().iter_errors(doc.data):
        problems.extend(_problems_for(doc, error))
        if len(problems) > 5000:  # enough to report; the rest would only cost time
            break
    if not problems and _fast_validator() is not None:
        # The two engines disagree: never let that pass silently. (Data the fast engine
        # cannot take, such as non-string keys, is reported by the rules instead.)
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            problems = [doc.problem(tuple(e.instance_path), e.message, rule="schema")
                        for e in _fast_validator().iter_errors(doc.data)]
    return problems
