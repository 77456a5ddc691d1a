"""The pair on disk is always the old one or the new one, whatever step a crash interrupts."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pkiforge.pairs import Pair, install_pair, read_pair
from tests.agent.pairs import make_pair, serial_of_pair
from tests.client.fakeca import FakeCA

SCRIPT = Path(__file__).with_name("crash_install.py")
ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path, int]]:
    folder, ca = tmp_path_factory.mktemp("pairs"), FakeCA()
    return [
        make_pair(ca, k, folder / k) for k in ("key-p256.pem", "key-p256-b.pem", "key-p384.pem")
    ]


def _install(cert: Path, key: Path, source: tuple[Path, Path, int]) -> None:
    install_pair(cert, key, Pair(source[0].read_bytes(), source[1].read_bytes()))


def test_install_keeps_the_previous_pair_as_bak(
    tmp_path: Path, pairs: list[tuple[Path, Path, int]]
) -> None:
    cert, key = tmp_path / "tls.pem", tmp_path / "tls.key"
    shutil.copy(pairs[0][0], cert)
    shutil.copy(pairs[0][1], key)  # a plain pair, as an operator left it: adopted
    _install(cert, key, pairs[1])
    assert serial_of_pair(cert, key) == pairs[1][2]
    assert serial_of_pair(tmp_path / "tls.pem.bak", tmp_path / "tls.key.bak") == pairs[0][2]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    _install(cert, key, pairs[2])
    assert serial_of_pair(cert, key) == pairs[2][2]
    assert serial_of_pair(tmp_path / "tls.pem.bak", tmp_path / "tls.key.bak") == pairs[1][2]
    generations = [p for p in (tmp_path / ".tls.pem.pkiforge").iterdir() if p.name.startswith("g-")]
    assert len(generations) == 2  # current and previous only
    assert read_pair(cert, key).cert_pem == pairs[2][0].read_bytes()


def test_first_install_needs_no_old_pair(
    tmp_path: Path, pairs: list[tuple[Path, Path, int]]
) -> None:
    cert, key = tmp_path / "new" / "tls.pem", tmp_path / "new" / "tls.key"
    _install(cert, key, pairs[0])
    assert serial_of_pair(cert, key) == pairs[0][2]
    assert not (tmp_path / "new" / "tls.pem.bak").exists()


@pytest.mark.parametrize("start", ["plain", "managed"])
def test_a_kill_at_any_step_leaves_the_old_or_the_new_pair(
    tmp_path: Path, pairs: list[tuple[Path, Path, int]], start: str
) -> None:
    old, new = pairs[0], pairs[1]
    seen: set[int] = set()
    step = 0
    while True:
        folder = tmp_path / f"{start}-{step}"
        folder.mkdir()
        cert, key = folder / "tls.pem", folder / "tls.key"
        if start == "plain":
            shutil.copy(old[0], cert)
            shutil.copy(old[1], key)
        else:
            _install(cert, key, pairs[2])
            _install(cert, key, old)
        done = subprocess.run(
            [sys.executable, str(SCRIPT), str(cert), str(key), str(new[0]), str(new[1]), str(step)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        serial = serial_of_pair(cert, key)  # raises on a mix
        assert serial in (old[2], new[2]), f"step {step}: neither pair"
        seen.add(serial)
        if done.returncode == 0:
            assert serial == new[2]
            break
        assert done.returncode == -9, done.stderr
        _install(cert, key, pairs[2])  # and the next renewal recovers from the crash
        assert serial_of_pair(cert, key) == pairs[2][2]
        step += 1
    assert seen == {old[2], new[2]} and step > 10  # both outcomes, many crash points
