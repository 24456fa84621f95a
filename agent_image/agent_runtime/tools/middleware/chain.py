"""The middleware protocol and the chain that composes middleware in a declared order.

A middleware is an async callable `(call, call_next) -> value` with a `name`: code before
`await call_next(call)` is its pre-hook, code after it its post-hook. The chain is
composed once per tool (one `functools.partial` per layer), not per call; a layer with
an `applies_to(tool, policy)` method that returns False for a tool is left out of that
tool's chain (a tool without a rate limit pays nothing for the rate-limit layer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Protocol

from agent_runtime.tools.tool import Invocation, Tool, ToolPolicy

Next = Callable[[Invocation], Awaitable[Any]]
"""The rest of the chain (ending in the tool's implementation)."""


class Middleware(Protocol):
    """One layer of the chain."""

    @property
    def name(self) -> str:
        """A unique name; other middleware is placed relative to it."""
        ...

    async def __call__(self, call: Invocation, call_next: Next) -> Any:
        """Handle the call, normally by awaiting `call_next(call)`."""
        ...


class HookMiddleware:
    """A middleware made of separate hooks; subclass and override what you need."""

    name = "hooks"

    async def before(self, call: Invocation) -> None:
        """Runs before the rest of the chain (raise to refuse the call)."""

    async def after(self, call: Invocation, value: Any) -> Any:
        """Runs after a success; may replace the value."""
        return value

    async def on_error(self, call: Invocation, error: Exception) -> None:
        """Runs after a failure; the error is re-raised afterwards."""

    async def __call__(self, call: Invocation, call_next: Next) -> Any:
        await self.before(call)
        try:
            value = await call_next(call)
        except Exception as error:
            await self.on_error(call, error)
            raise
        return await self.after(call, value)


def applies(layer: Middleware, tool: Tool, policy: ToolPolicy) -> bool:
    """Whether `layer` has anything to do for calls of `tool` (True unless it says not)."""
    check: Callable[[Tool, ToolPolicy], bool] | None = getattr(layer, "applies_to", None)
    return True if check is None else check(tool, policy)


def compose(middleware: Sequence[Middleware], terminal: Next) -> Next:
    """One callable running `middleware[0]` outermost and `terminal` innermost."""
    handler = terminal
    for layer in reversed(middleware):
        handler = partial(layer.__call__, call_next=handler)
    return handler


class MiddlewareChain:
    """An ordered list of uniquely named middleware."""

    def __init__(self, middleware: Sequence[Middleware] = ()) -> None:
        self._layers: list[Middleware] = []
        for layer in middleware:
            self.add(layer)

    @property
    def names(self) -> list[str]:
        """The layers' names, outermost first."""
        return [layer.name for layer in self._layers]

    @property
    def layers(self) -> list[Middleware]:
        """The layers, outermost first."""
        return list(self._layers)

    def get(self, name: str) -> Middleware:
        """The layer called `name`."""
        return self._layers[self._index(name)]

    def add(
        self, layer: Middleware, *, before: str | None = None, after: str | None = None
    ) -> None:
        """Insert `layer` just outside `before`, just inside `after`, or innermost."""
        if before is not None and after is not None:
            raise ValueError("give `before` or `after`, not both")
        if layer.name in self.names:
            raise ValueError(f"a middleware named {layer.name!r} is already in the chain")
        if before is not None:
            self._layers.insert(self._index(before), layer)
        elif after is not None:
            self._layers.insert(self._index(after) + 1, layer)
        else:
            self._layers.append(layer)

    def remove(self, name: str) -> None:
        """Take the layer called `name` out."""
        del self._layers[self._index(name)]

    def build(
        self, terminal: Next, tool: Tool | None = None, policy: ToolPolicy | None = None
    ) -> Next:
        """The composed handler; for `tool` (with its `policy`), only the layers that apply."""
        layers = self._layers
        if tool is not None and policy is not None:
            layers = [layer for layer in layers if applies(layer, tool, policy)]
        return compose(layers, terminal)

    def _index(self, name: str) -> int:
        for i, layer in enumerate(self._layers):
            if layer.name == name:
                return i
        raise ValueError(f"no middleware named {name!r}; the chain is {self.names}")
