"""The lock files against pyproject.toml: `check` that they still match, `diff` two versions.

    python scripts/locks.py check                 # exit 1, naming each mismatch
    python scripts/locks.py diff OLD NEW          # Keep a Changelog lines for what moved

The locks are written by `make lock` / `make upgrade` (uv pip compile --generate-hashes);
`make run` and `make test` install from them with `pip --require-hashes`. This script needs the
standard library and `packaging` (in the test lock); `make test` runs `check` before the tests.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
# lock file -> the extras of pyproject.toml it resolves
LOCKS = {
    "requirements.lock": ("postgres", "redis"),
    "requirements-test.lock": ("postgres", "redis", "test"),
}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def read_lock(path: Path) -> dict[str, str]:
    """Package name (canonical) -> pinned version."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = _PIN.match(line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def mismatches(lock: str, extras: tuple[str, ...]) -> list[str]:
    path = ROOT / lock
    if not path.exists():
        return [f"{lock}: missing (run `make lock`)"]
    pins = read_lock(path)
    problems = []
    env = default_environment()
    for req in requirements(extras):
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{lock}: {req} is not locked")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{lock}: {req.name}=={pins[name]} does not satisfy {req}")
    if any(line.startswith("-e ") for line in path.read_text().splitlines()):
        problems.append(f"{lock}: holds an editable line; the project installs with --no-deps")
    return problems


def check() -> int:
    problems = [p for lock, extras in LOCKS.items() for p in mismatches(lock, extras)]
    app, test = (read_lock(ROOT / name) if (ROOT / name).exists() else {} for name in LOCKS)
    for name, version in app.items():
        if name in test and test[name] != version:
            problems.append(
                f"requirements-test.lock pins {name}=={test[name]}, requirements.lock {version}"
            )
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print("the locks no longer match pyproject.toml: run `make lock`", file=sys.stderr)
        return 1
    print(f"locks match pyproject.toml ({len(app)} + {len(test)} pins)")
    return 0


def diff(old: Path, new: Path) -> int:
    before, after = read_lock(old), read_lock(new)
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was == now:
            continue
        if was is None:
            print(f"- Added {name} {now}")
        elif now is None:
            print(f"- Removed {name} {was}")
        else:
            print(f"- {name} {was} -> {now}")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"]:
        return check()
    if argv[:1] == ["diff"] and len(argv) == 3:
        return diff(Path(argv[1]), Path(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
