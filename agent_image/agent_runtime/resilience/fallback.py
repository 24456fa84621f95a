"""A fallback chain: the primary, then alternatives in order, then a static answer.

The answer records which strategy produced it, so callers (and the model) can tell a
degraded answer from a real one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

PRIMARY = "primary"
STATIC = "static"


@dataclass(frozen=True, slots=True)
class Answer:
    """A value and the strategy that answered: `primary`, `tool:<name>` or `static`."""

    value: Any
    strategy: str


class FallbackExhaustedError(Exception):
    """The primary and every fallback failed; `errors` maps strategy to its error."""

    def __init__(self, errors: dict[str, BaseException]) -> None:
        self.errors = errors
        self.primary = errors[PRIMARY]
        detail = "; ".join(f"{name}: {error}" for name, error in errors.items())
        super().__init__(f"every strategy failed ({detail})")


@dataclass(frozen=True, slots=True)
class Static:
    """A fixed fallback value."""

    value: Any


Strategy = tuple[str, Callable[[], Awaitable[Any]]]


async def answer_with_fallbacks(
    primary: Callable[[], Awaitable[Any]],
    alternatives: Sequence[Strategy] = (),
    static: Static | None = None,
    *,
    should_fall_back: Callable[[BaseException], bool] = lambda _: True,
) -> Answer:
    """Try `primary`, then each alternative, then `static`; raise if all fail.

    An error `should_fall_back` rejects (a caller mistake, say) propagates at once.
    """
    errors: dict[str, BaseException] = {}
    for name, strategy in ((PRIMARY, primary), *alternatives):
        try:
            return Answer(await strategy(), name)
        except Exception as error:
            if not should_fall_back(error):
                raise
            errors[name] = error
    if static is not None:
        return Answer(static.value, STATIC)
    raise FallbackExhaustedError(errors)
