"""The machinery every API type is built from: the base model, cross-field rules, and the
string types Kubernetes validates.

Cross-field rules are declared once, as `Rule`s in a model's `cel_rules`: each carries a
CEL expression (enforced by the API server) and the equivalent Python check (enforced
when the model is validated), so the operator and the server refuse the same specs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema as cs

GROUP = "agentpool.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Bounds on lists and strings keep every CEL rule inside the API server's cost budget.
MAX_LIST = 64
MAX_NAME = 253

DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""A Service name, and so the name of anything a Service is named after."""

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

DnsLabel = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
DnsSubdomain = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=DNS1123_SUBDOMAIN)
]
HttpUrl = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s]+$")]
LabelValue = Annotated[
    str,
    StringConstraints(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"),
]
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
QualifiedName = Annotated[
    str, StringConstraints(min_length=1, max_length=317, pattern=QUALIFIED_NAME)
]
"""A label or annotation key: an optional DNS subdomain prefix and a name of 63 or fewer."""
AnnotationValue = Annotated[str, StringConstraints(max_length=4096)]
EnvName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"),
]
HeaderName = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
]
AbsolutePath = Annotated[
    str, StringConstraints(min_length=1, max_length=1024, pattern=r"^/[^\x00]*$")
]

_QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not re.fullmatch(_QUANTITY_PATTERN, value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 512Mi)")
    return value


Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    # The shape controller-gen emits for resource.Quantity: an int-or-string.
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": _QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes resource quantity: an integer or a string such as 500m or 512Mi."""

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIX = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9,
                   "T": 1e12, "P": 1e15, "E": 1e18}  # fmt: skip


def quantity_value(quantity: int | str) -> float:
    """The number a quantity stands for (512Mi is 536870912, 250m is 0.25)."""
    if isinstance(quantity, int):
        return float(quantity)
    match = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)", quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a quantity")
    number, suffix = match.groups()
    if suffix in _BINARY:
        return float(number) * _BINARY[suffix]
    return float(number) * _DECIMAL_SUFFIX[suffix]


_INT_OR_PERCENT = r"^([0-9]+|[0-9]{1,2}%|100%)$"


def _check_int_or_percent(value: int | str) -> int | str:
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must be a non-negative integer or a percentage such as 25%")
    elif not re.fullmatch(_INT_OR_PERCENT, value):
        raise ValueError(f"{value!r} is not an integer or a percentage such as 25%")
    return value


IntOrPercent = Annotated[
    int | str,
    AfterValidator(_check_int_or_percent),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": _INT_OR_PERCENT,
            "x-kubernetes-int-or-string": True,
            "x-kubernetes-validations": [
                {"rule": "type(self) == string || self >= 0", "message": "must not be negative"}
            ],
        }
    ),
]
"""An absolute number or a percentage (intstr.IntOrString), e.g. 1 or 25%."""


@dataclass(frozen=True)
class DecimalBounds:
    """Bounds of a decimal written as a string (the API has no floats), checked by the
    model and, as CEL on the field itself, by the API server."""

    low: str
    high: str

    def check(self, value: str) -> str:
        if not float(self.low) <= float(value) <= float(self.high):
            raise ValueError(f"must be between {self.low} and {self.high}, got {value}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> cs.CoreSchema:
        return cs.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, core: cs.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        schema["x-kubernetes-validations"] = [
            {
                "rule": f"double(self) >= {float(self.low)} && double(self) <= {float(self.high)}",
                "message": f"must be a decimal between {self.low} and {self.high}",
            }
        ]
        return schema


_DECIMAL = StringConstraints(min_length=1, max_length=8, pattern=r"^[0-9]{1,4}(\.[0-9]{1,3})?$")
Ratio = Annotated[str, _DECIMAL, DecimalBounds("0", "1")]
"""A decimal string from 0 to 1, e.g. "0.5"."""
Temperature = Annotated[str, _DECIMAL, DecimalBounds("0", "2")]
"""A decimal string from 0 to 2, e.g. "0.2"."""
Multiplier = Annotated[str, _DECIMAL, DecimalBounds("1", "10")]
"""A decimal string from 1 to 10, e.g. "1.5"."""


@dataclass(frozen=True)
class Rule:
    """One cross-field rule, enforced both by the API server (CEL) and by the model.

    `check` must accept exactly the objects `cel` accepts; the integration tests compare
    the two on generated specs.
    """

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None

    def to_crd(self) -> dict[str, str]:
        """The `x-kubernetes-validations` entry of this rule."""
        entry = {"rule": self.cel, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        return entry


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, immutable, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_cel_rules(self) -> Self:
        broken = [rule.message for rule in type(self).cel_rules if not rule.check(self)]
        if broken:
            raise ValueError("; ".join(broken))
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core: cs.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        if cls.cel_rules:
            target = handler.resolve_ref_schema(schema)
            target["x-kubernetes-validations"] = [rule.to_crd() for rule in cls.cel_rules]
        return schema


def section(factory: Callable[[], BaseModel]) -> Any:
    """A sub-object that defaults to its own defaults, on the API server too.

    The server's default is the fully expanded object rather than `{}`, because the server
    checks a default against the CEL rules before nested defaults are applied.
    """
    expanded = factory().model_dump(mode="json", by_alias=True, exclude_none=True)
    return Field(default_factory=factory, json_schema_extra={"default": expanded})


def list_map(key: str, max_items: int = MAX_LIST) -> Any:
    """A list keyed by `key` (unique keys, merged by key under server-side apply)."""
    return Field(
        default_factory=list,
        max_length=max_items,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": [key],
        },
    )


def unique_by(items: list[Any], key: str) -> list[Any]:
    seen: set[object] = set()
    for item in items:
        value = getattr(item, key)
        if value in seen:
            raise ValueError(f"duplicate {to_camel(key)} {value!r}")
        seen.add(value)
    return items


@dataclass(frozen=True)
class NameRule:
    """What metadata.name of a kind must look like, beyond what Kubernetes requires.

    The CRD carries it as a pattern and length on metadata.name (the only restrictions
    a CRD may put on metadata), so the server's refusal names the field.
    """

    pattern: str
    max_length: int
    why: str

    def problem(self, name: str) -> str | None:
        """Why `name` is refused, or None."""
        if len(name) > self.max_length or not re.fullmatch(self.pattern, name):
            return (
                f"metadata.name {name!r} must be {self.why}, "
                f"of at most {self.max_length} characters"
            )
        return None

    def schema(self) -> dict[str, Any]:
        """The metadata schema of the CRD."""
        return {
            "type": "object",
            "properties": {
                "name": {
                    "type": "string",
                    "description": f"Must be {self.why}, of at most {self.max_length} characters.",
                    "maxLength": self.max_length,
                    "pattern": self.pattern,
                }
            },
        }


_Item = TypeVar("_Item")

NameKeyed = Annotated[list[_Item], AfterValidator(lambda items: unique_by(items, "name"))]
"""A list whose items' `name`s are unique (the server refuses duplicate list-map keys too)."""
