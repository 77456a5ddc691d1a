"""bench/cpu.py: a server's CPU time counts its worker processes too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench.cpu import tree_cpu_seconds

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

# a grandchild that burns at least 0.3 s of CPU by its own account (times(2), not /proc),
# says so, and stays alive
BURN = """
import os, sys, time
while os.times().user + os.times().system < 0.3:
    sum(range(10000))
open(sys.argv[1], "w").write("burnt")
time.sleep(60)
"""


def test_the_cpu_of_children_and_grandchildren_is_counted(tmp_path: Path) -> None:
    marker = tmp_path / "burnt"
    script = tmp_path / "burn.py"
    script.write_text(BURN)
    # sh (idle) -> sh (idle) -> python (burning): the CPU is two levels down
    inner = f"'{sys.executable}' '{script}' '{marker}'; sleep 60"
    parent = subprocess.Popen(["sh", "-c", f'sh -c "{inner}"; sleep 60'], start_new_session=True)
    try:
        for _ in range(600):
            if marker.exists():
                break
            time.sleep(0.05)
        assert marker.exists(), "the burning grandchild never finished"
        total = tree_cpu_seconds(parent.pid)
        assert total is not None and total >= 0.3
        # the figure is the grandchild's: with it gone, the shells alone count for little
        burner = subprocess.run(
            ["pgrep", "-f", str(script)], capture_output=True, text=True, check=True
        ).stdout.split()
        for pid in burner:
            os.kill(int(pid), signal.SIGKILL)
        for _ in range(100):
            left = tree_cpu_seconds(parent.pid)
            if left is not None and left < 0.3:
                break
            time.sleep(0.05)
        assert left is not None and left < 0.3
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_a_process_that_is_gone_counts_nothing() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert tree_cpu_seconds(proc.pid) == 0.0
