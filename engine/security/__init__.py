"""Security: users with argon2 hashes, bearer tokens, rate limiters, the SSRF guard (a policy per kind of outbound
connection, checked when a URL is saved and by the connector of every outbound client) and secret files.

A low layer: imports db, contract and clock only.
"""
