"""Pure rendering: an AgentPool, the AgentTools it resolved and the operator's settings in;
the desired children out. No kopf, no Kubernetes client: everything here is a function
of its arguments, tested with hypothesis.

`config` is the bridge to the runtime's config, the only place that knows both schemas.
"""
