"""Auth: the Docker token protocol (docs/auth.md).

`scopes` parses what clients ask for, `keys` and `tokens` sign and check JWTs, `passwords`
hashes secrets, `permissions` decides what a principal may do, `access` checks each request.
"""
