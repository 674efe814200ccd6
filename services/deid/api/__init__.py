"""deid's HTTP API (prefix /api/deid), one module per resource: profiles, the ID map and
map exports, held instances, and instance audits."""
