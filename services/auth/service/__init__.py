"""auth's use cases, by seam: accounts (registration, administration, one's own account),
access (roles and collection grants), licences (and their acceptances), clients (API
keys), oauth (token grants, logout, revocation), keys (rotation); ``audit`` is the unit of
work that records who did what, ``throttle`` the failed-attempt counters."""
