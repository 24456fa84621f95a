"""The tool layer: a registry of tools (HTTP, sandboxed commands, MCP servers, other pools,
built-ins), each call validated and run through a middleware chain of logging, metrics,
fallback, cache, timeouts, retry, circuit breaker, rate limit and bulkhead.

Start at `registry.ToolRegistry` and `build.build_registry`.
"""
