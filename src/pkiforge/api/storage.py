"""The free-space reserve as a route dependency: routes that start new write work take it."""

from __future__ import annotations

from fastapi import Depends

from pkiforge.api.deps import StateDep


async def _refuse_below_reserve(state: StateDep) -> None:
    """503 storage-full while the database's disk has less free space than the reserve.

    Raises:
        StorageFull, StoreUnavailable: see `DiskReserve.check`.
    """
    if state.readiness.reserve is not None:
        state.readiness.reserve.check()


# `dependencies=[NEW_WRITES]` on a route that creates things (issuance, registrations): checked
# before authentication, so a refused request costs no nonce or bookkeeping write either.
# Revocations and reads do not take it: the reserve is kept for them.
NEW_WRITES = Depends(_refuse_below_reserve)
