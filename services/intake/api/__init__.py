"""intake's HTTP API beyond uploads, one module per resource."""
