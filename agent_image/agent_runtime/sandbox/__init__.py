"""The command-tool sandbox: where a command tool's program actually runs.

- `protocol`: the request and outcome of one call, as JSON (stdlib only).
- `supervise`: the per-call supervisor process (`python -m agent_runtime.sandbox.supervise`):
  a child subreaper that runs the program and kills every process the call left behind.
- `landlock`: the unprivileged Linux filesystem and signal scoping applied to the program.
- `spawn`: start a supervisor for one call and read its outcome (asyncio).
- `runner`: `agentpool-tool-runner`, the separate process (another uid, another container)
  that serves calls over a Unix socket; `client` is the runtime's side of that socket.

Nothing here imports the tool layer: errors are `SandboxError`s that the tools map.
"""
