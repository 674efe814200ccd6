"""qc's HTTP API, one module per resource: collections (status, series, publish) and
series (review, withdraw)."""
