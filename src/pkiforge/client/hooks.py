"""What to do after a renewal, or after the CA bundle changed: run a command (told which by
`PKIFORGE_EVENT`), or signal a process (the restart callback)."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from pathlib import Path

from pkiforge.client.models import Certificate
from pkiforge.errors import PkiError

__all__ = ["ExecHook", "HookFailed", "SignalHook", "exec_hook", "parse_signal", "signal_hook"]

log = logging.getLogger("pkiforge.agent")
EXEC_TIMEOUT = 120.0


class HookFailed(PkiError):
    """The certificate was renewed, but the post-renewal command or signal failed."""


def parse_signal(name: str) -> signal.Signals:
    """`HUP`, `SIGHUP` or `1` as a signal.

    Raises:
        ValueError: not a signal of this platform.
    """
    text = name.strip().upper()
    if text.isdigit():
        return signal.Signals(int(text))
    try:
        return signal.Signals[text if text.startswith("SIG") else f"SIG{text}"]
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None


def exec_hook(command: str) -> ExecHook:
    """Run `command` (split like a shell would, but without a shell) after each renewal."""
    return ExecHook(shlex.split(command))


class ExecHook:
    def __init__(self, argv: list[str]) -> None:
        if not argv:
            raise ValueError("the --exec command is empty")
        self.argv = argv

    def __call__(self, cert: Certificate) -> None:
        self._run(
            {
                "PKIFORGE_EVENT": "renewed",
                "PKIFORGE_SERIAL": cert.serial,
                "PKIFORGE_NOT_AFTER": str(cert.not_after),
            }
        )

    def bundle_changed(self) -> None:
        """The CA bundle changed without a renewal (a CA was rotated): reload it too."""
        self._run({"PKIFORGE_EVENT": "ca-bundle"})

    def _run(self, extra: dict[str, str]) -> None:
        env = {**os.environ, **extra}
        try:
            done = subprocess.run(self.argv, env=env, timeout=EXEC_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HookFailed(f"post-renewal command {self.argv[0]!r} failed: {exc}") from None
        if done.returncode != 0:
            raise HookFailed(f"post-renewal command {self.argv[0]!r} exited {done.returncode}")
        log.info("ran %s", shlex.join(self.argv))


def signal_hook(sig: signal.Signals, pid_file: Path) -> SignalHook:
    """Send `sig` to the process whose pid is in `pid_file` after each renewal."""
    return SignalHook(sig, pid_file)


class SignalHook:
    def __init__(self, sig: signal.Signals, pid_file: Path) -> None:
        self.sig, self.pid_file = sig, pid_file

    def check(self) -> None:
        """Fail before any renewal, not after it, when the pid file names no process this
        agent may signal (signal 0 probes without sending anything).

        Raises:
            ValueError: unreadable, not a pid, no such process, or not ours to signal.
        """
        try:
            os.kill(self._pid(), 0)
        except OSError as exc:
            raise ValueError(f"{self.pid_file}: {exc.strerror or exc}") from None

    def _pid(self) -> int:
        try:
            text = self.pid_file.read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read {self.pid_file}: {exc.strerror or exc}") from None
        if not text.isdigit() or int(text) <= 0:
            raise ValueError(f"{self.pid_file} does not hold a process id: {text[:20]!r}")
        return int(text)

    def __call__(self, _cert: Certificate) -> None:
        self.bundle_changed()

    def bundle_changed(self) -> None:
        """Signal as after a renewal: a reload reads the pair and the CA bundle."""
        try:
            pid = self._pid()
            os.kill(pid, self.sig)
        except (OSError, ValueError) as exc:
            raise HookFailed(f"cannot send {self.sig.name} via {self.pid_file}: {exc}") from None
        log.info("sent %s to %d", self.sig.name, pid)
