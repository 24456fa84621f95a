"""The operator's autoscaler (mode Operator) and the load it serves to an HPA (mode HPA)."""
