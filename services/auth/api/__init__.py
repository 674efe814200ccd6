"""auth's HTTP API, one module per resource: OAuth2 tokens (NBIA-compatible), the
caller's own account, accounts, roles, grants, licences and their approvals, machine
clients, signing keys and the audit log.

Role and licence changes take effect in the next token (at the latest after the
one-hour life of an access token, or at once by refreshing).
"""
