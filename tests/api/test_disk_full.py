"""A full disk under a real `pkiforge serve`, its home on a small loop-mounted ext4.

Below the free-space reserve the API refuses new write work with 503 storage-full while reads
and revocations go on, and /readyz says why it is not ready; with the reserve off, writes fail
at the wall, and /readyz says so too. Freeing space brings both back without a restart.
Needs root (mount); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .helpers import make_csr
from .server import Home, Server, make_home, start_server

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
RESERVE = 8 * MIB
NAMES = ["billing.internal"]
WHITELIST = {
    "services": [
        {
            "service_id": "billing",
            "allowed_operations": ["request", "renew", "revoke", "download", "register",
                                   "update", "list"],
        }
    ]
}  # fmt: skip
CONFIG = {
    "storage": {"min_free_bytes": RESERVE, "write_probe_seconds": 5},
    "rate_limits": {"issuance_limit": 100000},
}


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def loop_mounted_ext4(where: Path, size_mib: int) -> Iterator[Path]:
    """A fresh ext4 of `size_mib` MiB (no blocks kept for root) mounted at `where`/mnt;
    unmounted afterwards, whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    image, mount = where / "disk.img", where / "mnt"
    mount.mkdir()
    _run("truncate", "-s", f"{size_mib}M", str(image))
    _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
    try:
        _run("mount", "-o", "loop", str(image), str(mount))
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot loop-mount here: {exc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        image.unlink(missing_ok=True)


def fill(mount: Path, leave: int = 0) -> Path:
    """Write a file until at most `leave` bytes are free on `mount` (or it is full)."""
    path = mount / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while (free := shutil.disk_usage(mount).free) > leave:
            size = min(MIB, max(4096, free - leave))
            try:
                os.write(fd, b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
    return path


def unfill(mount: Path) -> None:
    (mount / "filler").unlink(missing_ok=True)
    os.sync()


@dataclass
class Disk:
    mount: Path
    home: Home
    cert: tuple[str, str]
    logs: Path


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Disk]:
    """A home with a CA and a client certificate on a 64 MiB filesystem of its own."""
    where = tmp_path_factory.mktemp("disk")
    with loop_mounted_ext4(where, 64) as mount:
        home = make_home(mount / "home", WHITELIST, CONFIG)
        cert = home.client_cert("billing", "billing.internal")
        logs = where / "logs"
        logs.mkdir()
        try:
            yield Disk(mount, home, cert, logs)
        finally:
            unfill(mount)


@contextlib.contextmanager
def serving(disk: Disk, **env: str) -> Iterator[tuple[Server, httpx.Client]]:
    server = start_server(disk.home, extra=env, log_dir=disk.logs)
    try:
        with server.client(disk.cert) as client:
            register = client.post(
                "/api/v1/services/register",
                json={"service_id": "billing", "service_name": "Billing", "names": NAMES},
            )
            assert register.status_code in (201, 409), register.text
            yield server, client
    finally:
        server.stop()
        unfill(disk.mount)


def issue(client: httpx.Client) -> httpx.Response:
    return client.post("/api/v1/certificates/request", json={"csr": make_csr(NAMES[0], NAMES)})


def ready_within(client: httpx.Client, seconds: float) -> httpx.Response:
    """/readyz, asked until it answers 200 or `seconds` pass; the last answer."""
    deadline = time.monotonic() + seconds
    while True:
        answer = client.get("/readyz")
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def assert_safe_problem(answer: httpx.Response, disk: Disk, slug: str) -> dict[str, object]:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["type"] == f"urn:pkiforge:problem:{slug}"
    for secret in (str(disk.mount), "pkiforge.db", "127.0.0.1", "localhost"):
        assert secret not in answer.text
    return dict(body)


def test_below_the_reserve_new_writes_get_503_while_reads_and_revocations_go_on(
    disk: Disk,
) -> None:
    with serving(disk) as (_server, client):
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "write": "ok", "storage": "ok"}
        first = issue(client)
        assert first.status_code == 201, first.text
        serial = first.json()["serial"]

        fill(disk.mount, leave=RESERVE // 2)  # below the reserve; SQLite could still write
        not_ready = assert_safe_problem(client.get("/readyz"), disk, "not-ready")
        assert not_ready["checks"] == {
            "database": "ok", "write": "ok", "storage": "below reserve"
        }  # fmt: skip
        assert "storage below reserve" in str(not_ready["detail"])
        refused = assert_safe_problem(issue(client), disk, "storage-full")
        assert "storage nearly full" in str(refused["detail"])
        renewal = client.post(f"/api/v1/certificates/{serial}/renew", json={})
        assert_safe_problem(renewal, disk, "storage-full")
        assert client.get("/healthz").status_code == 200  # liveness stays
        assert client.get(f"/api/v1/certificates/{serial}").status_code == 200  # reads work
        gauges = {
            sample.name: sample.value
            for family in text_string_to_metric_families(client.get("/metrics").text)
            for sample in family.samples
            if not sample.labels
        }
        assert gauges["pkiforge_ready"] == 0
        assert gauges["pkiforge_storage_free_bytes"] < gauges["pkiforge_storage_reserve_bytes"]
        assert gauges["pkiforge_storage_reserve_bytes"] == RESERVE
        revoked = client.post(
            f"/api/v1/certificates/{serial}/revoke", json={"reason": "superseded"}
        )
        assert revoked.status_code == 200, revoked.text  # the reserve is kept for these

        unfill(disk.mount)
        again = ready_within(client, 30)
        assert again.status_code == 200, again.text
        assert issue(client).status_code == 201


def test_with_no_reserve_a_full_disk_fails_writes_and_readyz_says_so(disk: Disk) -> None:
    with serving(disk, PKIFORGE_STORAGE__MIN_FREE_BYTES="0") as (server, client):
        assert client.get("/readyz").status_code == 200
        fill(disk.mount)
        # SQLite writes into the room its WAL already has, then fails
        for _ in range(500):
            answer = issue(client)
            if answer.status_code != 201:
                break
        failed = assert_safe_problem(answer, disk, "unavailable")
        assert failed["status"] == 503
        not_ready = assert_safe_problem(client.get("/readyz"), disk, "not-ready")
        assert not_ready["checks"] == {"database": "ok", "write": "failed", "storage": "ok"}
        assert client.get("/healthz").status_code == 200

        unfill(disk.mount)
        again = ready_within(client, 60)
        assert again.status_code == 200, again.text
        assert issue(client).status_code == 201
        log = server.log.read_text(errors="replace")
    # the checkpointer backs off while the disk is full: no line every 0.1 s
    assert log.count("WAL checkpoint") <= 6, log
