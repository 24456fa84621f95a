"""The runtime's configuration schema: the contract the operator renders into a ConfigMap.

Each section lives in its own module (tools, memory, ...) and is composed here into
`RuntimeConfig` as the features land.
"""
