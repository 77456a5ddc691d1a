"""CPU time used by a server: the process and every process under it (Linux /proc)."""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")


def _parents() -> dict[int, int]:
    """pid -> parent pid, for every process that can be read now."""
    out: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(entry.name)] = int(fields[1])
    return out


def _ticks(pid: int) -> int:
    """utime + stime of `pid` (all its threads), in clock ticks; 0 if it is gone."""
    try:
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds used so far by `pid` and its living descendants; None without /proc.

    A descendant that exited is not counted: for a bench window, start and end both read the
    same long-lived workers.
    """
    if not (_PROC / "self" / "stat").exists():
        return None
    parents = _parents()
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(_ticks(p) for p in tree) / os.sysconf("SC_CLK_TCK")
