"""imarc services: intake, deid, qc, catalog, download, auth, and their shared mechanisms."""
