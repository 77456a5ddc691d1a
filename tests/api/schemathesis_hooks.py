"""Schemathesis hooks for test_openapi_conformance: the run keeps the identity it runs as.

Loaded by the `st` process from the configuration's `hooks` entry, not collected by pytest.
"""

from __future__ import annotations

import os
import re

import schemathesis

# the hex serial of the client certificate the run authenticates with (set by the test)
OWN_SERIAL_ENV = "PKIFORGE_CONFORMANCE_OWN_SERIAL"
_REVOKES = re.compile(r"/certificates/\{serial\}/revoke$")


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    """Leave out revoking the run's own client certificate.

    Revoking it is allowed and tested elsewhere (tests/api/test_https.py); here it would turn
    every later request of the run into a 401 and leave the rest of the API untested.
    """
    own = os.environ.get(OWN_SERIAL_ENV, "")
    if not own or not _REVOKES.search(case.operation.path):
        return True
    serial = str((case.path_parameters or {}).get("serial", ""))
    digits = serial.lower().removeprefix("0x").replace(":", "").lstrip("0")
    return digits != own.lower().lstrip("0")
