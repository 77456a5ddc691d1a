"""The sdist and wheel that `python -m build` makes carry every file the package needs, and the
wheel, installed from the lock into a clean virtualenv away from the source tree, runs
`pkiforge --version`, `init` and `serve`."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

import pkiforge

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "pkiforge"


def package_files() -> set[str]:
    """Every file of the package in the source tree, as `pkiforge/...` paths."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "src/pkiforge"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        files = [ROOT / name for name in listed]
    else:
        files = [p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return {str(p.relative_to(PACKAGE.parent)) for p in files if p.exists()}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist, and a wheel built from that sdist (build's default), in a scratch folder."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_the_wheel_and_sdist_carry_every_package_file(dist: Path) -> None:
    wanted = package_files()
    assert "pkiforge/store/migrations/script.py.mako" in wanted  # the walk found data files
    (wheel,) = dist.glob("*.whl")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert sorted(wanted - in_wheel) == []
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:  # names are "pkiforge-<version>/src/pkiforge/..."
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert sorted(f"src/{name}" for name in wanted if f"src/{name}" not in in_sdist) == []
    assert {"pyproject.toml", "README.md"} <= in_sdist


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_wheel_runs_init_and_serve_from_a_clean_virtualenv(dist: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PKIFORGE_", "PYTHON"))}
    env["PKIFORGE_CA_PASSPHRASE"] = "packaging-test-passphrase-0123"
    env["PKIFORGE_CA__KDF_LOG2_N"] = "14"  # the cheapest scrypt cost allowed: a fast init
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    (wheel,) = dist.glob("*.whl")
    for args in (
        ["--require-hashes", "-r", str(ROOT / "requirements.lock")],
        ["--no-deps", str(wheel)],
    ):
        proc = subprocess.run(
            [str(py), "-m", "pip", "install", "--quiet", *args],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]

    work = tmp_path / "elsewhere"
    work.mkdir()
    exe = str(env_dir / "bin" / "pkiforge")

    def cli(*args: str) -> str:
        proc = subprocess.run(
            [exe, *args], cwd=work, env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, f"pkiforge {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    assert cli("--version").strip() == f"pkiforge {pkiforge.__version__}"
    where = subprocess.run(
        [str(py), "-c", "import pkiforge; print(pkiforge.__file__)"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(env_dir) in where and str(ROOT) not in where

    home = work / "home"
    cli("--home", str(home), "init", "--root-key-type", "p256", "--intermediate-key-type", "p256")
    root = work / "root.pem"
    root.write_text(cli("--home", str(home), "ca", "chain", "root"))

    port = free_port()
    server = subprocess.Popen(
        [exe, "--home", str(home), "serve", "--port", str(port)],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        tls = ssl.create_default_context(cafile=str(root))
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=tls).status_code
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert status == 200, server.stdout.read().decode() if server.poll() is not None else ""
        # migrations come from the wheel: a database-backed route answers
        assert httpx.get(f"https://127.0.0.1:{port}/readyz", verify=tls).status_code == 200
    finally:
        server.terminate()
        server.wait(15)
