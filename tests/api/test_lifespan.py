"""What a worker does when it starts and stops serving (the app's lifespan)."""

from __future__ import annotations

import gc
from pathlib import Path

import anyio.to_thread
import pytest

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


@pytest.mark.parametrize("threads", [None, 3], ids=["default", "set"])
async def test_server_threads_sizes_the_thread_pool_the_requests_run_in(
    tmp_path: Path, threads: int | None
) -> None:
    limiter = anyio.to_thread.current_default_thread_limiter()
    default = limiter.total_tokens
    made = make_api(tmp_path / "home", threads=threads)
    try:
        async with made.app.router.lifespan_context(made.app):
            assert limiter.total_tokens == (threads or default)
            assert (await made.client.get("/healthz")).status_code == 200
    finally:
        limiter.total_tokens = default
        gc.unfreeze()
        await made.client.aclose()
