"""download's HTTP API, one module per resource: NBIA's image endpoints and the
download log."""
