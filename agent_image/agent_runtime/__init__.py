"""The Agentpool agent runtime: what every agent pod runs."""
