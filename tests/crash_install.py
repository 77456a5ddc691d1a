"""Run `install_pair` and SIGKILL this process just before its N-th filesystem step.

    python crash_install.py CERT KEY NEW_CERT NEW_KEY N

Counts calls to the steps that change the disk (open for writing, write, fsync, mkdir, symlink,
rename/replace, unlink, rmtree) and kills itself before step N, as a crash or `kill -9` would.
Exits 0 if the install finished before step N. No hook in src/: the steps are patched here.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# load the module by path: it needs only the standard library, and each run starts faster
_spec = importlib.util.spec_from_file_location(
    "pairstore", Path(__file__).parents[1] / "src/pkiforge/pairs.py"
)
assert _spec is not None and _spec.loader is not None
pairstore = importlib.util.module_from_spec(_spec)
sys.modules["pairstore"] = pairstore  # dataclasses look their module up
_spec.loader.exec_module(pairstore)

STEPS = ("open", "write", "fsync", "mkdir", "symlink", "replace", "rename", "unlink", "rmdir")


def main() -> None:
    cert, key, new_cert, new_key, kill_at = sys.argv[1:6]
    count = [0]

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            if count[0] == int(kill_at):
                os.kill(os.getpid(), signal.SIGKILL)
            count[0] += 1
            return original(*args, **kwargs)

        return step

    for name in STEPS:
        setattr(os, name, wrap(getattr(os, name)))
    shutil.rmtree = wrap(shutil.rmtree)  # type: ignore[assignment]
    pair = pairstore.Pair(Path(new_cert).read_bytes(), Path(new_key).read_bytes())
    pairstore.install_pair(Path(cert), Path(key), pair)
    print(count[0])


if __name__ == "__main__":
    main()
