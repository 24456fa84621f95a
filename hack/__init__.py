"""Developer tooling of the repository (scripts, and the pod runner as `hack.pod_runner`)."""
