"""Schemathesis hooks for test_openapi_conformance: the run keeps the identity it runs as.

Loaded by the `st` process from the configuration's `hooks` entry, not collected by pytest.
"""

from __future__ import annotations

import os
import re

import schemathesis

# the hex serial of the client certificate the run authenticates with, and the CAs that
# issued it (comma-separated names), set by the test
OWN_SERIAL_ENV = "PKIFORGE_CONFORMANCE_OWN_SERIAL"
OWN_CAS_ENV = "PKIFORGE_CONFORMANCE_OWN_CAS"
_REVOKES_LEAF = re.compile(r"/certificates/\{serial\}/revoke$")
_REVOKES_CA = re.compile(r"/ca/\{name\}/revoke$")


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    """Leave out revoking the run's own client certificate or a CA of its chain.

    Revoking them is allowed and tested elsewhere (tests/api/test_https.py); here it would turn
    every later request of the run into a 401 and leave the rest of the API untested.
    """
    params = case.path_parameters or {}
    if _REVOKES_LEAF.search(case.operation.path):
        own = os.environ.get(OWN_SERIAL_ENV, "").lower().lstrip("0")
        serial = str(params.get("serial", "")).lower().removeprefix("0x").replace(":", "")
        return serial.lstrip("0") != own
    if _REVOKES_CA.search(case.operation.path):
        return str(params.get("name", "")) not in os.environ.get(OWN_CAS_ENV, "").split(",")
    return True
