"""JSON Schema validation of tool arguments and results (the `jsonschema` library).

Schemas are checked and compiled once, when the tool is registered; errors name the JSON
path of the offending value and the schema rule it broke.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from agent_runtime.tools.errors import ToolConfigError, ValidationIssue

MAX_ISSUES = 10


def json_path(parts: Iterable[str | int]) -> str:
    """`$.items[0].name` for the path ("items", 0, "name")."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def compile_schema(tool: str, schema: dict[str, Any]) -> Validator:
    """A validator for `schema` (its `$schema` draft, default 2020-12), or `ToolConfigError`."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise ToolConfigError(
            f"tool {tool!r} has an invalid JSON Schema at {json_path(exc.path)}: {exc.message}"
        ) from None
    validator: Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return validator


def issues(validator: Validator, instance: Any) -> list[ValidationIssue]:
    """Every violation (at most `MAX_ISSUES`), shallowest first; empty when valid."""
    found = sorted(
        validator.iter_errors(instance), key=lambda e: (len(e.path), list(map(str, e.path)))
    )
    return [
        ValidationIssue(path=json_path(e.absolute_path), rule=str(e.validator), message=e.message)
        for e in found[:MAX_ISSUES]
    ]
