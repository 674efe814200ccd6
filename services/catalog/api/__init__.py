"""The catalog's HTTP API, one module per resource: collections, value lists, patients
and studies, series — each with its NBIA-compatible endpoints and the catalog's own JSON
routes (/api/catalog) beside them."""
