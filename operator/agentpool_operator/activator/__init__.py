"""The activator: holds an HTTP request for a pool scaled to zero, wakes the pool, and
proxies the request to its first ready pod (docs/autoscaling.md, "Zero and back")."""
