"""The Jinja2 environment: templates from templates/, YAML-safe filters only."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import jinja2

from generator.render import yamlout
from generator.resources import DATA_PACKAGE


def object_meta(
    fleet_name: str, name: str, namespace: str | None, annotations: Mapping[str, str] | None,
) -> dict[str, Any]:
    """Kubernetes metadata every generated object carries."""
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {
        "app.kubernetes.io/managed-by": "k10fleet",
        "app.kubernetes.io/part-of": fleet_name,
    }
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    return meta


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(DATA_PACKAGE, "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates are package data: never re-stat them per render
    )
    # Every interpolated value goes through the strict emitter: no hand-made quoting.
    env.filters["y"] = yamlout.scalar
    env.filters["dump"] = lambda value: yamlout.dump(value).rstrip("\n")
    env.globals["field"] = yamlout.field
    env.globals["object_meta"] = object_meta
    return env


@cache
def _template(name: str) -> jinja2.Template:
    template = environment().get_template(name)
    # the same globals as a plain dict: Jinja copies them into every render's context, and
    # from its ChainMap that copy cost more than most of our templates take to render
    template.globals = dict(template.globals)
    return template


def render_template(template: str, **context: object) -> str:
    text = _template(template).render(**context)
    return text if text.endswith("\n") else text + "\n"
