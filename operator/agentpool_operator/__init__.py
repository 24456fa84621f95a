"""The Agentpool Kubernetes operator (kopf)."""
