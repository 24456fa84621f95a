"""custom.metrics.k8s.io for HPA mode: each pool's load as an Object metric on the pool,
served to the API server's aggregation layer (opt-in, `AGENTPOOL_METRICS_API_PORT`).

`documents` builds the bodies (pure), `front_proxy` authenticates the aggregator,
`access` asks the API server whether the caller may read (SubjectAccessReview),
`apiservice` registers the APIService unless another adapter owns it, `serving_cert`
makes the TLS certificate and `server` puts them together.
"""
