"""The README's tour works as typed: its command block, read from README.md itself, runs in a
scratch folder against the installed pkiforge (the virtualenv running these tests)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- tour: the block below is run by tests/cli/test_readme_tour.py -->"

pytestmark = pytest.mark.slow


def tour_block(text: str) -> str:
    """The ```sh block right after the tour marker."""
    assert MARKER in text, "README.md lost the tour marker; keep it above the tour's block"
    after = text.split(MARKER, 1)[1]
    match = re.match(r"\s*```sh\n(.*?)\n```", after, re.DOTALL)
    assert match, "the tour marker must be followed by a ```sh block"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_marker_finds_the_block() -> None:
    text = "intro\n" + MARKER + "\n```sh\necho one\necho two\n```\nafter\n```sh\nno\n```\n"
    assert tour_block(text) == "echo one\necho two"


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    block = tour_block(README.read_text())
    # the tour starts at the top of a clone after `make run`: give the scratch folder the
    # installed virtualenv under the name the tour uses
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKIFORGE_")}
    env |= {"PORT": str(free_port()), "TMPDIR": str(tmp_path)}
    script = tmp_path / "tour.sh"
    # -e: the first failing command fails the tour; -x: the log shows which one it was
    script.write_text("set -eux\n" + block + "\n")
    proc = subprocess.Popen(
        ["bash", str(script)], cwd=tmp_path, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=300)
    finally:  # the tour's server runs in the background: end whatever is left of the session
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
    assert proc.returncode == 0, out[-6000:]
    assert "api.pem: revoked" in out and "certificate revoked" in out
    assert (tmp_path / "billing.pem").exists() and (tmp_path / "tour" / "ca").is_dir()
