"""What a worker does when it starts and stops serving (the app's lifespan)."""

from __future__ import annotations

import gc
from pathlib import Path

from .helpers import make_api


async def test_startup_objects_are_frozen_while_serving_and_released_after(
    tmp_path: Path,
) -> None:
    made = make_api(tmp_path / "home")
    try:
        assert gc.get_freeze_count() == 0
        async with made.app.router.lifespan_context(made.app):
            # the app, the wiring and the imported modules stay out of full collections
            assert gc.get_freeze_count() > 1000
            assert (await made.client.get("/healthz")).status_code == 200
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        await made.client.aclose()
