"""The auth service: accounts, roles, licences, grants, signing keys and OAuth2 tokens."""
