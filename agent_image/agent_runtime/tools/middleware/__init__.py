"""The middleware chain (`chain`) and its built-in layers: observability (`observe`),
resilience (`resilience`) and caching (`caching`)."""
