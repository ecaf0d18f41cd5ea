"""Compiling a JSON Schema, the one way k10fleet does it: jsonschema-rs answers fast;
jsonschema (imported only when needed) explains. ``fleet/schema.py`` turns the errors into
located fleet problems, ``check/schemas.py`` into redacted findings about objects."""

from __future__ import annotations

from typing import Any


def fast_validator(schema: dict[str, Any], **options: Any) -> Any | None:
    """jsonschema-rs for ``schema`` (~400x faster than jsonschema); None when it is not
    installed or cannot compile this schema, so the caller falls back to jsonschema."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    try:
        return jsonschema_rs.validator_for(schema, **options)
    except ValueError:
        return None


def detailed_validator_class(schema: dict[str, Any], keywords: dict[str, Any] | None = None
                             ) -> Any:
    """The jsonschema class for ``schema``'s draft (2020-12 by default), extended with
    ``keywords`` (such as an ECMA-262 ``pattern``)."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
    return jsonschema.validators.extend(cls, keywords) if keywords else cls  # type: ignore[no-untyped-call]
