"""ACME (RFC 8555): the protocol's core, without HTTP or SQL.

`jws` checks requests, `models` holds the objects and their states, `service` runs the
use-cases over the ports in `ports` (store/acme_repos.py implements them), `addresses`
guards where challenge validation may connect. The router is api/acme/.
"""
