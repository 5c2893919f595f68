"""Security: users with argon2 hashes, bearer tokens, rate limiters, the SSRF allowlist and secret
files.

A low layer: imports db, contract and clock only.
"""
