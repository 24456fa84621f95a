"""Convert a pydantic JSON Schema (draft 2020-12) into a Kubernetes structural schema.

The API server accepts only a subset of OpenAPI v3 in a CRD: no `$ref`, no `title`, no
`additionalProperties: false`, `nullable` instead of `anyOf` with null, the OpenAPI 3.0
form of exclusive bounds, and `x-kubernetes-*` extensions for the rest. This module is
the one place that knows those differences.
"""

from __future__ import annotations

import copy
import json
from typing import Any

Schema = dict[str, Any]

# Keywords pydantic emits that a CRD schema has no use for (or refuses).
_DROPPED = frozenset({"title", "$defs", "$schema", "examples"})


def _cel_string(text: str) -> str:
    """`text` as a single-quoted CEL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _key_rules(node: Schema) -> list[dict[str, str]]:
    """CEL rules for the keys of a map: a CRD has no patternProperties or propertyNames."""
    rules: list[dict[str, str]] = []
    names: Schema = node.get("propertyNames", {})
    patterns = list(node.get("patternProperties", {}))
    if "pattern" in names:
        patterns.append(names["pattern"])
    for pattern in patterns:
        rules.append(
            {
                "rule": f"self.all(k, k.matches({_cel_string(pattern)}))",
                "message": f"every key must match {pattern}",
            }
        )
    low, high = names.get("minLength"), names.get("maxLength")
    if low is not None or high is not None:
        checks = [f"size(k) >= {low}"] if low is not None else []
        checks += [f"size(k) <= {high}"] if high is not None else []
        rules.append(
            {
                "rule": f"self.all(k, {' && '.join(checks)})",
                "message": f"every key must have {low or 0} to {high or 'any'} characters",
            }
        )
    return rules


def to_structural(schema: Schema) -> Schema:
    """The structural equivalent of a pydantic `model_json_schema()` document."""
    defs: dict[str, Schema] = schema.get("$defs", {})
    return _convert(schema, defs)


def _resolve(ref: str, defs: dict[str, Schema]) -> Schema:
    prefix = "#/$defs/"
    if not ref.startswith(prefix):
        raise ValueError(f"unsupported $ref {ref!r}")
    return copy.deepcopy(defs[ref[len(prefix) :]])


def _without_null(branches: list[Schema]) -> list[Schema]:
    return [b for b in branches if b.get("type") != "null"]


def _convert(node: Schema, defs: dict[str, Schema]) -> Schema:
    node = dict(node)
    # A reference (possibly wrapped in a one-element allOf) is replaced by its target; the
    # keys next to it (a field's description, default) win over the target's.
    if "allOf" in node and len(node["allOf"]) == 1:
        node = {**node.pop("allOf")[0], **node}
    if "$ref" in node:
        target = _resolve(node.pop("$ref"), defs)
        node = {**target, **node}
    if "anyOf" in node:
        branches = _without_null(node["anyOf"])
        if len(branches) != len(node["anyOf"]) and node.get("default", ...) is None:
            # Optional[X] = None: the field is simply omitted when unset.
            del node["default"]
        if len(branches) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return _convert({**branches[0], **rest}, defs)
        node["anyOf"] = [_convert(b, defs) for b in branches]
    return _convert_keywords(node, defs)


def _convert_keywords(node: Schema, defs: dict[str, Schema]) -> Schema:
    out: Schema = {}
    key_rules = _key_rules(node)
    if "patternProperties" in node:
        [value_schema] = node["patternProperties"].values()
        node = {k: v for k, v in node.items() if k != "patternProperties"}
        node["additionalProperties"] = value_schema
    for key, value in node.items():
        if key in _DROPPED or key == "propertyNames":
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out[key] = _convert(value, defs)
            # `False` (extra="forbid") is the structural default: unknown fields are pruned.
        elif key == "description":
            # Docstrings wrap lines; a CRD description reads better as one paragraph.
            out[key] = _with_default(" ".join(value.split()), node)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        else:
            out[key] = value
    if out.get("x-kubernetes-preserve-unknown-fields") and "properties" not in out:
        out.setdefault("type", "object")
    if key_rules:
        out["x-kubernetes-validations"] = [*key_rules, *out.get("x-kubernetes-validations", [])]
    return _ordered(out)


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "the defaults of its fields"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value)


def _with_default(description: str, node: Schema) -> str:
    """The description, ending with the default, so that kubectl explain shows it."""
    if "default" not in node or "Defaults to" in description:
        return description
    return f"{description} Defaults to {_default_text(node['default'])}."


def _ordered(node: Schema) -> Schema:
    # type and description first, so the YAML reads like a hand-written CRD.
    first: Schema = {k: node[k] for k in ("type", "description") if k in node}
    return {**first, **{k: v for k, v in node.items() if k not in first}}
