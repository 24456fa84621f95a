"""The base of every runtime-config model: camelCase like Kubernetes, immutable, strict."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ConfigSection(BaseModel):
    """A part of the operator-rendered document: unknown fields are errors, not ignored,
    so a typo in a rendered config fails at start-up instead of silently using a default."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )
